"""`manage.py import_claims`: every format imports, and every bad row is refused with a message
that names file, line, field and value, leaving the database exactly as it was."""
from __future__ import annotations

import gzip
import re

import orjson
import pytest
from django.core.management import CommandError, call_command

from annotation.models import BaseClaim, Dataset, FramedClaim
from tests.conftest import (
    claim_records,
    frameref_record,
    write_csv,
    write_jsonl,
    write_parquet,
)

pytestmark = pytest.mark.django_db


def database_snapshot() -> tuple:
    """Everything the import could touch, as plain values."""
    return (
        list(Dataset.objects.order_by("pk").values_list("pk", "name", "description", "source", "licence")),
        list(BaseClaim.objects.order_by("pk").values_list()),
        list(FramedClaim.objects.order_by("pk").values_list()),
    )


def import_claims(*paths, dataset="frameref", **options):
    call_command("import_claims", *map(str, paths), dataset=dataset, no_progress=True, **options)


@pytest.fixture
def existing_dataset(tmp_path):
    """A dataset already holding claims, so a failed import has something to leave alone."""
    import_claims(write_jsonl(tmp_path / "existing.jsonl", claim_records(3, prefix="old")),
                  dataset="existing")
    return Dataset.objects.get(name="existing")


def test_imports_a_frameref_folder_with_splits_from_the_folders(tmp_path):
    write_jsonl(tmp_path / "data/train/train-0000.jsonl", claim_records(3, prefix="a"))
    write_jsonl(tmp_path / "data/train/train-0001.jsonl", claim_records(2, prefix="b"))
    write_jsonl(tmp_path / "data/dev/dev-0000.jsonl", claim_records(2, prefix="c"))
    write_jsonl(tmp_path / "data/test/test-0000.jsonl", claim_records(1, prefix="d"))

    import_claims(tmp_path / "data", source="FrameRef", licence="CC-BY-SA-4.0")

    dataset = Dataset.objects.get(name="frameref")
    assert (dataset.source, dataset.licence) == ("FrameRef", "CC-BY-SA-4.0")
    assert FramedClaim.objects.filter(base_claim__dataset=dataset).count() == 8 * 6
    splits = dict(BaseClaim.objects.filter(dataset=dataset).values_list("external_id", "split"))
    assert splits == {"a-0": "train", "a-1": "train", "a-2": "train", "b-0": "train",
                      "b-1": "train", "c-0": "dev", "c-1": "dev", "d-0": "test"}
    claim = FramedClaim.objects.get(base_claim__external_id="a-1", framing="prestige")
    assert claim.text == "Claim 1 told in the prestige way."
    assert claim.base_claim.true_label == "REFUTES"
    assert claim.claim_id == "a-1:prestige"
    assert claim.verification == "unverified"
    assert FramedClaim.objects.get(base_claim__external_id="a-1", framing="original").verification == "not_applicable"


def test_csv_and_parquet_import_like_json_lines(tmp_path):
    records = claim_records(2, prefix="x")
    records[1]["restated_claim"] = 'Text with a comma, a "quote" and\na newline — and ünïcode.'
    write_csv(tmp_path / "claims.csv", records)
    write_parquet(tmp_path / "claims.parquet", claim_records(2, prefix="y"))

    import_claims(tmp_path / "claims.csv", tmp_path / "claims.parquet", split="test")

    assert FramedClaim.objects.count() == 24
    assert set(BaseClaim.objects.values_list("split", flat=True)) == {"test"}
    assert FramedClaim.objects.get(base_claim__external_id="x-0", framing="authoritative").text == \
        records[1]["restated_claim"]


def test_optional_fields_are_kept(tmp_path):
    records = [frameref_record("q-1", framing, f"Text {framing}.", "SUPPORTS", topic="space",
                               source="Moon", split="dev", verification="passed",
                               generator="llama-3") for framing in ("original", "consensus")]
    import_claims(write_jsonl(tmp_path / "claims.jsonl", records))
    base = BaseClaim.objects.get()
    assert (base.topic, base.source, base.split) == ("space", "Moon", "dev")
    assert list(base.framed_claims.values_list("verification", "generator")) == [
        ("passed", "llama-3"), ("passed", "llama-3")]


def test_more_files_add_to_an_existing_dataset(tmp_path, existing_dataset):
    import_claims(write_jsonl(tmp_path / "more.jsonl", claim_records(2, prefix="new")),
                  dataset="existing")
    assert BaseClaim.objects.filter(dataset=existing_dataset).count() == 5
    assert FramedClaim.objects.filter(base_claim__dataset=existing_dataset).count() == 30


