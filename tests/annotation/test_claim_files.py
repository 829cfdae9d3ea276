"""The claim file readers alone (no database): discovery, splits, formats, line numbers."""
import gzip
import re
import time
import tracemalloc
import zlib

import orjson
import pytest

from annotation.claims.files import (
    ClaimFileError,
    RowChecker,
    discover_claim_files,
    read_claim_rows,
)
from tests.conftest import (
    claim_records,
    frameref_record,
    write_csv,
    write_jsonl,
    write_parquet,
)


def rows_of(path, **options):
    rows = []
    for claim_file in discover_claim_files([path]):
        rows += list(read_claim_rows(claim_file, RowChecker(claim_file=claim_file, **options)))
    return rows


def test_folders_are_read_in_natural_order_with_splits_from_folders_and_names(tmp_path):
    for name in ("train/train-0010.jsonl", "train/train-0002.jsonl", "test/test-0000.jsonl",
                 "extra/dev-0000.jsonl", "unsplit/unsplit-0000.jsonl", "misc/claims.jsonl"):
        write_jsonl(tmp_path / name, claim_records(1))
    (tmp_path / "notes.txt").write_text("not a claim file")
    found = [(str(f.path.relative_to(tmp_path)), f.split) for f in discover_claim_files([tmp_path])]
    assert found == [
        ("extra/dev-0000.jsonl", "dev"),
        ("misc/claims.jsonl", None),
        ("test/test-0000.jsonl", "test"),
        ("train/train-0002.jsonl", "train"),
        ("train/train-0010.jsonl", "train"),
        ("unsplit/unsplit-0000.jsonl", "none"),
    ]


def test_the_same_file_twice_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", claim_records(1))
    with pytest.raises(ClaimFileError, match="the same file is named twice"):
        discover_claim_files([path, tmp_path])


def test_blank_lines_are_skipped_and_line_numbers_stay_physical(tmp_path):
    path = tmp_path / "gaps.jsonl"
    records = claim_records(1, framings=("original", "emotional"))
    path.write_bytes(b"\n" + orjson.dumps(records[0]) + b"\n\n   \n" + orjson.dumps(records[1]) + b"\n")
    rows = rows_of(path)
    assert [(row.line, row.framing) for row in rows] == [(2, "original"), (5, "emotional")]


def test_gzipped_json_lines_are_read(tmp_path):
    path = tmp_path / "train-0000.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        for record in claim_records(2):
            handle.write(orjson.dumps(record) + b"\n")
    rows = rows_of(path)
    assert len(rows) == 12 and {row.split for row in rows} == {"train"}


def test_csv_line_numbers_count_physical_lines_of_multiline_fields(tmp_path):
    records = claim_records(1, framings=("original", "consensus", "emotional"))
    records[0]["restated_claim"] = "First line\nsecond line"
    records[2]["framing_type"] = "nope"
    path = write_csv(tmp_path / "c.csv", records)
    with pytest.raises(ClaimFileError) as error:
        rows_of(path)
    assert error.value.line == 5 and error.value.field == "framing_type"


def test_defaults_apply_only_where_a_record_is_silent(tmp_path):
    records = [frameref_record("a", "original", "A.", "SUPPORTS"),
               frameref_record("a", "consensus", "Most say A.", "SUPPORTS"),
               frameref_record("b", "consensus", "Most say B.", "REFUTES", split="dev",
                               verification="failed", generator="other")]
    rows = rows_of(write_jsonl(tmp_path / "c.jsonl", records), default_split="test",
                   verification="passed", generator="gen")
    assert [(r.split, r.verification, r.generator) for r in rows] == [
        ("test", "not_applicable", "gen"), ("test", "passed", "gen"), ("dev", "failed", "other")]


