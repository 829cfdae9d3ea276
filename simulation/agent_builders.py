"""Agents from the database: a run's JSON agent specs turned into `simulation.agents` objects.

A run stores its agents as specs a researcher can read and write by hand:

    {"kind": "persona", "persona": "consensus-0.5"}    (name or id: core/lookup.py's rule)
    {"kind": "persona", "persona": "baseline", "decision": "frameref"}
    {"kind": "human", "study": "FrameRef replication", "by_familiarity": false}
    {"kind": "parametric", "name": "credulous",
     "accept": {"SUPPORTS": 0.9, "REFUTES": 0.6}, "confidence": 0.8}
    {"kind": "oracle"}

each with an optional display `name`. `agent_specs_resolve` checks every spec against the
database and the pool when a run is created and returns the specs as stored: references
become ids, defaults are filled in, and a human agent's numbers are copied from its study
(a snapshot), so that executing the run later, on any worker, builds exactly the same agents
even if the study has gained raters since. `agents_build` then makes the engine's agents,
aligned with the pool's row order.

Parametric acceptance may be one pair for every framing or one pair per framing:
`"accept": {"authoritative": {"SUPPORTS": 0.9, "REFUTES": 0.7}, "*": {...}}` ("*": any
framing not listed). `confidence` is one probability in [0, 1] (every judgment) or five
weights of the confidence levels 1..5.

A persona's `decision` is its decision rule (`modeling.decisions`): `argmax` (the more
probable label), `frameref` (sampled at temperature 0.6, top-p 0.9, the generation config
FrameRef's model shipped) or `sample:T:P`. A run's default rule (`agent_specs_resolve(...,
decision=...)`, `simulate --decision`, the web form) applies to every persona agent whose
spec names none; the stored spec always names it. Human, parametric and oracle agents draw
from rates or are always right: they have no label distribution for a rule to act on.

A persona's `calibration` (a `modeling.models.Calibration` id of that persona,
`calibrate_persona`) makes it a calibrated persona: it decides from its calibrated
P(SUPPORTS) (`modeling.calibration.apply_calibration`, per framing, on the normalised
probability), sampled by default (`sample:1:1`: the calibrated probability itself, so its
per-framing acceptance is the one calibration fitted to the humans'); the run's default
rule does not apply to it, its own `decision` does. The parameters are copied into the
stored spec (`calibration_parameters`).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from core.lookup import lookup_by_id_or_name
from modeling.decisions import DecisionRuleError, parse_decision

from .agents import (
    ANY_FRAMING,
    AgentError,
    OracleAgent,
    ScoreAgent,
    human_calibrated_agent,
    parametric_agent,
)

KINDS = ("persona", "human", "parametric", "oracle")
LABELS = ("SUPPORTS", "REFUTES")
SCORE_COLUMNS = ("claim_id", "p_supports", "p_refutes")
SPEC_KEYS = {
    "persona": {"kind", "name", "persona", "normalised", "decision", "calibration"},
    "human": {"kind", "name", "study", "by_familiarity", "apply_exclusions", "exclusions",
              "min_median_response_ms"},
    "parametric": {"kind", "name", "accept", "confidence"},
    "oracle": {"kind", "name", "confidence"},
}
# Keys the resolver adds to a stored spec; accepted back so a stored spec resolves again.
RESOLVED_KEYS = {
    "persona": {"persona_id", "score_tables", "calibration_parameters"},
    "human": {"study_id", "profile", "exclusions_applied"},
    "parametric": set(),
    "oracle": set(),
}

# Three parametric agents that differ in credulity and in how authority sways them: the demo
# run's agents (load_demo_simulation), also used by bench/simulation.py.
DEMO_PARAMETRIC_SPECS = (
    {"kind": "parametric", "name": "sceptical", "accept": {"SUPPORTS": 0.7, "REFUTES": 0.2}, "confidence": 0.7},
    {"kind": "parametric", "name": "credulous", "accept": {"SUPPORTS": 0.9, "REFUTES": 0.7}, "confidence": 0.8},
    {"kind": "parametric", "name": "swayed by authority", "confidence": 0.85,
     "accept": {"authoritative": {"SUPPORTS": 0.9, "REFUTES": 0.75},
                "consensus": {"SUPPORTS": 0.9, "REFUTES": 0.6},
                "*": {"SUPPORTS": 0.75, "REFUTES": 0.25}}},
)


class AgentSpecError(ValueError):
    """A spec that does not describe a usable agent; the message names the agent and field."""


def _where(index: int, spec: dict) -> str:
    label = spec.get("name") or spec.get("kind") or "?"
    return f"agent {index + 1} ('{label}')"


def _probability(value: Any, where: str, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0.0 <= number <= 1.0:
        raise AgentSpecError(f"{where}: field '{field}': value {value!r}: accepted: a probability in [0, 1]")
    return number


# --- persona ------------------------------------------------------------------------------

def persona_scores(*, tables: list[pd.DataFrame], pool: pd.DataFrame, where: str,
                   normalised: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The persona's (p_supports, p_refutes) for each pool row, in the pool's order.

    FrameRef's reward uses the probability of the predicted label as the model gave it, not
    renormalised over the two labels, so by default both raw label probabilities are used
    (their sum is below one); `normalised` uses p(S) / (p(S) + p(R)) instead.
    """
    scores = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=SCORE_COLUMNS)
    scores = scores.drop_duplicates("claim_id", keep="first").set_index("claim_id")
    aligned = scores.reindex(pool["claim_id"].to_numpy())
    missing = aligned["p_supports"].isna().to_numpy()
    if missing.any():
        examples = ", ".join(pool["claim_id"].to_numpy()[missing][:3])
        raise AgentSpecError(
            f"{where}: no scores for {int(missing.sum())} of the pool's {len(pool)} claims "
            f"(e.g. {examples}); score the persona on this dataset and split first")
    if normalised:
        if "p_supports_norm" in aligned:
            p = aligned["p_supports_norm"].to_numpy(dtype=np.float64)
        else:
            s = aligned["p_supports"].to_numpy(dtype=np.float64)
            r = aligned["p_refutes"].to_numpy(dtype=np.float64)
            p = s / np.maximum(s + r, 1e-300)
        return p, None
    return (aligned["p_supports"].to_numpy(dtype=np.float64),
            aligned["p_refutes"].to_numpy(dtype=np.float64))


