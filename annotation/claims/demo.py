"""The demo dataset: 64 hand-written base claims in the six framings, shipped with the code.

`manage.py load_demo` loads it, the demo simulation runs on it, and tests and benchmarks
use it as a small real dataset.
"""
from __future__ import annotations

from pathlib import Path

from annotation.claims.importer import ImportSummary
from annotation.claims.services import claims_import

DEMO_FILE = Path(__file__).resolve().parents[1] / "demo_data" / "framelab-demo.jsonl"
DEMO_DATASET = "FrameLab demo"


def demo_dataset_load() -> ImportSummary:
    """Imports the demo file into the dataset DEMO_DATASET; claims already there are kept,
    so loading it again changes nothing."""
    return claims_import(
        paths=[DEMO_FILE],
        dataset_name=DEMO_DATASET,
        skip_existing=True,
        verification="passed",
        generator="framelab-demo (written and checked by hand)",
        description=(
            "64 general-knowledge claims, half true and half false, restated by hand in "
            "the five FrameRef framings without changing what any of them asserts."
        ),
        source="FrameLab project (hand-written)",
        licence="CC0-1.0",
    )
