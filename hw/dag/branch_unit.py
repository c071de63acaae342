"""Components of the fork and the adder/joiner (specs: :mod:`lowbit.hw.dag.branch`)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...ir.datatypes import DataType, Kind, signed_bits
from .._util import pack_words, tree_sum
from .branch import AddSpec, ForkSpec

__all__ = ["StreamFork", "AddThresholdUnit"]


def _shape(dtype: DataType):
    if dtype.kind is Kind.BIPOLAR:
        return unsigned(1)
    return signed(dtype.bits) if dtype.signed else unsigned(dtype.bits)


def _value(x, dtype: DataType):
    """The signed value of a stored element (``2b - 1`` for a bipolar bit)."""
    if dtype.kind is Kind.BIPOLAR:
        return Cat(Const(1, 1), x, Const(0, 1)).as_signed() - 2  # 2b + 1 - 2
    return x


class StreamFork(wiring.Component):
    """Ports ``i`` in, ``a`` and ``b`` out, each output with its own register."""

    def __init__(self, spec: ForkSpec):
        if not isinstance(spec, ForkSpec):
            raise TypeError(f"spec must be a ForkSpec, not {spec!r}")
        self.spec = spec
        layout = data.ArrayLayout(_shape(spec.dtype), spec.simd)
        super().__init__(
            {
                "i": In(stream.Signature(layout)),
                "a": Out(stream.Signature(layout)),
                "b": Out(stream.Signature(layout)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        outs = (self.a, self.b)
        free = [~o.valid | o.ready for o in outs]
        fire = Signal()
        m.d.comb += [
            self.i.ready.eq(free[0] & free[1]),
            fire.eq(self.i.valid & self.i.ready),
        ]
        for o in outs:
            with m.If(fire):
                m.d.sync += [o.valid.eq(1), o.payload.eq(self.i.payload)]
            with m.Elif(o.ready):
                m.d.sync += o.valid.eq(0)
        return m


class AddThresholdUnit(wiring.Component):
    """Ports ``a`` and ``b`` in, ``o`` out, ``PE`` elements per beat."""

    def __init__(self, spec: AddSpec):
        if not isinstance(spec, AddSpec):
            raise TypeError(f"spec must be an AddSpec, not {spec!r}")
        self.spec = spec
        pe = spec.pe
        super().__init__(
            {
                "a": In(stream.Signature(data.ArrayLayout(_shape(spec.a_dtype), pe))),
                "b": In(stream.Signature(data.ArrayLayout(_shape(spec.b_dtype), pe))),
                "o": Out(stream.Signature(data.ArrayLayout(_shape(spec.out_dtype), pe))),
            }
        )

    def threshold_image(self) -> list[int]:
        s, t = self.spec, self.spec.thresholds
        if t is None:
            raise ValueError(f"{s.name} has no thresholds")
        return [
            pack_words([v for p in range(s.pe) for v in t[f * s.pe + p]], s.acc_bits)
            for f in range(s.folds)
        ]

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        out_valid, take, fire = Signal(), Signal(), Signal()
        m.d.comb += [
            take.eq(~out_valid | self.o.ready),
            self.a.ready.eq(self.b.valid & take),
            self.b.ready.eq(self.a.valid & take),
            fire.eq(self.a.valid & self.b.valid & take),
            self.o.valid.eq(out_valid),
        ]
        k = 0 if s.thresholds is None else s.thresholds.shape[1]
        fold = Signal(range(s.folds))
        with m.If(fire):
            m.d.sync += fold.eq(Mux(fold == s.folds - 1, 0, fold + 1))
        if k:
            m.submodules.tmem = tmem = memory.Memory(
                shape=unsigned(s.pe * k * s.acc_bits), depth=s.folds, init=self.threshold_image()
            )
            rd = tmem.read_port(domain="comb")
            m.d.comb += rd.addr.eq(fold)
        scale = {}  # per input: a constant, or per lane a word of a per-fold memory
        for which in ("a", "b"):
            v = s.scales(which)
            if (v == v[0]).all():
                scale[which] = [int(v[0])] * s.pe
                continue
            bits = signed_bits(int(v.min()), int(v.max()))
            m.submodules[f"smem_{which}"] = smem = memory.Memory(
                shape=unsigned(s.pe * bits),
                depth=s.folds,
                init=[pack_words(v[f * s.pe : (f + 1) * s.pe], bits) for f in range(s.folds)],
            )
            srd = smem.read_port(domain="comb")
            m.d.comb += srd.addr.eq(fold)
            scale[which] = [srd.data[p * bits : (p + 1) * bits].as_signed() for p in range(s.pe)]
        values = Signal.like(self.o.payload)
        tb = s.acc_bits
        for p in range(s.pe):
            acc = Signal(signed(tb), name=f"acc{p}")
            m.d.comb += acc.eq(
                scale["a"][p] * _value(self.a.payload[p], s.a_dtype)
                + scale["b"][p] * _value(self.b.payload[p], s.b_dtype)
            )
            if k:
                thr = [
                    rd.data[(p * k + j) * tb : (p * k + j + 1) * tb].as_signed() for j in range(k)
                ]
                count = tree_sum([acc >= t for t in thr])
                m.d.comb += values[p].eq(count + s.out_bias if s.out_bias else count)
            else:
                m.d.comb += values[p].eq(acc)
        with m.If(fire):
            m.d.sync += [out_valid.eq(1), self.o.payload.eq(values)]
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)
        return m
