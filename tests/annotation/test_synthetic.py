"""The synthetic FrameRef generator: exact sizes, FrameRef's shape, determinism, and importable."""
from collections import Counter, defaultdict

import orjson
import pytest
from django.core.management import CommandError, call_command

from annotation.claims.synthetic import write_synthetic_claims
from annotation.models import FramedClaim


def read_rows(root):
    rows = []
    for path in sorted(root.rglob("*.jsonl")):
        split = path.parent.name
        rows += [(split, orjson.loads(line)) for line in path.read_bytes().splitlines()]
    return rows


def test_rows_splits_and_framings_have_frameref_shape(tmp_path):
    summary = write_synthetic_claims(rows=6_001, out_dir=tmp_path, seed=3, shard_size=2_000)
    rows = read_rows(tmp_path)
    assert summary.rows == len(rows) == 6_001
    by_split = Counter(split for split, _ in rows)
    assert by_split == summary.rows_per_split
    assert abs(by_split["train"] / 6_001 - 0.8) < 0.01
    assert abs(by_split["dev"] / 6_001 - 0.1) < 0.01
    labels, splits, framings = defaultdict(set), defaultdict(set), defaultdict(list)
    for split, row in rows:
        base_id, framing = row["claim_id"].split(":")
        assert framing == row["framing_type"]
        assert row["messages"] == [{"role": "user", "content": row["restated_claim"]},
                                   {"role": "assistant", "content": row["true_label"]}]
        assert 20 <= len(row["restated_claim"]) <= 300
        labels[base_id].add(row["true_label"])
        splits[base_id].add(split)
        framings[base_id].append(framing)
    assert all(len(v) == 1 for v in labels.values())
    assert all(len(v) == 1 for v in splits.values())
    assert all("original" in v and len(v) == len(set(v)) for v in framings.values())
    assert summary.base_claims == len(framings)
    true_share = sum(v == {"SUPPORTS"} for v in labels.values()) / len(labels)
    assert 0.45 < true_share < 0.55
    assert max(len(p.read_bytes().splitlines()) for p in tmp_path.rglob("*.jsonl")) == 2_000


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        write_synthetic_claims(rows=500, out_dir=tmp_path / name, seed=seed)
    read = lambda name: b"".join(p.read_bytes() for p in sorted((tmp_path / name).rglob("*.jsonl")))
    assert read("a") == read("b")
    assert read("a") != read("c")


@pytest.mark.django_db
def test_command_output_imports_cleanly(tmp_path, capsys):
    call_command("make_synthetic_claims", rows=1_000, out=tmp_path / "synth", no_progress=True)
    assert "wrote 1,000 framed claims" in capsys.readouterr().out
    call_command("import_claims", str(tmp_path / "synth"), dataset="synth", no_progress=True)
    assert FramedClaim.objects.count() == 1_000
    with pytest.raises(CommandError, match="already holds"):
        call_command("make_synthetic_claims", rows=10, out=tmp_path / "synth", no_progress=True)
    with pytest.raises(CommandError):
        call_command("make_synthetic_claims", rows=0, out=tmp_path / "zero", no_progress=True)


@pytest.mark.slow
def test_full_frameref_size_is_written_in_under_a_minute(tmp_path):
    import time

    started = time.perf_counter()
    summary = write_synthetic_claims(rows=1_073_740, out_dir=tmp_path)
    assert summary.rows == 1_073_740
    assert time.perf_counter() - started < 60