def test_error_carries_its_parts(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [frameref_record("a", "original", "A.", "MAYBE")])
    with pytest.raises(ClaimFileError) as error:
        rows_of(path)
    assert (error.value.path, error.value.line, error.value.field, error.value.value) == \
        (str(path), 1, "true_label", "MAYBE")
    assert error.value.accepted == "SUPPORTS or REFUTES"


def test_overlong_values_are_refused_before_the_database_sees_them(tmp_path):
    record = frameref_record("x" * 201, "original", "A.", "SUPPORTS")
    with pytest.raises(ClaimFileError, match="the base id is too long \\(201 characters\\); accepted: at most 200"):
        rows_of(write_jsonl(tmp_path / "c.jsonl", [record]))


def test_a_long_claim_id_with_a_base_id_that_fits_is_accepted(tmp_path):
    record = frameref_record("y" * 195, "sensationalist", "Wow!", "SUPPORTS")
    assert rows_of(write_jsonl(tmp_path / "c.jsonl", [record]))[0].base_id == "y" * 195


# --- Limits and broken archives (issue 12, finding 2) ---------------------------------------
# Every bomb here is built with a streaming compressor, so the test never holds what the file
# decompresses to; each must be refused in seconds with memory bounded by the limits, not by
# the file.

def gzip_stream(path, *pieces):
    """A gzip file of `pieces`, each (bytes, times), compressed without ever joining them."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    with open(path, "wb") as out:
        for chunk, times in pieces:
            for _ in range(times):
                out.write(compressor.compress(chunk))
        out.write(compressor.flush())
    return path


def refused(path, **options):
    """The error reading `path` gives, the seconds it took and the peak of traced memory."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ClaimFileError) as error:
            rows_of(path, **options)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return error.value, seconds, peak


MIB = 1 << 20


def test_a_gzip_bomb_of_one_huge_line_is_refused_at_once_with_little_memory(tmp_path):
    # 64 MiB of one line in 64 KiB of gzip; FrameRef's longest lines are a few KB.
    path = gzip_stream(tmp_path / "claims.jsonl.gz", (b'{"claim_id": "', 1), (b"x" * MIB, 64))
    assert path.stat().st_size < 200_000
    error, seconds, peak = refused(path)
    assert str(error) == f"{path}:1: line longer than 1,000,000 bytes (FRAMELAB_MAX_LINE_BYTES)"
    assert seconds < 5 and peak < 16 * MIB, (seconds, peak)


def test_a_gzip_bomb_of_newlines_is_refused_at_once(tmp_path):
    path = gzip_stream(tmp_path / "claims.jsonl.gz", (b"\n" * MIB, 16))
    error, seconds, peak = refused(path)
    assert str(error).startswith(f"{path}:10001: ")
    assert "more blank lines (10,001) than records (0)" in str(error)
    assert seconds < 5 and peak < 16 * MIB, (seconds, peak)


def test_a_gzip_bomb_of_blank_looking_lines_is_stopped_by_the_compression_ratio(tmp_path):
    # Long lines of spaces: few lines, each under the line limit, all blank.
    path = gzip_stream(tmp_path / "claims.jsonl.gz", (b" " * 500_000 + b"\n", 128))
    error, seconds, peak = refused(path)
    assert str(error).startswith(f"{path}:3: ")
    assert "FRAMELAB_MAX_COMPRESSION_RATIO" in str(error) and "more than 200 times" in str(error)
    assert seconds < 5 and peak < 16 * MIB, (seconds, peak)


def test_a_line_longer_than_the_limit_is_refused_without_reading_it_whole(tmp_path):
    long_record = frameref_record("a", "consensus", "Most say A.", "SUPPORTS",
                                  source="s" * 10, messages=[{"content": "m" * 1_200_000}])
    path = write_jsonl(tmp_path / "c.jsonl", [*claim_records(1, framings=("original",)),
                                              long_record])
    error, _, peak = refused(path)
    assert str(error) == f"{path}:2: line longer than 1,000,000 bytes (FRAMELAB_MAX_LINE_BYTES)"
    assert peak < 4 * MIB


