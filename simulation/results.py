"""Statistics of simulated trajectories: the numbers and curves FrameRef reports, with intervals.

Everything works on the long per-step table the engine writes (``TrajectoryBatch.to_frame``
and the ``simulate`` command's Parquet file): one row per (agent, run, trajectory, step)
with at least ``agent, run, trajectory, step, true_label, accepted, confidence, reward, H``
(``correct`` is derived when absent). Pure pandas/numpy, no Django, so a report page, a
command and a notebook compute the same numbers.

- :func:`per_step`: mean ``H_t`` and ``H_t / t`` per agent and step, with 95% intervals;
- :func:`per_trajectory`: ``mean_IH = sum_t H_t / T``, final H, P(correct), mean confidence
  when correct and when wrong, true and false claims encountered;
- :func:`per_agent`: those averaged over trajectories then runs, with 95% intervals, and
  the confidence gap;
- :func:`agent_differences`: each agent minus a baseline agent, with seeded bootstrap
  intervals (paired by (run, trajectory) when both agents ran the same trajectory numbers,
  which share their random streams in this engine).

Two summary conventions (``conventions=``), side by side in docs/simulations.md:

- ``"platform"`` (the default): mean_IH = sum_t H_t / T; the curve H_t / t with t the number
  of claims judged (1..T); true and false claims per trajectory; confidence when correct and
  when wrong pooled over every step of the agent;
- ``"frameref"``, as FrameRef's notebook summarised: mean_IH = sum_t H_t / (T - 1) (its largest
  0-based step index); the curve H_t / (t - 1), the 0-based step index, the first step
  dropped (NaN); true and false claims counted per run (over the run's trajectories, 100 in
  FrameRef) then averaged over runs; confidence when correct and when wrong averaged within
  each run, then over runs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

CONVENTIONS = ("platform", "frameref")
METRICS = ("mean_IH", "final_H", "p_correct", "confidence_correct", "confidence_wrong", "confidence_gap",
           "true_claims", "false_claims")


def check_conventions(conventions: str) -> str:
    if conventions not in CONVENTIONS:
        raise ValueError(f"conventions: value {conventions!r}: accepted: {', '.join(CONVENTIONS)}")
    return conventions


def _with_correct(frame: pd.DataFrame) -> pd.DataFrame:
    if "correct" in frame.columns:
        return frame
    accepted = frame["accepted"].astype(bool)
    return frame.assign(correct=accepted == (frame["true_label"] == "SUPPORTS"))


def _interval(mean, sd, n, level=0.95):
    """Student-t interval of a mean; NaN where fewer than two values."""
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1)) * np.asarray(sd) / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return mean - half, mean + half


def per_step(frame: pd.DataFrame, *, level: float = 0.95, conventions: str = "platform") -> pd.DataFrame:
    """One row per (agent, step): ``mean_H, H_low, H_high, mean_H_per_step, H_per_step_low,
    H_per_step_high, n`` (trajectories of all runs pooled). ``H_per_step`` is H_t / t, or
    under FrameRef's conventions H_t / (t - 1), NaN at the first step."""
    divisor = frame["step"] if check_conventions(conventions) == "platform" else (frame["step"] - 1)
    data = frame[["agent", "step", "H"]].assign(
        H_per_step=frame["H"] / divisor.where(divisor > 0).astype(np.float64))
    grouped = data.groupby(["agent", "step"], observed=True)
    out = grouped.agg(mean_H=("H", "mean"), sd_H=("H", "std"), mean_H_per_step=("H_per_step", "mean"),
                      sd_H_per_step=("H_per_step", "std"), n=("H", "size")).reset_index()
    out["H_low"], out["H_high"] = _interval(out["mean_H"], out["sd_H"], out["n"], level)
    out["H_per_step_low"], out["H_per_step_high"] = _interval(out["mean_H_per_step"], out["sd_H_per_step"],
                                                              out["n"], level)
    return out[["agent", "step", "mean_H", "H_low", "H_high", "mean_H_per_step", "H_per_step_low",
                "H_per_step_high", "n"]]