def test_new_framings_of_a_stored_base_claim_are_added(tmp_path):
    import_claims(write_jsonl(tmp_path / "a.jsonl", claim_records(1, framings=("original",))))
    import_claims(write_jsonl(tmp_path / "b.jsonl", claim_records(1, framings=("emotional",))))
    assert sorted(FramedClaim.objects.values_list("framing", flat=True)) == ["emotional", "original"]
    assert BaseClaim.objects.count() == 1


def test_reimporting_the_same_rows_is_refused_unless_skip_existing(tmp_path, existing_dataset):
    path = write_jsonl(tmp_path / "again.jsonl",
                       claim_records(3, prefix="old") + claim_records(1, prefix="fresh"))
    before = database_snapshot()
    with pytest.raises(CommandError) as error:
        import_claims(path, dataset="existing")
    message = str(error.value)
    assert f"{path}:1: field 'claim_id': value 'old-0:original': duplicate claim id" in message
    assert "already in dataset 'existing'" in message and "--skip-existing" in message
    assert database_snapshot() == before

    import_claims(path, dataset="existing", skip_existing=True)
    assert FramedClaim.objects.filter(base_claim__dataset=existing_dataset).count() == 24


def test_skip_existing_refuses_a_changed_text(tmp_path, existing_dataset):
    records = claim_records(3, prefix="old")
    records[4]["restated_claim"] = "A different text."
    path = write_jsonl(tmp_path / "changed.jsonl", records)
    before = database_snapshot()
    with pytest.raises(CommandError) as error:
        import_claims(path, dataset="existing", skip_existing=True)
    assert f"{path}:5: field 'restated_claim'" in str(error.value)
    assert "with a different text" in str(error.value)
    assert database_snapshot() == before


def test_a_label_that_disagrees_with_the_stored_base_claim_is_refused(tmp_path, existing_dataset):
    record = frameref_record("old-0", "emotional", "Changed its mind.", "REFUTES")
    path = write_jsonl(tmp_path / "flip.jsonl", claim_records(2, prefix="ok") + [record])
    before = database_snapshot()
    with pytest.raises(CommandError) as error:
        import_claims(path, dataset="existing")
    assert f"{path}:13: field 'true_label': value 'REFUTES': base claim 'old-0' has the label " \
           f"SUPPORTS in dataset 'existing'" in str(error.value)
    assert database_snapshot() == before


GOOD = claim_records(3, prefix="good")  # 18 good rows first, so rows were written before the error


def good_then(*bad_lines):
    return [*GOOD, *bad_lines]


BAD_JSONL_CASES = {
    "invalid JSON": (
        good_then(b'{"claim_id": "bad-1:original", "restated_claim": '),
        19, None, "invalid JSON",
    ),
    "not an object": (good_then(b'["bad-1:original"]'), 19, None, "not a JSON object"),
    "missing field": (
        good_then({"claim_id": "bad-1:original", "restated_claim": "Text.", "framing_type": "original"}),
        19, "true_label", "the field is missing",
    ),
    "unknown framing": (
        good_then(frameref_record("bad-1", "authoritive", "Text.", "SUPPORTS")),
        19, "framing_type", "value 'authoritive': unknown framing; accepted: original, "
                            "authoritative, consensus, emotional, prestige, sensationalist",
    ),
    "not enough info": (
        good_then(frameref_record("bad-1", "original", "Text.", "NOT ENOUGH INFO")),
        19, "true_label", "NOT ENOUGH INFO claims are not supported",
    ),
    "unknown label": (
        good_then(frameref_record("bad-1", "original", "Text.", "TRUE")),
        19, "true_label", "value 'TRUE': unknown label; accepted: SUPPORTS or REFUTES",
    ),
    "empty text": (
        good_then(frameref_record("bad-1", "original", "   ", "SUPPORTS")),
        19, "restated_claim", "the claim text is empty",
    ),
    "text not a string": (
        good_then({**frameref_record("bad-1", "original", "x", "SUPPORTS"), "restated_claim": 42}),
        19, "restated_claim", "expected a string, found int",
    ),
    "duplicate claim id": (
        good_then(frameref_record("good-1", "consensus", "Again.", "REFUTES")),
        19, "claim_id", "duplicate claim id: it appears twice in this import, first at",
    ),
    "framings disagree on the label": (
        good_then(frameref_record("dup-1", "original", "A.", "SUPPORTS"),
                  frameref_record("dup-1", "emotional", "B!", "REFUTES")),
        20, "true_label", "base claim 'dup-1' has the label SUPPORTS at",
    ),
    "framing suffix disagrees": (
        good_then({**frameref_record("bad-1", "emotional", "Text.", "SUPPORTS"),
                   "claim_id": "bad-1:consensus"}),
        19, "claim_id", "the framing suffix 'consensus' disagrees with framing_type 'emotional'",
    ),
    "undecodable bytes": (
        good_then(b'{"claim_id": "bad-1:original", "restated_claim": "caf\xe9 \xff", '
                  b'"framing_type": "original", "true_label": "SUPPORTS"}'),
        19, None, "undecodable bytes at column 54: the file must be UTF-8",
    ),
    "split disagrees with the folder": (
        good_then(frameref_record("bad-1", "original", "Text.", "SUPPORTS", split="dev")),
        19, "split", "disagrees with the split 'train'",
    ),
}


