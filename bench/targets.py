"""The targets a benchmark prints as MET or NOT MET (imported by the scripts here)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Target:
    name: str
    measured: float | None  # None when the run it needs was skipped
    limit: float
    comparison: str  # "<=", "<" or ">="
    unit: str  # "s", "MiB", "x" (a ratio), "/s", "ms", ...

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        if self.comparison == "<=":
            return self.measured <= self.limit
        if self.comparison == "<":
            return self.measured < self.limit
        return self.measured >= self.limit

    def verdict(self) -> str:
        """"MET by ..." or "NOT MET by ...", with the margin and its share of the target."""
        if self.met is None:
            return "skipped"
        margin = abs(self.measured - self.limit)
        word = "MET" if self.met else "NOT MET"
        return f"{word} by {number(margin, self.unit)} ({margin / self.limit:.0%} of the target)"


def number(value: float, unit: str) -> str:
    """A measured value or limit in its unit, as the reports print it."""
    if unit == "x":
        return f"{value:.3f}x"  # three places: ratio targets sit near their limits
    if unit == "MiB":
        return f"{value:,.0f} MiB"
    return f"{value:,.1f} {unit}"
