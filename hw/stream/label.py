"""Label select: collect the last layer's scores of one image and emit them with the argmax.

Input: beats of ``PE`` integer scores, ``classes / PE`` beats per image, class ``k * PE + p`` in
lane ``p`` of beat ``k``. Output: one beat per image, a struct of ``label`` and all ``scores``.
Ties go to the lowest class index (strict ``>`` while scanning upwards), as ``numpy.argmax`` and
``sw_reference.argmax_lowest`` do.

With ``top_k = k > 1`` the result also holds ``top``: the ``k`` best classes, best first, ties to
the lower index (a stable descending sort of the scores), kept as a sorted list into which each
beat's ``PE`` scores are inserted in class order.

With a :class:`~lowbit.ir.boundary.ClassMap`, every lane first maps its score ``v`` of class ``c``
to ``mult[c] * v + offset[c]`` (the constants of the lane's class in this beat, selected by the
beat counter), and the arg-max and the top ``k`` compare these mapped values, in two's complement
of ``ClassMap.bits`` of the score register's range (all arithmetic modulo that width, which holds
every exact result). The multipliers are adders, never a DSP: shift-add or partial products, as
:func:`lowbit.hw.cost.class_map_lanes` says. The result's ``scores`` stay the raw integer scores:
software knows the map from the graph. Without a map the design is the plain arg-max.

``pipeline=1`` (with ``top_k`` 1) splits the compare-and-select chain over a beat's ``PE`` lanes:
a balanced tree of them (ties to the lower lane) finds the beat's maximum, registered, and one
step merges it with the running best; the result beat leaves one cycle later
(:meth:`LabelSelectSpec.latency`). ``pipeline=p`` up to :func:`max_label_pipeline` (the tree's
``ceil(log2 PE)`` levels) cuts that tree into ``p`` register stages of at most ``ceil(levels / p)``
compare-and-select levels each, one cycle of latency per stage: at the deepest, every cycle holds
one comparison. :meth:`LabelSelectSpec.after` pipelines the label select when the unit before it is
pipelined: one stage after depth 1 or 2, the deepest after depth 3 to 6 (the depths for Fmax).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...ir.boundary import ClassMap
from ...ir.resources import Resources
from ...sw_reference import argmax_lowest
from ..cost import MapLane, class_map_lanes, label_select_resources, naf
from ..fmax import LogicPath, label_paths

__all__ = ["LabelSelectSpec", "LabelSelect", "max_label_pipeline"]


@dataclass(frozen=True)
class LabelSelectSpec:
    """The label select after the last unit: ``classes`` scores of ``score_bits`` bits (two's
    complement when ``signed``) arriving ``pe`` per beat; one result beat per image. With
    ``class_map``, the label is the arg-max of the mapped values (:class:`ClassMap`)."""

    classes: int
    pe: int
    score_bits: int
    signed: bool = True
    top_k: int = 1
    class_map: ClassMap | None = None
    pipeline: int = 0

    node = None

    def __post_init__(self):
        for name in ("classes", "pe", "score_bits", "top_k"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if self.classes % self.pe:
            raise ValueError(f"PE ({self.pe}) must divide classes ({self.classes})")
        _check_class_map(self.class_map, self.classes)
        _check_label_pipeline(self.pipeline, self.top_k, self.pe)

    @classmethod
    def after(cls, spec) -> "LabelSelectSpec":
        """The label select that follows the unit ``spec`` emitting the scores (with the class
        map of its node)."""
        return cls(
            spec.out_size,
            spec.out_elems,
            spec.out_bits,
            signed=spec.node.output_dtype.signed,
            class_map=getattr(spec.node, "class_map", None),
            pipeline=_follow(getattr(spec, "pipeline", 0), spec.out_elems),
        )

    in_elems = property(lambda self: self.pe)
    out_elems = property(lambda self: 1)
    in_bits = property(lambda self: self.score_bits)
    in_size = property(lambda self: self.classes)
    out_size = property(lambda self: 1)

    @property
    def value_bits(self) -> int:
        """Bits of the values the arg-max compares: the scores', or with a class map the two's
        complement width of every mapped value of the score register's range."""
        if self.class_map is None:
            return self.score_bits
        shape = signed(self.score_bits) if self.signed else unsigned(self.score_bits)
        return _value_shape(shape, self.class_map).width

    @property
    def out_bits(self) -> int:
        """Bits of the result beat: the label and every score."""
        return max(1, (self.classes - 1).bit_length()) + self.classes * self.score_bits

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        """One beat of ``PE`` scores per cycle: ``classes / PE`` cycles per image."""
        return vectors * (self.classes // self.pe)

    def latency(self) -> int:
        """Cycles from the handshake of an image's last score beat to its result beat's, output
        ready: 1, plus 1 per pipeline stage."""
        return 1 + self.pipeline

    def logic_paths(self, family: str | None = None) -> tuple[LogicPath, ...]:
        """The register-to-register paths at this depth (:func:`lowbit.hw.fmax.label_paths`; the
        same on every family)."""
        return label_paths(self)

    def resources(self) -> Resources:
        base = label_select_resources(
            self.classes, self.score_bits, self.pe, class_map=self.class_map, signed=self.signed
        )
        if not self.pipeline:
            return base
        index_bits = max(1, (self.classes - 1).bit_length())
        ff = self.value_bits + index_bits + 3
        lane_bits = max(1, (self.pe - 1).bit_length())
        beat_bits = max(1, (self.classes // self.pe - 1).bit_length())
        for n in _stage_widths(self.pe, self.pipeline)[:-1]:  # the stages before the last
            ff += n * (self.value_bits + lane_bits) + self.pe * self.score_bits + beat_bits + 3
        return base + Resources(ff=ff)

    def reference(self, scores) -> np.ndarray:
        """The label of each row of ``scores``: the lowest index of the maximum (of the mapped
        values with a class map)."""
        if self.class_map is not None:
            return self.class_map.decide(scores)
        return argmax_lowest(np.asarray(scores))

    def create(self) -> "LabelSelect":
        shape = signed(self.score_bits) if self.signed else unsigned(self.score_bits)
        return LabelSelect(
            shape,
            classes=self.classes,
            pe=self.pe,
            top_k=self.top_k,
            class_map=self.class_map,
            pipeline=self.pipeline,
        )


def _value_shape(score_shape, class_map: ClassMap | None):
    """The shape of the values the arg-max compares: the scores', or the mapped values' (two's
    complement, ``ClassMap.bits`` of the score register's range)."""
    if class_map is None:
        return score_shape
    shape = Shape.cast(score_shape)
    w = shape.width
    lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if shape.signed else (0, (1 << w) - 1)
    return signed(class_map.bits(lo, hi))


def max_label_pipeline(pe: int) -> int:
    """The deepest ``pipeline=`` of a label select of ``pe`` lanes: one stage per level of its
    beat tree (``ceil(log2 PE)``), at least 1."""
    return max(1, math.ceil(math.log2(pe))) if pe > 1 else 1


def _follow(unit_pipeline: int, pe: int) -> int:
    """The label select's depth after a unit at ``unit_pipeline``: 0, 1 after depth 1 or 2, the
    deepest after 3 to 6 (an MVTU's depths for Fmax, up to
    :data:`lowbit.hw.mvtu.spec.MAX_PIPELINE`)."""
    if not unit_pipeline:
        return 0
    return 1 if unit_pipeline <= 2 else max_label_pipeline(pe)


def _stage_widths(pe: int, pipeline: int) -> list[int]:
    """How many (value, lane) pairs enter each of the ``pipeline`` tree stages (the first gets
    the ``PE`` lanes), the tree's levels dealt out ``ceil(levels / pipeline)`` per stage."""
    levels = max_label_pipeline(pe) if pe > 1 else 0
    per = math.ceil(levels / pipeline) if levels else 0
    widths, n = [], pe
    for _ in range(pipeline):
        widths.append(n)
        for _ in range(per):
            n = (n + 1) // 2
    return widths


def _check_label_pipeline(pipeline, top_k: int, pe: int) -> None:
    deepest = max_label_pipeline(pe)
    if (
        not isinstance(pipeline, int)
        or isinstance(pipeline, bool)
        or not 0 <= pipeline <= deepest
    ):
        raise ValueError(
            f"label select: pipeline must be in [0, {deepest}] for PE {pe}, not {pipeline!r}"
        )
    if pipeline and top_k > 1:
        raise ValueError(f"label select: pipeline={pipeline} takes top_k=1, not {top_k!r}")


def _check_class_map(class_map, classes: int) -> None:
    if class_map is None:
        return
    if not isinstance(class_map, ClassMap):
        raise TypeError(f"class_map must be a ClassMap or None, not {class_map!r}")
    if class_map.classes != classes:
        raise ValueError(
            f"class_map has {class_map.classes} classes, but the label select takes {classes}"
        )


class LabelSelect(wiring.Component):
    def __init__(
        self,
        score_shape,
        *,
        classes: int,
        pe: int,
        top_k: int = 1,
        class_map: ClassMap | None = None,
        pipeline: int = 0,
    ):
        if not isinstance(classes, int) or classes < 1:
            raise ValueError(f"classes must be a positive integer, not {classes!r}")
        if not isinstance(pe, int) or pe < 1 or classes % pe:
            raise ValueError(f"PE ({pe}) must divide classes ({classes})")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= classes:
            raise ValueError(f"top_k must be an integer in [1, classes={classes}], not {top_k!r}")
        _check_class_map(class_map, classes)
        _check_label_pipeline(pipeline, top_k, pe)
        self.pipeline = pipeline
        self.score_shape, self.classes, self.pe, self.top_k = score_shape, classes, pe, top_k
        self.class_map = class_map
        self.value_shape = _value_shape(score_shape, class_map)
        members = {"label": range(classes), "scores": data.ArrayLayout(score_shape, classes)}
        if top_k > 1:
            members["top"] = data.ArrayLayout(range(classes), top_k)
        self.result_layout = data.StructLayout(members)
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(score_shape, pe))),
                "o": Out(stream.Signature(self.result_layout)),
            }
        )

    def elaborate(self, platform):
        if self.pipeline:
            return self._elaborate_pipelined()
        m = Module()
        beats = self.classes // self.pe
        beat = Signal(range(beats))
        best = Signal(self.value_shape)
        best_idx = Signal(range(self.classes))
        scores = Signal(data.ArrayLayout(self.score_shape, self.classes))
        out_valid = Signal()

        in_fire = Signal()
        m.d.comb += [
            self.i.ready.eq(~out_valid | self.o.ready),
            in_fire.eq(self.i.valid & self.i.ready),
            self.o.valid.eq(out_valid),
        ]
        values = self._values(m, beat)
        # Running maximum across this beat's lanes, seeded by the previous beats' result.
        cur, cur_idx = best, best_idx
        for p in range(self.pe):
            v = values[p]
            idx = beat * self.pe + p
            take = (v > cur) | ((beat == 0) & (p == 0))
            cur, cur_idx = Mux(take, v, cur), Mux(take, idx, cur_idx)
        with m.If(in_fire):
            m.d.sync += [best.eq(cur), best_idx.eq(cur_idx)]
            for k in range(beats):
                with m.If(beat == k):
                    for p in range(self.pe):
                        m.d.sync += scores[k * self.pe + p].eq(self.i.payload[p])
            with m.If(beat == beats - 1):
                m.d.sync += beat.eq(0)
            with m.Else():
                m.d.sync += beat.eq(beat + 1)

        last_fire = in_fire & (beat == beats - 1)
        with m.If(last_fire):
            m.d.sync += out_valid.eq(1)
            m.d.sync += self.o.payload.label.eq(cur_idx)
            for c in range(self.classes - self.pe):
                m.d.sync += self.o.payload.scores[c].eq(scores[c])
            for p in range(self.pe):
                m.d.sync += self.o.payload.scores[self.classes - self.pe + p].eq(self.i.payload[p])
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)
        if self.top_k > 1:
            self._top_k(m, beat, in_fire, last_fire, values)
        return m

    def _elaborate_pipelined(self):
        """``pipeline >= 1``: the beat's maximum (a tree over the lanes, cut into ``pipeline``
        stages) registered, then merged with the running best; every stage moves when the result
        register is free or taken. The scores are stored as a beat enters the last tree stage, so
        the result beat reads them before the next image's first beat overwrites any."""
        m = Module()
        beats = self.classes // self.pe
        beat = Signal(range(beats))
        best = Signal(self.value_shape)
        best_idx = Signal(range(self.classes))
        scores = Signal(data.ArrayLayout(self.score_shape, self.classes))
        out_valid, in_fire, stall = Signal(), Signal(), Signal()
        m.d.comb += [
            stall.eq(out_valid & ~self.o.ready),
            self.i.ready.eq(~stall),
            in_fire.eq(self.i.valid & self.i.ready),
            self.o.valid.eq(out_valid),
        ]
        values = self._values(m, beat)
        # The beat's maximum: a balanced tree of (value, lane), the lower lane kept on ties.
        level = [(values[p], Const(p, range(self.pe))) for p in range(self.pe)]
        widths = _stage_widths(self.pe, self.pipeline)
        # what travels with the beat through the stages before the last one
        v_s, beat_s, payload_s = in_fire, beat, self.i.payload
        for s, n_next in enumerate(widths[1:], start=1):
            while len(level) > n_next:
                level = _tree_level(level)
            regs = []
            for j, (v, i) in enumerate(level):
                rv = Signal(self.value_shape, name=f"s{s}_v{j}")
                ri = Signal(range(self.pe), name=f"s{s}_i{j}")
                regs.append((rv, ri))
                with m.If(~stall):
                    m.d.sync += [rv.eq(v), ri.eq(i)]
            nv, nb = Signal(name=f"s{s}_valid"), Signal(range(beats), name=f"s{s}_beat")
            npay = Signal.like(self.i.payload, name=f"s{s}_payload")
            with m.If(~stall):
                m.d.sync += [nv.eq(v_s), nb.eq(beat_s), npay.eq(payload_s)]
            level, v_s, beat_s, payload_s = regs, nv, nb, npay
        while len(level) > 1:
            level = _tree_level(level)
        beat_max = Signal(self.value_shape, name="beat_max")
        beat_idx = Signal(range(self.classes), name="beat_idx")
        v_b, first_b, last_b = Signal(name="v_b"), Signal(name="first_b"), Signal(name="last_b")
        with m.If(~stall):
            m.d.sync += [
                beat_max.eq(level[0][0]),
                beat_idx.eq(beat_s * self.pe + level[0][1]),
                v_b.eq(v_s),
                first_b.eq(beat_s == 0),
                last_b.eq(beat_s == beats - 1),
            ]
        with m.If(v_s & ~stall):  # the beat enters the last stage: store its scores
            for k in range(beats):
                with m.If(beat_s == k):
                    for p in range(self.pe):
                        m.d.sync += scores[k * self.pe + p].eq(payload_s[p])
        with m.If(in_fire):
            with m.If(beat == beats - 1):
                m.d.sync += beat.eq(0)
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
        take = (beat_max > best) | first_b
        cur, cur_idx = Mux(take, beat_max, best), Mux(take, beat_idx, best_idx)
        with m.If(v_b & ~stall):
            m.d.sync += [best.eq(cur), best_idx.eq(cur_idx)]
        with m.If(~stall):
            m.d.sync += out_valid.eq(v_b & last_b)
            with m.If(v_b & last_b):  # every score is in the register by now
                m.d.sync += self.o.payload.label.eq(cur_idx)
                for c in range(self.classes):
                    m.d.sync += self.o.payload.scores[c].eq(scores[c])
        return m

    def _values(self, m, beat) -> list:
        """What each lane compares: its score, or with a class map the mapped value
        ``mult[c] * score + offset[c]`` of its class ``c = beat * PE + lane`` (signal
        ``map<lane>``)."""
        if self.class_map is None:
            return [self.i.payload[p] for p in range(self.pe)]
        shape = Shape.cast(self.score_shape)
        width = self.value_shape.width
        lanes = class_map_lanes(self.class_map, self.pe, shape.width, shape.signed)
        out = []
        for p, lane in enumerate(lanes):
            v = self.i.payload[p]
            mapped = Signal(signed(width), name=f"map{p}")
            prod = _lane_product(m, lane, v, shape, beat, width, f"map{p}")
            if any(lane.offsets):
                off = _select(m, lane.offsets, beat, signed(width), f"map{p}_offset")
                m.d.comb += mapped.eq(prod + off)
            else:
                m.d.comb += mapped.eq(prod)
            out.append(mapped)
        return out

    def _top_k(self, m, beat, in_fire, last_fire, values):
        """A sorted list of ``top_k`` (value, class, valid); each lane is inserted in class
        order."""
        k = self.top_k
        vals = [Signal(self.value_shape, name=f"top_v{j}") for j in range(k)]
        idxs = [Signal(range(self.classes), name=f"top_i{j}") for j in range(k)]
        oks = [Signal(name=f"top_ok{j}") for j in range(k)]
        cur = [(Mux(beat == 0, 0, o), v, i) for o, v, i in zip(oks, vals, idxs)]
        for p in range(self.pe):
            v, i = values[p], beat * self.pe + p
            keep = [ok & (cv >= v) for ok, cv, _ in cur]
            nxt = []
            for j in range(k):
                take_new = ~keep[j] & (1 if j == 0 else keep[j - 1])
                prev = cur[j - 1] if j else cur[j]
                nxt.append(
                    tuple(
                        Mux(keep[j], a, Mux(take_new, b, c))
                        for a, b, c in zip(cur[j], (1, v, i), prev)
                    )
                )
            cur = nxt
        with m.If(in_fire):
            for (o, v, i), so, sv, si in zip(cur, oks, vals, idxs):
                m.d.sync += [so.eq(o), sv.eq(v), si.eq(i)]
        with m.If(last_fire):
            for j, (_, _, i) in enumerate(cur):
                m.d.sync += self.o.payload.top[j].eq(i)


