"""Label select: collect the last layer's scores of one image and emit them with the argmax.

Input: beats of ``PE`` integer scores, ``classes / PE`` beats per image, class ``k * PE + p`` in
lane ``p`` of beat ``k``. Output: one beat per image, a struct of ``label`` and all ``scores``.
Ties go to the lowest class index (strict ``>`` while scanning upwards), as ``numpy.argmax`` and
``sw_reference.argmax_lowest`` do.

With ``top_k = k > 1`` the result also holds ``top``: the ``k`` best classes, best first, ties to
the lower index (a stable descending sort of the scores), kept as a sorted list into which each
beat's ``PE`` scores are inserted in class order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...ir.resources import Resources
from ...sw_reference import argmax_lowest
from ..cost import label_select_resources

__all__ = ["LabelSelectSpec", "LabelSelect"]


@dataclass(frozen=True)
class LabelSelectSpec:
    """The label select after the last unit: ``classes`` scores of ``score_bits`` bits (two's
    complement when ``signed``) arriving ``pe`` per beat; one result beat per image."""

    classes: int
    pe: int
    score_bits: int
    signed: bool = True
    top_k: int = 1

    node = None

    def __post_init__(self):
        for name in ("classes", "pe", "score_bits", "top_k"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if self.classes % self.pe:
            raise ValueError(f"PE ({self.pe}) must divide classes ({self.classes})")

    @classmethod
    def after(cls, spec) -> "LabelSelectSpec":
        """The label select that follows the unit ``spec`` emitting the scores."""
        return cls(
            spec.out_size, spec.out_elems, spec.out_bits, signed=spec.node.output_dtype.signed
        )

    in_elems = property(lambda self: self.pe)
    out_elems = property(lambda self: 1)
    in_bits = property(lambda self: self.score_bits)
    in_size = property(lambda self: self.classes)
    out_size = property(lambda self: 1)

    @property
    def out_bits(self) -> int:
        """Bits of the result beat: the label and every score."""
        return max(1, (self.classes - 1).bit_length()) + self.classes * self.score_bits

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        """One beat of ``PE`` scores per cycle: ``classes / PE`` cycles per image."""
        return vectors * (self.classes // self.pe)

    def resources(self) -> Resources:
        return label_select_resources(self.classes, self.score_bits, self.pe)

    def reference(self, scores) -> np.ndarray:
        """The label of each row of ``scores``: the lowest index of the maximum."""
        return argmax_lowest(np.asarray(scores))

    def create(self) -> "LabelSelect":
        shape = signed(self.score_bits) if self.signed else unsigned(self.score_bits)
        return LabelSelect(shape, classes=self.classes, pe=self.pe, top_k=self.top_k)


class LabelSelect(wiring.Component):
    def __init__(self, score_shape, *, classes: int, pe: int, top_k: int = 1):
        if not isinstance(classes, int) or classes < 1:
            raise ValueError(f"classes must be a positive integer, not {classes!r}")
        if not isinstance(pe, int) or pe < 1 or classes % pe:
            raise ValueError(f"PE ({pe}) must divide classes ({classes})")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= classes:
            raise ValueError(f"top_k must be an integer in [1, classes={classes}], not {top_k!r}")
        self.score_shape, self.classes, self.pe, self.top_k = score_shape, classes, pe, top_k
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
        m = Module()
        beats = self.classes // self.pe
        beat = Signal(range(beats))
        best = Signal(self.score_shape)
        best_idx = Signal(range(self.classes))
        scores = Signal(data.ArrayLayout(self.score_shape, self.classes))
        out_valid = Signal()

        in_fire = Signal()
        m.d.comb += [
            self.i.ready.eq(~out_valid | self.o.ready),
            in_fire.eq(self.i.valid & self.i.ready),
            self.o.valid.eq(out_valid),
        ]
        # Running maximum across this beat's lanes, seeded by the previous beats' result.
        cur, cur_idx = best, best_idx
        for p in range(self.pe):
            v = self.i.payload[p]
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
            self._top_k(m, beat, in_fire, last_fire)
        return m

    def _top_k(self, m, beat, in_fire, last_fire):
        """A sorted list of ``top_k`` (score, class, valid); each lane is inserted in class
        order."""
        k = self.top_k
        vals = [Signal(self.score_shape, name=f"top_v{j}") for j in range(k)]
        idxs = [Signal(range(self.classes), name=f"top_i{j}") for j in range(k)]
        oks = [Signal(name=f"top_ok{j}") for j in range(k)]
        cur = [(Mux(beat == 0, 0, o), v, i) for o, v, i in zip(oks, vals, idxs)]
        for p in range(self.pe):
            v, i = self.i.payload[p], beat * self.pe + p
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
