"""`manage.py simulate` on files a researcher brings: end to end, and bad files."""
from __future__ import annotations

from io import StringIO

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from simulation.synthetic_pool import persona_scores, synthetic_pool


@pytest.fixture
def pool_files(tmp_path):
    pool = synthetic_pool(360, dim=12, seed=4)
    table = pd.DataFrame({
        "claim_id": pool.claim_ids.astype(str),
        "base_id": pool.base_ids[pool.base].astype(str),
        "true_label": pool.true_labels.astype(str),
        "framing": pool.framing_of(np.arange(pool.size)).astype(str),
        "p_supports_baseline": persona_scores(pool, competence=1.5, seed=1),
        "p_supports_authoritative": persona_scores(pool, competence=1.5, target_framing="authoritative",
                                                   credulity=4.0, seed=1),
    })
    pool_path, emb_path = tmp_path / "pool.parquet", tmp_path / "emb.npy"
    table.to_parquet(pool_path)
    np.save(emb_path, pool.embeddings * 3.0)  # any scale: the command normalises
    return table, pool_path, emb_path


def simulate(pool_path, emb_path, out, *extra):
    stdout = StringIO()
    call_command("simulate", "--pool-file", str(pool_path), "--embeddings-file", str(emb_path), "--out", str(out),
                 "--no-progress", *extra, stdout=stdout)
    return stdout.getvalue()


def test_simulate_writes_per_step_results_and_prints_a_summary(pool_files, tmp_path):
    table, pool_path, emb_path = pool_files
    out = tmp_path / "results.parquet"
    printed = simulate(pool_path, emb_path, out, "--trajectories", "12", "--steps", "15", "--runs", "2",
                       "--seed", "5", "--baseline", "baseline")
    frame = pd.read_parquet(out)
    for column in ("agent", "trajectory", "step", "claim_id", "true_label", "accepted", "confidence", "reward", "H",
                   "run", "correct", "framing"):
        assert column in frame.columns
    assert len(frame) == 2 * 2 * 12 * 15
    assert set(frame["agent"]) == {"baseline", "authoritative"}
    truth = table.set_index("claim_id")["true_label"]
    assert (frame["true_label"].to_numpy() == truth.loc[frame["claim_id"]].to_numpy()).all()
    for _, group in frame.groupby(["agent", "run", "trajectory"]):
        group = group.sort_values("step")
        np.testing.assert_allclose(group["H"], np.cumsum(group["reward"]))
        assert group["claim_id"].str.split(":").str[0].nunique() == 15
    # The score agents are deterministic: each judgment is the table's.
    p = table.set_index("claim_id")["p_supports_baseline"].loc[frame.loc[frame.agent == "baseline", "claim_id"]]
    np.testing.assert_allclose(frame.loc[frame.agent == "baseline", "confidence"], np.maximum(p, 1 - p))
    assert "mean_IH" in printed and "baseline" in printed and "authoritative" in printed
    assert "differences from baseline" in printed
    # The credulous persona's mean_IH, as printed, is below the baseline's.
    summary = printed.split("differences from")[0]
    lines = {line.split()[0]: float(line.split()[1]) for line in summary.splitlines()
             if line.split() and line.split()[0] in ("baseline", "authoritative") and "[" in line}
    assert lines["authoritative"] < lines["baseline"]


def test_simulate_prints_frameref_conventions_on_request(pool_files, tmp_path):
    """`--conventions frameref` prints FrameRef's notebook summary of the same trajectories:
    mean_IH x T / (T - 1), claims per run (x trajectories per run); the default is the platform's."""
    _, pool_path, emb_path = pool_files

    def table(printed):
        return {line.split()[0]: [float(v) for v in line.replace("[", " ").replace("]", " ").replace(",", " ").split()[1:]]
                for line in printed.splitlines() if line.split() and line.split()[0] in ("baseline", "authoritative")}

    args = ("--trajectories", "10", "--steps", "12", "--runs", "2", "--seed", "3")
    platform = simulate(pool_path, emb_path, tmp_path / "a.parquet", *args)
    frameref = simulate(pool_path, emb_path, tmp_path / "b.parquet", *args, "--conventions", "frameref")
    assert "platform conventions" in platform and "FrameRef's notebook conventions" in frameref
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet"))
    plain, notebook = table(platform), table(frameref)
    for agent in ("baseline", "authoritative"):
        # mean_IH, low, high, P(correct), gap, true, false
        assert notebook[agent][0] == pytest.approx(plain[agent][0] * 12 / 11, abs=2e-3)
        assert notebook[agent][3] == plain[agent][3]
        assert notebook[agent][5] == pytest.approx(plain[agent][5] * 10, abs=0.6)
        assert notebook[agent][6] == pytest.approx(plain[agent][6] * 10, abs=0.6)