def _score_tables_for(persona, *, dataset, splits: list[str], where: str) -> list:
    from modeling.score_services import succeeded_score_tables

    tables = list(succeeded_score_tables(persona=persona, dataset=dataset, splits=splits)
                  .order_by("split"))
    if not tables:
        raise AgentSpecError(
            f"{where}: persona '{persona.name}' has no finished score table for dataset "
            f"'{dataset.name}' split {'/'.join(splits)}; score it first (the persona's page, "
            "or the scoring command)")
    return tables


# --- human --------------------------------------------------------------------------------

def profile_snapshot(profile) -> dict:
    """What a human-calibrated agent needs from a HumanProfile, JSON-safe (no per-item rows)."""
    data = profile.to_dict()
    data["items"] = []
    return data


#: How many judgments' worth of the framing's overall rate a familiarity level's own rate is
#: blended with (and its confidence distribution with the decision's): a level judged 10
#: times is half its own rate, half the cell's; one judged 200 times is 95% its own.
FAMILIARITY_PRIOR_JUDGMENTS = 10.0


def human_agent_from_profile(name: str, profile, *, by_familiarity: bool):
    """The human-calibrated agent of a profile.

    `by_familiarity`: each claim is judged at the familiarity level its base claim's raters
    reported (a level drawn from that claim's own reports; the framing's distribution where
    the study has none for it), accepting at the framing's rate among raters at that level
    and drawing confidence among them, with thin levels blended toward the framing's rate
    (FAMILIARITY_PRIOR_JUDGMENTS).
    """
    acceptance = {key: rate.rate for key, rate in profile.cells.items() if rate.n}
    confidence = {key: counts for key, counts in profile.confidence.items()}
    if not by_familiarity:
        return human_calibrated_agent(name, acceptance=acceptance, confidence=confidence)
    familiarity = {key: (rate.rate, rate.n) for key, rate in profile.familiarity.items() if rate.n}
    return human_calibrated_agent(
        name, acceptance=acceptance, confidence=confidence, familiarity=familiarity,
        claim_familiarity={base: counts for base, counts in profile.base_familiarity.items()
                           if counts.sum() > 0} or None,
        confidence_by_familiarity=profile.confidence_by_familiarity,
        prior_judgments=FAMILIARITY_PRIOR_JUDGMENTS)


