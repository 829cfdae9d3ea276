"""Writes of the scoring and calibration jobs: score tables, their files, calibrations.

A `ScoreTable` is one persona's scores of every framed claim of a dataset split, written to
a Parquet file under MEDIA_ROOT (`scores/persona-<id>/dataset-<id>-<split>.parquet`) with
one row per framed claim:

    claim_id (FrameRef id `base:framing`), framed_claim_id (database id), base_id, framing,
    true_label, p_supports, p_refutes, p_supports_norm, predicted_label, confidence

The model work runs outside any transaction (minutes on a CPU); only the short status
updates are transactions. The file is written to a temporary name and renamed, so a
succeeded row always points at a complete file. The same functions serve the management
commands, the Celery tasks and the pages.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.models import BatchItem, Dataset, FramedClaim, Study, Verification
from core.jobs import JobStatus, job_heartbeat, lease_owner_here
from core.lookup import lookup_by_id_or_name
from core.progress import Throttle

from .models import DEFAULT_BASE_MODEL, Calibration, Persona, ScoreTable

logger = logging.getLogger(__name__)

SCORE_COLUMNS = (
    "claim_id", "framed_claim_id", "base_id", "framing", "true_label", "p_supports",
    "p_refutes", "p_supports_norm", "predicted_label", "confidence",
)
ProgressCallback = Callable[[int, int], None]


class ScoringCancelled(Exception):
    """The researcher asked to stop; the score table is left cancelled, without a file."""


class ScoreServiceError(ValueError):
    """A request the scoring services refuse; the message names what is wrong."""


# --- lookups --------------------------------------------------------------------------------

def persona_lookup(reference: str | int) -> Persona:
    """A persona by name or id, by core.lookup's rule (`#3` forces the id); an error lists
    the known names when none matches."""
    try:
        return lookup_by_id_or_name(Persona.objects, reference, kind="persona")
    except Persona.DoesNotExist as missing:
        raise ScoreServiceError(f"no persona with id or name {missing.reference!r}; "
                                f"known: {missing.known}") from None


def base_persona_name(base_model: str) -> str:
    return f"base: {base_model}"


@transaction.atomic
def base_persona_get_or_create(*, base_model: str = DEFAULT_BASE_MODEL) -> Persona:
    """The untrained base model as a persona (is_base, no adapter), created once per model.

    It is the reference every trained persona is compared with, so it is scored and
    calibrated like any other.
    """
    persona, _ = Persona.objects.get_or_create(
        name=base_persona_name(base_model),
        defaults={"base_model": base_model, "is_base": True, "alpha": 1.0,
                  "status": JobStatus.SUCCEEDED, "progress": 1.0,
                  "provenance": {"kind": "untrained base model"}},
    )
    if not persona.is_base:
        raise ScoreServiceError(
            f"persona {persona.name!r} exists and is not a base persona; rename it first")
    return persona


def _check_usable(persona: Persona) -> None:
    if not persona.is_usable:
        raise ScoreServiceError(
            f"persona {persona.name!r} has status {persona.status}; only a succeeded persona "
            "(or a base model) can score claims")


# --- score tables ---------------------------------------------------------------------------

def score_table_relative_path(*, persona: Persona, dataset: Dataset, split: str) -> str:
    return f"scores/persona-{persona.pk}/dataset-{dataset.pk}-{split}.parquet"


def framed_claim_rows(*, dataset: Dataset | None = None, split: str | None = None,
                      framed_claim_ids: list[int] | None = None) -> pd.DataFrame:
    """The framed claims to score, in database order, with what the score table records.

    Restatements that failed verification are not the same claim (method.md section 1.3) and are
    left out of a split's table; items named by id (a study's items) are scored as shown.
    """
    claims = FramedClaim.objects.all()
    if framed_claim_ids is None:
        claims = claims.exclude(verification=Verification.FAILED)
    if dataset is not None:
        claims = claims.filter(base_claim__dataset=dataset)
    if split:
        claims = claims.filter(base_claim__split=split)
    if framed_claim_ids is not None:
        claims = claims.filter(pk__in=framed_claim_ids)
    values = list(claims.order_by("pk").values_list(
        "pk", "base_claim__external_id", "framing", "base_claim__true_label", "text"))
    return pd.DataFrame(values, columns=["framed_claim_id", "base_id", "framing", "true_label", "text"])


def score_frame(*, model, tokenizer, claims: pd.DataFrame, batch_size: int = 32,
                progress: ProgressCallback | None = None) -> pd.DataFrame:
    """Scores `claims` (framed_claim_rows' columns) into a table of SCORE_COLUMNS."""
    from .scoring import ClaimScorer

    scorer = ClaimScorer(model, tokenizer, batch_size=batch_size)
    return _score_table_frame(claims, scorer.score(claims["text"].tolist(), progress=progress))


def _score_table_frame(claims: pd.DataFrame, scores) -> pd.DataFrame:
    table = pd.DataFrame({
        "claim_id": (claims["base_id"] + ":" + claims["framing"]).to_numpy(),
        "framed_claim_id": claims["framed_claim_id"].to_numpy(dtype=np.int64),
        "base_id": claims["base_id"].to_numpy(),
        "framing": claims["framing"].to_numpy(),
        "true_label": claims["true_label"].to_numpy(),
        "p_supports": scores.p_supports,
        "p_refutes": scores.p_refutes,
        "p_supports_norm": scores.p_supports_norm,
        "predicted_label": scores.predicted_label,
        "confidence": scores.confidence,
    })
    return table[list(SCORE_COLUMNS)]


def _write_parquet(table: pd.DataFrame, relative: str) -> Path:
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    table.to_parquet(temporary, index=False)
    os.replace(temporary, target)
    return target


def _provenance(*, persona: Persona, batch_size: int, seconds: float, rows: int) -> dict:
    import torch
    import transformers

    from .scoring import SYSTEM_INSTRUCTION

    try:
        import subprocess

        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=settings.BASE_DIR, timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001 - provenance is best effort outside a git checkout
        commit = ""
    return {
        "base_model": persona.base_model,
        "adapter_dir": persona.adapter_dir,
        "system_instruction": SYSTEM_INSTRUCTION,
        "batch_size": batch_size,
        "seconds": round(seconds, 2),
        "claims_per_second": round(rows / seconds, 2) if seconds > 0 else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "code_version": commit,
    }


@transaction.atomic
def score_table_create(*, persona: Persona, dataset: Dataset, split: str) -> ScoreTable:
    """The (persona, dataset, split) score table, queued afresh unless one is running.

    Scoring again replaces the earlier file: a persona's scores of a split are one table.
    """
    _check_usable(persona)
    table, created = ScoreTable.objects.select_for_update().get_or_create(
        persona=persona, dataset=dataset, split=split)
    if not created:
        if table.status == JobStatus.RUNNING:
            raise ScoreServiceError(
                f"{persona.name} on {dataset.name} ({split}) is being scored already "
                f"(score table #{table.pk})")
        table.status = JobStatus.QUEUED
        table.progress = 0.0
        table.error = ""
        table.cancel_requested = False
        table.eta_seconds = None
        table.attempts = 0  # a new request: its own count of starts (core/recovery.py)
        table.save()
    return table


def score_table_enqueue(*, score_table: ScoreTable) -> None:
    """Runs the score table on a worker (the `models` queue) once the row is committed."""
    from .tasks import run_score_table

    def send():
        result = run_score_table.delay(score_table.pk)
        ScoreTable.objects.filter(pk=score_table.pk).update(task_id=result.id or "")

    transaction.on_commit(send)


def score_table_request_cancel(*, score_table: ScoreTable) -> None:
    ScoreTable.objects.filter(pk=score_table.pk).update(cancel_requested=True)


def score_table_run(*, score_table: ScoreTable, batch_size: int = 32,
                    progress: ProgressCallback | None = None, model_and_tokenizer=None) -> ScoreTable:
    """Scores every framed claim of the table's dataset split and writes its Parquet file.

    `model_and_tokenizer` lets a caller that already holds the model (tests, several
    tables in a row) skip loading it again.
    """
    owner = lease_owner_here()
    ScoreTable.objects.filter(pk=score_table.pk).update(
        status=JobStatus.RUNNING, started=timezone.now(), progress=0.0, error="",
        heartbeat=timezone.now(), lease_owner=owner)
    # The lease (core/jobs.py) is renewed while it scores, model loading included.
    with job_heartbeat(ScoreTable.objects, score_table.pk, owner=owner):
        return _score_table_run(score_table=score_table, batch_size=batch_size, progress=progress,
                                model_and_tokenizer=model_and_tokenizer)


def _score_table_run(*, score_table: ScoreTable, batch_size: int, progress: ProgressCallback | None,
                     model_and_tokenizer) -> ScoreTable:
    from core.language_models import pick_device
    from modeling.persona_models import load_persona_model

    persona = score_table.persona
    started = time.monotonic()
    try:
        _check_usable(persona)
        claims = framed_claim_rows(dataset=score_table.dataset, split=score_table.split)
        if claims.empty:
            raise ScoreServiceError(
                f"dataset {score_table.dataset.name!r} has no framed claims in split "
                f"{score_table.split!r}")
        if model_and_tokenizer is None:
            model_and_tokenizer = load_persona_model(persona, device=pick_device())
        model, tokenizer = model_and_tokenizer
        throttle = Throttle()

        def report(done: int, total: int) -> None:
            if progress is not None:
                progress(done, total)
            if not throttle.due(final=done >= total):
                return
            elapsed = time.monotonic() - started
            eta = elapsed / done * (total - done) if done else None
            ScoreTable.objects.filter(pk=score_table.pk).update(
                progress=min(1.0, done / total), eta_seconds=eta)
            if ScoreTable.objects.filter(pk=score_table.pk, cancel_requested=True).exists():
                raise ScoringCancelled()

        table = score_frame(model=model, tokenizer=tokenizer, claims=claims,
                            batch_size=batch_size, progress=report)
        relative = score_table_relative_path(persona=persona, dataset=score_table.dataset,
                                             split=score_table.split)
        _write_parquet(table, relative)
        seconds = time.monotonic() - started
        ScoreTable.objects.filter(pk=score_table.pk).update(
            status=JobStatus.SUCCEEDED, path=relative, rows=len(table), progress=1.0,
            eta_seconds=0.0, finished=timezone.now(),
            provenance=_provenance(persona=persona, batch_size=batch_size, seconds=seconds,
                                   rows=len(table)))
    except ScoringCancelled:
        ScoreTable.objects.filter(pk=score_table.pk).update(
            status=JobStatus.CANCELLED, finished=timezone.now(), error="cancelled on request")
    except Exception as exc:
        logger.exception("score table %s failed", score_table.pk)
        ScoreTable.objects.filter(pk=score_table.pk).update(
            status=JobStatus.FAILED, finished=timezone.now(), error=str(exc)[:2000])
        raise
    score_table.refresh_from_db()
    return score_table


def load_personas_together(personas: list[Persona]):
    """One peft model holding every persona's adapter: (model, tokenizer, adapter names).

    All personas must share a base model; a base persona is peft's `__base__` (no adapter).
    """
    from core.language_models import load_base_model, pick_device
    from modeling.persona_models import adapter_path

    from .scoring import BASE_ADAPTER

    bases = {p.base_model for p in personas}
    if len(bases) != 1:
        raise ScoreServiceError(
            f"personas scored together must share a base model; these use {', '.join(sorted(bases))}")
    for persona in personas:
        _check_usable(persona)
    model, tokenizer = load_base_model(bases.pop(), device=pick_device())
    names = []
    for persona in personas:
        if persona.is_base:
            names.append(BASE_ADAPTER)
            continue
        name = f"persona-{persona.pk}"
        folder = adapter_path(persona)
        if not (folder / "adapter_config.json").is_file():
            raise ScoreServiceError(f"persona {persona.name!r}: adapter folder {folder} is incomplete")
        if hasattr(model, "load_adapter") and hasattr(model, "peft_config"):
            model.load_adapter(folder, adapter_name=name, is_trainable=False)
        else:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, folder, adapter_name=name, is_trainable=False)
        names.append(name)
    if not hasattr(model, "peft_config"):
        # Only base personas: a plain model, scored adapter-free.
        return model, tokenizer, None
    model.eval()
    return model, tokenizer, names