def _tree_level(level: list) -> list:
    """One level of the arg-max tree over ``(value, lane)`` pairs: neighbours compared, the lower
    lane kept on ties, an odd last pair passed on."""
    nxt = []
    for a in range(0, len(level) - 1, 2):
        (va, ia), (vb, ib) = level[a], level[a + 1]
        take_b = vb > va
        nxt.append((Mux(take_b, vb, va), Mux(take_b, ib, ia)))
    return nxt + level[len(level) - len(level) % 2 :]


def _select(m, consts, beat, shape, name):
    """``consts[beat]``: the constant itself when there is one, else a signal the beat counter
    selects it into."""
    if len(set(consts)) == 1:
        return Const(consts[0], shape)
    sig = Signal(shape, name=name)
    with m.Switch(beat):
        for k, c in enumerate(consts):
            with m.Case(k):
                m.d.comb += sig.eq(c)
    return sig


def _sum(m, pos, neg, width, name):
    """``sum(pos) - sum(neg)`` modulo ``2^width`` (signed): a balanced tree of adders, each a
    ``width``-bit signal, then one subtraction (:func:`lowbit.hw.cost.class_map_lanes` counts
    them)."""

    def tree(terms, tag):
        level = 0
        while len(terms) > 1:
            nxt = []
            for i in range(0, len(terms) - 1, 2):
                s = Signal(signed(width), name=f"{name}_{tag}{level}_{i // 2}")
                m.d.comb += s.eq(terms[i] + terms[i + 1])
                nxt.append(s)
            terms = nxt + terms[len(terms) - len(terms) % 2 :]
            level += 1
        return terms[0] if terms else None

    p, n = tree(list(pos), "p"), tree(list(neg), "n")
    if n is None:
        return Const(0, signed(width)) if p is None else p
    out = Signal(signed(width), name=f"{name}_sum")
    m.d.comb += out.eq(-n if p is None else p - n)
    return out


