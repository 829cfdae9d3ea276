"""Which raters and judgments count: one exclusion policy for every number FrameLab reports.

The analysis (`statistics.analyze`, so the report page, `analyze_study` and the API), the
human profile (`human_profile.study_human_profile`), calibration (`calibrate_persona`) and
the simulation's human-calibrated agents all apply an `ExclusionPolicy` through
`exclusion_flow`, so they agree on which raters count; each says which rules it applied and
how many raters and judgments each removed (`flow`, `summary`).

The rules, in the order they are applied (a rater or judgment removed by an earlier rule is
not counted again by a later one, a CONSORT-style flow):

- `persona`: the rater is a language model that took the study (`rate_study`), not a person.
- `status`: the participant returned the study, was rejected, excluded or timed out.
- `attention`: the participant failed at least one attention check.
- `fast`: the participant's median time per item is under `min_median_response_ms`.
- `design-violations`: per judgment, not per rater: a judgment by a rater who saw two or
  more framings of its base claim. FrameLab's design shows each rater one framing of a base
  claim; a Prolific export can hold a participant who took two batches, and then every one
  of their judgments of such a base claim is flagged (the first as much as the second: which
  was seen first is known only as well as the export's timestamps, and the between-subjects
  comparison holds neither). A rater left with no judgment counts as removed by the rule.

Every rule is on by default. Pure: pandas and numpy, no Django. pandas is imported by the
functions that compute, so that the analysis options (which every page that links to a
report parses) load it only where a table is read.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# Participant statuses whose judgments leave the analysis (the platform's
# Participant.EXCLUDED_FROM_ANALYSIS): they returned, were rejected or excluded, or never
# finished.
EXCLUDED_STATUSES = ("returned", "rejected", "excluded", "timed_out")
DEFAULT_MIN_MEDIAN_RESPONSE_MS = 2000.0
RULES = {
    "persona": "rater is a persona (a language model that took the study with rate_study), not a person",
    "status": "participant returned the study, was rejected, excluded or timed out",
    "attention": "participant failed at least one attention check",
    "fast": "participant's median response time per item is under {min_median_response_ms:g} ms",
    "design-violations": "judgment by a rater who saw two or more framings of its base claim "
                         "(e.g. a Prolific participant who took two task groups)",
}
# What a rule removes: a rater's every judgment, or single judgments.
JUDGMENT_RULES = ("design-violations",)

TRUE_WORDS = {"1", "true", "t", "yes", "y", "on", "passed", "pass"}
FALSE_WORDS = {"0", "false", "f", "no", "n", "off", "failed", "fail"}

# Columns of a tidy table the rules read, each under the names an export or a hand-made
# table may use (the first present wins).
STATUS_COLUMNS = ("participant_status", "status")
# `persona` marks a language model that took the study (`manage.py rate_study`).
SOURCE_COLUMNS = ("participant_source",)
PERSONA_SOURCE = "persona"
EXCLUDED_COLUMNS = ("excluded", "participant_excluded")
ATTENTION_COLUMNS = ("attention_passed", "attention_check_passed", "attention_check_result",
                     "attention_check")
ATTENTION_FLAG_COLUMNS = ("is_attention_check",)
ATTENTION_FAILURES_COLUMNS = ("participant_attention_failures",)
RESPONSE_TIME_COLUMNS = ("response_time_ms",)
# Where the browser measured no time (no JavaScript), the server's timestamps stand in.
TIMESTAMP_COLUMNS = ("shown_at", "answered_at")


@dataclass(frozen=True)
class ExclusionPolicy:
    """The named rules to apply (all by default) and the `fast` rule's threshold.

    `min_median_response_ms`: reading a one-sentence claim and answering three questions
    takes several seconds; 2,000 ms is well below that, so only people clicking through are
    caught. Participants without timings are never flagged.
    """

    rules: frozenset[str] = frozenset(RULES)
    min_median_response_ms: float = DEFAULT_MIN_MEDIAN_RESPONSE_MS

    def __post_init__(self) -> None:
        rules = self.rules
        if isinstance(rules, str):
            rules = [part.strip() for part in rules.split(",") if part.strip()]
        object.__setattr__(self, "rules", frozenset(rules))
        unknown = sorted(self.rules - set(RULES))
        if unknown:
            raise ValueError(f"unknown rule '{unknown[0]}'; accepted: {', '.join(RULES)}")
        value = self.min_median_response_ms
        if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
            raise ValueError(f"min_median_response_ms: value '{value}': a non-negative number of milliseconds")

    def for_humans(self) -> "ExclusionPolicy":
        """The policy of a human profile: personas never count as humans, whatever it says."""
        return ExclusionPolicy(rules=self.rules | {"persona"},
                               min_median_response_ms=self.min_median_response_ms)

    def ordered_rules(self) -> list[str]:
        return [rule for rule in RULES if rule in self.rules]

    def to_dict(self) -> dict[str, Any]:
        return {"rules": self.ordered_rules(), "min_median_response_ms": float(self.min_median_response_ms)}


# --- Reading the facts the rules need -------------------------------------------------------

def first_column(table: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in table.columns), None)


def boolean_column(series: pd.Series, column: str) -> pd.Series:
    """True/False/NA from booleans, 0/1 or words (CSV files carry them as text)."""
    import pandas as pd

    if series.dtype == bool:
        return series.astype("boolean")

    def convert(value):
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            return pd.NA
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (int, float, np.integer, np.floating)):
            if value in (0, 1):
                return bool(value)
        text = str(value).strip().lower()
        if text in ("", "nan", "none", "null", "<na>"):
            return pd.NA
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
        raise ValueError(f"column '{column}': value '{value}': expected true/false, yes/no or 1/0")

    return series.map(convert).astype("boolean")


@dataclass
class RaterFacts:
    """Per rater, what the rater-level rules read; per row, whether it is an attention check."""

    participants: pd.DataFrame  # index participant: persona_flag, status_flag, attention_flag, median_ms
    is_check: np.ndarray  # per row of the table
    available: dict[str, bool] = field(default_factory=dict)  # rule -> the table has data for it


def rater_facts(table: pd.DataFrame) -> RaterFacts:
    """The facts of every rater of a tidy table (rows in table order, index 0..n-1).

    Reads every row, attention checks included: a failed check or a status belongs to the
    rater, not to one judgment. Raises `ValueError` naming the column and value for a flag
    that is neither true nor false.
    """
    import pandas as pd

    rows = table.index
    participant = table["Annotator_ID"].astype(str)
    attention_column = first_column(table, ATTENTION_COLUMNS)
    flag_column = first_column(table, ATTENTION_FLAG_COLUMNS)
    attention = (boolean_column(table[attention_column], attention_column)
                 if attention_column else pd.Series(pd.NA, index=rows, dtype="boolean"))
    if flag_column:
        is_check = boolean_column(table[flag_column], flag_column).fillna(False).to_numpy(dtype=bool)
    else:
        # On the platform only attention-check items carry a pass/fail outcome.
        is_check = attention.notna().to_numpy(dtype=bool)

    status_column = first_column(table, STATUS_COLUMNS)
    excluded_column = first_column(table, EXCLUDED_COLUMNS)
    status_flag = np.zeros(len(table), dtype=bool)
    if status_column:
        status = table[status_column].astype("string").str.strip().str.lower().str.replace(" ", "_")
        status_flag |= status.isin(EXCLUDED_STATUSES).fillna(False).to_numpy(dtype=bool)
    if excluded_column:
        status_flag |= boolean_column(table[excluded_column], excluded_column).fillna(False).to_numpy(dtype=bool)
    failed = (attention == False).fillna(False).to_numpy(dtype=bool)  # noqa: E712 (NA-aware)
    failures_column = first_column(table, ATTENTION_FAILURES_COLUMNS)
    if failures_column:
        # The session's count also holds failures on answers the participant later changed.
        failed |= (pd.to_numeric(table[failures_column], errors="coerce").fillna(0) > 0).to_numpy(dtype=bool)
    time_column = first_column(table, RESPONSE_TIME_COLUMNS)
    if time_column:
        response_ms = pd.to_numeric(table[time_column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    else:
        response_ms = np.full(len(table), np.nan)
    if all(column in table.columns for column in TIMESTAMP_COLUMNS):
        shown = pd.to_datetime(table["shown_at"], utc=True, errors="coerce", format="mixed")
        answered = pd.to_datetime(table["answered_at"], utc=True, errors="coerce", format="mixed")
        server_ms = ((answered - shown).dt.total_seconds() * 1000).to_numpy(dtype=float, na_value=np.nan)
        response_ms = np.where(np.isnan(response_ms), server_ms, response_ms)
    source_column = first_column(table, SOURCE_COLUMNS)
    persona_flag = np.zeros(len(table), dtype=bool)
    if source_column:
        source = table[source_column].astype("string").str.strip().str.lower()
        persona_flag = (source == PERSONA_SOURCE).fillna(False).to_numpy(dtype=bool)
    facts = pd.DataFrame({"participant": participant.to_numpy(), "persona_flag": persona_flag,
                          "status_flag": status_flag, "attention_flag": failed,
                          "response_ms": response_ms})
    grouped = facts.groupby("participant", sort=True)
    participants = pd.DataFrame({
        "persona_flag": grouped["persona_flag"].any(),
        "status_flag": grouped["status_flag"].any(),
        "attention_flag": grouped["attention_flag"].any(),
        "median_ms": grouped["response_ms"].median(),
    })
    available = {
        "persona": source_column is not None,
        "status": bool(status_column or excluded_column),
        "attention": attention_column is not None or failures_column is not None,
        "fast": bool(np.isfinite(response_ms).any()),
        "design-violations": True,  # read from the claim ids themselves
    }
    return RaterFacts(participants=participants, is_check=is_check, available=available)


def design_violations(participant: np.ndarray, base_claim: np.ndarray, framing: np.ndarray) -> np.ndarray:
    """Per judgment: does its rater judge another framing of the same base claim as well?"""
    import pandas as pd

    frame = pd.DataFrame({"participant": participant, "base_claim": base_claim, "framing": framing})
    framings = frame.groupby(["participant", "base_claim"])["framing"].transform("nunique")
    return (framings > 1).to_numpy(dtype=bool)


# --- Applying the policy ---------------------------------------------------------------------

def exclusion_flow(*, participant: np.ndarray, base_claim: np.ndarray, framing: np.ndarray,
                   facts: RaterFacts, policy: ExclusionPolicy) -> tuple[np.ndarray, list[dict], list[str]]:
    """Which judgments stay (a boolean per judgment), the flow of every rule and notes.

    `participant`, `base_claim`, `framing`: one entry per judgment (attention checks apart).
    Each rule of `RULES`, applied or not, gets a row: how many raters and judgments it
    flags, and how many it removed that an earlier rule had not removed already.
    """
    participant = np.asarray(participant).astype(str)
    raters = facts.participants
    rater_index = raters.index.get_indexer(participant)
    if (rater_index < 0).any():  # a judgment's rater has no facts: cannot happen from one table
        raise ValueError(f"rater '{participant[rater_index < 0][0]}' has no row in the table's facts")
    persona = raters["persona_flag"].to_numpy(dtype=bool)
    rater_flags = {
        "persona": persona,
        "status": raters["status_flag"].to_numpy(dtype=bool),
        "attention": raters["attention_flag"].to_numpy(dtype=bool),
        # A persona answers at machine speed: its timings say nothing about care.
        "fast": (raters["median_ms"] < policy.min_median_response_ms).fillna(False).to_numpy(dtype=bool)
        & ~persona,
    }
    violation = design_violations(participant, np.asarray(base_claim), np.asarray(framing))
    keep = np.ones(len(participant), dtype=bool)
    flow, notes = [], []
    described = {"min_median_response_ms": policy.min_median_response_ms}
    for rule, description in RULES.items():
        applied = rule in policy.rules
        if rule in JUDGMENT_RULES:
            flagged_judgments = violation
        else:
            flagged_judgments = rater_flags[rule][rater_index]
        newly = flagged_judgments & keep if applied else np.zeros(len(keep), dtype=bool)
        before = set(participant[keep])
        keep = keep & ~newly
        after = set(participant[keep])
        if rule in JUDGMENT_RULES:
            participants_flagged = len(set(participant[flagged_judgments]))
        else:
            participants_flagged = int(rater_flags[rule].sum())
        flow.append({
            "rule": rule,
            "unit": "judgment" if rule in JUDGMENT_RULES else "participant",
            "description": description.format(**described),
            "applied": applied,
            "data_available": facts.available[rule],
            "participants_flagged": int(participants_flagged),
            "judgments_flagged": int(flagged_judgments.sum()),
            "participants_removed": len(before - after),
            "judgments_removed": int(newly.sum()),
        })
        # A table that does not say where its raters came from (FrameRef's, say) holds people.
        if applied and not facts.available[rule] and rule != "persona":
            notes.append(f"Exclusion rule '{rule}' is on but the table has no data for it "
                         "(no such column), so it removed nobody.")
    return keep, flow, notes


def flow_summary(flow: list[dict]) -> str:
    """One line: the rules applied with what each removed, and the rules switched off."""
    applied = [f"{row['rule']}: {row['participants_removed']} rater(s), {row['judgments_removed']} judgment(s)"
               for row in flow if row["applied"]]
    off = [row["rule"] for row in flow if not row["applied"]]
    text = "exclusions applied (removed) - " + ("; ".join(applied) if applied else "none")
    if off:
        text += "; not applied: " + ", ".join(off)
    return text


@dataclass
class ExclusionOutcome:
    """A tidy table's judgments that count, with the record of what the policy removed."""

    kept: pd.DataFrame  # the table's judgment rows that stay (attention checks never)
    flow: list[dict]
    notes: list[str]
    policy: ExclusionPolicy
    raters: int  # raters with at least one judgment before the exclusions
    judgments: int  # judgments before the exclusions

    def record(self) -> dict[str, Any]:
        """JSON-safe: what a profile, a calibration or an agent spec stores and shows."""
        return {"policy": self.policy.to_dict(), "flow": self.flow, "notes": list(self.notes),
                "raters_before": self.raters, "judgments_before": self.judgments,
                "raters_counted": int(self.kept["Annotator_ID"].nunique()),
                "judgments_counted": int(len(self.kept)), "summary": flow_summary(self.flow)}


