"""Result statistics on hand-computed tables and on engine output."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from simulation.agents import OracleAgent, parametric_agent
from simulation.engine import run_trajectories
from simulation.policies import make_policy
from simulation.results import (
    agent_differences,
    format_summary,
    per_agent,
    per_step,
    per_trajectory,
)
from simulation.synthetic_pool import synthetic_pool


def table(agent, run, trajectory, labels, accepted, confidence):
    correct = [(a and l == "SUPPORTS") or (not a and l == "REFUTES") for a, l in zip(accepted, labels)]
    reward = [c if ok else -c for c, ok in zip(confidence, correct)]
    return pd.DataFrame({"agent": agent, "run": run, "trajectory": trajectory, "step": range(1, len(labels) + 1),
                         "true_label": labels, "accepted": accepted, "confidence": confidence, "reward": reward,
                         "H": np.cumsum(reward)})


def test_per_trajectory_metrics_by_hand():
    frame = table("a", 0, 7, ["SUPPORTS", "REFUTES", "REFUTES", "SUPPORTS"], [True, True, False, False],
                  [0.9, 0.6, 0.8, 0.7])
    # rewards +0.9 -0.6 +0.8 -0.7 -> H 0.9 0.3 1.1 0.4
    row = per_trajectory(frame).iloc[0]
    assert row["mean_IH"] == pytest.approx((0.9 + 0.3 + 1.1 + 0.4) / 4)
    assert row["final_H"] == pytest.approx(0.4)
    assert row["p_correct"] == 0.5
    assert row["confidence_correct"] == pytest.approx(0.85)
    assert row["confidence_wrong"] == pytest.approx(0.65)
    assert row["confidence_gap"] == pytest.approx(0.2)
    assert (row["true_claims"], row["false_claims"]) == (2, 2)


def test_per_agent_averages_trajectories_then_runs_with_t_intervals():
    frames = []
    values = {(0, 0): 1.0, (0, 1): 2.0, (1, 0): 4.0}  # run 1 has one trajectory only
    for (run, traj), conf in values.items():
        frames.append(table("a", run, traj, ["SUPPORTS"], [True], [conf]))
    summary = per_agent(pd.concat(frames, ignore_index=True)).iloc[0]
    assert summary["mean_IH"] == pytest.approx((1.5 + 4.0) / 2)  # runs weigh equally
    pooled = np.array([1.0, 2.0, 4.0])
    half = stats.t.ppf(0.975, 2) * pooled.std(ddof=1) / np.sqrt(3)
    assert summary["mean_IH_low"] == pytest.approx(pooled.mean() - half)
    assert summary["mean_IH_high"] == pytest.approx(pooled.mean() + half)
    assert (summary["runs"], summary["trajectories"]) == (2, 3)


def test_per_step_curves_with_intervals():
    frame = pd.concat([table("a", 0, 0, ["SUPPORTS"] * 2, [True, True], [1.0, 1.0]),
                       table("a", 0, 1, ["SUPPORTS"] * 2, [True, False], [0.5, 0.5])], ignore_index=True)
    curve = per_step(frame)
    assert curve["step"].tolist() == [1, 2]
    np.testing.assert_allclose(curve["mean_H"], [0.75, 1.0])
    np.testing.assert_allclose(curve["mean_H_per_step"], [0.75, 0.5])
    half = stats.t.ppf(0.975, 1) * np.std([1.0, 0.5], ddof=1) / np.sqrt(2)
    assert curve["H_low"].iloc[0] == pytest.approx(0.75 - half)


def frameref_table():
    """Two runs: run 0 has two trajectories of 4 steps, run 1 one trajectory."""
    labels = ["SUPPORTS", "REFUTES", "REFUTES", "SUPPORTS"]
    return pd.concat([
        table("a", 0, 0, labels, [True, True, False, False], [0.9, 0.6, 0.8, 0.7]),  # H .9 .3 1.1 .4
        table("a", 0, 1, labels, [True, False, False, True], [0.5, 0.5, 0.5, 0.5]),  # H .5 1 1.5 2
        table("a", 1, 0, ["REFUTES"] * 4, [True] * 4, [1.0] * 4),                   # H -1 -2 -3 -4
    ], ignore_index=True)


def test_frameref_conventions_by_hand():
    """Guards each of FrameRef's notebook conventions (mean_IH over T - 1, H_t / (t - 1) with
    the first step dropped, claims counted per run, confidence averaged per run) against
    the platform's, on numbers worked out by hand."""
    frame = frameref_table()
    sums = [0.9 + 0.3 + 1.1 + 0.4, 0.5 + 1 + 1.5 + 2, -10.0]
    platform = per_agent(frame).iloc[0]
    frameref = per_agent(frame, conventions="frameref").iloc[0]
    assert platform["mean_IH"] == pytest.approx(((sums[0] + sums[1]) / 8 + sums[2] / 4) / 2)
    assert frameref["mean_IH"] == pytest.approx(((sums[0] + sums[1]) / 6 + sums[2] / 3) / 2)
    assert frameref["mean_IH_low"] == pytest.approx(platform["mean_IH_low"] * 4 / 3)
    assert frameref["final_H"] == platform["final_H"] and frameref["p_correct"] == platform["p_correct"]
    # True claims: run 0 met 2 + 2 (per trajectory 2), run 1 met 0; false: 4 and 4.
    assert (platform["true_claims"], platform["false_claims"]) == (pytest.approx(1.0), pytest.approx(3.0))
    assert (frameref["true_claims"], frameref["false_claims"]) == (pytest.approx(2.0), pytest.approx(4.0))
    # Confidence when correct: run 0's correct steps .9 .8 .5 .5 .5 .5 (mean 3.7 / 6), run 1
    # none; when wrong: run 0 .6 .7 (mean .65), run 1 1.0 x 4. Pooled: wrong = (1.3 + 4) / 6.
    assert platform["confidence_correct"] == pytest.approx(3.7 / 6)
    assert frameref["confidence_correct"] == pytest.approx(3.7 / 6)
    assert platform["confidence_wrong"] == pytest.approx(5.3 / 6)
    assert frameref["confidence_wrong"] == pytest.approx((0.65 + 1.0) / 2)
    assert frameref["confidence_gap"] == pytest.approx(3.7 / 6 - 0.825)
    # The curve: H_t / (t - 1), nothing at the first step.
    curve = per_step(frame, conventions="frameref")
    plain = per_step(frame)
    assert np.isnan(curve["mean_H_per_step"].iloc[0]) and curve["mean_H"].iloc[0] == plain["mean_H"].iloc[0]
    mean_h = plain["mean_H"].to_numpy()
    np.testing.assert_allclose(curve["mean_H_per_step"].iloc[1:], mean_h[1:] / np.arange(1, 4))
    np.testing.assert_allclose(plain["mean_H_per_step"], mean_h / np.arange(1, 5))
    # The differences use the same mean_IH.
    both = pd.concat([frame, frame.assign(agent="b", H=frame["H"] + 3.0)], ignore_index=True)
    diff = agent_differences(both, baseline="a", metrics=("mean_IH",), conventions="frameref")
    assert diff["difference"].iloc[0] == pytest.approx(3.0 * 4 / 3)
    assert "T - 1" in format_summary(per_agent(frame, conventions="frameref"), "frameref")
    with pytest.raises(ValueError, match="conventions: value 'notebook': accepted: platform, frameref"):
        per_agent(frame, conventions="notebook")