@pytest.mark.parametrize("case", BAD_JSONL_CASES)
@pytest.mark.parametrize("target", ["new dataset", "existing dataset"])
def test_a_bad_row_is_named_and_nothing_is_written(tmp_path, existing_dataset, case, target):
    lines, line_no, field, problem = BAD_JSONL_CASES[case]
    write_jsonl(tmp_path / "data" / "train" / "train-0000.jsonl", lines)
    dataset = "fresh" if target == "new dataset" else "existing"
    before = database_snapshot()

    with pytest.raises(CommandError) as error:
        import_claims(tmp_path / "data", dataset=dataset)

    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'data' / 'train' / 'train-0000.jsonl'}:{line_no}: "), message
    if field:
        assert f"field '{field}'" in message
    assert problem in message
    assert "Nothing was imported." in message
    assert database_snapshot() == before
    assert not Dataset.objects.filter(name="fresh").exists()


def test_duplicate_message_points_at_the_first_occurrence(tmp_path):
    first = write_jsonl(tmp_path / "d/train/train-0000.jsonl", claim_records(2, prefix="z"))
    second = write_jsonl(tmp_path / "d/train/train-0001.jsonl",
                         [frameref_record("z-1", "prestige", "Same id again.", "REFUTES")])
    with pytest.raises(CommandError) as error:
        import_claims(tmp_path / "d")
    assert str(error.value).startswith(f"{second}:1: field 'claim_id': value 'z-1:prestige': "
                                       f"duplicate claim id: it appears twice in this import, "
                                       f"first at {first}:11")


def test_bad_csv_rows_are_named(tmp_path):
    records = claim_records(1)
    records[3]["framing_type"] = "Emotional"
    path = write_csv(tmp_path / "claims.csv", records)
    with pytest.raises(CommandError) as error:
        import_claims(path)
    assert str(error.value).startswith(f"{path}:5: field 'framing_type': value 'Emotional': unknown framing")
    assert not Dataset.objects.exists()


def test_csv_without_a_required_column_is_refused(tmp_path):
    path = write_csv(tmp_path / "claims.csv", claim_records(1),
                     columns=["claim_id", "restated_claim", "framing_type"])
    with pytest.raises(CommandError) as error:
        import_claims(path)
    assert str(error.value).startswith(f"{path}:1: field 'true_label': the header has no such column")


def test_undecodable_csv_is_named_by_line(tmp_path):
    path = write_csv(tmp_path / "claims.csv", claim_records(1))
    path.write_bytes(path.read_bytes().replace(b"Claim 0 told in the consensus", b"Claim \xff\xfe"))
    with pytest.raises(CommandError) as error:
        import_claims(path)
    assert str(error.value).startswith(f"{path}:4: value ")
    assert "undecodable bytes" in str(error.value)


def test_bad_parquet_rows_are_named_by_row(tmp_path):
    records = claim_records(2)
    records[7]["true_label"] = "NEI"
    path = write_parquet(tmp_path / "claims.parquet", records)
    with pytest.raises(CommandError) as error:
        import_claims(path)
    assert str(error.value).startswith(f"{path}: row 8: field 'true_label': value 'NEI': "
                                       f"NOT ENOUGH INFO claims are not supported")
    assert not Dataset.objects.exists()


def test_missing_path_and_unknown_file_type_are_refused(tmp_path):
    with pytest.raises(CommandError, match="no such file or folder"):
        import_claims(tmp_path / "nowhere.jsonl")
    (tmp_path / "claims.xlsx").write_bytes(b"PK")
    with pytest.raises(CommandError, match="unknown file type; accepted: files ending in"):
        import_claims(tmp_path / "claims.xlsx")