def apply_exclusions(table: pd.DataFrame, policy: ExclusionPolicy | None = None) -> ExclusionOutcome:
    """Applies `policy` to a tidy table: its judgment rows that count, and the flow.

    The table needs `Annotator_ID`, `full_claim_id` and `framing_type`; attention-check rows
    (see `rater_facts`) feed the rules and are never kept; so are rows without a claim id.
    """

    policy = policy or ExclusionPolicy()
    missing = [c for c in ("Annotator_ID", "full_claim_id", "framing_type") if c not in table.columns]
    if missing:
        raise ValueError(f"the table lacks column(s) {', '.join(missing)}")
    table = table.reset_index(drop=True)
    facts = rater_facts(table)
    claim_id = table["full_claim_id"]
    judgment = ~facts.is_check & claim_id.notna().to_numpy() & (claim_id.astype(str).str.strip() != "").to_numpy()
    judgments = table[judgment]
    item = judgments["full_claim_id"].astype(str).str.strip()
    keep, flow, notes = exclusion_flow(
        participant=judgments["Annotator_ID"].astype(str).to_numpy(),
        # The base claim is everything before the first ':' of the claim id (method.md section 1.4).
        base_claim=item.str.split(":", n=1).str[0].to_numpy(),
        framing=judgments["framing_type"].astype(str).str.strip().to_numpy(),
        facts=facts, policy=policy)
    return ExclusionOutcome(kept=judgments[keep].reset_index(drop=True), flow=flow, notes=notes,
                            policy=policy, raters=int(judgments["Annotator_ID"].nunique()),
                            judgments=int(len(judgments)))
