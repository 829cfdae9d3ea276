"""Figures of the persona pages and the alpha sweep, drawn with matplotlib's object API.

Never pyplot: its global figure state is not thread-safe and is not freed between web
requests; a `Figure` built here is a plain object that is drawn, saved and dropped.
"""
from __future__ import annotations

import io

from matplotlib.figure import Figure

FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


def render(figure: Figure, fmt: str) -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format '{fmt}'; accepted: {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=110 if fmt == "png" else None, bbox_inches="tight")
    return buffer.getvalue()


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
    figure = Figure(figsize=(7, 3.6))
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
    figure = Figure(figsize=(10, 3.8))
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
