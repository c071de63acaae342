"""Specs of the hardware engines: one frozen object, three faces.

``MVTUSpec(node, pe=..., simd=...)`` holds a graph node and its folding. ``reference()`` is the
software model (delegating to ``sw_reference`` through the node), ``create()`` the Amaranth
component, and ``cycles()`` / ``resources()`` its cost model, which the mapper uses.

The MAC array is the node's :class:`~lowbit.ir.mac.MacKind` (:attr:`MVTUSpec.kind`):

``XNOR``
    bipolar inputs x bipolar weights: XNOR-popcount (``ARITHMETIC.md`` 1);
``ADDSUB``
    integer inputs x bipolar weights: add or subtract each input;
``TERNARY``
    ternary weights as two bit-planes ``nz`` / ``pos`` (``ARITHMETIC.md`` 3): add / subtract / skip
    for integer inputs, ``2 * popcount(nz & XNOR(x, pos)) - popcount(nz)`` for bipolar inputs;
``SHIFT``
    power-of-two weights as a sign bit and an exponent code (``0`` = zero weight): the product is
    ``+-(x << e)``, exact (``ARITHMETIC.md`` 4);
``MULTIBIT``
    ``INTk`` weights x ``UINTm`` / ``INTm`` / bipolar inputs: a product per lane.

``mac="serial"`` (any kind but ``XNOR``) computes the same dot products bit-serially from
bit-plane popcounts (``ARITHMETIC.md`` 5): weights are stored in two's complement, and for each
pair of an input plane and a weight plane one cycle adds ``coef * popcount(AND(x_plane,
w_plane))``; an unsigned or signed ``m``-bit input has ``m`` planes (the top one of a signed type
with coefficient ``-2^(m-1)``), a bipolar input ``x = 2b - 1`` two (the bits with ``2``, a
constant all-ones plane with ``-1``), likewise a bipolar weight. Steady state is
``NF * SF * P_x * P_w`` cycles per vector.

``pipeline`` (0 to :data:`MAX_PIPELINE`) adds register stages to the compute path, each one cycle
of latency and no throughput: 1 registers every lane's compressor / adder tree output before the
accumulator, 2 also registers the accumulator before the threshold comparison (the thresholds are
read one stage later, so no threshold register is added), 3 also puts a register stage inside each
lane's tree at half its depth: a compressor tree's column bits (the XNOR kind, ternary weights on
bipolar inputs; :func:`lowbit.hw.fmax.popcount_cut`) or an adder tree's partial sums (the other
kinds, with the popcount of their negations' ``+ 1`` bits and the ADDSUB kind's shared ``sum(x)``;
:func:`lowbit.hw.fmax.adder_tree_cut`); 4 also registers the weight word and the input word read
from the memories before the trees (a block RAM's clock-to-out then has a path to itself); 5 and 6
hold two and three register stages inside each lane's tree instead of one, spread over its
depth (:func:`lowbit.hw.fmax.popcount_cuts`, :func:`lowbit.hw.fmax.adder_tree_cuts`; every path
through a lane, its shared ``sum(x)`` and negation popcount included, crosses as many). 3 to 6
are for ``mac="parallel"`` only; the bit-serial MAC takes at most 2
(:attr:`MVTUSpec.max_pipeline`). 0 is the unpipelined design,
whose critical path runs from the weight memory through the tree, the accumulator's adder and the
threshold comparators into the output register.

``weight_ram`` places the weight memory: ``"auto"`` (synthesis decides), ``"block"`` or
``"distributed"`` (a ``ram_style`` / ``rom_style`` attribute that yosys ``synth_xilinx`` and Vivado
honour). ``weights_writable=True`` adds a write port (``w``) to the weight memory, driven over
AXI4-Lite by :class:`lowbit.hw.axi.axil.AXI4LiteWeightWriter`.

This module imports no Amaranth at module level, so the mapper can use it cheaply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ...ir.datatypes import Kind, signed_bits
from ...ir.graph import MatMulThreshold
from ...ir.mac import MacKind
from ...ir.resources import Resources
from ..cost import mvtu_resources
from ..fmax import LogicPath, adder_lane, adder_tree_cuts, mvtu_paths, popcount_cuts, tree_stages

__all__ = [
    "MVTUSpec",
    "NodeShape",
    "streams_weights",
    "divisors",
    "MAC_MODES",
    "WEIGHT_RAMS",
    "MAC_KINDS",
    "MAX_PIPELINE",
    "check_pipeline",
]

MAC_MODES = ("parallel", "serial")
"""``mac=``: one product per lane and cycle, or bit-serial bit-plane popcounts."""
WEIGHT_RAMS = ("auto", "block", "distributed", "external")
"""``weight_ram=``: where synthesis puts the weight memory; ``"external"``: no weight memory, the
weights arrive on a stream (``ws``) from off-chip memory, one word per compute cycle."""
MAX_PIPELINE = 6
"""The deepest ``pipeline=`` of an MVTU: tree register, accumulator register, a register inside
the lane's tree, the memory read registers, then a second and a third register stage inside the
tree (3 to 6 for ``mac="parallel"`` only, :attr:`MVTUSpec.max_pipeline`)."""
MAC_KINDS = tuple(MacKind)
"""The MAC arrays, :class:`~lowbit.ir.mac.MacKind` (members equal their value strings)."""


def streams_weights(spec) -> bool:
    """Whether ``spec`` (any unit spec) reads its weights from a DDR stream
    (``weight_ram="external"``)."""
    return isinstance(spec, MVTUSpec) and spec.weight_ram == "external"


def check_pipeline(value, maximum: int, what: str) -> None:
    """Refuse a ``pipeline`` depth that is not an integer in ``[0, maximum]`` (``what`` names the
    unit in the message)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what}: pipeline must be an integer, not {value!r}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{what}: pipeline must be in [0, {maximum}], not {value!r}")