def test_an_empty_file_imports_nothing_and_says_so(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"\n\n")
    with pytest.raises(CommandError, match="the files hold no claims"):
        import_claims(path)
    assert not Dataset.objects.exists()


def test_texts_with_copy_special_characters_survive(tmp_path):
    text = "Back\\slash, tab\there, new\nline, return\r and \\N that is not NULL."
    records = [frameref_record("s-1", "original", text, "SUPPORTS", generator="gen\\tab\t")]
    import_claims(write_jsonl(tmp_path / "odd.jsonl", records))
    claim = FramedClaim.objects.get()
    assert (claim.text, claim.generator) == (text, "gen\\tab\t")


def test_import_prints_a_summary(tmp_path, capsys):
    import_claims(write_jsonl(tmp_path / "c.jsonl", claim_records(2)))
    out = capsys.readouterr().out
    assert "created dataset 'frameref': 12 framed claims (2 new base claims) from 1 file(s)" in out


# --- Limits and broken archives (issue 12, finding 2) ---------------------------------------

def refused_import(path, dataset="existing"):
    """The command's message for `path`, after checking that it changed nothing."""
    before = database_snapshot()
    with pytest.raises(CommandError) as error:
        import_claims(path, dataset=dataset)
    assert database_snapshot() == before
    message = str(error.value)
    assert message.endswith("\nNothing was imported."), message
    return message


def gzipped(path, records):
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in records)))
    return path


def test_truncated_and_non_gzip_archives_give_file_and_line_not_a_traceback(tmp_path, existing_dataset):
    whole = gzipped(tmp_path / "whole.jsonl.gz", claim_records(30, prefix="t")).read_bytes()
    truncated = tmp_path / "claims.jsonl.gz"
    truncated.write_bytes(whole[: len(whole) - 40])
    message = refused_import(truncated)
    assert re.match(rf"{re.escape(str(truncated))}:\d+: the compressed data ends early", message)

    csv_gz = tmp_path / "claims.csv.gz"
    csv_gz.write_bytes(gzip.compress(write_csv(tmp_path / "c.csv", claim_records(30)).read_bytes())[:-40])
    assert re.match(rf"{re.escape(str(csv_gz))}:\d+: the compressed data ends early",
                    refused_import(csv_gz))

    not_gzip = write_jsonl(tmp_path / "plain.jsonl.gz", claim_records(2))
    assert refused_import(not_gzip, dataset="fresh").startswith(
        f"{not_gzip}:1: not a gzip file, although its name ends in .gz")
    assert not Dataset.objects.filter(name="fresh").exists()


def test_limits_come_from_the_settings_and_name_them(tmp_path, existing_dataset, settings):
    records = claim_records(20, prefix="lim")
    settings.FRAMELAB_MAX_DECOMPRESSED_BYTES = 5_000
    path = gzipped(tmp_path / "claims.jsonl.gz", records)
    message = refused_import(path)
    assert re.match(rf"{re.escape(str(path))}:\d+: decompresses to more than 5,000 bytes "
                    rf"\(FRAMELAB_MAX_DECOMPRESSED_BYTES\)", message), message

    settings.FRAMELAB_MAX_DECOMPRESSED_BYTES = 10**9
    settings.FRAMELAB_MAX_LINE_BYTES = 400
    long_line = {**records[2], "messages": [{"role": "user", "content": "m" * 400}]}
    path = write_jsonl(tmp_path / "lines.jsonl", [records[0], records[1], long_line])
    assert refused_import(path).startswith(
        f"{path}:3: line longer than 400 bytes (FRAMELAB_MAX_LINE_BYTES)")

    settings.FRAMELAB_MAX_LINE_BYTES = 10**6
    settings.FRAMELAB_MAX_CLAIM_CHARS = 37
    path = write_jsonl(tmp_path / "texts.jsonl", records)
    message = refused_import(path)
    assert message.startswith(f"{path}:2: field 'restated_claim': value 'Claim 0 told in the "
                              f"authoritative way.': too long (38 characters); accepted: at most "
                              f"37 characters (FRAMELAB_MAX_CLAIM_CHARS)"), message

    settings.FRAMELAB_MAX_CLAIM_CHARS = 10_000
    settings.FRAMELAB_MAX_CSV_FIELD_CHARS = 1_000
    wide = claim_records(1, prefix="csv")
    wide[1]["restated_claim"] = "A long claim,\n" + "over lines " * 150
    path = write_csv(tmp_path / "claims.csv", wide)
    assert refused_import(path).startswith(
        f"{path}:3: a field is longer than 1,000 characters (FRAMELAB_MAX_CSV_FIELD_CHARS)")