# --- resolving and building ---------------------------------------------------------------

def _splits_of(split: str) -> list[str]:
    from annotation.models import Split

    return list(Split.values) if split == "all" else [split]


def agent_specs_resolve(specs: Any, *, dataset, split: str, pool: pd.DataFrame, user=None,
                        decision: str | None = None) -> list[dict]:
    """Checks the specs against the database and the pool; returns them as a run stores them.

    Raises AgentSpecError naming the agent (by position and name), the field and the value.
    `user`, when given, must be allowed to see every study a human agent is built from.
    `decision`: the decision rule of every persona agent whose spec names none (argmax when
    None).
    """
    try:
        default_decision = parse_decision(decision).text()
    except DecisionRuleError as exc:
        raise AgentSpecError(f"field 'decision': {exc}") from None
    if not isinstance(specs, list) or not specs:
        raise AgentSpecError("agents: give a list of at least one agent spec, e.g. "
                             '[{"kind": "oracle"}]')
    resolved: list[dict] = []
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise AgentSpecError(f"agent {index + 1}: value {spec!r}: accepted: an object with a 'kind'")
        where = _where(index, spec)
        kind = spec.get("kind")
        if kind not in KINDS:
            raise AgentSpecError(f"{where}: field 'kind': value {kind!r}: accepted: {', '.join(KINDS)}")
        unknown = sorted(set(spec) - SPEC_KEYS[kind] - RESOLVED_KEYS[kind])
        if unknown:
            raise AgentSpecError(f"{where}: unknown field '{unknown[0]}'; accepted for {kind}: "
                                 f"{', '.join(sorted(SPEC_KEYS[kind]))}")
        name = spec.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise AgentSpecError(f"{where}: field 'name': value {name!r}: accepted: a non-empty text")
        out = _resolve_one(kind, spec, where, dataset=dataset, split=split, pool=pool, user=user,
                           default_decision=default_decision)
        out["name"] = (name or out["name"]).strip()
        resolved.append(out)
    names = [spec["name"] for spec in resolved]
    for index, name in enumerate(names):
        if names.index(name) != index:
            raise AgentSpecError(f"agent {index + 1}: field 'name': value '{name}' is used by agent "
                                 f"{names.index(name) + 1} too; give each agent its own name")
    # Build once now, so that a spec that resolves but cannot make an agent fails here and
    # not on a worker minutes later.
    agents_build(resolved, pool=pool)
    return resolved


