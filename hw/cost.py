"""First resource estimates for Xilinx 7-series (and UltraScale+) fabric.

Pure Python, no Amaranth: the mapper calls these through the specs (``MVTUSpec.resources()``)
thousands of times while it searches for a folding.

**These are estimates, not synthesis results.** The formulas below are a first model written from
the structure of the hardware; a later step calibrates their coefficients (the module-level
constants) against yosys synthesis of the generated Verilog. They are meant to rank foldings and to
keep a schedule inside a board, not to predict a utilisation report to the LUT.

Notation: ``index_bits(n)`` is the number of bits that index ``n`` items, ``(n - 1).bit_length()``
(0 for one item; :func:`lowbit.ir.datatypes.index_bits`).
For a matrix-vector-threshold unit (MVTU) with ``NF = MH / PE`` neuron folds and ``SF = MW / SIMD``
synapse folds:

LUTs
    ``PE * (datapath + N_T * ACC)`` plus the LUTs of every memory mapped to LUTRAM, plus
    ``CONTROL_LUT`` for the handshake and the fold counters, where ``ACC`` is the accumulator
    width, ``N_T`` the number of thresholds per channel and ``datapath`` is

    * binary input: ``SIMD`` (XNOR folded into a compressor tree, about one LUT per input bit)
      ``+ ACC`` (the accumulator adder);
    * integer input of ``B`` bits: the adder bits of the lane's tree (the output bits of every
      adder, as the hardware sizes them: :func:`_lane_adder_bits`; the sign, zero skip or partial
      product of each weight folds into the adder LUT) ``+ ACC``.

    ``N_T * ACC`` are the threshold comparators and the count of those that hold (a fraction of
    a LUT per compared bit: yosys shares the comparisons against constants). How the threshold
    memory of ``NF`` words is built changes their cost (yosys, observed): with one word the
    thresholds are constants; up to :data:`THRESHOLD_MERGE_MAX_WORDS` words a memory built from
    LUTs merges into the comparators (``threshold_merged``, ``N_T * ACC * index_bits(NF) / 3``),
    without its read register but with about a flip-flop per comparison (``threshold_flags``);
    deeper, it is built apart, one LUT per bit and 64 words (``threshold_rom``), and keeps its
    read register (``threshold_regs``). Each term has its own fitted coefficient
    (:func:`coefficients`).
FFs
    ``SIMD * B`` (input register) ``+ PE * SIMD`` (weight register)
    ``+ PE * (S + ACC + OUT)`` (one pipeline stage of the tree of width ``S``, the accumulator, the
    output register) ``+ index_bits(NF) + index_bits(SF) + index_bits(2 SF)`` (counters)
    ``+ CONTROL_FF``, with ``S = index_bits(SIMD + 1)`` for binary input and
    ``B + index_bits(SIMD)`` for integer input.
Memories
    * weights: depth ``NF * SF``, width ``PE * SIMD`` bits;
    * thresholds: depth ``NF``, width ``PE * N_T * ACC`` bits (none without thresholds);
    * input buffer (ping-pong, so the next vector streams in while the current one is reused
      ``NF`` times): depth ``2 * SF``, width ``SIMD * B`` bits.

    Each memory is costed by :func:`memory_resources`: LUTRAM (``width * ceil(depth / 64)`` LUTs,
    one RAM64X1 per bit and 64 words) when it is small, ``depth <= LUTRAM_MAX_DEPTH`` or
    ``depth * width <= LUTRAM_MAX_BITS``; otherwise block RAM, counted in RAMB36 tiles with the
    best aspect ratio, ``min over (d, w) of ceil(depth / d) * ceil(width / w)`` over the RAMB36
    modes 32768x1 ... 512x72, or half a tile per RAMB18 (16384x1 ... 512x36) when that is fewer.
    The LUTRAM read multiplexers for depths above 64 are not counted, nor is the fact that only
    SLICEM LUTs (about a third of a 7-series device) can hold LUTRAM.
DSPs
    0: every MAC kind is built from LUTs and carry chains (bipolar and ternary weights are add /
    subtract / skip, power-of-two weights shifts, ``INTk`` weights shift-add partial products), so
    synthesis infers no multiplier; so is the label select's class map (:func:`class_map_lanes`).

Other MAC kinds (ternary, shift-add, multi-bit, bit-serial) change the datapath terms and the
weight memory width (``PE * SIMD * weight_bits``); see :func:`mvtu_features`. ``weight_ram``
forces the weight memory into block RAM or LUTs.

A stream width converter between two units (:func:`dwc_resources`, the structure of
:class:`lowbit.hw.stream.dwc.StreamWidthConverter`) from ``n_in`` to ``n_out`` elements of ``E``
bits holds ``C = converter_capacity(n_in, n_out)`` elements: ``C * E + index_bits(C + 1)`` FFs
(buffer and fill count) and ``2 * C * E`` LUTs (per buffer bit, the shift-down and the insert
multiplexers).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..ir.boundary import ClassMap
from ..ir.datatypes import BIPOLAR, DataType, clog2, index_bits
from ..ir.mac import MacKind
from ..ir.resources import Resources

__all__ = [
    "mvtu_resources",
    "memory_resources",
    "dwc_resources",
    "converter_capacity",
    "label_select_resources",
    "label_compare_lut",
    "MapLane",
    "class_map_lanes",
    "naf",
    "LUTRAM_MAX_BITS",
    "LUTRAM_MAX_DEPTH",
    "CONTROL_LUT",
    "CONTROL_FF",
    "RAMB36_MODES",
    "RAMB18_MODES",
    "ROM_BRAM_MIN_BITS",
    "ROM_BRAM_MIN_DEPTH",
    "ROM_BRAM_DEEP",
    "THRESHOLD_MERGE_MAX_WORDS",
    "RAM_LUTRAM_MAX_BITS",
    "bram_tiles",
    "blocks",
    "rom_resources",
    "ram_resources",
    "mvtu_features",
    "coefficients",
]

logger = logging.getLogger(__name__)

LUTRAM_MAX_BITS = 4096
"""A memory of at most this many bits goes to LUTRAM."""
LUTRAM_MAX_DEPTH = 64
"""A memory of at most this many words goes to LUTRAM, whatever its width."""
ROM_BRAM_MIN_BITS = 16384
ROM_BRAM_MIN_DEPTH = 512
"""A read-only memory goes to block RAM when it has at least this many bits and words (yosys
``synth_xilinx``, observed on the calibration grid); smaller ones are built from LUTs."""
ROM_BRAM_DEEP = 4096
"""A read-only memory of at least this many words goes to block RAM whatever its bits (yosys,
observed: 6,272 words of 2 bits; the calibration grid holds no other ROM this deep)."""
THRESHOLD_MERGE_MAX_WORDS = 8
"""A threshold memory built from LUTs of at most this many words (and more than one) merges into
the comparators' LUTs, without its read register (yosys, observed on the calibration points)."""
RAM_LUTRAM_MAX_BITS = 2048
"""A RAM deeper than 64 words goes to block RAM above this many bits (yosys, observed)."""
CONTROL_LUT = 64
"""LUTs of an MVTU's stream handshake and fold-counter logic."""
CONTROL_FF = 32
"""FFs of an MVTU's stream handshake and state, beyond its counters."""

