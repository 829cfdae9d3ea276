"""`manage.py export_claims`: FrameRef's layout back, and a lossless round trip."""
import filecmp
from pathlib import Path

import orjson
import pytest
from django.core.management import CommandError, call_command

from annotation.models import FramedClaim
from tests.conftest import claim_records, frameref_record, write_jsonl

pytestmark = pytest.mark.django_db


def shard_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.jsonl"))


def test_round_trip_gives_identical_files(tmp_path):
    source = tmp_path / "source"
    write_jsonl(source / "train" / "train-0000.jsonl", claim_records(5, prefix="t"))
    write_jsonl(source / "dev" / "dev-0000.jsonl", claim_records(2, prefix="d"))
    write_jsonl(source / "test" / "test-0000.jsonl",
                [frameref_record("e-1", "original", "Zürich — “quoted”\ttab\\slash", "REFUTES",
                                 topic="geo", source="Page", verification="failed",
                                 generator="llm")])
    call_command("import_claims", str(source), dataset="first", no_progress=True)

    call_command("export_claims", dataset="first", out=tmp_path / "one", shard_rows=7, no_progress=True)
    call_command("import_claims", str(tmp_path / "one"), dataset="second", no_progress=True)
    call_command("export_claims", dataset="second", out=tmp_path / "two", shard_rows=7, no_progress=True)

    files = shard_files(tmp_path / "one")
    assert files == shard_files(tmp_path / "two")
    assert "train/train-0004.jsonl" in files and "train/train-0005.jsonl" not in files
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "one", tmp_path / "two", files, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == len(files)


def test_export_writes_frameref_records_in_import_order(tmp_path):
    records = claim_records(2, prefix="fever")
    write_jsonl(tmp_path / "in" / "train" / "train-0000.jsonl", records)
    call_command("import_claims", str(tmp_path / "in"), dataset="d", no_progress=True)
    call_command("export_claims", dataset="d", out=tmp_path / "out", no_progress=True)

    lines = (tmp_path / "out" / "train" / "train-0000.jsonl").read_bytes().splitlines()
    exported = [orjson.loads(line) for line in lines]
    assert exported == records  # same keys, values, messages and order
    assert list(exported[0]) == ["claim_id", "restated_claim", "framing_type", "true_label", "messages"]


def test_shards_hold_at_most_the_shard_size(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", claim_records(5))
    call_command("import_claims", str(tmp_path / "in.jsonl"), dataset="d", split="train", no_progress=True)
    call_command("export_claims", dataset="d", out=tmp_path / "out", shard_rows=12, no_progress=True)
    sizes = [len(p.read_bytes().splitlines()) for p in sorted((tmp_path / "out" / "train").glob("*.jsonl"))]
    assert sizes == [12, 12, 6]


def test_claims_outside_any_split_go_to_unsplit_and_come_back(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", claim_records(1))
    call_command("import_claims", str(tmp_path / "in.jsonl"), dataset="d", no_progress=True)
    call_command("export_claims", dataset="d", out=tmp_path / "out", no_progress=True)
    assert shard_files(tmp_path / "out") == ["unsplit/unsplit-0000.jsonl"]
    call_command("import_claims", str(tmp_path / "out"), dataset="again", no_progress=True)
    assert set(FramedClaim.objects.filter(base_claim__dataset__name="again")
               .values_list("base_claim__split", flat=True)) == {"none"}


def test_export_refuses_to_mix_with_old_shards(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", claim_records(1))
    call_command("import_claims", str(tmp_path / "in.jsonl"), dataset="d", split="dev", no_progress=True)
    call_command("export_claims", dataset="d", out=tmp_path / "out", no_progress=True)
    with pytest.raises(CommandError, match="already holds 1 shard file"):
        call_command("export_claims", dataset="d", out=tmp_path / "out", no_progress=True)
    call_command("export_claims", dataset="d", out=tmp_path / "out", overwrite=True, no_progress=True)


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", claim_records(1))
    call_command("import_claims", str(tmp_path / "in.jsonl"), dataset="known", no_progress=True)
    with pytest.raises(CommandError, match="no dataset named 'nope' \\(datasets: known\\)"):
        call_command("export_claims", dataset="nope", out=tmp_path / "out", no_progress=True)