def _resolve_one(kind, spec, where, *, dataset, split, pool, user, default_decision="argmax") -> dict:
    if kind == "oracle":
        return {"kind": "oracle", "name": "oracle",
                "confidence": _probability(spec.get("confidence", 1.0), where, "confidence")}
    if kind == "parametric":
        return _resolve_parametric(spec, where, pool=pool)
    if kind == "persona":
        if spec.get("persona") in (None, ""):
            raise AgentSpecError(f"{where}: field 'persona' is required (a persona's id or name)")
        from modeling.models import Persona

        try:
            persona = lookup_by_id_or_name(Persona.objects, spec["persona"], kind="persona")
        except Persona.DoesNotExist as exc:
            raise AgentSpecError(f"{where}: field 'persona': {exc}") from None
        tables = _score_tables_for(persona, dataset=dataset, splits=_splits_of(split), where=where)
        calibration = _resolve_calibration(spec, persona, where)
        if calibration is not None and not spec.get("decision"):
            default_decision = CALIBRATED_DECISION
        try:
            decision = parse_decision(spec.get("decision") or default_decision).text()
        except DecisionRuleError as exc:
            raise AgentSpecError(f"{where}: field 'decision': {exc}") from None
        extra = {} if calibration is None else {"calibration": calibration[0],
                                                 "calibration_parameters": calibration[1]}
        return {"kind": "persona", "name": persona.name, "persona": persona.name,
                "persona_id": persona.pk, "normalised": bool(spec.get("normalised", False)),
                "decision": decision, **extra,
                "score_tables": [{"id": t.pk, "split": t.split, "path": t.path} for t in tables]}
    # human
    from annotation.analysis.human_profile import HumanProfileError, study_human_profile
    from annotation.analysis.options import AnalysisOptions
    from annotation.models import Study
    from annotation.studies.selectors import studies_visible_to
    from annotation.studies.services import study_lookup

    if spec.get("study") in (None, ""):
        raise AgentSpecError(f"{where}: field 'study' is required (a study's id or name)")
    try:
        study = study_lookup(spec["study"])
    except Study.DoesNotExist as exc:
        raise AgentSpecError(f"{where}: field 'study': {exc}") from None
    if user is not None and not studies_visible_to(user).filter(pk=study.pk).exists():
        raise AgentSpecError(f"{where}: field 'study': you may not use study '{study.name}'")
    apply_exclusions = bool(spec.get("apply_exclusions", True))
    # Which raters count: the analysis's exclusion policy, every rule by default, the same
    # option names as the report and analyze_study (annotation/analysis/exclusions.py).
    params = {key: spec[key] for key in ("exclusions", "min_median_response_ms")
              if spec.get(key) is not None}
    if not apply_exclusions:
        params["exclusions"] = "none"
    try:
        policy = AnalysisOptions.from_params(params).policy
    except ValueError as exc:
        raise AgentSpecError(f"{where}: field {str(exc).removeprefix('parameter ')}") from None
    try:
        profile = study_human_profile(study=study, policy=policy.for_humans())
    except HumanProfileError as exc:
        raise AgentSpecError(f"{where}: study '{study.name}': {exc}") from None
    if profile.n_judgments == 0:
        raise AgentSpecError(f"{where}: study '{study.name}' has no judgments to calibrate an agent on")
    pool_framings = sorted(set(pool["framing"]))
    missing = [f for f in pool_framings if f not in profile.framings]
    if missing:
        raise AgentSpecError(
            f"{where}: study '{study.name}' has no judgments of framing(s) {', '.join(missing)}, "
            f"which the pool holds; its raters saw {', '.join(profile.framings)}")
    return {"kind": "human", "name": f"humans: {study.name}", "study": study.name,
            "study_id": study.pk, "by_familiarity": bool(spec.get("by_familiarity", False)),
            "apply_exclusions": apply_exclusions, "exclusions": profile.exclusions["policy"]["rules"],
            "min_median_response_ms": policy.min_median_response_ms,
            "exclusions_applied": profile.exclusions, "profile": profile_snapshot(profile)}


#: How a calibrated persona decides unless its spec says otherwise: sampled from the
#: calibrated probability itself (temperature 1, top-p 1).
CALIBRATED_DECISION = "sample:1:1"


def _resolve_calibration(spec, persona, where) -> tuple[int, dict] | None:
    """(id, parameters) of the spec's calibration, checked to be the persona's and fitted."""
    reference = spec.get("calibration")
    if reference in (None, ""):
        return None
    if spec.get("calibration_parameters") is not None and spec.get("calibration") is not None:
        stored = spec["calibration_parameters"]  # a stored spec resolving again keeps its snapshot
        if isinstance(stored, dict) and stored.get("method"):
            return int(spec["calibration"]), stored
    from modeling.score_services import ScoreServiceError, persona_calibration

    try:
        return persona_calibration(persona=persona, reference=reference)
    except ScoreServiceError as exc:
        raise AgentSpecError(f"{where}: field 'calibration': value {reference!r}: {exc}") from None


