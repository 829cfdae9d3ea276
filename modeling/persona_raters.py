"""Personas as raters: a persona takes a human study through the bot interface.

The persona answers every text a participant of the study can be shown (its framed claims
and attention checks), decided in advance, and simulated participants
(`annotation.studies.bots`) carry those answers through the study's real pages, one participant
per batch by default. Its judgments are stored like anyone's, so persona and human answers
to the same items sit side by side in the exports (`participant_source` = `persona`) and in
the analyses, which leave personas out of the human numbers unless asked (the `persona`
exclusion rule of `annotation.analysis.statistics`); a study's human profile never includes them.

How a persona's scores become the three answers of the form:

- **accurate**: Yes when its predicted label is SUPPORTS (the more probable label
  sequence, `modeling.scoring`);
- **confidence** 1..5: the level nearest to the probability of the label it chose,
  max(p, 1 - p) of its normalised P(SUPPORTS), by the rule the calibration uses for
  humans (`annotation.analysis.human_profile.confidence_level`: level k stands for 0.5 + 0.125 (k - 1));
- **familiarity** 1..5: how probable the persona finds the claim's own wording (mean
  log-probability per token, `modeling.scoring.claim_log_likelihood`), as quintiles among
  the texts of the study: the fifth of the texts the persona finds least probable get 1,
  the most probable fifth 5. A model has no memory of having met a topic; the likelihood of
  the wording is the nearest thing it has, and quintiles make the levels comparable across
  models whose likelihoods live on different scales.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from annotation.analysis.human_profile import confidence_level
from annotation.models import AttentionCheck, Batch, Participant, Study
from annotation.studies.bots import AnswerTablePolicy, BotsReport, Choice, run_bots

from .models import Persona
from .score_services import framed_claim_rows, study_framed_claim_ids, study_item_scores

if TYPE_CHECKING:
    from .scoring import ProgressCallback

LEVELS = 5
ANSWER_COLUMNS = ("text", "kind", "framed_claim_id", "claim_id", "framing", "true_label",
                  "p_supports_norm", "predicted_label", "log_likelihood", "accurate", "confidence",
                  "familiarity")


class PersonaRaterError(ValueError):
    """The persona cannot take this study; the message says why."""


def familiarity_levels(log_likelihood: np.ndarray) -> np.ndarray:
    """``int[n]`` 1..5: the quintile of each value among all of them (ties share a level)."""
    values = np.asarray(log_likelihood, dtype=float)
    if len(values) == 0:
        return np.zeros(0, dtype=int)
    if np.isnan(values).any():
        raise PersonaRaterError("a text has no scored token, so it has no familiarity")
    ranks = rankdata(values, method="average")  # 1..n
    # The middle of each value's rank interval, so tied values share the level of their middle.
    return np.clip(np.ceil((ranks - 0.5) / len(values) * LEVELS), 1, LEVELS).astype(int)


def answers_from_scores(predicted_label: np.ndarray, p_supports_norm: np.ndarray,
                        log_likelihood: np.ndarray) -> pd.DataFrame:
    """The form's answers (accurate, confidence, familiarity) from a persona's scores."""
    accurate = np.asarray(predicted_label) == "SUPPORTS"
    p = np.asarray(p_supports_norm, dtype=float)
    chosen = np.where(accurate, p, 1.0 - p)
    return pd.DataFrame({"accurate": accurate, "confidence": np.asarray(confidence_level(chosen), dtype=int),
                         "familiarity": familiarity_levels(log_likelihood)})


def study_texts(study: Study) -> pd.DataFrame:
    """Every text a participant of `study` can be shown, once: its claims, then its checks."""
    claims = framed_claim_rows(framed_claim_ids=study_framed_claim_ids(study=study))
    claims = claims.assign(kind="claim", claim_id=claims["base_id"] + ":" + claims["framing"])
    checks = pd.DataFrame({"text": list(AttentionCheck.objects.filter(study=study).order_by("position")
                                        .values_list("text", flat=True))})
    checks = checks.assign(kind="attention check", framed_claim_id=None, claim_id="", framing="", true_label="")
    columns = ["text", "kind", "framed_claim_id", "claim_id", "framing", "true_label"]
    table = pd.concat([claims[columns], checks[columns]], ignore_index=True)
    # Two items with the same wording get the same answer (the bots look answers up by text).
    return table.drop_duplicates("text").reset_index(drop=True)


def persona_answer_table(*, persona: Persona, study: Study, batch_size: int = 32,
                         progress: ProgressCallback | None = None, model_and_tokenizer=None) -> pd.DataFrame:
    """The persona's answer to every text of the study (ANSWER_COLUMNS).

    The claims' scores are the ones calibration uses (`study_item_scores`: a finished score
    table's rows where there is one, scored now otherwise); the attention checks are scored
    here, and every text's likelihood (familiarity) too.
    """
    from core.language_models import pick_device
    from modeling.persona_models import load_persona_model

    from .scoring import ClaimScorer, claim_log_likelihood

    if not persona.is_usable:
        raise PersonaRaterError(f"persona {persona.name!r} has status {persona.status}; only a "
                                "succeeded persona (or a base model) can take a study")
    texts = study_texts(study)
    if not (texts["kind"] == "claim").any():
        raise PersonaRaterError(f"study {study.name!r} has no items")
    model, tokenizer = model_and_tokenizer or load_persona_model(persona, device=pick_device())
    claim_scores, _ = study_item_scores(persona=persona, study=study, batch_size=batch_size,
                                        progress=progress, model_and_tokenizer=(model, tokenizer))
    scored = claim_scores.assign(framed_claim_id=claim_scores["framed_claim_id"].astype(int)).set_index(
        "framed_claim_id")
    table = texts.assign(p_supports_norm=texts["framed_claim_id"].map(scored["p_supports_norm"]),
                         predicted_label=texts["framed_claim_id"].map(scored["predicted_label"]))
    checks = table["kind"] == "attention check"
    if checks.any():
        check_scores = ClaimScorer(model, tokenizer, batch_size=batch_size).score(table.loc[checks, "text"].tolist())
        table.loc[checks, "p_supports_norm"] = check_scores.p_supports_norm
        table.loc[checks, "predicted_label"] = check_scores.predicted_label
    table["log_likelihood"] = claim_log_likelihood(model, tokenizer, table["text"].tolist(),
                                                   batch_size=min(batch_size, 16))
    answers = answers_from_scores(table["predicted_label"].to_numpy(), table["p_supports_norm"].to_numpy(),
                                  table["log_likelihood"].to_numpy())
    return pd.concat([table, answers], axis=1)[list(ANSWER_COLUMNS)]


@dataclass
class PersonaRating:
    """What `persona_rate_study` did: the bots' report, the answers, the participants."""

    report: BotsReport
    answers: pd.DataFrame
    id_prefix: str
    participants_marked: int