def test_oracle_beats_a_coin_and_the_bootstrap_interval_is_seeded():
    pool = synthetic_pool(600, dim=8, seed=2)
    policy = make_policy("frameref")
    coin = parametric_agent("coin", true_acceptance=0.5, false_acceptance=0.5, confidence=0.75)
    frames = [run_trajectories(pool, agent, policy, trajectory_ids=range(40), steps=20, seed=3).to_frame(pool)
              for agent in (OracleAgent(), coin)]
    frame = pd.concat(frames, ignore_index=True)
    diffs = agent_differences(frame, baseline="oracle", n_bootstrap=500, seed=1)
    row = diffs[diffs["metric"] == "mean_IH"].iloc[0]
    assert row["paired"]
    assert row["high"] < 0  # oracle mean_IH is 10.5 over 20 steps
    assert abs(10.5 + row["difference"]) < 2  # a coin gains nothing on average
    assert row["low"] <= row["difference"] <= row["high"]
    again = agent_differences(frame, baseline="oracle", n_bootstrap=500, seed=1)
    pd.testing.assert_frame_equal(diffs, again)
    summary = per_agent(frame)
    assert summary.set_index("agent").loc["oracle", "mean_IH"] == pytest.approx(10.5)
    assert "coin" in format_summary(summary)
    with pytest.raises(ValueError, match="baseline agent 'nobody'"):
        agent_differences(frame, baseline="nobody")


def test_bootstrap_interval_covers_a_known_difference():
    # Two agents with normal mean_IH 0 and 1: the 95% interval must cover 1 in most seeds.
    rng = np.random.default_rng(0)
    covered = 0
    for seed in range(20):
        a = rng.normal(0.0, 1.0, 60)
        b = rng.normal(1.0, 1.0, 60)
        frame = pd.DataFrame({"agent": ["a"] * 60 + ["b"] * 60, "run": 0, "trajectory": np.arange(120),
                              "step": 1, "true_label": "SUPPORTS", "accepted": True, "confidence": 1.0,
                              "reward": 1.0, "H": np.concatenate([a, b])})
        row = agent_differences(frame, baseline="a", metrics=("mean_IH",), n_bootstrap=300, seed=seed).iloc[0]
        assert not row["paired"]
        covered += row["low"] <= 1.0 <= row["high"]
    assert covered >= 16