def calibrated_scores(p_normalised: np.ndarray, framings, parameters: dict) -> np.ndarray:
    """The calibrated P(SUPPORTS) of each pool row, by its framing's parameters."""
    from modeling.calibration import apply_calibration

    framings = np.asarray(framings)
    out = np.empty(len(p_normalised))
    for framing in np.unique(framings):
        rows = framings == framing
        out[rows] = apply_calibration(np.asarray(p_normalised, dtype=np.float64)[rows], str(framing), parameters)
    return out


def _resolve_parametric(spec, where, *, pool) -> dict:
    accept = spec.get("accept")
    if not isinstance(accept, dict) or not accept:
        raise AgentSpecError(f"{where}: field 'accept': value {accept!r}: accepted: "
                             '{"SUPPORTS": p, "REFUTES": p} or {framing: {"SUPPORTS": p, "REFUTES": p}}')
    if set(accept) <= set(LABELS):
        accept = {ANY_FRAMING: accept}
    from annotation.models import Framing

    table: dict[str, dict[str, float]] = {}
    for framing, pair in accept.items():
        if framing != ANY_FRAMING and framing not in Framing.values:
            raise AgentSpecError(f"{where}: field 'accept': framing {framing!r}: accepted: "
                                 f"{', '.join(Framing.values)} or '*'")
        if not isinstance(pair, dict) or set(pair) != set(LABELS):
            raise AgentSpecError(f"{where}: field 'accept.{framing}': value {pair!r}: accepted: "
                                 '{"SUPPORTS": p, "REFUTES": p}')
        table[framing] = {label: _probability(pair[label], where, f"accept.{framing}.{label}")
                          for label in LABELS}
    if ANY_FRAMING not in table:
        missing = sorted(set(pool["framing"]) - set(table))
        if missing:
            raise AgentSpecError(f"{where}: field 'accept': no numbers for framing(s) "
                                 f"{', '.join(missing)} of the pool; add them or '*'")
    confidence = spec.get("confidence", 0.75)
    if isinstance(confidence, list):
        if len(confidence) != 5 or not all(isinstance(w, (int, float)) and w >= 0 for w in confidence) \
                or not sum(confidence) > 0:
            raise AgentSpecError(f"{where}: field 'confidence': value {confidence!r}: accepted: a "
                                 "probability, or five non-negative weights of levels 1..5")
        confidence = [float(w) for w in confidence]
    else:
        confidence = _probability(confidence, where, "confidence")
    return {"kind": "parametric", "name": "parametric", "accept": table, "confidence": confidence}


def agents_build(specs: list[dict], *, pool: pd.DataFrame) -> list:
    """Engine agents for resolved specs; score vectors follow `pool`'s row order."""
    agents = []
    for index, spec in enumerate(specs):
        where = _where(index, spec)
        kind, name = spec["kind"], spec["name"]
        try:
            if kind == "oracle":
                agents.append(OracleAgent(name=name, confidence=spec["confidence"]))
            elif kind == "parametric":
                accept = spec["accept"]
                agents.append(parametric_agent(
                    name,
                    true_acceptance={f: pair["SUPPORTS"] for f, pair in accept.items()},
                    false_acceptance={f: pair["REFUTES"] for f, pair in accept.items()},
                    confidence=spec["confidence"]))
            elif kind == "persona":
                tables = [_read_score_file(t["path"]) for t in spec["score_tables"]]
                if spec.get("calibration_parameters"):
                    p, _ = persona_scores(tables=tables, pool=pool, where=where, normalised=True)
                    p, q = calibrated_scores(p, pool["framing"].to_numpy(), spec["calibration_parameters"]), None
                else:
                    p, q = persona_scores(tables=tables, pool=pool, where=where,
                                          normalised=spec.get("normalised", False))
                agents.append(ScoreAgent(name=name, p_supports=p, p_refutes=q,
                                         decision=spec.get("decision") or "argmax"))
            else:
                from annotation.analysis.human_profile import HumanProfile

                profile = HumanProfile.from_dict(spec["profile"])
                agents.append(human_agent_from_profile(name, profile, by_familiarity=spec["by_familiarity"]))
        except AgentError as exc:
            raise AgentSpecError(f"{where}: {exc}") from None
    return agents