def per_trajectory(frame: pd.DataFrame, *, conventions: str = "platform") -> pd.DataFrame:
    """One row per (agent, run, trajectory) with the metrics of :data:`METRICS`; mean_IH
    divides the sum of H_t by T, or by T - 1 under FrameRef's conventions."""
    check_conventions(conventions)
    data = _with_correct(frame)
    is_true = data["true_label"] == "SUPPORTS"
    conf = data["confidence"].astype(np.float64)
    correct = data["correct"].astype(bool)
    data = pd.DataFrame({
        "agent": data["agent"], "run": data["run"] if "run" in data else 0, "trajectory": data["trajectory"],
        "step": data["step"], "H": data["H"], "correct": correct,
        "conf_if_correct": conf.where(correct), "conf_if_wrong": conf.where(~correct),
        "true": is_true, "false": ~is_true,
    })
    grouped = data.sort_values("step").groupby(["agent", "run", "trajectory"], observed=True, sort=True)
    out = grouped.agg(
        mean_IH=("H", "mean"), final_H=("H", "last"), p_correct=("correct", "mean"),
        confidence_correct=("conf_if_correct", "mean"), confidence_wrong=("conf_if_wrong", "mean"),
        true_claims=("true", "sum"), false_claims=("false", "sum"), steps=("step", "size"),
    ).reset_index()
    out["confidence_gap"] = out["confidence_correct"] - out["confidence_wrong"]
    if conventions == "frameref":
        steps = out["steps"].astype(np.float64)
        out["mean_IH"] = out["mean_IH"] * steps / (steps - 1).where(steps > 1)
    return out


def per_agent(frame: pd.DataFrame, *, level: float = 0.95, conventions: str = "platform") -> pd.DataFrame:
    """One row per agent: each metric averaged over trajectories, then over runs, with a
    t-interval over trajectories (``<metric>_low``, ``<metric>_high``) for mean_IH, final_H
    and p_correct. ``confidence_correct``/``_wrong``/``_gap`` pool every step of the agent.

    Under FrameRef's conventions mean_IH divides by T - 1, true and false claims are the
    counts of a run (summed over its trajectories) averaged over runs, and the confidences
    are each run's mean averaged over runs."""
    data = _with_correct(frame)
    traj = per_trajectory(data, conventions=conventions)
    rows = []
    for agent, group in traj.groupby("agent", observed=True, sort=False):
        row = {"agent": agent, "runs": group["run"].nunique(), "trajectories": len(group)}
        for metric in ("mean_IH", "final_H", "p_correct", "true_claims", "false_claims"):
            if conventions == "frameref" and metric in ("true_claims", "false_claims"):
                per_run = group.groupby("run")[metric].sum()
            else:
                per_run = group.groupby("run")[metric].mean()
            row[metric] = float(per_run.mean())
            if metric in ("mean_IH", "final_H", "p_correct"):
                values = group[metric].to_numpy(dtype=np.float64)
                low, high = _interval(values.mean(), values.std(ddof=1) if len(values) > 1 else np.nan,
                                      len(values), level)
                row[f"{metric}_low"], row[f"{metric}_high"] = float(low), float(high)
        steps = data[data["agent"] == agent]
        correct = steps["correct"].astype(bool)
        conf = steps["confidence"].astype(np.float64)
        if conventions == "frameref":
            by_run = pd.DataFrame({
                "run": steps["run"] if "run" in steps else 0, "correct": correct, "conf": conf,
            }).groupby(["run", "correct"])["conf"].mean().unstack()
            for key, flag in (("confidence_correct", True), ("confidence_wrong", False)):
                row[key] = float(by_run[flag].mean()) if flag in by_run.columns else np.nan
        else:
            row["confidence_correct"] = float(conf[correct].mean()) if correct.any() else np.nan
            row["confidence_wrong"] = float(conf[~correct].mean()) if (~correct).any() else np.nan
        row["confidence_gap"] = row["confidence_correct"] - row["confidence_wrong"]
        rows.append(row)
    columns = ["agent", "mean_IH", "mean_IH_low", "mean_IH_high", "final_H", "final_H_low", "final_H_high",
               "p_correct", "p_correct_low", "p_correct_high", "confidence_correct", "confidence_wrong",
               "confidence_gap", "true_claims", "false_claims", "runs", "trajectories"]
    return pd.DataFrame(rows, columns=columns)


