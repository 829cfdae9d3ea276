"""How numbers read in every report: the study report, persona and simulation pages, and the
plain-text reports the commands print."""
from __future__ import annotations

import math

MISSING = "–"


def format_number(value, digits: int = 3) -> str:
    """`value` to `digits` decimals; an en dash where there is no number (None, NaN, inf)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    return f"{value:.{digits}f}"


def format_p_value(value, prefix: str = "") -> str:
    """A p-value as papers print it: `0.012`, `< 0.001`; with `prefix="p "`, `p = 0.012`."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return f"{prefix}= {MISSING}" if prefix else MISSING
    if value < 0.001:
        return f"{prefix}< 0.001" if prefix else "< 0.001"
    return f"{prefix}= {value:.3f}" if prefix else f"{value:.3f}"