def divisors(n: int) -> list[int]:
    """All positive divisors of ``n`` in ascending order."""
    return [d for d in range(1, n + 1) if n % d == 0]


def _bit_planes(dtype) -> tuple[tuple[int | None, int], ...]:
    """``(bit, coefficient)`` of each bit-plane of stored values of ``dtype``; bit ``None`` is all
    ones.

    The value of an element is ``sum(coef * plane)``: two's complement for signed types, ``2b - 1``
    for a bipolar bit ``b``.
    """
    if dtype.kind is Kind.BIPOLAR:
        return ((0, 2), (None, -1))
    bits = _twos_complement_bits(dtype)
    signed = dtype.kind is not Kind.UINT
    return tuple((k, -(1 << k) if signed and k == bits - 1 else 1 << k) for k in range(bits))


def _twos_complement_bits(dtype) -> int:
    """Bits of the two's complement (or unsigned) storage of a non-bipolar type."""
    if dtype.kind is Kind.UINT:
        return dtype.bits
    return signed_bits(dtype.min, dtype.max)


class NodeShape:
    """``mw``, ``mh``, ``in_bits`` and ``out_bits`` of a spec's matrix-product ``node`` (shared by
    the MVTU and the sparse layer)."""

    if TYPE_CHECKING:
        # provided by each subclass, as a dataclass field or a property

        @property
        def node(self) -> MatMulThreshold: ...

        @property
        def pe(self) -> int: ...

        @property
        def simd(self) -> int: ...

    @property
    def mw(self) -> int:
        return self.node.mw

    @property
    def mh(self) -> int:
        return self.node.mh

    @property
    def in_bits(self) -> int:
        return self.node.input_dtype.bits

    @property
    def out_bits(self) -> int:
        return self.node.output_dtype.bits

    @property
    def in_elems(self) -> int:
        """Input elements per beat: ``SIMD``."""
        return self.simd

    @property
    def out_elems(self) -> int:
        """Output elements per beat: ``PE``."""
        return self.pe

    @property
    def in_size(self) -> int:
        return self.node.mw

    @property
    def out_size(self) -> int:
        return self.node.mh