def test_simulate_results_do_not_depend_on_workers_or_candidate_mode(pool_files, tmp_path):
    _, pool_path, emb_path = pool_files
    args = ("--trajectories", "9", "--steps", "10", "--seed", "3", "--agents", "baseline")
    simulate(pool_path, emb_path, tmp_path / "one.parquet", *args)
    simulate(pool_path, emb_path, tmp_path / "two.parquet", *args, "--workers", "2")
    simulate(pool_path, emb_path, tmp_path / "indexed.parquet", *args, "--candidates", "indexed",
             "--n-lists", "6", "--n-probe", "6")
    one = pd.read_parquet(tmp_path / "one.parquet")
    pd.testing.assert_frame_equal(one, pd.read_parquet(tmp_path / "two.parquet"))
    pd.testing.assert_frame_equal(one, pd.read_parquet(tmp_path / "indexed.parquet"))


def test_simulate_indexed_reports_and_meets_its_target_recall(pool_files, tmp_path):
    """Indexed file mode measures its recall on contexts from the pool and grows the probes to
    the target (default 0.99); --n-probe fixes them and the recall is only reported."""
    _, pool_path, emb_path = pool_files
    args = ("--trajectories", "4", "--steps", "5", "--agents", "baseline", "--candidates", "indexed",
            "--n-lists", "30")
    import re

    printed = simulate(pool_path, emb_path, tmp_path / "a.parquet", *args)
    found = re.search(r"index: 30 lists, (\d+) probed \(target 0.99: met\); recall of the exact top-5: "
                      r"([\d.]+), among false claims only ([\d.]+), on 200 contexts", printed)
    assert found and float(found.group(2)) >= 0.99 and float(found.group(3)) >= 0.99
    printed = simulate(pool_path, emb_path, tmp_path / "b.parquet", *args, "--n-probe", "1")
    found = re.search(r"index: 30 lists, 1 probed \(fixed by --n-probe\); recall of the exact top-5: ([\d.]+)", printed)
    assert found and float(found.group(1)) < 0.99
    with pytest.raises(CommandError, match="--target-recall 1.5: accepted: a recall in"):
        simulate(pool_path, emb_path, tmp_path / "c.parquet", *args, "--target-recall", "1.5")


def test_simulate_policy_options(pool_files, tmp_path):
    _, pool_path, emb_path = pool_files
    printed = simulate(pool_path, emb_path, tmp_path / "r.parquet", "--trajectories", "4", "--steps", "5",
                       "--policy", "health-aware", "--policy-param", "false_weight=0.1", "--policy-param", "top_k=3")
    assert "health-aware" in printed and "'top_k': 3" in printed and "'false_weight': 0.1" in printed
    with pytest.raises(CommandError, match="no parameter 'k'"):
        simulate(pool_path, emb_path, tmp_path / "r.parquet", "--policy-param", "k=3")


def rewrite(table, path, **changes):
    table = table.copy()
    for column, (row, value) in changes.items():
        if row is None:
            table = table.drop(columns=[column])
        else:
            table[column] = table[column].astype(str if isinstance(value, str) else object)
            table.loc[row, column] = value
    table.to_parquet(path)


@pytest.mark.parametrize("change, message", [
    (dict(true_label=(None, None)), "missing column 'true_label'"),
    (dict(true_label=(7, "TRUE")), "row 7, column 'true_label': 'TRUE' is not a label"),
    (dict(p_supports_baseline=(3, 1.2)), "row 3, column 'p_supports_baseline': 1.2 is not a probability"),
    (dict(p_supports_baseline=(4, "high")), "row 4, column 'p_supports_baseline': 'high' is not a probability"),
    (dict(p_supports_baseline=(5, None)), "row 5, column 'p_supports_baseline'"),
    (dict(claim_id=(9, None)), "row 9, column 'claim_id': the value is empty"),
    (dict(base_id=(2, " ")), "row 2, column 'base_id': the value is blank"),
])
def test_bad_pool_file_is_named_and_nothing_is_written(pool_files, tmp_path, change, message):
    table, _, emb_path = pool_files
    bad = tmp_path / "bad.parquet"
    rewrite(table, bad, **change)
    out = tmp_path / "never.parquet"
    with pytest.raises(CommandError, match=message) as error:
        simulate(bad, emb_path, out, "--steps", "5")
    assert str(bad) in str(error.value)
    assert "Nothing was simulated" in str(error.value)
    assert not out.exists()