def agent_differences(frame: pd.DataFrame, *, baseline: str, metrics=("mean_IH", "final_H", "p_correct"),
                      n_bootstrap: int = 2000, seed: int = 0, level: float = 0.95,
                      conventions: str = "platform") -> pd.DataFrame:
    """Each other agent minus ``baseline``, per metric: the difference of means and a
    percentile bootstrap interval over trajectories (vectorised: one index matrix
    ``[n_bootstrap, n]`` per agent; seeded, so a seed gives the same interval).

    When the two agents ran exactly the same (run, trajectory) numbers the resampling is
    paired — the engine gives them the same random streams — otherwise independent.
    """
    traj = per_trajectory(frame, conventions=conventions)
    agents = list(dict.fromkeys(traj["agent"].astype(str)))
    if baseline not in agents:
        raise ValueError(f"baseline agent {baseline!r} is not in the results; agents: {', '.join(agents)}")
    base = traj[traj["agent"].astype(str) == baseline].set_index(["run", "trajectory"]).sort_index()
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    rows = []
    for agent in agents:
        if agent == baseline:
            continue
        other = traj[traj["agent"].astype(str) == agent].set_index(["run", "trajectory"]).sort_index()
        paired = base.index.equals(other.index)
        if paired:
            idx = rng.integers(0, len(base), size=(n_bootstrap, len(base)))
            idx_other = idx
        else:
            idx = rng.integers(0, len(base), size=(n_bootstrap, len(base)))
            idx_other = rng.integers(0, len(other), size=(n_bootstrap, len(other)))
        for metric in metrics:
            a = other[metric].to_numpy(dtype=np.float64)
            b = base[metric].to_numpy(dtype=np.float64)
            diff = float(np.nanmean(a) - np.nanmean(b))
            boot = np.nanmean(a[idx_other], axis=1) - np.nanmean(b[idx], axis=1)
            low, high = np.nanquantile(boot, [alpha, 1 - alpha])
            rows.append({"agent": agent, "baseline": baseline, "metric": metric, "difference": diff,
                         "low": float(low), "high": float(high), "paired": paired})
    return pd.DataFrame(rows, columns=["agent", "baseline", "metric", "difference", "low", "high", "paired"])


CONVENTION_NOTES = {
    "platform": "platform conventions: mean_IH = sum H_t / T; true/false claims per trajectory; "
                "confidence pooled over steps",
    "frameref": "FrameRef's notebook conventions: mean_IH = sum H_t / (T - 1); true/false claims per run; "
                "confidence averaged per run",
}


def format_summary(summary: pd.DataFrame, conventions: str | None = None) -> str:
    """A fixed-width table of :func:`per_agent` for a terminal (with a line naming the
    conventions when given)."""
    lines = [CONVENTION_NOTES[check_conventions(conventions)]] if conventions else []
    lines += [f"{'agent':<24} {'mean_IH':>9} {'95% CI':>21} {'P(correct)':>10} {'conf gap':>9} "
             f"{'true':>7} {'false':>7}"]
    # A stored summary (JSON) has None where a value is missing: a column of only None
    # (one agent that is never wrong has no confidence when wrong) prints as nan.
    numeric = [c for c in summary.columns if c != "agent"]
    summary = summary.assign(**{c: pd.to_numeric(summary[c], errors="coerce").astype(np.float64) for c in numeric})
    for row in summary.itertuples(index=False):
        ci = f"[{row.mean_IH_low:8.3f}, {row.mean_IH_high:8.3f}]"
        lines.append(f"{str(row.agent):<24} {row.mean_IH:9.3f} {ci:>21} {row.p_correct:10.3f} "
                     f"{row.confidence_gap:9.3f} {row.true_claims:7.1f} {row.false_claims:7.1f}")
    return "\n".join(lines)