RAMB36_MODES = ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72))
"""(depth, width) aspect ratios of a 7-series RAMB36 (512x72 in simple dual-port mode)."""
RAMB18_MODES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
"""(depth, width) aspect ratios of a RAMB18, half a RAMB36 tile."""




def memory_resources(depth: int, width: int) -> Resources:
    """Resources of a ``depth`` x ``width``-bit memory (LUTRAM when small, else block RAM).

    See the module docstring for the rule. ``bram36`` counts RAMB36 tiles, in halves when RAMB18s
    suffice.
    """
    for name, v in (("depth", depth), ("width", width)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"memory {name} must be a non-negative integer, not {v!r}")
    if depth == 0 or width == 0:
        return Resources()
    if depth <= LUTRAM_MAX_DEPTH or depth * width <= LUTRAM_MAX_BITS:
        return Resources(lut=width * math.ceil(depth / 64))
    return Resources(bram36=bram_tiles(depth, width))


def blocks(depth: int, width: int, modes) -> int:
    """Blocks of the kind whose ``(depth, width)`` aspect ratios are ``modes`` that a
    ``depth`` x ``width``-bit memory takes, with the best of them."""
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in modes)


def bram_tiles(depth: int, width: int) -> float:
    """RAMB36 tiles (halves for RAMB18) of a block-RAM memory, with the best aspect ratio."""
    return min(float(blocks(depth, width, RAMB36_MODES)), blocks(depth, width, RAMB18_MODES) / 2)


def rom_resources(depth: int, width: int) -> tuple[Resources, float]:
    """Where synthesis puts a read-only memory (weights, thresholds) with a registered read port.

    Returns the block RAM it takes and its "ROM in logic" feature ``bits / 64`` (the LUTs are that
    feature times the fitted coefficient ``lut.rom_logic``). As yosys ``synth_xilinx`` decides (read
    off the calibration grid): block RAM when ``depth >= ROM_BRAM_MIN_DEPTH`` and
    ``depth * width >= ROM_BRAM_MIN_BITS``, else LUTs (7-series LUTRAM needs a write port).
    """
    if depth == 0 or width == 0:
        return Resources(), 0.0
    if depth >= ROM_BRAM_MIN_DEPTH and (
        depth * width >= ROM_BRAM_MIN_BITS or depth >= ROM_BRAM_DEEP
    ):
        return Resources(bram36=bram_tiles(depth, width)), 0.0
    return Resources(), depth * width / 64


