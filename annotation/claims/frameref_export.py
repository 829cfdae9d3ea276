"""Writing a dataset back in FrameRef's layout: `train/train-0000.jsonl`, ... with `messages`.

Rows are written per split in the order they were imported, so importing an export into a
new dataset and exporting that again gives byte-identical files. Fields FrameRef does not
have (topic, source, verification, generator) are written only where they hold something,
after FrameRef's own fields, so FrameRef's readers keep working.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import orjson

from annotation.claims.files import SPLIT_FOLDERS
from annotation.models import Dataset, FramedClaim
from core.vocabulary import NO_SPLIT, SPLITS

SHARD_ROWS = 100_000
_FOLDER_FOR_SPLIT = {**{name: name for name in SPLITS}, NO_SPLIT: "unsplit"}
assert all(SPLIT_FOLDERS[folder] == split for split, folder in _FOLDER_FOR_SPLIT.items())


@dataclass
class ExportSummary:
    rows: int = 0
    rows_per_split: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def existing_shards(out_dir: Path) -> list[Path]:
    return sorted(
        path
        for folder in _FOLDER_FOR_SPLIT.values()
        for path in (out_dir / folder).glob(f"{folder}-*.jsonl")
    )


def export_dataset(
    *,
    dataset: Dataset,
    out_dir: Path,
    shard_rows: int = SHARD_ROWS,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Writes every framed claim of `dataset` under `out_dir`; returns what it wrote.

    Memory stays constant: rows stream from the database in chunks and each shard is
    written as it fills.
    """
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be at least 1, got {shard_rows}")
    out_dir = Path(out_dir)
    stale = existing_shards(out_dir)
    if stale and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds {len(stale)} shard file(s) such as {stale[0]}; "
            f"choose an empty folder or overwrite them"
        )
    for path in stale:
        path.unlink()
    summary = ExportSummary()
    for split, folder in _FOLDER_FOR_SPLIT.items():
        rows = (
            FramedClaim.objects.filter(base_claim__dataset=dataset, base_claim__split=split)
            .order_by("id")
            .values_list(
                "base_claim__external_id", "framing", "text", "base_claim__true_label",
                "base_claim__topic", "base_claim__source", "verification", "generator",
            )
        )
        writer = _ShardWriter(out_dir / folder, folder, shard_rows)
        try:
            for record in rows.iterator(chunk_size=10_000):
                writer.write(_frameref_line(*record))
                if progress is not None and writer.rows % 10_000 == 0:
                    progress(10_000)
        finally:
            writer.close()
        if progress is not None and writer.rows % 10_000:
            progress(writer.rows % 10_000)
        if writer.rows:
            summary.rows_per_split[split] = writer.rows
            summary.rows += writer.rows
            summary.files.extend(writer.files)
    return summary


def _frameref_line(external_id, framing, text, true_label, topic, source, verification, generator):
    record = {
        "claim_id": f"{external_id}:{framing}",
        "restated_claim": text,
        "framing_type": framing,
        "true_label": true_label,
        "messages": [
            {"role": "user", "content": text},
            {"role": "assistant", "content": true_label},
        ],
    }
    if topic:
        record["topic"] = topic
    if source:
        record["source"] = source
    if verification != ("not_applicable" if framing == "original" else "unverified"):
        record["verification"] = verification
    if generator:
        record["generator"] = generator
    return orjson.dumps(record) + b"\n"


class _ShardWriter:
    """Writes lines into `<folder>/<prefix>-NNNN.jsonl`, starting a new file every `shard_rows`."""

    def __init__(self, folder: Path, prefix: str, shard_rows: int) -> None:
        self.folder = folder
        self.prefix = prefix
        self.shard_rows = shard_rows
        self.rows = 0
        self.files: list[Path] = []
        self._handle = None
        self._partial: Path | None = None

    def write(self, line: bytes) -> None:
        if self.rows % self.shard_rows == 0:
            self._finish_shard()
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{self.prefix}-{len(self.files):04d}.jsonl"
            self.files.append(path)
            # Written under a temporary name so a crash never leaves a truncated shard.
            self._partial = path.with_suffix(".jsonl.partial")
            self._handle = open(self._partial, "wb", buffering=1 << 20)
        self._handle.write(line)
        self.rows += 1

    def _finish_shard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            os.replace(self._partial, self.files[-1])
            self._handle = None

    def close(self) -> None:
        self._finish_shard()
