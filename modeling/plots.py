"""Figures of the persona pages, comparisons, calibrations and the alpha sweep.

Drawn server-side with `core.figures` (matplotlib's object API, never pyplot); each
function returns a `Figure`, and `core.figures.figure_bytes` turns it into PNG or SVG.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.figures import figure_bytes, new_figure
from modeling.metrics import ALL, METRIC_LABELS, comparison_matrix

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def render(figure: Figure, fmt: str) -> bytes:
    """PNG (110 dpi, the persona pages' size) or SVG bytes of `figure`, cropped to what is drawn."""
    return figure_bytes(figure, fmt, dpi=110, tight=True)


PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


def moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def loss_curve_figure(curve: list[dict], *, title: str = "") -> Figure:
    """Training loss per optimizer step, with a moving average over about 5% of the steps."""
    figure = new_figure(figsize=(7, 3.6))
    axes = figure.add_subplot()
    steps = [point["step"] for point in curve]
    losses = [point["loss"] for point in curve]
    if steps:
        axes.plot(steps, losses, color="#9aa5b8", linewidth=0.8, label="per step")
        window = max(1, len(steps) // 20)
        if window > 1:
            axes.plot(steps, moving_average(losses, window), color=PALETTE[0], linewidth=1.8,
                      label=f"moving average ({window} steps)")
        axes.legend(frameon=False, fontsize=8)
    else:
        axes.text(0.5, 0.5, "no steps yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("weighted label loss")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    return figure


def sweep_figure(rows: list[dict], *, target_framing: str) -> Figure:
    """MSPR and balanced accuracy against alpha: on the target framing and on the others.

    rows: one per (alpha, framing) with `alpha`, `framing`, `mspr`, `balanced_accuracy`.
    """
    figure = new_figure(figsize=(10, 3.8))
    left, right = figure.subplots(1, 2)
    framings = sorted({row["framing"] for row in rows},
                      key=lambda framing: (framing != target_framing, framing))
    for index, framing in enumerate(framings):
        points = sorted((row for row in rows if row["framing"] == framing), key=lambda r: r["alpha"])
        alphas = [row["alpha"] for row in points]
        style = {"color": PALETTE[index % len(PALETTE)], "marker": "o",
                 "linewidth": 2.2 if framing == target_framing else 1.0,
                 "label": f"{framing} (target)" if framing == target_framing else framing}
        left.plot(alphas, [row["mspr"] for row in points], **style)
        right.plot(alphas, [row["balanced_accuracy"] for row in points], **style)
    left.set_ylabel("MSPR  (mean P(SUPPORTS) on false claims)")
    right.set_ylabel("balanced accuracy")
    for axes in (left, right):
        axes.set_xlabel("alpha  (loss weight of target-framing false claims)")
        axes.invert_xaxis()
        axes.grid(alpha=0.3)
    right.legend(frameon=False, fontsize=8, loc="best")
    figure.suptitle(f"Alpha sweep, target framing: {target_framing}", fontsize=11)
    return figure


def plot_framing_metrics(metrics: pd.DataFrame, *, title: str = "", fmt: str = "png") -> bytes:
    """Grouped bars per framing: balanced accuracy, MSPR (raw and normalised), accuracy."""
    table = metrics[metrics["framing"] != ALL]
    series = ["balanced_accuracy", "mspr", "mspr_normalised", "accuracy"]
    fig = new_figure(figsize=(7.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(table))
    width = 0.8 / len(series)
    for k, name in enumerate(series):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, table[name].to_numpy(dtype=float),
               width, label=METRIC_LABELS[name])
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(x, table["framing"], rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("value")
    ax.set_title(title or "Metrics per framing")
    ax.legend(fontsize=7, loc="lower right")
    return render(fig, fmt)


def plot_comparison(comparison: pd.DataFrame, metric: str = "mspr", *, fmt: str = "png") -> bytes:
    """One line per persona across framings for `metric`."""
    matrix = comparison_matrix(comparison[comparison["framing"] != ALL], metric)
    fig = new_figure(figsize=(7.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(matrix.shape[1])
    for persona, row in matrix.iterrows():
        ax.plot(x, row.to_numpy(dtype=float), marker="o", label=str(persona))
    ax.set_xticks(x, list(matrix.columns), rotation=20)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(f"{METRIC_LABELS.get(metric, metric)} per framing")
    ax.legend(fontsize=7)
    return render(fig, fmt)


def calibration_figure(calibration) -> Figure:
    """False acceptance per framing: the humans (with their 95% interval), the persona, and
    the persona after calibration (on held-out items). `calibration` is a `Calibration` row."""
    before = calibration.result["before"]["rates"]
    after = {row["framing"]: row for row in calibration.result["after"]["rates"]}
    framings = [row["framing"] for row in before]

    def values(rows, key):
        return np.array([np.nan if row.get(key) is None else row[key] for row in rows], dtype=float)

    human = values(before, "false_acceptance_human")
    # Rounding can put a Wilson bound a hair past a rate of 0 or 1; error bars must be >= 0.
    low = np.nan_to_num(np.clip(human - values(before, "false_acceptance_human_low"), 0, None))
    high = np.nan_to_num(np.clip(values(before, "false_acceptance_human_high") - human, 0, None))
    fig = new_figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(framings))
    ax.bar(x - 0.27, human, 0.27, yerr=np.vstack([low, high]), capsize=3, label="humans (95% CI)")
    ax.bar(x, values(before, "false_acceptance_persona"), 0.27, label="persona")
    ax.bar(x + 0.27, values([after.get(f, {}) for f in framings], "false_acceptance_persona"), 0.27,
           label=f"persona, {calibration.method} (held-out)")
    ax.set_xticks(x, framings, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("false acceptance rate")
    ax.set_title(f"{calibration.persona.name} vs {calibration.study.name}")
    ax.legend(fontsize=7)
    return fig