def ram_resources(depth: int, width: int) -> Resources:
    """A simple dual-port RAM (the input buffer): 7-series distributed RAM as yosys maps it.

    ``RAM32M`` (32 words x 6 bits in 4 LUTs) up to 32 words, ``RAM64M`` (64 x 3 in 4 LUTs) stacked
    ``ceil(depth / 64)`` deep beyond; block RAM when deeper than 64 words and larger than
    ``RAM_LUTRAM_MAX_BITS``.
    """
    if depth == 0 or width == 0:
        return Resources()
    if depth <= 32:
        return Resources(lut=4 * math.ceil(width / 6))
    if depth <= 64 or depth * width <= RAM_LUTRAM_MAX_BITS:
        return Resources(lut=4 * math.ceil(depth / 64) * math.ceil(width / 3))
    return Resources(bram36=bram_tiles(depth, width))


def _weight_memory(
    depth: int, width: int, placement: str, writable: bool
) -> tuple[Resources, float]:
    """Block RAM / LUTRAM of the weight memory and its "ROM in logic" feature (``bits / 64``)."""
    if depth == 0 or width == 0:
        return Resources(), 0.0
    if placement == "external":  # streamed in: a register of the word, counted with the FFs
        return Resources(), 0.0
    if placement == "block":
        return Resources(bram36=bram_tiles(depth, width)), 0.0
    if writable:
        if placement == "distributed":
            per = (
                4 * math.ceil(width / 6)
                if depth <= 32
                else 4 * math.ceil(depth / 64) * math.ceil(width / 3)
            )
            return Resources(lut=per), 0.0
        return ram_resources(depth, width), 0.0
    if placement == "distributed":
        return Resources(), depth * width / 64
    return rom_resources(depth, width)


