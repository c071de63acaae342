"""MAC lanes of the MVTU and the LUT6-friendly popcount (compressor tree) they share.

One *lane* computes the dot product of ``SIMD`` inputs with ``SIMD`` weights (one output channel,
one synapse fold) as a combinational :class:`~amaranth.hdl.Value`; :func:`lane_dot` builds it for
each MAC kind of :class:`~lowbit.hw.mvtu.spec.MVTUSpec` (the bit-serial step is one
:func:`popcount` of ``AND(x_plane, w_plane)``, in :mod:`lowbit.hw.mvtu.unit`).

Popcount (:func:`popcount`) is built for 6-input LUTs instead of as an adder tree of single bits
(which synthesis maps to carry chains, about 2 LUTs per input bit plus the carry cells):

* **first level, the XNOR folded in** — each group of three lanes is one 3:2 counter of three
  ``XNOR(x, w)`` (or ``AND``) bits: its two outputs are functions of six inputs, so one LUT6 each,
  0.67 LUT per lane, with no separate XNOR gates;
* **column compression** — the bits are kept in columns by weight; each column is reduced with
  6:3 counters (three LUT6s take six bits of weight ``2^k`` to one bit each of ``2^k``,
  ``2^(k+1)``, ``2^(k+2)``), then 5:3 / 4:3 / 3:2 counters, until no column has more than two bits.
  Counters are written as XOR / AND / OR logic, never ``+``, so no carry chain is inferred in these
  levels;
* **final adder** — the two remaining rows are added with one ``+`` (one carry chain of about
  ``log2(SIMD)`` bits).

``cut=`` puts register stages inside the tree (``MVTUSpec(pipeline=3)`` and 4: one, 5: two, 6:
three, :func:`lowbit.hw.fmax.tree_stages`): every column bit after each cut's number of counter
levels (:func:`lowbit.hw.fmax.popcount_cuts` spreads them over the depth, the memory read ahead
counted as a level) goes through a register loaded when ``en`` is high, so every path through the
tree crosses exactly one register per stage. The lanes of the other kinds are adder trees
(:func:`lowbit.hw._util.tree_sum`, plus a popcount of the negations' ``+ 1`` bits); there every
partial sum after each cut's adder levels (:func:`lowbit.hw.fmax.adder_tree_cuts`) is registered the
same way (:func:`staged_tree_sum`), and the popcount beside it (and the ADDSUB kind's shared
``sum(x)``) at its own cuts, as many stages: the terms of a lane stay aligned.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value

from ...ir.mac import MacKind
from .._util import tree_sum
from ..fmax import adder_tree_cuts, popcount_cuts, tree_stages

__all__ = ["popcount", "counter", "lane_dot", "staged_tree_sum"]


def _full_adder(a: Value, b: Value, c: Value) -> tuple[Value, Value]:
    return a ^ b ^ c, (a & b) | (a & c) | (b & c)


def _half_adder(a: Value, b: Value) -> tuple[Value, Value]:
    return a ^ b, a & b


def counter(bits: list[Value]) -> list[Value]:
    """The binary count (LSB first) of 1 to 7 single bits, in XOR / AND / OR logic (no ``+``).

    Built from full and half adders; every output bit is a function of the inputs only, so a LUT
    mapper covers each with one LUT when there are at most six inputs.
    """
    n = len(bits)
    if not 1 <= n <= 7:
        raise ValueError(f"counter takes 1 to 7 bits, not {n}")
    if n == 1:
        return [bits[0]]
    if n == 2:
        return list(_half_adder(*bits))
    if n == 3:
        return list(_full_adder(*bits))
    # split into counts of at most three bits, then add those 2-bit numbers bit by bit
    s1, c1 = _full_adder(*bits[:3])
    rest = bits[3:]
    if len(rest) == 1:
        s0, k0 = _half_adder(s1, rest[0])
        b1, b2 = _half_adder(c1, k0)
        return [s0, b1, b2]
    s2, c2 = _half_adder(*rest) if len(rest) == 2 else _full_adder(*rest[:3])
    s0, k0 = _half_adder(s1, s2)
    if len(rest) == 4:  # seven bits: rest = three + one
        s0, k1 = _half_adder(s0, rest[3])
        b1, b2 = _full_adder(c1, c2, k0)
        b1, k2 = _half_adder(b1, k1)
        return [s0, b1, b2 | k2]
    b1, b2 = _full_adder(c1, c2, k0)
    return [s0, b1, b2]


def popcount(
    m: Module,
    bits: list[Value],
    *,
    fanin: int = 1,
    name: str = "pc",
    cut: int | tuple[int, ...] | None = None,
    en: Value | None = None,
) -> Value:
    """Number of ones among ``bits`` (1-bit values), as an unsigned value of ``clog2(n + 1)`` bits.

    ``fanin`` is how many signals each bit depends on (2 for ``XNOR(x, w)``): the first level puts
    ``6 // fanin`` of them into one counter, so that each of its outputs is one LUT6. Every counter
    output is a named signal driven in ``m.d.comb`` (which also keeps the expressions small).

    ``cut`` (with ``en``, the registers' load enable) registers every column bit after ``cut``
    counter levels (0: the inputs; at most the tree's counter levels): the count then arrives one
    cycle later. A tuple of levels (ascending; a level repeated stacks registers in series) puts
    one register stage at each: the count arrives ``len(cut)`` cycles later.
    """
    count = [0]

    def wire(v: Value) -> Signal:
        sig = Signal(name=f"{name}_c{count[0]}")
        count[0] += 1
        m.d.comb += sig.eq(v)
        return sig

    def staged(cols: dict[int, list[Value]]) -> dict[int, list[Value]]:
        out: dict[int, list[Value]] = {}
        for weight in sorted(cols):
            for b in cols[weight]:
                reg = Signal(name=f"{name}_r{count[0]}")
                count[0] += 1
                with m.If(en):
                    m.d.sync += reg.eq(b)
                out.setdefault(weight, []).append(reg)
        return out

    bits = [Value.cast(b) for b in bits]
    if not bits:
        raise ValueError("popcount needs at least one bit")
    if cut is not None and en is None:
        raise ValueError("popcount: cut needs en, the registers' load enable")
    cuts = () if cut is None else (cut,) if isinstance(cut, int) else tuple(cut)
    if list(cuts) != sorted(cuts) or any(c < 0 for c in cuts):
        raise ValueError(f"popcount: cut must be ascending levels from 0, not {cut!r}")

    def stage_at(level: int, cols: dict[int, list[Value]]) -> dict[int, list[Value]]:
        for _ in range(cuts.count(level)):
            cols = staged(cols)
        return cols

    n = len(bits)
    width = n.bit_length()
    if n == 1:
        if cuts and cuts[-1] > 0:
            raise ValueError(f"popcount: cut ({cut}) is beyond the tree's 0 counter levels")
        return stage_at(0, {0: bits})[0][0]
    group = min(6, 6 // max(1, fanin))
    columns: dict[int, list[Value]] = {}
    level = 0
    bits = stage_at(0, {0: bits})[0]
    if group >= 3:
        for k in range(0, n, group):
            for j, b in enumerate(counter(bits[k : k + group])):
                columns.setdefault(j, []).append(wire(b))
        level = 1
    else:
        columns[0] = list(bits)
    if level:
        columns = stage_at(level, columns)
    while any(len(col) > 2 for col in columns.values()):
        nxt: dict[int, list[Value]] = {}
        for weight in sorted(columns):
            col = columns[weight]
            k = 0
            while len(col) - k >= 3:
                take = min(6, len(col) - k)
                for j, b in enumerate(counter(col[k : k + take])):
                    nxt.setdefault(weight + j, []).append(wire(b))
                k += take
            nxt.setdefault(weight, []).extend(col[k:])
        columns, level = nxt, level + 1
        columns = stage_at(level, columns)
    if cuts and cuts[-1] > level:
        raise ValueError(f"popcount: cut ({cut}) is beyond the tree's {level} counter levels")
    top = max(columns)
    rows: list[list[Value]] = [[], []]
    for weight in range(top + 1):
        col = columns.get(weight, [])
        for r in range(2):
            rows[r].append(col[r] if r < len(col) else Const(0, 1))
    total = (
        Cat(*rows[0]) + Cat(*rows[1])
        if any(len(c) > 1 for c in columns.values())
        else Cat(*rows[0])
    )
    return total[:width]


def staged_tree_sum(
    m: Module, values: list[Value], *, cut: int | tuple[int, ...], en: Value, name: str
) -> Value:
    """:func:`lowbit.hw._util.tree_sum` of ``values`` (the same pairing and widths) with every
    partial sum after ``cut`` adder levels (0: the values themselves) registered, loaded when
    ``en`` is high (registers ``<name>_s<k>``): the sum arrives one cycle later. A tuple of levels
    (ascending; a level repeated stacks registers in series) puts one register stage at each
    (the second stage's registers ``<name>_s1_<k>``, and so on): the sum arrives ``len(cut)``
    cycles later."""
    values = [Value.cast(v) for v in values]
    if not values:
        raise ValueError("staged_tree_sum needs at least one value")
    cuts = (cut,) if isinstance(cut, int) else tuple(cut)
    if not cuts or list(cuts) != sorted(cuts) or cuts[0] < 0:
        raise ValueError(f"staged_tree_sum: cut must be ascending levels from 0, not {cut!r}")
    staged = [0]

    def stage_at(level: int, vals: list[Value]) -> list[Value]:
        for _ in range(cuts.count(level)):
            j = staged[0]
            regs = []
            for k, v in enumerate(vals):
                reg = Signal(v.shape(), name=f"{name}_s{k}" if j == 0 else f"{name}_s{j}_{k}")
                with m.If(en):
                    m.d.sync += reg.eq(v)
                regs.append(reg)
            vals, staged[0] = regs, j + 1
        return vals

    level = 0
    values = stage_at(0, values)
    while len(values) > 1:
        nxt = [values[i] + values[i + 1] for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        values, level = nxt, level + 1
        values = stage_at(level, values)
    if cuts[-1] > level:
        raise ValueError(f"staged_tree_sum: cut ({cut}) is beyond the tree's {level} adder levels")
    return values[0]


def _signed(v: Value) -> Value:
    """``v`` as a signed value (an unsigned one gains a zero sign bit), so that ``~v == -v - 1``."""
    v = Value.cast(v)
    return v if v.shape().signed else Cat(v, Const(0, 1)).as_signed()


def _negatable(v: Value, negative: Value, zero: Value | None = None) -> tuple[Value, Value]:
    """``(t, c)`` with ``t + c == (0 if zero else -v if negative else v)``.

    Two's complement negation is inversion plus one: the inversion is an XOR that folds into the
    adder tree's LUTs, and the ``+ 1`` bits ``c`` of all terms are summed once by a popcount,
    instead of one carry chain per negated term.
    """
    v = _signed(v)
    t = Mux(negative, ~v, v)
    if zero is None:
        return t, negative
    return Mux(zero, 0, t), negative & ~zero


def _sum_negatable(
    m: Module, terms: list[tuple[Value, Value]], name: str, en: Value | None, stages: int
) -> Value:
    """``sum(t) + popcount(c)`` of :func:`_negatable` pairs; with ``en``, both trees hold
    ``stages`` register stages (:func:`_tree`, :func:`_count`)."""
    return _tree(m, [t for t, _ in terms], name, en, stages) + _count(
        m, [c for _, c in terms], f"{name}_neg", en, stages
    )


def _tree(m: Module, values: list[Value], name: str, en: Value | None, stages: int) -> Value:
    """``tree_sum(values)``; with ``en`` (``pipeline >= 3``) ``stages`` register stages at
    :func:`lowbit.hw.fmax.adder_tree_cuts`."""
    if en is None:
        return tree_sum(values)
    cuts = tuple(level for level, _ in adder_tree_cuts(len(values), 1, stages))
    return staged_tree_sum(m, values, cut=cuts, en=en, name=name)


def _count(m: Module, bits: list[Value], name: str, en: Value | None, stages: int) -> Value:
    """``popcount(bits)`` (single signals); with ``en`` ``stages`` register stages at
    :func:`lowbit.hw.fmax.popcount_cuts`."""
    if en is None:
        return popcount(m, bits, name=name)
    cuts = tuple(level for level, _ in popcount_cuts(len(bits), 1, stages))
    return popcount(m, bits, name=name, cut=cuts, en=en)


def _pow2_term(x: Value, code: Value, bits: int, bipolar_input: bool) -> tuple[Value, Value]:
    """``x * w`` for a power-of-two weight code (low ``bits - 1`` bits: 0 or exponent + 1; sign on
    top), as a :func:`_negatable` pair."""
    exp_code, sign = code[: bits - 1], code[bits - 1]
    zero = exp_code == 0
    max_shift = (1 << (bits - 1)) - 2
    shift = (exp_code - 1)[: max(1, max_shift.bit_length())]
    if bipolar_input:  # (2b - 1) * (+-2^e): negative when the bit and the sign agree on "negative"
        return _negatable(Const(1, max_shift + 1) << shift, ~(x ^ sign), zero)
    return _negatable(x << shift, sign, zero)


def lane_dot(
    m: Module,
    spec,
    x: list[Value],
    lane: Value,
    name: str = "lane",
    shared: dict | None = None,
    en: Value | None = None,
) -> Value:
    """One lane's parallel dot product of inputs ``x`` (``SIMD`` stored elements) and its weight
    bits.

    ``lane`` holds ``SIMD * spec.weight_bits`` bits laid out as :meth:`MVTUSpec.encode_lane`. The
    result is the accumulator contribution: a popcount for :attr:`MacKind.XNOR`, else the exact sum
    of the products of values. ``shared`` (one dict for all lanes of a unit) holds terms that
    depend on the inputs only, such as ``sum(x)`` of :attr:`MacKind.ADDSUB`, built once.

    With ``spec.pipeline >= 3`` each popcount holds :func:`lowbit.hw.fmax.tree_stages` register
    stages at :func:`lowbit.hw.fmax.popcount_cuts`, each adder tree as many at
    :func:`lowbit.hw.fmax.adder_tree_cuts` (the shared ``sum(x)`` too), loaded when ``en`` is
    high, and the contribution arrives that many cycles later.
    """
    kind, simd, wb = spec.kind, spec.simd, spec.weight_bits
    bipolar_in = spec.node.binary_input
    shared = {} if shared is None else shared
    stages = tree_stages(spec.pipeline)
    tree_en = en if stages else None

    def cut(fanin: int) -> dict:
        if not stages:
            return {}
        return {"cut": tuple(level for level, _ in popcount_cuts(simd, fanin, stages)), "en": en}

    if kind is MacKind.XNOR:
        return popcount(m, [~(x[i] ^ lane[i]) for i in range(simd)], fanin=2, name=name, **cut(2))
    if kind is MacKind.ADDSUB:
        # sum(w ? x : -x) = 2 * sum(w ? x : 0) - sum(x): a masked tree per lane, sum(x) shared
        if "xsum" not in shared:
            total = _tree(m, list(x), "xsum", tree_en, stages)
            shared["xsum"] = Signal(total.shape(), name="xsum")
            m.d.comb += shared["xsum"].eq(total)
        masked = _tree(m, [Mux(lane[i], x[i], 0) for i in range(simd)], name, tree_en, stages)
        return (masked << 1) - shared["xsum"]
    if kind is MacKind.TERNARY:
        nz, pos = lane[:simd], lane[simd : 2 * simd]
        if bipolar_in:
            agree = popcount(
                m,
                [nz[i] & ~(x[i] ^ pos[i]) for i in range(simd)],
                fanin=3,
                name=f"{name}_agree",
                **cut(3),
            )
            nzc = popcount(m, [nz[i] for i in range(simd)], name=f"{name}_nz", **cut(1))
            return (agree << 1) - nzc
        return _sum_negatable(
            m, [_negatable(x[i], ~pos[i], ~nz[i]) for i in range(simd)], name, tree_en, stages
        )
    w = [lane[i * wb : (i + 1) * wb] for i in range(simd)]
    if kind is MacKind.SHIFT:
        return _sum_negatable(
            m, [_pow2_term(x[i], w[i], wb, bipolar_in) for i in range(simd)], name, tree_en, stages
        )
    if kind is MacKind.MULTIBIT:
        if bipolar_in:
            return _sum_negatable(
                m, [_negatable(w[i].as_signed(), ~x[i]) for i in range(simd)], name, tree_en, stages
            )
        # shift-add partial products (x AND weight bit k, shifted; the sign bit subtracts): LUTs and
        # carry chains only, so synthesis infers no DSP for these narrow products
        parts = [Mux(w[i][k], x[i] << k, 0) for i in range(simd) for k in range(wb - 1)]
        top = [_negatable(x[i], 1, ~w[i][wb - 1]) for i in range(simd)]
        return _tree(m, parts + [t << (wb - 1) for t, _ in top], name, tree_en, stages) + (
            _count(m, [c for _, c in top], f"{name}_neg", tree_en, stages) << (wb - 1)
        )
    raise ValueError(f"unknown MAC kind {kind!r}")