@dataclass(frozen=True, eq=False)
class MVTUSpec(NodeShape):
    """A matrix-vector-threshold unit: ``node`` folded onto ``pe`` rows and ``simd`` columns.

    Takes ``(MH / PE) * (MW / SIMD)`` cycles per input vector (FINN's MVAU model), times the number
    of bit-plane pairs with ``mac="serial"``.

    Parameters
    ----------
    node : MatMulThreshold
        The layer.
    pe, simd : int
        Rows and columns processed in parallel; ``pe`` divides ``MH``, ``simd`` divides ``MW``.
    mac : {"parallel", "serial"}
        Bit-parallel products or bit-serial bit-plane popcounts (not for the XNOR kind).
    weight_ram : {"auto", "block", "distributed", "external"}
        Placement of the weight memory; ``"external"`` streams the weights in from DDR (port
        ``ws``: word ``nf * SF + sf`` of :meth:`weight_image`, the whole image once per vector).
    weights_writable : bool
        Add a write port to the weight memory (run-time weights over AXI4-Lite).
    pipeline : int
        Register stages in the compute path (module docstring), 0 to :attr:`max_pipeline`; each
        adds one cycle of :meth:`latency`, none of :meth:`cycles`.
    """

    ENGINE: ClassVar[str] = "mvtu"

    node: MatMulThreshold
    pe: int
    simd: int
    mac: str = "parallel"
    weight_ram: str = "auto"
    weights_writable: bool = False
    pipeline: int = 0

    def __post_init__(self):
        if not isinstance(self.node, MatMulThreshold):
            raise TypeError(f"node must be a MatMulThreshold, not {self.node!r}")
        for name in ("pe", "simd"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name.upper()} must be an integer, not {v!r}")
            if v < 1:
                raise ValueError(f"{name.upper()} must be a positive integer, not {v!r}")
        if self.node.mw % self.simd:
            raise ValueError(
                f"SIMD ({self.simd}) must divide MW ({self.node.mw}) of node {self.node.name!r}"
            )
        if self.node.mh % self.pe:
            raise ValueError(
                f"PE ({self.pe}) must divide MH ({self.node.mh}) of node {self.node.name!r}"
            )
        if self.mac not in MAC_MODES:
            raise ValueError(
                f"mac must be one of {', '.join(map(repr, MAC_MODES))}, not {self.mac!r}"
            )
        if self.weight_ram not in WEIGHT_RAMS:
            raise ValueError(
                f"weight_ram must be one of {', '.join(map(repr, WEIGHT_RAMS))}, "
                f"not {self.weight_ram!r}"
            )
        if not isinstance(self.weights_writable, bool):
            raise TypeError(f"weights_writable must be a bool, not {self.weights_writable!r}")
        if self.weight_ram == "external" and (self.mac != "parallel" or self.weights_writable):
            raise ValueError(
                f"node {self.node.name!r}: weight_ram='external' streams the weights in; it takes "
                "mac='parallel' and no weight write port"
            )
        check_pipeline(self.pipeline, MAX_PIPELINE, f"node {self.node.name!r}")
        if self.pipeline > self.max_pipeline:
            raise ValueError(
                f"node {self.node.name!r}: pipeline {self.pipeline} (a register inside each "
                "lane's tree) needs mac='parallel'; this bit-serial "
                f"{self.kind.value} unit takes at most {self.max_pipeline}, not {self.pipeline}"
            )
        if self.mac == "serial" and self.kind is MacKind.XNOR:
            raise ValueError(
                f"node {self.node.name!r}: mac='serial' needs a non-bipolar input or weight type; "
                "a bipolar x bipolar layer is already one popcount per lane"
            )

    @property
    def popcount_lanes(self) -> bool:
        """Whether each lane is a compressor-tree popcount (the XNOR kind, or parallel ternary
        weights on bipolar inputs); ``pipeline=3`` splits it at :func:`popcount_cut`, the other
        parallel lanes' adder trees at :func:`lowbit.hw.fmax.adder_tree_cut` (5 and 6 at more
        cuts: :func:`lowbit.hw.fmax.popcount_cuts`, :func:`lowbit.hw.fmax.adder_tree_cuts`)."""
        if self.serial:
            return False
        return self.kind is MacKind.XNOR or (
            self.kind is MacKind.TERNARY and self.node.binary_input
        )

    @property
    def max_pipeline(self) -> int:
        """The deepest ``pipeline=`` this unit takes: :data:`MAX_PIPELINE` with parallel lanes
        (popcount or adder trees), 2 for the bit-serial MAC."""
        return 2 if self.serial else MAX_PIPELINE

    @property
    def neuron_folds(self) -> int:
        return self.mh // self.pe

    @property
    def synapse_folds(self) -> int:
        return self.mw // self.simd

    @property
    def kind(self) -> MacKind:
        """The MAC array: the node's :attr:`~lowbit.ir.graph.MatMulThreshold.mac_kind` (a ``str``
        enumeration, so ``spec.kind == "xnor"`` holds for the XNOR kind)."""
        return self.node.mac_kind

    @property
    def serial(self) -> bool:
        return self.mac == "serial"

    # -- weight storage ------------------------------------------------------------------------

    @property
    def weight_bits(self) -> int:
        """Stored bits per weight: 1 (bipolar), 2 (ternary ``nz``, ``pos``), ``b`` (a ``POW2_b``
        code: exponent code in the low ``b - 1`` bits, ``0`` for a zero weight, ``j + 1`` for
        ``+-2^j``; sign on top), ``k`` (``INTk``); in serial mode two's complement of the weight
        values."""
        wd = self.node.weight_dtype
        if wd.kind is Kind.BIPOLAR:
            return 1
        if self.serial:
            return _twos_complement_bits(wd)
        return wd.bits

    def input_planes(self) -> tuple[tuple[int | None, int], ...]:
        """Serial mode: ``(bit, coefficient)`` of each input bit-plane (``None``: all ones)."""
        return _bit_planes(self.node.input_dtype)

    def weight_planes(self) -> tuple[tuple[int | None, int], ...]:
        """Serial mode: ``(bit, coefficient)`` of each stored weight bit-plane."""
        return _bit_planes(self.node.weight_dtype)

    @property
    def plane_pairs(self) -> int:
        """Cycles per weight word: 1 in parallel mode, ``P_x * P_w`` in serial mode."""
        if not self.serial:
            return 1
        return len(self.input_planes()) * len(self.weight_planes())

    def encode_lane(self, w: np.ndarray) -> int:
        """The stored bits of one lane's ``SIMD`` weights (stored values, as in the node).

        Element ``i`` occupies bits ``[i * B, (i + 1) * B)`` with ``B = weight_bits``, except for
        parallel ternary weights, stored as two planes: ``nz`` in bits ``[0, SIMD)``, ``pos`` in
        ``[SIMD, 2 SIMD)``.
        """
        vals = [int(v) for v in w]
        wd, b = self.node.weight_dtype, self.weight_bits
        if wd.kind is Kind.TERNARY and not self.serial:
            nz = sum((v != 0) << i for i, v in enumerate(vals))
            pos = sum((v > 0) << i for i, v in enumerate(vals))
            return nz | (pos << len(vals))
        if wd.kind is Kind.POW2 and not self.serial:
            codes = [0 if v == 0 else (abs(v).bit_length()) | ((v < 0) << (b - 1)) for v in vals]
        else:
            codes = [v & ((1 << b) - 1) for v in vals]
        return sum(c << (i * b) for i, c in enumerate(codes))

    @property
    def weight_word_bits(self) -> int:
        return self.pe * self.simd * self.weight_bits

    def weight_image(self, weights: np.ndarray | None = None) -> list[int]:
        """Word ``nf * SF + sf`` holds, for lane ``p`` (bits ``[p * SIMD * B, ...)``), row
        ``nf*PE+p``, columns ``sf*SIMD ..``; ``weights`` (stored values, ``(MH, MW)``) defaults to
        the node's."""
        w = self.node.weights if weights is None else np.asarray(weights)
        lane = self.simd * self.weight_bits
        words = []
        for nf in range(self.neuron_folds):
            for sf in range(self.synapse_folds):
                words.append(
                    sum(
                        self.encode_lane(w[nf * self.pe + p, sf * self.simd : (sf + 1) * self.simd])
                        << (p * lane)
                        for p in range(self.pe)
                    )
                )
        return words

    # -- accumulator ---------------------------------------------------------------------------

    @property
    def acc_signed(self) -> bool:
        return self.serial or self.node.acc_range[0] < 0

    @property
    def acc_bits(self) -> int:
        """Width of the accumulator register and the thresholds.

        Parallel: from the exact accumulator range ``node.acc_range`` (thresholds reach ``hi + 1``),
        which also bounds every partial sum over synapse folds (each product range holds 0). Serial:
        partial sums over bit-planes leave that range, so the bound is
        ``MW * sum|coef_x| * sum|coef_w|``.
        """
        if not self.serial:
            return self.node.acc_bits
        lo, hi = self.node.acc_range
        x_coef = sum(abs(c) for _, c in self.input_planes())
        bound = self.mw * x_coef * sum(abs(c) for _, c in self.weight_planes())
        return signed_bits(min(lo, -bound), max(hi, bound) + 1)

    # -- cost model ----------------------------------------------------------------------------

    @property
    def weight_stream_bits(self) -> int:
        """Weight bits the unit reads per vector (streamed from DDR when
        ``weight_ram="external"``)."""
        return self.neuron_folds * self.synapse_folds * self.weight_word_bits

    def cycles(self) -> int:
        """Cycles per input vector in steady state: ``NF * SF`` (times ``P_x * P_w`` when
        serial)."""
        return self.neuron_folds * self.synapse_folds * self.plane_pairs

    def latency(self) -> int:
        """Cycles from the handshake of a vector's last input beat to the handshake of its first
        output beat, in an idle unit whose output is ready: the bank hand-over, ``SF * P`` issues,
        the memory read and the output register, plus one per :attr:`pipeline` stage."""
        return self.synapse_folds * self.plane_pairs + 2 + self.pipeline

    def logic_paths(self, family: str | None = None) -> tuple[LogicPath, ...]:
        """The unit's register-to-register paths at its pipeline depth, with their logic depth
        (:func:`lowbit.hw.fmax.mvtu_paths`; ``family`` decides where the weights go), which the
        Fmax model prices."""
        return mvtu_paths(self, family)

    def resources(self):
        """Resource estimate (model in :mod:`lowbit.hw.cost`), a ``Resources``; a pipeline adds
        the tree registers (``PE`` x the accumulator width), a few control bits, at 3 the column
        bits at each popcount's cut (:func:`lowbit.hw.fmax.popcount_cuts`) or the partial sums at
        each adder tree's (:func:`lowbit.hw.fmax.adder_tree_cuts`), at 4 the memory read words, at
        5 and 6 the bits at the second and third cuts (and control bits per stage)."""

        t = self.node.thresholds
        base = mvtu_resources(
            mw=self.mw,
            mh=self.mh,
            pe=self.pe,
            simd=self.simd,
            in_bits=self.in_bits,
            binary_input=self.node.binary_input,
            acc_bits=self.acc_bits,
            n_thresholds=0 if t is None else t.shape[1],
            out_bits=self.out_bits,
            kind=self.kind,
            weight_bits=self.weight_bits,
            mac=self.mac,
            weight_ram=self.weight_ram,
            plane_pairs=self.plane_pairs,
        )
        if not self.pipeline:
            return base
        extra = (self.pe * self.acc_bits + 4) + (4 if self.pipeline > 1 else 0)
        if self.pipeline > 2:
            extra += self._cut_bits() + 4 * tree_stages(self.pipeline)
        if self.pipeline > 3:
            extra += self.weight_word_bits + self.simd * self.in_bits + 4
        return base + Resources(ff=extra)

    def _cut_bits(self) -> int:
        """Bits of the registers inside the unit's trees at its ``pipeline`` (3 and deeper: every
        stage of :func:`lowbit.hw.fmax.tree_stages`; the model of :meth:`resources`)."""
        stages = tree_stages(self.pipeline)

        def pc(n: int, fanin: int) -> int:
            return sum(bits for _, bits in popcount_cuts(n, fanin, stages))

        def at(terms: int, width: int) -> int:
            return sum(bits for _, bits in adder_tree_cuts(terms, width, stages))

        if self.popcount_lanes:
            fanins = (2,) if self.kind is MacKind.XNOR else (3, 1)
            return self.pe * sum(pc(self.simd, f) for f in fanins)
        lane = at(*adder_lane(self))
        if self.kind is MacKind.ADDSUB:  # the shared sum(x) of the inputs
            return self.pe * lane + at(self.simd, self.in_bits)
        # the popcount of the negations' + 1 bits beside the tree
        return self.pe * (lane + pc(self.simd, 1))

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        """``cycles() * vectors``; with the weights streamed from DDR (``weight_ram="external"``) at
        least the cycles to stream them once per vector at ``ddr_bits`` bits per cycle."""
        cycles = self.cycles() * vectors
        if streams_weights(self):
            if ddr_bits is None:
                raise ValueError(
                    f"layer {self.node.name!r} streams its weights from DDR, but the board has "
                    "no DDR bandwidth figure or no spare AXI-HP port"
                )
            cycles = max(cycles, self.weight_stream_cycles(vectors, ddr_bits))
        return cycles

    def weight_stream_cycles(self, vectors: int, ddr_bits: int) -> int:
        """Cycles per image to stream the weights (once per vector) at ``ddr_bits`` per cycle."""
        return math.ceil(self.weight_stream_bits * vectors / ddr_bits)

    def schedule_options(self) -> dict:
        """The :class:`~lowbit.mapping.schedule.LayerFolding` options beyond PE and SIMD."""
        out: dict = {"weights": "ddr"} if streams_weights(self) else {}
        if self.pipeline:
            out["pipeline"] = self.pipeline
        return out

    def folding_label(self) -> str:
        return f"MVTU PE={self.pe}, SIMD={self.simd}"

    @classmethod
    def candidates(cls, node: MatMulThreshold, ctx) -> list["MVTUSpec"]:
        """Every folding the search tries (a :class:`~lowbit.hw.unit.SearchContext`): ``PE``
        dividing ``MH``, ``SIMD`` dividing ``ctx.columns``; with ``ctx.ddr_bits``, the same again
        with the weights streamed from DDR."""
        specs = [
            cls(node, pe=pe, simd=simd)
            for pe in divisors(node.mh)
            for simd in divisors(ctx.columns)
        ]
        if ctx.ddr_bits is not None:
            specs += [cls(node, pe=s.pe, simd=s.simd, weight_ram="external") for s in specs]
        return specs

    def reference(self, x: np.ndarray) -> np.ndarray:
        return self.node.reference(x)

    def create(self):
        from .unit import MatrixVectorThresholdUnit

        return MatrixVectorThresholdUnit(self)