def mvtu_features(
    *,
    mw: int,
    mh: int,
    pe: int,
    simd: int,
    in_bits: int,
    binary_input: bool,
    acc_bits: int,
    n_thresholds: int,
    out_bits: int,
    kind: MacKind | str | None = None,
    weight_bits: int = 1,
    mac: str = "parallel",
    weight_ram: str = "auto",
    weights_writable: bool = False,
    plane_pairs: int = 1,
) -> tuple[dict, dict, Resources]:
    """The terms of the MVTU cost model: ``(lut_features, ff_features, fixed)``.

    LUTs are ``sum(coefficient * feature)`` over ``lut_features``, FFs likewise; ``fixed`` holds the
    parts that are counted, not fitted: block RAM and the LUTs of distributed RAM.

    Per MAC kind (``kind``, a :class:`~lowbit.ir.mac.MacKind` or its value, as
    :attr:`lowbit.hw.mvtu.spec.MVTUSpec.kind`; ``None`` means the kind of bipolar weights, ``xnor``
    for binary input, else ``addsub``), with ``B`` input bits and ``K`` stored weight bits
    (:func:`_lane_terms` holds the per-kind terms):

    * ``xnor``: ``tree_binary = PE * SIMD`` (popcount inputs, XNOR folded in);
    * ``addsub``: ``tree_integer`` = the adder bits (:func:`_lane_adder_bits`) of ``PE`` masked
      trees of ``SIMD`` inputs and of the shared ``sum(x)``;
    * ``ternary``: bipolar input, two popcounts (``tree_binary = 2 * PE * SIMD``); integer input,
      the adder bits of an add / subtract / skip tree of ``B + 1``-bit terms;
    * ``shift``: the adder bits of a tree of the shifted inputs and, in ``mac_logic``, a barrel
      shifter of ``B * index_bits(E + 1)`` multiplexer bits per product (``E`` the largest
      exponent);
    * ``multibit``: the adder bits of the tree of ``SIMD * K`` shift-add partial products (LUT
      multipliers, no DSP; each partial product's AND folds into its adder);
    * ``serial`` (any kind): one AND-popcount per lane (``tree_binary = PE * SIMD``), the plane
      selection multiplexers in ``mac_logic`` (``PE * SIMD * ceil(K / 4) + SIMD * ceil(B / 4)``)
      plus the coefficient shift of each popcount (``PE * ACC * index_bits(P) / 2`` for ``P`` plane
      pairs), and the accumulator.

    The coefficients are fitted by ``benchmarks/cost_calibration.py`` on every recorded yosys
    point (its bound: :func:`mvtu_resources`).
    """
    if mh % pe:
        raise ValueError(f"PE ({pe}) must divide MH ({mh})")
    if mw % simd:
        raise ValueError(f"SIMD ({simd}) must divide MW ({mw})")
    kind = _mac_kind(kind, binary_input)
    nf, sf = mh // pe, mw // simd
    lanes = pe * simd
    log_simd = index_bits(simd)
    tree_bin = tree_int = 0
    mac_logic: float = 0
    if mac == "serial":
        tree_bin = lanes
        # plane selection muxes, and the shift / negation of each popcount by the pair's coefficient
        mac_logic = (
            lanes * math.ceil(weight_bits / 4)
            + simd * math.ceil(in_bits / 4)
            + pe * acc_bits * index_bits(plane_pairs) / 2
        )
        stage_bits = index_bits(simd + 1)
    else:
        popcounts, elem, logic = _lane_terms(
            kind, in_bits=in_bits, weight_bits=weight_bits, binary_input=binary_input
        )
        if elem is None:
            tree_bin = lanes * popcounts
            stage_bits = index_bits(simd + 1)
        else:
            per_lane, shared = _lane_adder_bits(kind, simd, in_bits, weight_bits, binary_input)
            tree_int = pe * per_lane + shared
            stage_bits = elem + log_simd
            if kind is MacKind.TERNARY:  # the skip / negate multiplexer of each term bit
                mac_logic = lanes * (in_bits + 1)
            elif kind is MacKind.SHIFT:  # the barrel shifter (a multi-bit lane's partial
                mac_logic = lanes * logic  # products fold into its adders)
    weights, w_logic = _weight_memory(nf * sf, lanes * weight_bits, weight_ram, weights_writable)
    t_bits = pe * n_thresholds * acc_bits
    thresholds, t_logic = rom_resources(nf, t_bits)
    input_buffer = ram_resources(2 * sf, simd * in_bits)
    # the registered read port of a ROM built from LUTs is a register of its width
    w_regs = lanes * weight_bits if w_logic or weight_ram == "external" else 0
    # a threshold memory in logic of few words merges into the comparators; a deeper one is built
    # as LUTs (one per bit and 64 words) and keeps its read register
    merged = 1 < nf <= THRESHOLD_MERGE_MAX_WORDS and bool(t_logic)
    t_rom = t_bits * math.ceil(nf / 64) if t_logic and nf > THRESHOLD_MERGE_MAX_WORDS else 0
    t_regs = t_bits if t_rom else 0
    lut = {
        "const": 1.0,
        "tree_binary": float(tree_bin),
        "tree_integer": float(tree_int),
        "acc": float(pe * acc_bits),
        "thresholds": float(t_bits),
        "threshold_merged": t_bits * index_bits(nf) / 3 if merged else 0.0,
        "rom_logic": w_logic,
        "threshold_rom": float(t_rom),
        "mac_logic": float(mac_logic),
    }
    counters = index_bits(nf) + index_bits(sf) + index_bits(2 * sf) + index_bits(plane_pairs)
    ff = {
        "const": 1.0,
        "input": float(simd * in_bits),
        "lanes": float(pe * (stage_bits + acc_bits + out_bits)),
        "rom_regs": float(w_regs),
        "threshold_regs": float(t_regs),
        "threshold_flags": float(pe * n_thresholds if merged else 0),
        "counters": float(counters),
    }
    return lut, ff, weights + thresholds + input_buffer


def _mac_kind(kind: MacKind | str | None, binary_input: bool) -> MacKind:
    """``kind`` as a :class:`MacKind`; ``None``: the kind of bipolar weights on these inputs."""
    if kind is None:
        return MacKind.of(BIPOLAR, bipolar_input=binary_input)
    try:
        return MacKind(kind)
    except ValueError:
        raise ValueError(
            f"kind must be one of {', '.join(repr(k.value) for k in MacKind)}, not {kind!r}"
        ) from None


def _lane_terms(
    kind: MacKind, *, in_bits: int, weight_bits: int, binary_input: bool
) -> tuple[int, int | None, int]:
    """The per-kind terms of one element of a bit-parallel lane: ``(popcounts, product_bits,
    mac_logic)``, the only code of the cost model that depends on the MAC kind.

    A popcount lane (``xnor``; ``ternary`` on bipolar inputs) counts ``popcounts`` bits per element
    and has ``product_bits`` None. Any other lane adds products of ``product_bits`` bits in an adder
    tree, with ``mac_logic`` LUT bits of shifter or partial-product logic per product (see
    :func:`mvtu_features`).
    """
    if kind is MacKind.XNOR:
        return 1, None, 0
    if kind is MacKind.TERNARY and binary_input:
        return 2, None, 0
    if kind is MacKind.ADDSUB or kind is MacKind.TERNARY:
        return 0, in_bits, 0
    if kind is MacKind.SHIFT:
        max_exp = (1 << (weight_bits - 1)) - 2
        logic = 0 if binary_input else in_bits * max(1, index_bits(max_exp + 1))
        return 0, (1 if binary_input else in_bits) + max_exp, logic
    if kind is MacKind.MULTIBIT:
        logic = 0 if binary_input else in_bits * weight_bits
        return 0, weight_bits + (0 if binary_input else in_bits), logic
    raise ValueError(f"no cost model for MAC kind {kind!r}")


