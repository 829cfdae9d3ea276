"""Figures drawn server-side: one way to start a figure and one way to turn it into bytes.

matplotlib's object API only, never pyplot: pyplot keeps global figure state that is neither
thread-safe nor freed between requests, while a `Figure` made here is a plain object a web
thread draws, saves and drops. matplotlib is imported on the first figure, not with this
module, so pages that draw nothing never load it.
"""
from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURE_FORMATS = {"png": "image/png", "svg": "image/svg+xml"}


def new_figure(**kwargs) -> Figure:
    """A fresh `matplotlib.figure.Figure(**kwargs)`."""
    import matplotlib
    from matplotlib.figure import Figure

    # SVG element ids come from a random salt unless one is set: a fixed salt keeps SVGs
    # identical across redraws. Set once for the process, never per figure with rc_context,
    # which swaps global settings that the threads of one web worker would race on.
    if matplotlib.rcParams["svg.hashsalt"] is None:
        matplotlib.rcParams["svg.hashsalt"] = "framelab"
    return Figure(**kwargs)


def figure_bytes(figure: Figure, fmt: str, *, dpi: int = 150, tight: bool = False) -> bytes:
    """PNG (at `dpi`) or SVG bytes of `figure`; SVGs carry no date, so redraws are identical.

    `tight` crops the canvas to what is drawn (bbox_inches="tight").
    """
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"unknown figure format '{fmt}'; accepted: {', '.join(FIGURE_FORMATS)}")
    buffer = io.BytesIO()
    options = {"bbox_inches": "tight"} if tight else {}
    if fmt == "svg":
        figure.savefig(buffer, format="svg", metadata={"Date": None}, **options)
    else:
        figure.savefig(buffer, format="png", dpi=dpi, **options)
    return buffer.getvalue()
