"""The simulation report's figures, drawn server-side (`core.figures`: object API, never pyplot).

Both figures are the ones FrameRef's paper shows for a simulation: information health per
step (the mean of H_t / t over trajectories, by agent) and cumulative information health
(the mean of H_t), each with its 95% band.
"""
from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from core.figures import new_figure

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

# A colour-blind-safe palette (Okabe and Ito), in agent order; repeats past eight agents.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

FIGURES = {
    "health": {
        "value": "mean_H_per_step", "low": "H_per_step_low", "high": "H_per_step_high",
        "ylabel": "information health  $H_t / t$",
        "title": "Information health per step",
    },
    "cumulative": {
        "value": "mean_H", "low": "H_low", "high": "H_high",
        "ylabel": "cumulative information health  $H_t$",
        "title": "Cumulative information health",
    },
}


def curve_figure(curves: pd.DataFrame, *, kind: str, agents: list[str] | None = None,
                 subtitle: str = "") -> Figure:
    """One line per agent over steps, with its 95% band.

    curves: one row per (agent, step) with `agent`, `step` and the columns FIGURES[kind]
    names (the per-step summary of simulation/results.py).
    """
    spec = FIGURES[kind]
    agents = agents or list(dict.fromkeys(curves["agent"]))
    figure = new_figure(figsize=(7.0, 4.2), layout="constrained")
    axes = figure.add_subplot()
    for index, agent in enumerate(agents):
        rows = curves[curves["agent"] == agent].sort_values("step")
        if rows.empty:
            continue
        colour = PALETTE[index % len(PALETTE)]
        axes.plot(rows["step"], rows[spec["value"]], color=colour, linewidth=1.8, label=agent)
        if spec["low"] in rows and spec["high"] in rows:
            axes.fill_between(rows["step"], rows[spec["low"]], rows[spec["high"]],
                              color=colour, alpha=0.18, linewidth=0)
    axes.axhline(0.0, color="#777777", linewidth=0.8, linestyle=":")
    axes.set_xlabel("step $t$")
    axes.set_ylabel(spec["ylabel"])
    subtitle = "\n".join(textwrap.wrap(subtitle, 90)) if subtitle else ""
    axes.set_title(spec["title"] + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
    axes.grid(True, alpha=0.3)
    axes.legend(frameon=False, fontsize=9)
    return figure