Term = tuple[int, bool, int]
"""``(width, signed, low)`` of a value, as Amaranth sizes it, whose ``low`` least significant bits
are zero (a shifted partial product)."""


def _add(a: Term, b: Term) -> tuple[Term, int]:
    """Amaranth's shape of ``a + b`` (or ``a - b``: one bit wider than the wider operand, an
    unsigned operand one bit wider beside a signed one) and the adder's bits: those above the
    higher of the operands' zero bits (below it the sum is the other operand, no logic)."""
    wa = a[0] + (b[1] and not a[1])
    wb = b[0] + (a[1] and not b[1])
    width = max(wa, wb) + 1
    return (width, a[1] or b[1], min(a[2], b[2])), width - max(a[2], b[2])


def _tree_adder_bits(terms: Sequence[Term]) -> tuple[int, Term]:
    """Adder bits (:func:`_add`) summed over :func:`lowbit.hw._util.tree_sum` of values of shapes
    ``terms`` (pairs in order, an odd one carried up), and the shape of the sum."""
    vals, bits = list(terms), 0
    while len(vals) > 1:
        nxt = []
        for i in range(0, len(vals) - 1, 2):
            shape, n = _add(vals[i], vals[i + 1])
            nxt.append(shape)
            bits += n
        vals = nxt + vals[len(vals) - len(vals) % 2 :]
    return bits, vals[0]


@functools.lru_cache(maxsize=4096)
def _lane_adder_bits(
    kind: MacKind, simd: int, in_bits: int, weight_bits: int, binary_input: bool
) -> tuple[int, int]:
    """Adder bits of one bit-parallel adder-tree lane of :func:`lowbit.hw.mvtu.mac.lane_dot`
    (``SIMD`` elements, unsigned integer inputs of ``in_bits`` or bipolar ones), and of the terms
    all lanes share (the ``ADDSUB`` kind's ``sum(x)``): the bits of every ``+`` of its trees
    (:func:`_add`), where one LUT per bit on a carry chain absorbs the operands' AND / XOR (a
    partial product, a negation). The popcount of the negations' ``+ 1`` bits is counted as
    ``SIMD`` bits."""
    x: Term = (in_bits, False, 0)
    if kind is MacKind.ADDSUB:  # 2 * sum(w ? x : 0) - sum(x)
        bits, s = _tree_adder_bits([x] * simd)
        shared, xs = _tree_adder_bits([x] * simd)
        return bits + _add((s[0] + 1, s[1], s[2] + 1), xs)[1], shared
    shift = 0
    if kind is MacKind.TERNARY:
        terms = [(in_bits + 1, True, 0)] * simd
    elif kind is MacKind.SHIFT:
        max_shift = (1 << (weight_bits - 1)) - 2
        span = (1 << max(1, max_shift.bit_length())) - 1
        base = max_shift + 1 if binary_input else in_bits
        terms = [(base + span + 1, True, 0)] * simd
    elif kind is MacKind.MULTIBIT and binary_input:
        terms = [(weight_bits, True, 0)] * simd
    elif kind is MacKind.MULTIBIT:
        shift = weight_bits - 1
        terms = [(in_bits + k, False, k) for _ in range(simd) for k in range(shift)]
        terms += [(in_bits + weight_bits, True, shift)] * simd
    else:
        raise ValueError(f"no adder-tree lane for MAC kind {kind!r}")
    bits, s = _tree_adder_bits(terms)
    return bits + simd + _add(s, (clog2(simd + 1) + shift, False, shift))[1], 0


