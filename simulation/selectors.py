"""Reads the simulation side shares: a dataset's claim pool, and the runs a user may see."""
from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from annotation.models import Dataset, FramedClaim

from .models import ALL_SPLITS, SimulationRun

if TYPE_CHECKING:
    import pandas as pd

POOL_COLUMNS = ["claim_id", "framed_claim_id", "base_id", "framing", "true_label", "text"]


def pool_claims(*, dataset: Dataset, split: str) -> pd.DataFrame:
    """The framed claims a simulation draws from, one row each, in a fixed order.

    Columns: claim_id (`base:framing`), framed_claim_id, base_id, framing, true_label, text.
    Ordered by the framed claim's primary key, which never changes once imported, so that the
    embeddings cache, the agents' score vectors and the engine's pool agree row for row.
    `split` is a dataset split or "all".
    """
    claims = FramedClaim.objects.filter(base_claim__dataset=dataset)
    if split != ALL_SPLITS:
        claims = claims.filter(base_claim__split=split)
    rows = claims.order_by("pk").values_list(
        "base_claim__external_id", "framing", "pk", "base_claim__true_label", "text")
    records = [
        (f"{base}:{framing}", pk, base, framing, label, text)
        for base, framing, pk, label, text in rows.iterator(chunk_size=20_000)
    ]
    import pandas as pd

    frame = pd.DataFrame.from_records(records, columns=POOL_COLUMNS)
    return frame.astype({"framed_claim_id": "int64"})


def summary_records(run: SimulationRun, name: str, conventions: str = "platform") -> list[dict]:
    """One of a finished run's stored summary tables ("agents", "differences", "curves"), as
    the list of row dicts the run keeps in its `summary`; no numpy or pandas needed, so the
    run's page stays light in a web worker. Missing values are None.

    `conventions`: "platform" (the default) or "frameref", FrameRef's notebook conventions
    (`simulation.results`); a run summarised before those were stored has none: [].
    """
    summary = run.summary or {}
    if conventions != "platform":
        summary = summary.get(conventions) or {}
    return list(summary.get(name) or [])


def simulation_runs_visible_to(user) -> QuerySet[SimulationRun]:
    """Runs a signed-in researcher may see: all of them.

    A run holds no participant data, only aggregates (a human-calibrated agent carries a
    study's acceptance rates, and starting such a run from the web requires that the user
    may see the study), so runs are shared like datasets, not private like studies.
    """
    runs = SimulationRun.objects.select_related("dataset", "created_by")
    if not user.is_authenticated:
        return runs.none()
    return runs
