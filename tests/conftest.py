"""Shared test helpers: writing claim files in FrameRef's formats."""
from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest

FRAMINGS = ("original", "authoritative", "consensus", "emotional", "prestige", "sensationalist")


def frameref_record(base_id: str, framing: str, text: str, label: str, **extra) -> dict:
    record = {
        "claim_id": f"{base_id}:{framing}",
        "restated_claim": text,
        "framing_type": framing,
        "true_label": label,
        "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": label}],
    }
    record.update(extra)
    return record


def claim_records(n_base: int = 4, prefix: str = "fever", framings=FRAMINGS) -> list[dict]:
    """`n_base` base claims, alternately true and false, each in `framings`."""
    records = []
    for i in range(n_base):
        label = "SUPPORTS" if i % 2 == 0 else "REFUTES"
        for framing in framings:
            records.append(frameref_record(f"{prefix}-{i}", framing,
                                           f"Claim {i} told in the {framing} way.", label))
    return records


def write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for record in records:
            handle.write(record if isinstance(record, bytes) else orjson.dumps(record))
            handle.write(b"\n")
    return path


def write_csv(path: Path, records: list[dict], columns=None) -> Path:
    columns = columns or ["claim_id", "restated_claim", "framing_type", "true_label"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for record in records:
            writer.writerow([record.get(column, "") for column in columns])
    return path


def write_parquet(path: Path, records: list[dict]) -> Path:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "messages"} for r in records])
    frame.to_parquet(path, index=False)
    return path


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def _forget_cached_batches():
    # Rolled-back test transactions reuse ids, which a real database never does.
    from annotation.studies.selectors import batch_items

    batch_items.cache_clear()
    yield
    batch_items.cache_clear()


@pytest.fixture(autouse=True)
def _empty_the_cache_after_transactional_tests(request):
    """The default cache is a table of the test database. Rolled-back tests leave it as they
    found it; tests on committed data (transactional_db, servers in subprocesses) do not, and the
    table is not among those a flush empties: empty it after them, so that counts (rate limits,
    login failures) do not carry over into the next test."""
    marker = request.node.get_closest_marker("django_db")
    if "transactional_db" not in request.fixturenames and not (
            marker is not None and marker.kwargs.get("transaction")):
        yield
        return
    request.getfixturevalue("transactional_db")  # so that this ends before the database does
    yield
    from django.core.cache import cache

    cache.clear()