def mvtu_resources(
    *,
    mw: int,
    mh: int,
    pe: int,
    simd: int,
    in_bits: int,
    binary_input: bool,
    acc_bits: int,
    n_thresholds: int,
    out_bits: int,
    kind: MacKind | str | None = None,
    weight_bits: int = 1,
    mac: str = "parallel",
    weight_ram: str = "auto",
    weights_writable: bool = False,
    plane_pairs: int = 1,
) -> Resources:
    """Estimate of a matrix-vector-threshold unit's resources (model: module docstring and
    :func:`mvtu_features`).

    Against yosys ``synth_xilinx`` (``benchmarks/cost_calibration.py``, held to it by
    ``tests/test_cost_calibration.py``): within 30 % of yosys' LUTs and 40 % of its FFs on the
    earlier calibration grids (the bipolar-weight grid, the MAC-kind table), median 9 % / 9 %;
    within 50 % of yosys' LUTs and 80 % of its FFs on every recorded point, median 10 % / 9 %;
    block RAM exact. The worst are units of 255 thresholds per channel, whose comparators cost in
    proportion to the bits the thresholds span, which this model does not see (it counts
    ``acc_bits``).

    Parameters
    ----------
    mw, mh : int
        Columns (input length) and rows (output length) of the weight matrix.
    pe, simd : int
        Rows and columns processed in parallel; ``pe`` divides ``mh``, ``simd`` divides ``mw``.
    in_bits : int
        Bits per input element (1 for bipolar input).
    binary_input : bool
        Bipolar input.
    acc_bits : int
        Width of the accumulator.
    n_thresholds : int
        Thresholds per output channel; 0 when the unit emits the accumulator (class scores).
    out_bits : int
        Bits per output element.
    kind : MacKind or str, optional
        The MAC array (``MVTUSpec.kind``, a :class:`~lowbit.ir.mac.MacKind` or its value); by
        default XNOR for binary input, else add/subtract.
    weight_bits : int
        Stored bits per weight.
    mac : {"parallel", "serial"}
    weight_ram : {"auto", "block", "distributed"}
    weights_writable : bool
    plane_pairs : int
        Cycles per weight word (bit-plane pairs in serial mode).
    """
    lut_f, ff_f, fixed = mvtu_features(
        mw=mw,
        mh=mh,
        pe=pe,
        simd=simd,
        in_bits=in_bits,
        binary_input=binary_input,
        acc_bits=acc_bits,
        n_thresholds=n_thresholds,
        out_bits=out_bits,
        kind=kind,
        weight_bits=weight_bits,
        mac=mac,
        weight_ram=weight_ram,
        weights_writable=weights_writable,
        plane_pairs=plane_pairs,
    )
    coeff = coefficients()
    lut = sum(coeff["lut"][k] * v for k, v in lut_f.items())
    ff = sum(coeff["ff"][k] * v for k, v in ff_f.items())
    return Resources(lut=max(0, round(lut)), ff=max(0, round(ff))) + fixed


_COEFFICIENTS_FILE = Path(__file__).with_name("resource_coefficients.json")
_DEFAULT_COEFFICIENTS = {
    # the first, uncalibrated model: one LUT per compressor input / accumulator / comparator bit
    "lut": {
        "const": 64.0,
        "tree_binary": 1.0,
        "tree_integer": 1.0,
        "acc": 1.0,
        "thresholds": 1.0,
        "threshold_merged": 1.0,
        "rom_logic": 1.0,
        "threshold_rom": 1.0,
        "mac_logic": 1.0,
    },
    "ff": {
        "const": 32.0,
        "input": 1.0,
        "lanes": 1.0,
        "rom_regs": 1.0,
        "threshold_regs": 1.0,
        "threshold_flags": 1.0,
        "counters": 1.0,
    },
}


_LATER_TERMS = {
    "lut": ("mac_logic", "threshold_merged", "threshold_rom"),
    "ff": ("threshold_regs", "threshold_flags"),
}
"""Terms that a coefficients file written before they existed may lack."""


@functools.lru_cache(maxsize=None)
def _load_coefficients(path: str) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        logger.warning(
            "no fitted resource coefficients at %s; using the uncalibrated defaults", path
        )
        return _DEFAULT_COEFFICIENTS
    except ValueError as e:
        raise ValueError(f"{path}: not a JSON document ({e})") from None
    for kind, terms in _DEFAULT_COEFFICIENTS.items():
        got = doc.get(kind)
        if isinstance(
            got, dict
        ):  # terms added after a calibration keep their default until refitted
            got = doc[kind] = {
                **{t: terms[t] for t in _LATER_TERMS.get(kind, ()) if t not in got},
                **got,
            }
        if not isinstance(got, dict) or set(got) != set(terms):
            raise ValueError(
                f"{path}: field {kind!r} must map {', '.join(terms)} to numbers, not {got!r}"
            )
        for term, v in got.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{path}: field '{kind}.{term}' must be a number, not {v!r}")
    return {kind: dict(doc[kind]) for kind in _DEFAULT_COEFFICIENTS}


def coefficients() -> dict:
    """The LUT and FF coefficients of the MVTU model, fitted to yosys synthesis.

    Read once from ``hw/resource_coefficients.json`` (written by
    ``benchmarks/calibrate_resources.py``); the uncalibrated defaults when the file is absent.
    """
    return _load_coefficients(str(_COEFFICIENTS_FILE))


def converter_capacity(n_in: int, n_out: int) -> int:
    """Elements a width converter from ``n_in`` to ``n_out`` per beat must hold to run at full rate.

    ``n_in + n_out + min(n_in, n_out) - gcd(n_in, n_out)``: the extra ``min - gcd`` elements are
    zero when one width divides the other.
    """
    return n_in + n_out + min(n_in, n_out) - math.gcd(n_in, n_out)