def score_tables_run_together(*, score_tables: list[ScoreTable], batch_size: int = 32,
                              progress: ProgressCallback | None = None) -> list[ScoreTable]:
    """Scores several personas of one base model on one dataset split in one pass.

    The base model is loaded once, every persona's adapter beside it, and each batch mixes
    rows of all personas (peft's mixed-adapter batches), so N personas cost one model load
    and N times the rows instead of N separate runs.
    """
    if len({(t.dataset_id, t.split) for t in score_tables}) != 1:
        raise ScoreServiceError("score tables run together must be of one dataset split")
    ids = [t.pk for t in score_tables]
    owner = lease_owner_here()
    ScoreTable.objects.filter(pk__in=ids).update(
        status=JobStatus.RUNNING, started=timezone.now(), progress=0.0, error="",
        heartbeat=timezone.now(), lease_owner=owner)
    with job_heartbeat(ScoreTable.objects, ids, owner=owner):
        return _score_tables_run_together(score_tables, ids=ids, batch_size=batch_size,
                                          progress=progress)


def _score_tables_run_together(score_tables: list[ScoreTable], *, ids: list[int], batch_size: int,
                               progress: ProgressCallback | None) -> list[ScoreTable]:
    from .scoring import ClaimScorer

    first = score_tables[0]
    started = time.monotonic()
    try:
        claims = framed_claim_rows(dataset=first.dataset, split=first.split)
        if claims.empty:
            raise ScoreServiceError(
                f"dataset {first.dataset.name!r} has no framed claims in split {first.split!r}")
        personas = [t.persona for t in score_tables]
        model, tokenizer, names = load_personas_together(personas)
        if names is None:  # base personas only: score once, same numbers for each
            scores = ClaimScorer(model, tokenizer, batch_size=batch_size).score(
                claims["text"].tolist(), progress=progress)
            by_persona = {p.pk: scores for p in personas}
        else:
            scorer = ClaimScorer(model, tokenizer, batch_size=batch_size, adapters=names)
            mixed = scorer.score_adapters(claims["text"].tolist(), progress=progress)
            by_persona = {p.pk: mixed[name] for p, name in zip(personas, names)}
        seconds = time.monotonic() - started
        for table in score_tables:
            frame = _score_table_frame(claims, by_persona[table.persona_id])
            relative = score_table_relative_path(persona=table.persona, dataset=table.dataset,
                                                 split=table.split)
            _write_parquet(frame, relative)
            provenance = _provenance(persona=table.persona, batch_size=batch_size,
                                     seconds=seconds, rows=len(frame) * len(score_tables))
            provenance["scored_with"] = [p.name for p in personas]
            ScoreTable.objects.filter(pk=table.pk).update(
                status=JobStatus.SUCCEEDED, path=relative, rows=len(frame), progress=1.0,
                eta_seconds=0.0, finished=timezone.now(), provenance=provenance)
    except Exception as exc:
        logger.exception("score tables %s failed", ids)
        ScoreTable.objects.filter(pk__in=ids).update(
            status=JobStatus.FAILED, finished=timezone.now(), error=str(exc)[:2000])
        raise
    for table in score_tables:
        table.refresh_from_db()
    return score_tables


