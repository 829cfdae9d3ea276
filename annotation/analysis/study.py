"""A study's analysis from the database: its tidy table, handed to the pure `analysis` module.

The page, its plot and table downloads, the API and `manage.py analyze_study` all come
through here, so every one of them reports the same numbers for the same options. The page,
its downloads and the API (`report_analysis`) take the mixed model from its background fit
(`annotation.analysis.model_fits`); `manage.py analyze_study` fits it in its own process.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace

from django.core.cache import cache
from django.db.models import Count, Max

from annotation.analysis.options import AnalysisOptions
from annotation.analysis.statistics import AnalysisResult, analyze
from annotation.dataio.judgment_table import judgment_table
from annotation.models import Judgment, Participant, Study

# The cache key changes with the data (see `study_data_version`), so a cached analysis is
# never stale; the timeout only bounds how long old versions occupy memory.
CACHE_SECONDS = 600


def study_analysis(*, study: Study, options: AnalysisOptions | None = None, progress=None) -> AnalysisResult:
    """The full analysis of `study`'s judgments, attention checks included for the exclusions.

    Raises `ValueError` (from `analyze`) only if the stored data break the tidy table's
    rules, which the database's constraints are there to prevent. The mixed model, where the
    options ask for it, is fitted here, in this process (tens of seconds; `progress(fraction,
    stage)` hears how it goes).
    """
    options = options or AnalysisOptions()
    table = judgment_table(study=study, include_attention_checks=True)
    result = analyze(table, options, progress=progress)
    active = Participant.objects.filter(study=study, status=Participant.Status.ACTIVE).count()
    if active:
        result.notes.append(
            f"{active} participant(s) are still active; their answers so far are included. "
            "Close the study, or mark unfinished sessions, before reporting final numbers.")
    return result


def study_data_version(study: Study) -> str:
    """A short fingerprint that changes whenever an answer or a participant's status changes."""
    judgments = Judgment.objects.filter(participant__study=study).aggregate(
        n=Count("id"), last_id=Max("id"), last_answer=Max("answered_at"))
    participants = Participant.objects.filter(study=study).aggregate(
        n=Count("id"), last_change=Max("status_changed_at"), last_seen=Max("last_seen_at"))
    statuses = sorted(Participant.objects.filter(study=study).values_list("status").annotate(n=Count("id")))
    parts = [judgments["n"], judgments["last_id"], judgments["last_answer"], participants["n"],
             participants["last_change"], statuses]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def report_analysis(*, study: Study, options: AnalysisOptions) -> AnalysisResult:
    """The analysis the report page, its downloads and the API show: everything but the mixed
    model computed now (and cached), the mixed model as its background fit left it (fitted,
    being fitted, or not yet asked for: `result.mixed_model["reason"]` says which)."""
    from annotation.analysis.model_fits import with_model_entry

    version = study_data_version(study)
    result = cached_study_analysis(study=study, options=replace(options, mixed_model=False), version=version)
    return with_model_entry(result, study=study, options=options, data_version=version)


def cached_study_analysis(*, study: Study, options: AnalysisOptions, version: str | None = None) -> AnalysisResult:
    """`study_analysis`, kept in Django's cache per study, options and data version.

    The report page and the plot and table downloads it links to ask for the same
    analysis within seconds of each other; this computes it once.
    """
    params = "&".join(f"{key}={value}" for key, value in sorted(options.to_params().items()))
    key = f"framelab:study-analysis:{study.pk}:{version or study_data_version(study)}:" + hashlib.sha256(
        params.encode()).hexdigest()[:16]
    result = cache.get(key)
    if result is None:
        result = study_analysis(study=study, options=options)
        cache.set(key, result, CACHE_SECONDS)
    return result
