"""The claim file readers alone (no database): discovery, splits, formats, line numbers."""
import gzip

import orjson
import pytest

from annotation.claims.files import (
    ClaimFileError,
    RowChecker,
    discover_claim_files,
    read_claim_rows,
)
from tests.conftest import claim_records, frameref_record, write_csv, write_jsonl


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
