"""Specs of the hardware engines: one frozen object, three faces.

``MVTUSpec(node, pe=..., simd=...)`` holds a graph node and its folding. ``reference()`` is the
software model (delegating to ``sw_reference`` through the node), ``create()`` the Amaranth
component, and ``cycles()`` / ``resources()`` its cost model, which the mapper uses.

This module imports no Amaranth at module level, so the mapper can use it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..quant.graph import MatMulThreshold

__all__ = ["MVTUSpec", "divisors"]


def divisors(n: int) -> list[int]:
    """All positive divisors of ``n`` in ascending order."""
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True, eq=False)
class MVTUSpec:
    """A matrix-vector-threshold unit: ``node`` folded onto ``pe`` rows and ``simd`` columns.

    Takes ``(MH / PE) * (MW / SIMD)`` cycles per input vector (FINN's MVAU model).
    """

    node: MatMulThreshold
    pe: int
    simd: int

    def __post_init__(self):
        for name in ("pe", "simd"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name.upper()} must be an integer, not {v!r}")
            if v < 1:
                raise ValueError(f"{name.upper()} must be a positive integer, not {v!r}")
        if self.node.mw % self.simd:
            raise ValueError(f"SIMD ({self.simd}) must divide MW ({self.node.mw}) of node {self.node.name!r}")
        if self.node.mh % self.pe:
            raise ValueError(f"PE ({self.pe}) must divide MH ({self.node.mh}) of node {self.node.name!r}")

    @property
    def mw(self) -> int:
        return self.node.mw

    @property
    def mh(self) -> int:
        return self.node.mh

    @property
    def neuron_folds(self) -> int:
        return self.mh // self.pe

    @property
    def synapse_folds(self) -> int:
        return self.mw // self.simd

    @property
    def in_bits(self) -> int:
        return self.node.input_dtype.bits

    @property
    def out_bits(self) -> int:
        return self.node.output_dtype.bits

    @property
    def acc_bits(self) -> int:
        """Width of the accumulator register, from the exact accumulator range."""
        lo, hi = self.node.acc_range
        if lo >= 0:
            return max(1, (hi + 1).bit_length())  # thresholds reach hi + 1
        return max((-lo - 1).bit_length(), (hi + 1).bit_length()) + 1

    def cycles(self) -> int:
        """Cycles per input vector in steady state."""
        return self.neuron_folds * self.synapse_folds

    def resources(self):
        """First resource estimate (formula in :mod:`lowbit.hw.cost`), a ``Resources``."""
        from .cost import mvtu_resources

        t = self.node.thresholds
        return mvtu_resources(mw=self.mw, mh=self.mh, pe=self.pe, simd=self.simd,
                              in_bits=self.in_bits, binary_input=self.node.binary_input,
                              acc_bits=self.acc_bits, n_thresholds=0 if t is None else t.shape[1],
                              out_bits=self.out_bits)

    def reference(self, x: np.ndarray) -> np.ndarray:
        return self.node.reference(x)

    def create(self):
        from .mvtu import MatrixVectorThresholdUnit
        return MatrixVectorThresholdUnit(self)