def test_lines_up_to_the_limit_are_read(tmp_path):
    from annotation.claims.files import ReadLimits

    record = orjson.dumps(frameref_record("a", "original", "A.", "SUPPORTS"))
    padded = record[:-1] + b', "pad": "' + b"p" * (1000 - len(record) - 11) + b'"}'
    assert len(padded) == 1000
    path = tmp_path / "c.jsonl"
    path.write_bytes(padded + b"\n" + padded.replace(b"a:orig", b"b:orig"))  # no final newline
    assert len(rows_of(path, limits=ReadLimits(line_bytes=1000))) == 2
    with pytest.raises(ClaimFileError, match=r"c.jsonl:1: line longer than 999 bytes"):
        rows_of(path, limits=ReadLimits(line_bytes=999))


def test_a_claim_longer_than_the_limit_is_refused(tmp_path):
    fits = frameref_record("a", "original", "a" * 10_000, "SUPPORTS")
    too_long = frameref_record("b", "original", "b" * 10_001, "SUPPORTS")
    assert len(rows_of(write_jsonl(tmp_path / "fits.jsonl", [fits]))) == 1
    error, _, _ = refused(write_jsonl(tmp_path / "long.jsonl", [fits, too_long]))
    assert error.line == 2 and error.field == "restated_claim"
    assert "too long (10,001 characters); accepted: at most 10,000 characters " \
           "(FRAMELAB_MAX_CLAIM_CHARS)" in str(error)


def test_truncated_and_corrupt_archives_are_named_by_file_and_line(tmp_path):
    whole = gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in claim_records(20)))
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    error, _, _ = refused(truncated)
    assert re.fullmatch(rf"{re.escape(str(truncated))}:\d+: the compressed data ends early: "
                        r"the \.gz file is truncated \(an incomplete upload or copy\?\)", str(error))

    not_gzip = write_jsonl(tmp_path / "plain.jsonl.gz", claim_records(1))
    error, _, _ = refused(not_gzip)
    assert str(error).startswith(f"{not_gzip}:1: not a gzip file, although its name ends in .gz")

    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(whole[:-8] + bytes([whole[-8] ^ 0xFF]) + whole[-7:])  # bad CRC
    error, _, _ = refused(corrupt)
    assert str(error).startswith(f"{corrupt}:") and "corrupt compressed data" in str(error)


def test_gzip_members_and_zero_padding_are_read_as_one_file(tmp_path):
    records = claim_records(2)
    path = tmp_path / "train-0000.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in records[:5]))
                     + gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in records[5:]))
                     + b"\0" * 512)
    assert [row.line for row in rows_of(path)] == list(range(1, 13))
    empty = tmp_path / "empty.jsonl.gz"
    empty.write_bytes(b"")
    assert rows_of(empty) == []


def test_parquet_meets_the_decompressed_size_limit_too(tmp_path):
    from annotation.claims.files import ReadLimits

    path = write_parquet(tmp_path / "claims.parquet", claim_records(4))
    assert len(rows_of(path)) == 24
    with pytest.raises(ClaimFileError, match=r"claims.parquet: decompresses to more than 100 "
                                             r"bytes \(FRAMELAB_MAX_DECOMPRESSED_BYTES\)"):
        rows_of(path, limits=ReadLimits(decompressed_bytes=100))


def test_no_damage_to_a_gzip_file_escapes_as_anything_but_a_claim_file_error(tmp_path):
    import random

    whole = gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in claim_records(20)))
    path = tmp_path / "claims.jsonl.gz"
    rng = random.Random(12)
    for _ in range(300):
        data = bytearray(whole)
        for _ in range(rng.randint(0, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data[: rng.randrange(1, len(data) + 1)]))
        try:
            rows_of(path)
        except ClaimFileError as error:
            assert str(error).startswith(f"{path}:")