def dwc_resources(elem_bits: int, n_in: int, n_out: int) -> Resources:
    """Estimate of a stream width converter from ``n_in`` to ``n_out`` elements of ``elem_bits``.

    Zero when ``n_in == n_out`` (no converter is inserted); otherwise see the module docstring.
    """
    for name, v in (("elem_bits", elem_bits), ("n_in", n_in), ("n_out", n_out)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    if n_in == n_out:
        return Resources()
    cap = converter_capacity(n_in, n_out)
    bits = cap * elem_bits
    return Resources(lut=2 * bits, ff=bits + index_bits(cap + 1))


LABEL_LUT_COEFFICIENTS = (1.26, 1.946, 0.721, 0.675, 9.585)
"""Fitted LUT coefficients of the label select: per score bit, per score bit of each lane after
the first, per index bit of each lane after the first, per class, constant (least squares over the
yosys ``synth_xilinx`` grid of ``benchmarks/label_select_synth.py``)."""


def label_select_resources(
    n_classes: int,
    score_bits: int,
    pe: int = 1,
    *,
    class_map: ClassMap | None = None,
    signed: bool = True,
) -> Resources:
    """Estimate of the label select (:class:`lowbit.hw.stream.label.LabelSelect`): ``n_classes``
    scores of ``score_bits`` bits (two's complement when ``signed``) arriving ``pe`` per beat, the
    running arg-max and the result beat; with ``class_map``, of the mapped values.

    Flip-flops are counted from the design: the result beat (every score and the label), the buffer
    of the scores of the beats before the last (``(n_classes - pe) * score_bits``), ``valid``, and,
    when an image takes more than one beat, the running maximum (``score_bits``, or the mapped
    width ``class_map.bits`` of the score range), its index and the beat counter (equal to yosys on
    the calibration grid). LUTs are an approximation fitted to yosys ``synth_xilinx``
    (:data:`LABEL_LUT_COEFFICIENTS`): the first lane's comparator, a comparator and a multiplexer
    per further lane, the index multiplexers and the per-class write enables; within 15 % of
    synthesis on the calibration grid (``tests/test_label_select.py``). With a class map, the
    comparators and multiplexers are as wide as the mapped values, and its adders and the per-beat
    selection of its multipliers and offsets add :attr:`MapLane.lut` per lane
    (:func:`class_map_lanes`, :data:`LABEL_MAP_LUT_COEFFICIENTS`); within 25 % of synthesis on the
    class-map rows of the grid.
    """
    idx = clog2(n_classes)
    beats = n_classes // pe
    width = score_bits if class_map is None else class_map.bits(*_score_range(score_bits, signed))
    ff = (2 * n_classes - pe) * score_bits + idx + 1
    if beats > 1:
        ff += width + idx + index_bits(beats)
    lut = label_compare_lut(n_classes, width, pe)
    if class_map is not None:
        lut += sum(lane.lut for lane in class_map_lanes(class_map, pe, score_bits, signed))
    return Resources(lut=round(lut), ff=ff)


def label_compare_lut(n_classes: int, width: int, pe: int) -> float:
    """LUTs of the label select's arg-max over values of ``width`` bits (the scores, or the mapped
    values with a class map), :data:`LABEL_LUT_COEFFICIENTS`, unrounded."""
    per_bit, per_lane_bit, per_lane_idx, per_class, const = LABEL_LUT_COEFFICIENTS
    idx = clog2(n_classes)
    return (
        per_bit * width
        + (pe - 1) * (per_lane_bit * width + per_lane_idx * idx)
        + per_class * n_classes
        + const
    )


LABEL_MAP_LUT_COEFFICIENTS = (0.535, 0.603, 0.59, 0.337, 0.719)
"""Fitted LUT coefficients of a label select's class map, one per count of
:attr:`MapLane.terms`: per adder bit of a shift-add product or of the offset's addition, per
adder bit of the partial products of a constant multiplier, per adder bit of the partial products
of a multiplier the beat selects, the same per bit of the beat counter, and per bit of an offset
the beat selects per bit of the beat counter. Least squares of the relative error over the
class-map rows of ``benchmarks/label_select_synth.py``, on top of the select without a map at the
mapped width; within 25 % of yosys on every row (``tests/test_label_select.py``)."""


def _score_range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def naf(m: int) -> tuple[tuple[int, int], ...]:
    """The non-adjacent form of the integer ``m``: ``(shift, sign)`` digits, lowest first, with
    ``m == sum(sign << shift)``, signs +-1, no two digits adjacent (the fewest non-zero digits of
    any signed-binary form: the fewest adders of a shift-add constant multiplier)."""
    digits = []
    j = 0
    while m:
        if m & 1:
            d = 2 - (m & 3)  # +1 when m = 1 (mod 4), -1 when m = 3 (mod 4)
            digits.append((j, d))
            m -= d
        m >>= 1
        j += 1
    return tuple(digits)


def _tree_bits(lows: Sequence[int], width: int) -> tuple[int, int | None]:
    """Adder bits of the balanced tree that sums terms whose ``lows`` low bits are zero (pairs in
    order, an odd one carried up), each adder ``width`` bits wide but free below the higher of its
    operands' zero bits; and the zero low bits of the sum (``None`` without terms)."""
    bits, terms = 0, list(lows)
    while len(terms) > 1:
        pairs = [(terms[i], terms[i + 1]) for i in range(0, len(terms) - 1, 2)]
        bits += sum(width - max(a, b) for a, b in pairs)
        terms = [min(a, b) for a, b in pairs] + terms[len(terms) - len(terms) % 2 :]
    return bits, (terms[0] if terms else None)


def _difference_bits(pos: Sequence[int], neg: Sequence[int], width: int) -> int:
    """Adder bits of ``sum(pos) - sum(neg)`` (``0 - sum(neg)`` without positive terms), terms given
    by their zero low bits, as :func:`lowbit.hw.stream.label` builds it."""
    p_bits, p_low = _tree_bits(pos, width)
    n_bits, n_low = _tree_bits(neg, width)
    if n_low is None:
        return p_bits
    return p_bits + n_bits + width - (n_low if p_low is None else max(p_low, n_low))


@dataclass(frozen=True)
class MapLane:
    """How one lane of the label select maps its score ``v`` of class ``c = beat * PE + lane``
    to ``mults[beat] * v + offsets[beat]`` (all arithmetic modulo ``2^width``, the mapped values'
    two's complement width, which holds every exact result).

    ``shift_add``: one shift-add product ``v * m`` (:func:`naf` digits of ``m``) per distinct
    multiplier ``m`` of the lane, the beat selecting among them; otherwise the partial products
    ``v[j] ? m << j : 0`` of the score's bits, ``m`` selected by the beat. Then the offset,
    selected by the beat, is added unless the lane's offsets are all zero.

    ``terms`` counts, for :data:`LABEL_MAP_LUT_COEFFICIENTS`: the adder bits of the shift-add
    products and of the offset's addition; the partial products' adder bits when the lane has one
    multiplier, else 0; the same when the beat selects the multiplier, and that times the beat
    counter's bits; the offset's bits times the beat counter's bits when the beat selects it.
    ``lut`` is their estimate.
    """

    mults: tuple[int, ...]
    offsets: tuple[int, ...]
    shift_add: bool
    terms: tuple[int, ...]
    lut: float

    @property
    def mult_bits(self) -> int:
        """Two's complement bits of the lane's multipliers."""
        return DataType.for_range(min(min(self.mults), -1), max(max(self.mults), 0)).bits


def class_map_lanes(
    class_map: ClassMap, pe: int, score_bits: int, signed: bool = True
) -> tuple[MapLane, ...]:
    """How each of the ``pe`` lanes of a label select with ``class_map`` multiplies (scores of
    ``score_bits`` bits, two's complement when ``signed``): shift-add products when their adders,
    over every distinct multiplier of the lane, have no more bits than the partial products'. A
    rule of thumb, not the estimate: wherever the calibration grid synthesised both choices, it
    picked the cheaper design or one within 5 % of it."""
    width = class_map.bits(*_score_range(score_bits, signed))
    beats = class_map.classes // pe
    beat_bits = index_bits(beats)
    top = score_bits - 1 if signed else score_bits  # two's complement: the top bit subtracts
    pp_bits = _difference_bits(range(top), range(top, score_bits), width)
    lanes = []
    for p in range(pe):
        mults = tuple(class_map.mult[k * pe + p] for k in range(beats))
        offsets = tuple(class_map.offset[k * pe + p] for k in range(beats))
        distinct = sorted(set(mults))
        shift_bits = 0
        for m in distinct:
            digits = naf(m)
            shift_bits += _difference_bits(
                [j for j, d in digits if d > 0], [j for j, d in digits if d < 0], width
            )
        offset_bits = width if any(offsets) else 0
        offset_select = width * beat_bits if len(set(offsets)) > 1 else 0
        shift = (shift_bits + offset_bits, 0, 0, 0, offset_select)
        if len(distinct) == 1:
            partial = (offset_bits, pp_bits, 0, 0, offset_select)
        else:
            partial = (offset_bits, 0, pp_bits, pp_bits * beat_bits, offset_select)
        shift_add = shift_bits <= pp_bits
        terms = shift if shift_add else partial
        lut = sum(c * t for c, t in zip(LABEL_MAP_LUT_COEFFICIENTS, terms))
        lanes.append(MapLane(mults, offsets, shift_add, terms, lut))
    return tuple(lanes)
