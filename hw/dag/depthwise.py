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

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ...ir.datatypes import DataType, index_bits
from ...ir.graph import DepthwiseConv, MatMulThreshold, values
from ...ir.mac import MacKind
from ...ir.resources import Resources
from ...sw_reference import multithreshold
from ..cost import _lane_terms, rom_resources
from ..mvtu.spec import MVTUSpec, divisors

__all__ = [
    "DepthwiseSpec",
    "depthwise_node",
    "depthwise_features",
    "depthwise_coefficients",
    "DEPTHWISE_TERMS",
]

DEPTHWISE_TERMS = {
    "lut": ("const", "mac", "acc", "thresholds", "rom_logic"),
    "ff": ("const", "lanes", "rom_regs", "counters"),
}
"""The fitted terms of the depthwise engine's cost model (:func:`depthwise_features`)."""

_COEFFICIENTS_FILE = Path(__file__).resolve().parent.parent / "depthwise_coefficients.json"
_DEFAULT_COEFFICIENTS = {
    # uncalibrated: one LUT per product / accumulator / comparator / LUTRAM bit
    "lut": {"const": 32.0, "mac": 1.0, "acc": 1.0, "thresholds": 1.0, "rom_logic": 1.0},
    "ff": {"const": 16.0, "lanes": 1.0, "rom_regs": 1.0, "counters": 1.0},
}


@functools.lru_cache(maxsize=None)
def _load_coefficients(path: str) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return _DEFAULT_COEFFICIENTS
    except ValueError as e:
        raise ValueError(f"{path}: not a JSON document ({e})") from None
    for kind, terms in DEPTHWISE_TERMS.items():
        got = doc.get(kind)
        if not isinstance(got, dict) or set(got) != set(terms) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in got.values()
        ):
            raise ValueError(
                f"{path}: field {kind!r} must map {', '.join(terms)} to numbers, not {got!r}"
            )
    return {kind: dict(doc[kind]) for kind in DEPTHWISE_TERMS}


def depthwise_coefficients() -> dict:
    """The LUT and FF coefficients of the depthwise model, fitted to yosys synthesis.

    Read once from ``hw/depthwise_coefficients.json`` (written by
    ``benchmarks/calibrate_depthwise.py``); uncalibrated defaults when the file is absent.
    """
    return _load_coefficients(str(_COEFFICIENTS_FILE))


def depthwise_features(spec: "DepthwiseSpec") -> tuple[dict, Resources]:
    """The terms of the depthwise engine's cost model: ``({"lut": ..., "ff": ...}, fixed)``.

    With ``PE`` lanes, ``CF = C / PE`` channel folds, ``T`` taps, ``A`` accumulator bits, ``N``
    thresholds per channel, ``K`` stored weight bits, ``B`` input and ``O`` output bits:

    LUTs
        ``mac = PE * (popcounts + product bits + partial-product bits)`` (one element of the
        MVTU's lane of this MAC kind, :func:`lowbit.hw.cost._lane_terms`); ``acc = PE * A`` (the
        adder and the first-tap multiplexer); ``thresholds = PE * N * A`` (comparators);
        ``rom_logic`` = the bits of the weight ROM (``T * CF`` words of ``PE * K``) and of the
        threshold ROM (``CF`` words of ``PE * N * A``) over 64, when built from LUTs.
    FFs
        ``lanes = PE * (B + O)`` (the stage-1 input register and the output register);
        ``rom_regs`` = the registered read ports of the ROMs built from LUTs: ``PE * K``, plus
        ``PE * N * A`` when the threshold ROM has at least 16 words (yosys registers the address
        of a shallower one instead, observed on the calibration grid);
        ``counters = index_bits(T * CF) + 2 * index_bits(CF)``.

    ``fixed`` holds what is counted, not fitted: the block RAM of a ROM large enough for it, and
    the accumulator memory (``CF`` words of ``PE * A``, written and read at one address): ``PE *
    A`` FFs when ``CF = 1``, else distributed RAM as yosys maps it, ``RAM32M`` (32 x 8 bits in 4
    LUTs) up to 32 words, ``RAM64X1S`` (one LUT per 64 x 1 bits) beyond.
    """
    rows, pe, cf, taps = spec.rows, spec.pe, spec.channel_folds, spec.taps
    acc = rows.acc_bits
    n_thr = 0 if rows.thresholds is None else rows.thresholds.shape[1]
    wb = spec.lanes.weight_bits
    popcounts, elem, logic = _lane_terms(
        spec.kind, in_bits=spec.in_bits, weight_bits=wb, binary_input=rows.binary_input
    )
    weights, w_logic = rom_resources(taps * cf, pe * wb)
    thresholds, t_logic = rom_resources(cf, pe * n_thr * acc)
    lut = {
        "const": 1.0,
        "mac": float(pe * (popcounts + (elem or 0) + logic)),
        "acc": float(pe * acc),
        "thresholds": float(pe * n_thr * acc),
        "rom_logic": w_logic + t_logic,
    }
    ff = {
        "const": 1.0,
        "lanes": float(pe * (spec.in_bits + spec.out_bits)),
        "rom_regs": float(
            (pe * wb if w_logic else 0) + (pe * n_thr * acc if t_logic and cf >= 16 else 0)
        ),
        "counters": float(index_bits(taps * cf) + 2 * index_bits(cf)),
    }
    width = pe * acc
    if cf == 1:
        acc_memory = Resources(ff=width)
    elif cf <= 32:
        acc_memory = Resources(lut=4 * math.ceil(width / 8))
    else:
        acc_memory = Resources(lut=width * math.ceil(cf / 64))
    return {"lut": lut, "ff": ff}, weights + thresholds + acc_memory


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
        """Estimate: the engine's own terms (:func:`depthwise_features`) times coefficients fitted
        to yosys ``synth_xilinx`` (``hw/depthwise_coefficients.json``, written by
        ``benchmarks/calibrate_depthwise.py``).

        On the 30 engines of ``benchmarks/results/depthwise_calibration.md`` (16 fitted, 8 held out,
        the 6 of ``depthwise_synth.md``) it is within 30 % of yosys' LUTs and 75 % of its FFs
        (``tests/test_depthwise_calibration.py``); held out, median 4 % LUT, worst 28 %. The FFs
        of a threshold ROM of fewer than 16 words built from LUTs are the loose part: yosys
        registers either its address or (some of) its data."""
        feats, fixed = depthwise_features(self)
        coeff = depthwise_coefficients()
        lut = sum(coeff["lut"][k] * v for k, v in feats["lut"].items())
        ff = sum(coeff["ff"][k] * v for k, v in feats["ff"].items())
        return Resources(lut=max(0, round(lut)), ff=max(0, round(ff))) + fixed

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
