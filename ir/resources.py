"""FPGA resource counts: the unit in which the cost models, the boards and the reports speak."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Resources", "RESOURCE_KINDS"]

RESOURCE_KINDS = ("lut", "ff", "bram36", "dsp")
"""The resource kinds a :class:`Resources` counts, in report order."""


def _capacity(capacity, kind: str) -> float:
    if isinstance(capacity, Mapping):
        return capacity[kind]
    return getattr(capacity, kind)


@dataclass(frozen=True)
class Resources:
    """Counts of FPGA resources: LUTs, flip-flops, RAMB36 tiles (halves for a RAMB18) and DSPs.

    ``Resources()`` is zero; ``a + b`` adds kind by kind and ``sum()`` works on a list.
    """

    lut: int = 0
    ff: int = 0
    bram36: float = 0
    dsp: int = 0

    def __add__(self, other: "Resources") -> "Resources":
        if not isinstance(other, Resources):
            return NotImplemented
        return Resources(
            lut=self.lut + other.lut,
            ff=self.ff + other.ff,
            bram36=self.bram36 + other.bram36,
            dsp=self.dsp + other.dsp,
        )

    def __radd__(self, other) -> "Resources":
        if other == 0:  # the start value of sum()
            return self
        return NotImplemented

    def as_dict(self) -> dict[str, float]:
        """``{"lut": ..., "ff": ..., "bram36": ..., "dsp": ...}``."""
        return {kind: getattr(self, kind) for kind in RESOURCE_KINDS}

    def exceeded(self, capacity, fraction: float = 1.0) -> tuple[str, ...]:
        """Kinds whose count is above ``fraction`` of ``capacity``.

        Parameters
        ----------
        capacity : Board, Resources or mapping
            Anything with ``lut``, ``ff``, ``bram36`` and ``dsp`` attributes (a
            :class:`lowbit.boards.Board`, a :class:`Resources`) or keys.
        fraction : float
            The share of ``capacity`` that may be used.
        """
        return tuple(
            kind
            for kind in RESOURCE_KINDS
            if getattr(self, kind) > fraction * _capacity(capacity, kind)
        )

    def fits(self, capacity, fraction: float = 1.0) -> bool:
        """Whether every kind is at most ``fraction`` of ``capacity`` (see :meth:`exceeded`)."""
        return not self.exceeded(capacity, fraction)