# --- reading score tables: the one place that knows where and how they are stored ----------

def score_table_file(relative: str) -> Path:
    """Where a score table's file (its `path`, relative to MEDIA_ROOT) lies."""
    return Path(settings.MEDIA_ROOT) / relative


def succeeded_score_tables(*, persona: Persona, dataset: Dataset,
                           splits: list[str] | None = None):
    """The persona's finished score tables of `dataset` (of `splits`, when given)."""
    tables = ScoreTable.objects.filter(persona=persona, dataset=dataset, status=JobStatus.SUCCEEDED)
    return tables if splits is None else tables.filter(split__in=splits)


def score_table_load(score_table: ScoreTable) -> pd.DataFrame:
    """The table's rows; an error if it has not succeeded or its file is gone."""
    if score_table.status != JobStatus.SUCCEEDED or not score_table.path:
        raise ScoreServiceError(f"score table #{score_table.pk} has status {score_table.status}")
    path = score_table_file(score_table.path)
    if not path.is_file():
        raise ScoreServiceError(f"score table #{score_table.pk}: file {path} is missing")
    return pd.read_parquet(path)


def score_file_read(relative: str, *, required: tuple[str, ...] = SCORE_COLUMNS) -> pd.DataFrame:
    """A score table's file read and checked, for readers that keep its path (a simulation
    run's agents): the `required` columns, probabilities in [0, 1], one row per claim id.

    ScoreServiceError names the file, and the row, field and value that are wrong.
    """
    path = score_table_file(relative)
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ScoreServiceError(f"score table {path}: cannot be read as Parquet: {exc}") from None
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise ScoreServiceError(f"score table {path}: missing column(s) {', '.join(missing)}; "
                                f"required: {', '.join(required)}")
    probabilities = [c for c in ("p_supports", "p_refutes", "p_supports_norm") if c in table]
    for column in probabilities:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~((values >= 0) & (values <= 1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value = table[column].iloc[row]
            value = value.item() if isinstance(value, np.generic) else value
            raise ScoreServiceError(f"score table {path}: row {row + 1} "
                                    f"({table['claim_id'].iloc[row]}): field '{column}': "
                                    f"value {value!r}: accepted: a probability in [0, 1]")
    duplicated = table["claim_id"].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise ScoreServiceError(f"score table {path}: row {row + 1}: field 'claim_id': value "
                                f"{table['claim_id'].iloc[row]!r} appears twice")
    return table


def score_file_sha256(relative: str) -> str | None:
    """The checksum of a score table's file, for provenance; None if it is gone."""
    path = score_table_file(relative)
    if not path.exists():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def persona_scores(*, persona: Persona, dataset: Dataset, split: str) -> pd.DataFrame:
    table = succeeded_score_tables(persona=persona, dataset=dataset, splits=[split]).first()
    if table is None:
        raise ScoreServiceError(
            f"persona {persona.name!r} has no scores of {dataset.name!r} ({split}); run "
            f"`manage.py score_claims --persona {persona.pk} --dataset \"{dataset.name}\" "
            f"--split {split}` first")
    return score_table_load(table)


# --- calibration ----------------------------------------------------------------------------

def study_framed_claim_ids(*, study: Study) -> list[int]:
    """The framed claims the study's participants saw (its batch items, not attention checks)."""
    return sorted(set(BatchItem.objects.filter(batch__study=study, framed_claim__isnull=False)
                      .values_list("framed_claim_id", flat=True)))


def study_item_scores(*, persona: Persona, study: Study, batch_size: int = 32,
                      progress: ProgressCallback | None = None,
                      model_and_tokenizer=None) -> tuple[pd.DataFrame, dict]:
    """The persona's scores of exactly the study's items, and where they came from.

    Scores already in a succeeded score table of the study's dataset are reused; the rest
    (usually all of them: studies draw from any split) are scored now.
    """
    from core.language_models import pick_device
    from modeling.persona_models import load_persona_model

    wanted = study_framed_claim_ids(study=study)
    if not wanted:
        raise ScoreServiceError(f"study {study.name!r} has no claim items")
    found = []
    for table in succeeded_score_tables(persona=persona, dataset=study.dataset):
        rows = score_table_load(table)
        found.append(rows[rows["framed_claim_id"].isin(wanted)])
    reused = (pd.concat(found, ignore_index=True).drop_duplicates("framed_claim_id")
              if found else pd.DataFrame(columns=list(SCORE_COLUMNS)))
    missing = sorted(set(wanted) - set(reused["framed_claim_id"].astype(int)))
    fresh = pd.DataFrame(columns=list(SCORE_COLUMNS))
    if missing:
        _check_usable(persona)
        if model_and_tokenizer is None:
            model_and_tokenizer = load_persona_model(persona, device=pick_device())
        model, tokenizer = model_and_tokenizer
        fresh = score_frame(model=model, tokenizer=tokenizer,
                            claims=framed_claim_rows(framed_claim_ids=missing),
                            batch_size=batch_size, progress=progress)
    frames = [frame for frame in (reused, fresh) if len(frame)]
    scores = pd.concat(frames, ignore_index=True) if frames else reused
    return scores, {"items": len(wanted), "reused": int(len(reused)), "scored": len(missing)}


def persona_calibration(*, persona: Persona, reference) -> tuple[int, dict]:
    """(id, fitted parameters) of the calibration `reference` (an id) of `persona`, for a
    persona agent or rater that decides from calibrated probabilities.

    Raises `ScoreServiceError` saying why when there is no such calibration, when it
    calibrates another persona, or when it has no fitted parameters (method none).
    """
    from core.lookup import parse_id

    pk = parse_id(reference)
    calibration = Calibration.objects.filter(pk=pk).first() if pk is not None else None
    if calibration is None:
        raise ScoreServiceError("no calibration with that id")
    if calibration.persona_id != persona.pk:
        raise ScoreServiceError(f"calibration {calibration.pk} is of persona '{calibration.persona.name}', "
                                f"not '{persona.name}'")
    parameters = (calibration.result or {}).get("parameters") or {}
    if parameters.get("method") in (None, "none"):
        raise ScoreServiceError(f"calibration {calibration.pk} has no fitted parameters (method none); "
                                "calibrate with temperature, platt or intercept")
    return calibration.pk, parameters


def calibration_run(*, persona: Persona, study: Study, method: str = "temperature",
                    seed: int = 0, batch_size: int = 32, bootstrap_reps: int = 1000,
                    progress: ProgressCallback | None = None,
                    model_and_tokenizer=None, exclusions=None) -> Calibration:
    """Scores the study's items, compares the persona with the humans, fits, and stores it.

    The item scores are kept in a Parquet file beside the result
    (`calibrations/persona-<id>/study-<id>-<method>-<time>.parquet`), so the comparison can
    be redone or exported without the model. `exclusions`: the `ExclusionPolicy` deciding
    which raters count (default: every rule, as the study's report applies them).
    """
    from annotation.analysis.human_profile import study_human_profile

    from .calibration import calibrate

    profile = study_human_profile(study=study, policy=exclusions)
    if profile.n_judgments == 0:
        raise ScoreServiceError(
            f"study {study.name!r} has no judgments from included participants to calibrate against")
    scores, origin = study_item_scores(persona=persona, study=study, batch_size=batch_size,
                                       progress=progress, model_and_tokenizer=model_and_tokenizer)
    result = calibrate(scores, profile, method=method, seed=seed, bootstrap_reps=bootstrap_reps)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
    relative = f"calibrations/persona-{persona.pk}/study-{study.pk}-{method}-{stamp}.parquet"
    _write_parquet(scores, relative)
    result["scores_file"] = relative
    result["scores_origin"] = origin
    result["human_profile"] = profile.to_dict()
    with transaction.atomic():
        return Calibration.objects.create(persona=persona, study=study, method=method,
                                          result=result)
