"""The study report's figures, drawn server-side (`core.figures`: object API, never pyplot).

Each plot function takes an `AnalysisResult` and returns a `Figure`; `plot_bytes` turns one
into PNG or SVG bytes. SVG output is deterministic (a fixed id salt, no date), so the same
analysis gives the same file.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from annotation.analysis.options import ALL
from core.figures import figure_bytes, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from annotation.analysis.statistics import AnalysisResult

# The figure title's short word for each interval method (options.INTERVAL_METHODS).
PLOT_INTERVAL_NOTES = {
    "two-way": "two-way cluster-robust intervals (participant and base claim)",
    "participant-bootstrap": "cluster-bootstrap intervals over participants",
    "two-way-bootstrap": "pigeonhole-bootstrap intervals (participant and base claim)",
}


FRAMING_COLOUR = "#2456a6"
REFERENCE_COLOUR = "#8a94a6"
# Confidence 1 (pale) to 5 (dark), a sequential palette readable in grey scale.
LEVEL_COLOURS = ("#deebf7", "#9ecae1", "#6baed6", "#3182bd", "#08519c")


def _no_data(figure: Figure, title: str) -> Figure:
    axes = figure.add_subplot()
    axes.set_axis_off()
    axes.set_title(title)
    axes.text(0.5, 0.5, "No judgments to plot yet", ha="center", va="center", fontsize=12, color="#5b6475")
    return figure


def _rate_plot(result: AnalysisResult, statistic: str, title: str, ylabel: str) -> Figure:
    figure = new_figure(figsize=(7.0, 4.2), layout="constrained")
    rows = [row for row in result.framings if row["framing"] != ALL and row[statistic]["n"] > 0]
    if not rows:
        return _no_data(figure, title)
    axes = figure.add_subplot()
    positions = range(len(rows))
    estimates = [row[statistic]["estimate"] for row in rows]
    colours = [REFERENCE_COLOUR if row["framing"] == "original" else FRAMING_COLOUR for row in rows]
    axes.bar(positions, estimates, color=colours, width=0.65, zorder=2)
    has_intervals = all(row[statistic]["ci_low"] is not None and not math.isnan(row[statistic]["ci_low"])
                        for row in rows)
    if has_intervals:
        lower = [max(0.0, e - row[statistic]["ci_low"]) for e, row in zip(estimates, rows)]
        upper = [max(0.0, row[statistic]["ci_high"] - e) for e, row in zip(estimates, rows)]
        axes.errorbar(positions, estimates, yerr=[lower, upper], fmt="none", ecolor="#1d2330",
                      capsize=4, linewidth=1.2, zorder=3)
    for position, estimate, row in zip(positions, estimates, rows):
        axes.annotate(f"n={row[statistic]['n']}", (position, 0), xytext=(0, 3), textcoords="offset points",
                      ha="center", va="bottom", fontsize=8, color="white" if estimate > 0.08 else "#1d2330",
                      zorder=4)
    axes.axhline(0.5, color="#a32020", linestyle=":", linewidth=1, zorder=1)
    axes.set_xticks(list(positions), [row["framing"] for row in rows], rotation=20, ha="right")
    axes.set_ylim(0, 1)
    axes.set_ylabel(ylabel)
    axes.grid(axis="y", color="#d8dde6", zorder=0)
    axes.spines[["top", "right"]].set_visible(False)
    level = f"{result.options.confidence_level:.0%}"
    note = (f"{level} {PLOT_INTERVAL_NOTES[result.options.interval]}" if has_intervals
            else "no intervals (bootstrap off, or too few participants or base claims)")
    axes.set_title(f"{title}\n{note}; dotted line: 0.5", fontsize=11)
    return figure


def false_acceptance_plot(result: AnalysisResult) -> Figure:
    return _rate_plot(result, "false_acceptance_rate", "False acceptance by framing",
                      "P(Yes | false claim)")


def false_rejection_plot(result: AnalysisResult) -> Figure:
    return _rate_plot(result, "false_rejection_rate", "False rejection by framing",
                      "P(No | true claim)")


def confidence_plot(result: AnalysisResult) -> Figure:
    """Confidence answers as 100% stacked bars, one bar per framing, a panel per truth value."""
    figure = new_figure(figsize=(8.0, 4.6), layout="constrained")
    title = "Confidence by framing and truth"
    rows = result.confidence_distribution
    framings = list(dict.fromkeys(row["framing"] for row in rows))
    totals = {}
    for row in rows:
        totals[(row["framing"], row["truth"])] = totals.get((row["framing"], row["truth"]), 0) + row["n"]
    if not rows or not any(totals.values()):
        return _no_data(figure, title)
    panels = figure.subplots(1, 2, sharey=True)
    for axes, truth, label in zip(panels, ("true", "false"), ("True claims", "False claims")):
        left = [0.0] * len(framings)
        for level, colour in zip(range(1, 6), LEVEL_COLOURS):
            widths = []
            for framing in framings:
                match = next(r for r in rows if r["framing"] == framing and r["truth"] == truth
                             and r["confidence"] == level)
                widths.append(match["proportion"] or 0.0)
            axes.barh(range(len(framings)), widths, left=left, color=colour, edgecolor="white",
                      linewidth=0.5, label=str(level))
            left = [a + b for a, b in zip(left, widths)]
        axes.set_yticks(range(len(framings)),
                        [f"{f} (n={totals.get((f, truth), 0)})" for f in framings])
        axes.set_xlim(0, 1)
        axes.set_xlabel("share of answers")
        axes.set_title(label, fontsize=11)
        axes.spines[["top", "right"]].set_visible(False)
    panels[0].invert_yaxis()  # once: the panels share the y axis; original on top
    panels[1].legend(title="confidence", loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    figure.suptitle(title, fontsize=12)
    return figure


PLOTS = {
    "false_acceptance": ("False acceptance by framing", false_acceptance_plot),
    "false_rejection": ("False rejection by framing", false_rejection_plot),
    "confidence": ("Confidence by framing and truth", confidence_plot),
}


def plot_bytes(result: AnalysisResult, name: str, fmt: str) -> bytes:
    """The named plot of `result` as PNG or SVG; `KeyError` for an unknown name."""
    _, draw = PLOTS[name]
    return figure_bytes(draw(result), fmt)
