"""The global average pool of a DAG (:class:`~lowbit.ir.graph.GlobalAvgPool`): the global
accumulate-pool (:class:`~lowbit.hw.stream.pool.AccPoolSpec`, the exact sum of each channel over
the image) followed by a threshold unit on the sums
(:class:`~lowbit.hw.stream.threshold.ThresholdNodeSpec`, the node's thresholds: any rounding of the
mean that is monotone in the sum). ``simd`` channels per beat in and out.

This module imports no Amaranth; ``create()`` builds
:class:`~lowbit.hw.dag.gap_unit.GlobalAvgPoolUnit`.

One input beat per cycle (``H * W * C / SIMD`` cycles per image); the thresholds take the
``C / SIMD`` sum beats of an image as they leave the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ir.datatypes import DataType
from ...ir.graph import GlobalAccPool, GlobalAvgPool, Threshold
from ...ir.resources import Resources
from ..stream.pool import AccPoolSpec
from ..stream.threshold import ThresholdNodeSpec

__all__ = ["GlobalAvgPoolSpec"]


@dataclass(frozen=True, eq=False)
class GlobalAvgPoolSpec:
    """The unit of ``node`` on images ``in_shape`` ``(H, W, C)`` of ``dtype``, ``simd`` channels
    per beat (``simd`` divides ``C``)."""

    node: GlobalAvgPool
    in_shape: tuple[int, int, int]
    dtype: DataType
    simd: int

    ENGINE = "-"

    def __post_init__(self):
        if not isinstance(self.node, GlobalAvgPool):
            raise TypeError(f"node must be a GlobalAvgPool, not {self.node!r}")
        self.pool  # noqa: B018 -- validates the geometry through the pool's spec
        self.threshold  # noqa: B018

    @property
    def pool(self) -> AccPoolSpec:
        """The sum over the image (exact)."""
        return AccPoolSpec(
            GlobalAccPool(self.node.name + "_sum", self.dtype),
            self.in_shape,
            self.dtype,
            self.simd,
        )

    @property
    def threshold(self) -> ThresholdNodeSpec:
        """The node's thresholds on the sums."""
        sums = self.pool.out_dtype
        t = Threshold(self.node.name, self.node.thresholds, sums, self.node.output_dtype)
        return ThresholdNodeSpec(t, (self.in_shape[-1],), sums, self.simd)

    in_elems = out_elems = property(lambda self: self.simd)
    in_bits = property(lambda self: self.pool.in_bits)
    out_bits = property(lambda self: self.threshold.out_bits)
    in_size = property(lambda self: int(np.prod(self.in_shape)))
    out_size = property(lambda self: self.in_shape[-1])

    def cycles(self) -> int:
        """``H * W * C / SIMD``: the pool's input beats (the thresholds take ``C / SIMD``)."""
        return max(self.pool.cycles(), self.threshold.cycles())

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        return self.cycles()

    def resources(self) -> Resources:
        return self.pool.resources() + self.threshold.resources()

    def schedule_options(self) -> dict:
        return {}

    def reference(self, x: np.ndarray) -> np.ndarray:
        return self.node.reference(x)

    def create(self):
        from .gap_unit import GlobalAvgPoolUnit

        return GlobalAvgPoolUnit(self)
