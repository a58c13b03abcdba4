"""A benchmark figure: a value, how it reads, and the target it is held to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One printed figure.

    Attributes:
        name: what was measured.
        value: the figure (a ratio or a count).
        unit: how to read it, e.g. "calls/instance" or "x faster".
        target: the bound it must meet, or None for an informative figure.
        higher_is_better: whether `target` is a floor (True) or a ceiling (False).
        detail: the raw numbers behind a ratio, for the reader.
    """

    name: str
    value: float
    unit: str
    target: float | None = None
    higher_is_better: bool = False
    detail: str = ""

    @property
    def ok(self) -> bool:
        if self.target is None:
            return True
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def __str__(self) -> str:
        bound = ""
        if self.target is not None:
            sign = ">=" if self.higher_is_better else "<="
            bound = f"  (target {sign} {self.target:g}: {'met' if self.ok else 'MISSED'})"
        detail = f"  [{self.detail}]" if self.detail else ""
        return f"{self.name}: {self.value:.2f} {self.unit}{bound}{detail}"