def _read_score_file(relative: str) -> pd.DataFrame:
    from modeling.score_services import ScoreServiceError, score_file_read

    try:
        return score_file_read(relative, required=SCORE_COLUMNS)
    except ScoreServiceError as exc:
        raise AgentSpecError(str(exc)) from None


def agent_provenance(specs: list[dict]) -> list[dict]:
    """What each agent was built from, for a run's provenance: ids, files and their checksums."""
    from modeling.score_services import score_file_sha256

    out = []
    for spec in specs:
        entry = {"name": spec["name"], "kind": spec["kind"]}
        if spec["kind"] == "persona":
            entry["persona_id"] = spec["persona_id"]
            entry["decision"] = spec.get("decision", "argmax")
            if spec.get("calibration") is not None:
                entry["calibration_id"] = spec["calibration"]
            entry["score_tables"] = [{**t, "sha256": score_file_sha256(t["path"])}
                                     for t in spec["score_tables"]]
        elif spec["kind"] == "human":
            entry.update(study_id=spec["study_id"], n_raters=spec["profile"]["n_raters"],
                         n_judgments=spec["profile"]["n_judgments"])
        out.append(entry)
    return out


def parse_agent_option(text: str) -> dict:
    """A command-line `--agent` value as a spec.

    persona:NAME[:normalised][:decision=RULE][:calibration=ID]   (RULE: argmax, frameref or sample/T/P)
    human:STUDY[:by_familiarity]      oracle[:CONFIDENCE]
    parametric:NAME:accept_true=0.8,accept_false=0.3,confidence=0.7
    """
    kind, _, rest = text.partition(":")
    kind = kind.strip()
    if kind == "oracle":
        spec: dict[str, Any] = {"kind": "oracle"}
        if rest:
            spec["confidence"] = rest
    elif kind == "persona":
        name, _, flags = rest.partition(":")
        spec = {"kind": "persona", "persona": name}
        for flag in filter(None, flags.split(":")):
            if flag == "normalised":
                spec["normalised"] = True
            elif flag.startswith("calibration="):
                spec["calibration"] = flag.removeprefix("calibration=")
            elif flag.startswith("decision="):
                # '/' separates a sampling rule's numbers here, ':' separating the options.
                spec["decision"] = flag.removeprefix("decision=").replace("/", ":")
            else:
                raise AgentSpecError(f"--agent {text}: unknown option '{flag}'; accepted: normalised, "
                                     "decision=argmax|frameref|sample/T/P, calibration=ID")
    elif kind == "human":
        study, _, flag = rest.partition(":")
        spec = {"kind": "human", "study": study}
        if flag:
            if flag != "by_familiarity":
                raise AgentSpecError(f"--agent {text}: unknown option '{flag}'; accepted: by_familiarity")
            spec["by_familiarity"] = True
    elif kind == "parametric":
        name, _, numbers = rest.partition(":")
        values: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in numbers.split(","))):
            key, sep, value = pair.partition("=")
            if not sep:
                raise AgentSpecError(f"--agent {text}: '{pair}' is not of the form name=value")
            values[key.strip()] = value.strip()
        unknown = sorted(set(values) - {"accept_true", "accept_false", "confidence"})
        if unknown or not {"accept_true", "accept_false"} <= set(values):
            raise AgentSpecError(f"--agent {text}: give accept_true=P,accept_false=P[,confidence=P]"
                                 + (f"; unknown: {unknown[0]}" if unknown else ""))
        spec = {"kind": "parametric", "name": name or None,
                "accept": {"SUPPORTS": values["accept_true"], "REFUTES": values["accept_false"]}}
        if "confidence" in values:
            spec["confidence"] = values["confidence"]
        if not name:
            spec.pop("name")
    else:
        raise AgentSpecError(f"--agent {text}: unknown kind '{kind}'; accepted: {', '.join(KINDS)}")
    return spec