def test_duplicate_claims_and_mixed_truth(pool_files, tmp_path):
    table, _, emb_path = pool_files
    bad = tmp_path / "bad.parquet"
    rewrite(table, bad, claim_id=(11, table.loc[10, "claim_id"]))
    with pytest.raises(CommandError, match=r"row 11, column 'claim_id': .* already appears in row 10"):
        simulate(bad, emb_path, tmp_path / "x.parquet")
    flipped = "REFUTES" if table.loc[1, "true_label"] == "SUPPORTS" else "SUPPORTS"
    rewrite(table, bad, true_label=(1, flipped))
    with pytest.raises(CommandError, match="disagree on the true label"):
        simulate(bad, emb_path, tmp_path / "x.parquet")


def test_bad_embeddings_files(pool_files, tmp_path):
    table, pool_path, emb_path = pool_files
    emb = np.load(emb_path)
    short = tmp_path / "short.npy"
    np.save(short, emb[:-1])
    with pytest.raises(CommandError, match="359 rows of embeddings for 360 claims"):
        simulate(pool_path, short, tmp_path / "x.parquet")
    broken = emb.copy()
    broken[17, 3] = np.nan
    np.save(tmp_path / "nan.npy", broken)
    with pytest.raises(CommandError, match=rf"nan.npy: row 17 \(claim '{table.loc[17, 'claim_id']}'\) is not finite"):
        simulate(pool_path, tmp_path / "nan.npy", tmp_path / "x.parquet")
    broken[17] = 0
    np.save(tmp_path / "zero.npy", broken)
    with pytest.raises(CommandError, match="row 17 .* is all zeros"):
        simulate(pool_path, tmp_path / "zero.npy", tmp_path / "x.parquet")
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(CommandError, match="text.npy: not a readable .npy array"):
        simulate(pool_path, tmp_path / "text.npy", tmp_path / "x.parquet")
    with pytest.raises(CommandError, match="missing.npy: no such file"):
        simulate(pool_path, tmp_path / "missing.npy", tmp_path / "x.parquet")


def test_other_command_errors(pool_files, tmp_path):
    _, pool_path, emb_path = pool_files
    (tmp_path / "notparquet.parquet").write_text("claim_id\n")
    with pytest.raises(CommandError, match="not a readable Parquet file"):
        simulate(tmp_path / "notparquet.parquet", emb_path, tmp_path / "x.parquet")
    with pytest.raises(CommandError, match="only 60 base claims"):
        simulate(pool_path, emb_path, tmp_path / "x.parquet", "--steps", "61")
    with pytest.raises(CommandError, match="no column p_supports_nobody"):
        simulate(pool_path, emb_path, tmp_path / "x.parquet", "--agents", "nobody")
    with pytest.raises(CommandError, match="file mode needs --out"):
        call_command("simulate", "--pool-file", str(pool_path), "--embeddings-file", str(emb_path))
    with pytest.raises(CommandError, match="does not exist"):
        simulate(pool_path, emb_path, tmp_path / "nowhere" / "x.parquet")


def test_simulate_decision_rule_in_file_mode(pool_files, tmp_path):
    """`--decision frameref` samples every score agent's decisions (the same with 1 or 2
    workers, to the bit), so some judgments differ from argmax and the confidence stays the
    untempered probability of the chosen label; a bad rule is refused by name."""
    table, pool_path, emb_path = pool_files
    args = ("--trajectories", "20", "--steps", "12", "--seed", "3", "--agents", "baseline")
    argmax = simulate(pool_path, emb_path, tmp_path / "argmax.parquet", *args)
    printed = simulate(pool_path, emb_path, tmp_path / "one.parquet", *args, "--decision", "frameref")
    simulate(pool_path, emb_path, tmp_path / "two.parquet", *args, "--decision", "sample:0.6:0.9", "--workers", "2")
    assert "decision argmax" in argmax and "decision frameref" in printed
    one = pd.read_parquet(tmp_path / "one.parquet")
    pd.testing.assert_frame_equal(one, pd.read_parquet(tmp_path / "two.parquet"))
    p = table.set_index("claim_id")["p_supports_baseline"].loc[one["claim_id"]].to_numpy()
    np.testing.assert_allclose(one["confidence"], np.where(one["accepted"], p, 1 - p))
    assert (one["accepted"].to_numpy() != (p >= 0.5)).any()
    with pytest.raises(CommandError, match="--decision: decision 'greedy': accepted: argmax, frameref"):
        simulate(pool_path, emb_path, tmp_path / "bad.parquet", *args, "--decision", "greedy")
    assert not (tmp_path / "bad.parquet").exists()