def persona_rate_study(*, persona: Persona, study: Study, base_url: str, participants: int | None = None,
                       concurrency: int = 4, timeout: float = 60.0, batch_size: int = 32,
                       progress: ProgressCallback | None = None, answers: pd.DataFrame | None = None,
                       seed: int = 0) -> PersonaRating:
    """The persona takes `study` over HTTP at `base_url` as `participants` simulated
    participants (default: one per batch of the study), then its participants are marked
    with source `persona` (their status note names the persona).

    The persona occupies rater slots like anyone: run it when the humans are done, or give
    the study a rater per batch more. A full study turns its bots away (reported, not an
    error). Participant ids are ``persona<id>-<random>-00000``, ...
    """
    if participants is None:
        participants = Batch.objects.filter(study=study).count()
    if participants < 0:
        raise PersonaRaterError("participants must be 0 or more")
    if answers is None:
        answers = persona_answer_table(persona=persona, study=study, batch_size=batch_size, progress=progress)
    choices = {row.text: Choice(bool(row.accurate), int(row.confidence), int(row.familiarity))
               for row in answers.itertuples()}
    prefix = f"persona{persona.pk}-{secrets.token_hex(3)}-"
    report = run_bots(base_url=base_url, study_id=study.pk, participants=participants,
                      concurrency=concurrency, policy=AnswerTablePolicy(choices, name=f"persona {persona.name}"),
                      seed=seed, id_prefix=prefix, timeout=timeout)
    marked = Participant.objects.filter(study=study, external_id__startswith=prefix).update(
        source=Participant.Source.PERSONA, status_note=f"persona {persona.name!r} (id {persona.pk})"[:300])
    return PersonaRating(report=report, answers=answers, id_prefix=prefix, participants_marked=marked)