def _lane_product(m, lane: MapLane, v, shape, beat, width, name):
    """``mults[beat] * v`` modulo ``2^width``, as :class:`~lowbit.hw.cost.MapLane` says: shift-add
    products of the lane's distinct multipliers selected by the beat, or the partial products of
    ``v``'s bits with the multiplier the beat selects."""
    vs = v if shape.signed else Cat(v, Const(0, 1)).as_signed()  # signed arithmetic throughout
    if lane.shift_add:
        products: dict[int, Value] = {}
        for c in sorted(set(lane.mults)):
            digits = naf(c)
            tag = f"{name}_m{len(products)}"
            products[c] = _sum(
                m,
                [vs << j for j, d in digits if d > 0],
                [vs << j for j, d in digits if d < 0],
                width,
                tag,
            )
        if len(products) == 1:
            return products[lane.mults[0]]
        prod = Signal(signed(width), name=f"{name}_prod")
        with m.Switch(beat):
            for k, c in enumerate(lane.mults):
                with m.Case(k):
                    m.d.comb += prod.eq(products[c])
        return prod
    mult = _select(m, lane.mults, beat, signed(lane.mult_bits), f"{name}_mult")
    bits = shape.width
    top = bits - 1 if shape.signed else bits  # two's complement: the top bit weighs -2^(b-1)
    pos = [Mux(v[j], mult << j, 0) for j in range(top)]
    neg = [Mux(v[j], mult << j, 0) for j in range(top, bits)]
    return _sum(m, pos, neg, width, name)
