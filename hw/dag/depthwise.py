"""The depthwise engine (a vector-vector unit): per channel, a window of ``T`` taps times that
channel's own kernel, ``PE`` channels in parallel.

A depthwise convolution (``Conv`` with ``group == channels``) lowered to a dense matrix product is
block-diagonal: ``C`` rows of ``T * C`` columns, of which ``T`` per row are not structural zeros, so
a dense MVTU spends ``C`` lanes where one does the work. This engine computes only the diagonal.

The layer is the graph's :class:`~lowbit.ir.graph.DepthwiseConv` node, or a
:class:`~lowbit.ir.graph.MatMulThreshold` of ``C`` rows and ``T`` columns (:func:`depthwise_node`;
it may also give integer scores, without thresholds): row ``c`` is channel ``c``'s kernel over the
taps (``T = K * K`` in ``(ky, kx)`` order for a 2-D ``K x K`` kernel, ``T = K`` for a 1-D one),
with the node's input, weight and output types, its MAC kind (XNOR, add/subtract, ternary, shift,
multi-bit: the MVTU's lanes, :mod:`lowbit.hw.mvtu.mac`) and its per-channel thresholds.

Input: the windows of the sliding-window generator, tap-major (``(ky, kx, c)``, the SWG's order),
``PE`` channels per beat, so beat ``j = t * (C / PE) + f`` of a window holds taps ``t`` of channels
``f * PE ... f * PE + PE - 1``. Output: ``PE`` channels per beat, ``C / PE`` beats per window
(channel fold ``f`` after the beat of its last tap), the input order of the next layer.

Cost model: one input beat per cycle, ``T * C / PE`` cycles per window, exact in steady state
(:meth:`DepthwiseSpec.cycles`).

This module imports no Amaranth; :meth:`DepthwiseSpec.create` builds
:class:`~lowbit.hw.dag.depthwise_unit.DepthwiseUnit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...ir.datatypes import DataType
from ...ir.graph import DepthwiseConv, MatMulThreshold, values
from ...ir.mac import MacKind
from ...ir.resources import Resources
from ...sw_reference import multithreshold
from ..cost import mvtu_resources
from ..mvtu.spec import MVTUSpec, divisors

__all__ = ["DepthwiseSpec", "depthwise_node"]


def depthwise_node(
    name: str,
    weights: np.ndarray,
    input_dtype: DataType,
    thresholds: np.ndarray | None,
    *,
    weight_dtype: DataType | None = None,
) -> MatMulThreshold:
    """The ``(C, T)`` node of a depthwise layer from its kernels ``weights`` ``(C, K, K)``,
    ``(C, K)`` or ``(C, T)`` (stored values: bits for bipolar weights), taps flattened in
    ``(ky, kx)`` order; ``thresholds`` ``(C, k)`` or ``None`` (integer scores out)."""
    w = np.asarray(weights)
    if w.ndim not in (2, 3):
        raise ValueError(
            f"node {name!r}: depthwise weights must be (C, K, K) or (C, T), not {w.shape}"
        )
    kw: dict = {} if weight_dtype is None else {"weight_dtype": weight_dtype}
    if thresholds is not None and np.shape(thresholds)[-1] > 1:
        kw["output_dtype"] = DataType.uint((np.shape(thresholds)[-1] + 1).bit_length() - 1)
    return MatMulThreshold(name, input_dtype, w.reshape(w.shape[0], -1), thresholds, **kw)


@dataclass(frozen=True, eq=False)
class DepthwiseSpec:
    """The depthwise engine of ``node`` (``C`` rows, one per channel; ``T`` columns, the taps),
    ``pe`` channels per beat and per cycle.

    Parameters
    ----------
    node : DepthwiseConv or MatMulThreshold
        The graph's depthwise node, or the per-channel kernels as a ``(C, T)`` matrix product
        (:func:`depthwise_node`).
    pe : int
        Channels in parallel; divides ``C``.
    """

    ENGINE: ClassVar[str] = "depthwise"

    node: DepthwiseConv | MatMulThreshold
    pe: int

    def __post_init__(self):
        if not isinstance(self.node, (DepthwiseConv, MatMulThreshold)):
            raise TypeError(f"node must be a DepthwiseConv or a MatMulThreshold, not {self.node!r}")
        if not isinstance(self.pe, int) or isinstance(self.pe, bool):
            raise TypeError(f"PE must be an integer, not {self.pe!r}")
        if self.pe < 1:
            raise ValueError(f"PE must be a positive integer, not {self.pe!r}")
        if self.channels % self.pe:
            raise ValueError(
                f"PE ({self.pe}) must divide the channels C ({self.channels}) "
                f"of node {self.node.name!r}"
            )

    # -- shape ---------------------------------------------------------------------------------

    @property
    def rows(self) -> MatMulThreshold:
        """The layer as a ``(C, T)`` matrix product: one row per channel (its kernel)."""
        n = self.node
        if isinstance(n, MatMulThreshold):
            return n
        return MatMulThreshold(
            n.name, n.input_dtype, n.weights, n.thresholds, n.output_dtype, n.weight_dtype
        )

    @property
    def channels(self) -> int:
        return self.node.weights.shape[0]

    @property
    def taps(self) -> int:
        """Kernel elements per channel: ``K * K`` (2-D) or ``K`` (1-D)."""
        return self.node.weights.shape[1]

    @property
    def channel_folds(self) -> int:
        return self.channels // self.pe

    @property
    def kind(self) -> MacKind:
        return self.node.mac_kind

    @property
    def lanes(self) -> MVTUSpec:
        """The MVTU spec whose lanes (``SIMD = 1``) and weight encoding the engine reuses."""
        return MVTUSpec(self.rows, pe=self.pe, simd=1)

    in_elems = out_elems = property(lambda self: self.pe)
    in_bits = property(lambda self: self.node.input_dtype.bits)
    out_bits = property(lambda self: self.node.output_dtype.bits)
    in_size = property(lambda self: self.taps * self.channels)
    out_size = property(lambda self: self.channels)

    def weight_image(self) -> list[int]:
        """Word ``t * (C / PE) + f`` (the beat index in a window): lane ``p`` (bits
        ``[p * B, (p + 1) * B)``, ``B`` = the MVTU's ``weight_bits``) holds tap ``t`` of channel
        ``f * PE + p``."""
        lanes, w, b = self.lanes, self.rows.weights, self.lanes.weight_bits
        return [
            sum(lanes.encode_lane(w[f * self.pe + p, t : t + 1]) << (p * b) for p in range(self.pe))
            for t in range(self.taps)
            for f in range(self.channel_folds)
        ]

    # -- cost model ----------------------------------------------------------------------------

    def cycles(self) -> int:
        """Cycles per window in steady state: one input beat per cycle, ``T * C / PE``."""
        return self.taps * self.channel_folds

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        """``cycles() * vectors`` (``vectors`` windows per image: ``OH * OW``)."""
        return self.cycles() * vectors

    def resources(self) -> Resources:
        """Estimate: the MVTU model of ``PE`` lanes of one element over the ``C x T`` kernels
        (its input buffer stands for the accumulator memory). Not yet calibrated by yosys; see
        ``benchmarks/results/depthwise_synth.md`` for measurements."""
        lanes, t = self.lanes, self.node.thresholds
        return mvtu_resources(
            mw=self.taps,
            mh=self.channels,
            pe=self.pe,
            simd=1,
            in_bits=self.in_bits,
            binary_input=self.rows.binary_input,
            acc_bits=self.rows.acc_bits,
            n_thresholds=0 if t is None else t.shape[1],
            out_bits=self.out_bits,
            kind=self.kind,
            weight_bits=lanes.weight_bits,
        )

    def schedule_options(self) -> dict:
        return {}

    def folding_label(self) -> str:
        return f"depthwise PE={self.pe}"

    @classmethod
    def candidates(cls, node: DepthwiseConv | MatMulThreshold, ctx) -> list["DepthwiseSpec"]:
        """Every ``PE`` dividing the channels."""
        return [cls(node, pe) for pe in divisors(node.weights.shape[0])]

    # -- software model ------------------------------------------------------------------------

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        """Per-channel accumulators ``(..., C)`` of windows ``x`` ``(..., T * C)`` (tap-major,
        stored values); an XNOR layer's accumulator is the popcount of agreeing bits."""
        x = np.asarray(x)
        if x.shape[-1] != self.in_size:
            raise ValueError(
                f"node {self.node.name!r}: windows of {self.taps} taps x {self.channels} channels "
                f"({self.in_size} elements), not {x.shape[-1]}"
            )
        xt = np.swapaxes(x.reshape(x.shape[:-1] + (self.taps, self.channels)), -1, -2)
        rows = self.rows
        if self.kind is MacKind.XNOR:
            return (xt.astype(np.int64) == rows.weights.astype(np.int64)).sum(axis=-1)
        xv = values(xt, rows.input_dtype).astype(np.int64)
        return (xv * rows.weight_values).sum(axis=-1)

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Outputs ``(..., C)`` of windows ``x`` ``(..., T * C)``: the thresholds' codes, or the
        integer scores (``2 * popcount - T`` for XNOR) without thresholds."""
        if isinstance(self.node, DepthwiseConv):
            return self.node.reference(x)  # the graph's oracle (sw_reference)
        acc = self.accumulate(x)
        if self.node.thresholds is None:
            return 2 * acc - self.taps if self.kind is MacKind.XNOR else acc
        return multithreshold(acc, self.node.thresholds)

    def create(self):
        from .depthwise_unit import DepthwiseUnit

        return DepthwiseUnit(self)
