"""Standalone MultiThreshold unit: integer accumulator values in, k-bit activations out.

``out[c] = lo + sum_i [acc[c] >= T[c, i]]`` (``ARITHMETIC.md`` section 2): one threshold gives a
bipolar output (a bit), ``2^k - 1`` give ``UINTk`` (``lo = 0``) or, with ``output_dtype`` ``INTk``,
the signed codes (``lo = -2^(k-1)``). Input beats carry ``PE`` channels; channels cycle through
``C / PE`` folds (pixel after pixel), so the thresholds of fold ``f`` live in word ``f`` of a small
read-only memory. One beat per cycle; an output register with the usual stall rule.

``pipeline`` (0 to 2) adds register stages, stalling together with the output register: at 1 the
comparison bits are registered before they are counted; at 2 the input beat is registered too and
the thresholds are read synchronously beside it, so the comparators start at registers. Each adds
one cycle of :meth:`ThresholdSpec.latency`.

:class:`ThresholdNodeSpec` is the unit of a :class:`~lowbit.ir.graph.Threshold` node of the graph
(the registry's family for it): the input threshold unit that turns fixed-point pixels on the
wire into the model's input codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...ir.datatypes import BIPOLAR, DataType, Kind
from ...ir.graph import Threshold
from ...ir.resources import Resources
from ...sw_reference import multithreshold
from .._util import pack_words, tree_sum
from ..cost import rom_resources
from ..fmax import LogicPath, threshold_paths
from ..mvtu.spec import check_pipeline
from ..mvtu.unit import element_shape

__all__ = ["ThresholdSpec", "ThresholdNodeSpec", "MultiThresholdUnit", "MAX_THRESHOLD_PIPELINE"]

MAX_THRESHOLD_PIPELINE = 2
"""The deepest ``pipeline=`` of a threshold unit: comparison register, then input register."""


@dataclass(frozen=True, eq=False)
class ThresholdSpec:
    """MultiThreshold of ``in_dtype`` values by ``thresholds`` ``(C, k)``, ``pe`` channels per
    beat."""

    thresholds: np.ndarray
    in_dtype: DataType
    pe: int
    name: str = field(default="threshold")
    output_dtype: DataType | None = None
    """``INTk`` for signed codes; ``None``: ``BIPOLAR`` for one threshold, else ``UINTk``."""
    pipeline: int = 0
    """Register stages (module docstring), 0 to :data:`MAX_THRESHOLD_PIPELINE`."""

    def __post_init__(self):
        t = np.asarray(self.thresholds)
        if t.ndim != 2 or t.dtype.kind not in "iu" or t.shape[1] < 1:
            raise ValueError(
                f"{self.name}: thresholds must be integers of shape (C, k), not {t.dtype} {t.shape}"
            )
        if (np.diff(t, axis=1) < 0).any():
            raise ValueError(f"{self.name}: each row of thresholds must be sorted ascending")
        k = t.shape[1]
        if k != 1 and (k + 1) & k:
            raise ValueError(f"{self.name}: a k-bit output needs 2^k - 1 thresholds, not {k}")
        if not isinstance(self.in_dtype, DataType) or self.in_dtype.kind.name not in (
            "UINT",
            "INT",
        ):
            raise TypeError(
                f"{self.name}: in_dtype must be a UINT or INT DataType, not {self.in_dtype!r}"
            )
        lo, hi = self.in_dtype.min, self.in_dtype.max
        if t.min() < lo or t.max() > hi + 1:
            raise ValueError(
                f"{self.name}: thresholds must lie in [{lo}, {hi + 1}] ({self.in_dtype} inputs), "
                f"found [{t.min()}, {t.max()}]"
            )
        if not isinstance(self.pe, int) or isinstance(self.pe, bool) or self.pe < 1:
            raise ValueError(f"{self.name}: PE must be a positive integer, not {self.pe!r}")
        if t.shape[0] % self.pe:
            raise ValueError(
                f"PE ({self.pe}) must divide the channels C ({t.shape[0]}) of {self.name}"
            )
        o = self.output_dtype
        if o is not None:
            kinds = (Kind.INT,) if k > 1 else (Kind.BIPOLAR,)
            if not isinstance(o, DataType) or o.kind not in kinds + (Kind.UINT,) or (
                k > 1 and (1 << o.bits) - 1 != k
            ):
                raise ValueError(
                    f"{self.name}: output_dtype {o!r} does not match {k} thresholds "
                    "(expected UINTk or INTk with 2^k - 1 of them, or BIPOLAR with one)"
                )
        check_pipeline(self.pipeline, MAX_THRESHOLD_PIPELINE, self.name)
        object.__setattr__(self, "thresholds", t.astype(np.int64))

    @property
    def channels(self) -> int:
        return self.thresholds.shape[0]

    @property
    def folds(self) -> int:
        return self.channels // self.pe

    @property
    def out_dtype(self) -> DataType:
        if self.output_dtype is not None:
            return self.output_dtype
        k = self.thresholds.shape[1]
        return BIPOLAR if k == 1 else DataType.uint((k + 1).bit_length() - 1)

    @property
    def out_bias(self) -> int:
        """The output of an input below every threshold (``-2^(k-1)`` for ``INTk``, else 0)."""
        return self.out_dtype.stored_range[0]

    @property
    def thr_bits(self) -> int:
        """Bits of a stored (signed) threshold: the input type widened to reach ``max + 1`` with a
        sign."""
        return self.in_dtype.bits + 2

    def cycles(self, pixels: int = 1) -> int:
        return pixels * self.folds

    node = None
    in_elems = out_elems = property(lambda self: self.pe)
    in_bits = property(lambda self: self.in_dtype.bits)
    out_bits = property(lambda self: element_shape(self.out_dtype).width)
    in_size = out_size = property(lambda self: self.channels)

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        """``C / PE`` cycles per vector (one vector per pixel)."""
        return self.cycles(vectors)

    def latency(self) -> int:
        """Cycles from an input beat's handshake to its output beat's, output ready: 1 plus one
        per pipeline stage."""
        return 1 + self.pipeline

    def logic_paths(self, family: str | None = None) -> tuple[LogicPath, ...]:
        """The register-to-register paths at this depth (:func:`lowbit.hw.fmax.threshold_paths`;
        the same on every family)."""
        return threshold_paths(self)

    def resources(self) -> Resources:
        k = self.thresholds.shape[1]
        rom, logic = rom_resources(self.folds, self.pe * k * self.thr_bits)
        extra = 0
        if self.pipeline:
            extra = self.pe * k + 1 + (self.pe * self.in_dtype.bits + 1 if self.pipeline > 1 else 0)
        return rom + Resources(
            lut=int(self.pe * k * self.thr_bits // 2 + logic) + 20,
            ff=self.pe * self.out_dtype.bits + 20 + extra,
        )

    def reference(self, acc: np.ndarray) -> np.ndarray:
        return multithreshold(acc, self.thresholds, self.out_bias)

    def create(self) -> "MultiThresholdUnit":
        return MultiThresholdUnit(self)


@dataclass(frozen=True, eq=False)
class ThresholdNodeSpec:
    """The unit of a :class:`~lowbit.ir.graph.Threshold` node on ``in_shape`` (a vector or an
    image, channels last), ``simd`` elements per beat in and out: a :class:`ThresholdSpec`
    (:attr:`unit`) whose folds cycle over the channels (one fold when the thresholds are shared).
    """

    ENGINE = "-"

    node: Threshold
    in_shape: tuple[int, ...]
    dtype: DataType
    simd: int
    pipeline: int = 0

    def __post_init__(self):
        if not isinstance(self.node, Threshold):
            raise TypeError(f"node must be a Threshold, not {type(self.node).__name__}")
        if self.dtype != self.node.input_dtype:
            raise ValueError(
                f"node {self.node.name!r}: takes {self.node.input_dtype}, not {self.dtype}"
            )
        c = self.in_shape[-1]
        if not isinstance(self.simd, int) or self.simd < 1 or c % self.simd:
            raise ValueError(
                f"node {self.node.name!r}: SIMD ({self.simd}) must divide the channels ({c})"
            )

    @property
    def unit(self) -> ThresholdSpec:
        t = self.node.thresholds
        if t.shape[0] == 1:
            t = np.repeat(t, self.simd, axis=0)
        return ThresholdSpec(
            t, self.dtype, self.simd, self.node.name, self.node.output_dtype, self.pipeline
        )

    in_elems = out_elems = property(lambda self: self.simd)
    in_bits = property(lambda self: element_shape(self.dtype).width)
    out_bits = property(lambda self: element_shape(self.node.output_dtype).width)
    in_size = out_size = property(lambda self: int(np.prod(self.in_shape)))

    def cycles(self) -> int:
        """One beat per cycle: ``size / SIMD`` cycles per image."""
        return self.in_size // self.simd

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        return self.cycles()

    def resources(self) -> Resources:
        return self.unit.resources()

    def latency(self) -> int:
        return self.unit.latency()

    def logic_paths(self, family: str | None = None) -> tuple[LogicPath, ...]:
        return self.unit.logic_paths(family)

    def schedule_options(self) -> dict:
        """The :class:`~lowbit.mapping.schedule.LayerFolding` options beyond PE and SIMD."""
        return {"pipeline": self.pipeline} if self.pipeline else {}

    def reference(self, x: np.ndarray) -> np.ndarray:
        return self.node.reference(x)

    def create(self) -> "MultiThresholdUnit":
        return MultiThresholdUnit(self.unit)


class MultiThresholdUnit(wiring.Component):
    def __init__(self, spec: ThresholdSpec):
        if not isinstance(spec, ThresholdSpec):
            raise TypeError(f"spec must be a ThresholdSpec, not {spec!r}")
        self.spec = spec
        self.in_shape = element_shape(spec.in_dtype)
        self.out_shape = element_shape(spec.out_dtype)
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(self.in_shape, spec.pe))),
                "o": Out(stream.Signature(data.ArrayLayout(self.out_shape, spec.pe))),
            }
        )

    def threshold_image(self) -> list[int]:
        s, t = self.spec, self.spec.thresholds
        return [
            pack_words([v for p in range(s.pe) for v in t[f * s.pe + p]], s.thr_bits)
            for f in range(s.folds)
        ]

    def elaborate(self, platform):
        if self.spec.pipeline:
            return self._elaborate_pipelined()
        m = Module()
        s = self.spec
        k, tb = s.thresholds.shape[1], s.thr_bits
        m.submodules.tmem = tmem = memory.Memory(
            shape=unsigned(s.pe * k * tb), depth=s.folds, init=self.threshold_image()
        )
        rd = tmem.read_port(domain="comb")
        fold = Signal(range(s.folds))
        out_valid, in_fire = Signal(), Signal()
        m.d.comb += [
            self.i.ready.eq(~out_valid | self.o.ready),
            in_fire.eq(self.i.valid & self.i.ready),
            self.o.valid.eq(out_valid),
            rd.addr.eq(fold),
        ]
        values = Signal.like(self.o.payload)
        for p in range(s.pe):
            acc = self.i.payload[p]
            thr = [rd.data[(p * k + j) * tb : (p * k + j + 1) * tb].as_signed() for j in range(k)]
            count = tree_sum([acc >= t for t in thr])
            m.d.comb += values[p].eq(count + s.out_bias if s.out_bias else count)
        with m.If(in_fire):
            m.d.sync += [
                out_valid.eq(1),
                self.o.payload.eq(values),
                fold.eq(Mux(fold == s.folds - 1, 0, fold + 1)),
            ]
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)
        return m

    def _elaborate_pipelined(self):
        """``pipeline`` 1 or 2: every stage moves when the output register is free or taken."""
        m = Module()
        s = self.spec
        k, tb = s.thresholds.shape[1], s.thr_bits
        m.submodules.tmem = tmem = memory.Memory(
            shape=unsigned(s.pe * k * tb), depth=s.folds, init=self.threshold_image()
        )
        fold = Signal(range(s.folds))
        out_valid, in_fire, stall = Signal(), Signal(), Signal()
        m.d.comb += [
            stall.eq(out_valid & ~self.o.ready),
            self.i.ready.eq(~stall),
            in_fire.eq(self.i.valid & self.i.ready),
            self.o.valid.eq(out_valid),
        ]
        with m.If(in_fire):
            m.d.sync += fold.eq(Mux(fold == s.folds - 1, 0, fold + 1))
        if s.pipeline >= 2:  # the beat and its thresholds registered (a synchronous read)
            rd = tmem.read_port()
            x = Signal.like(self.i.payload, name="x_r")
            v_x = Signal(name="v_x")
            m.d.comb += [rd.addr.eq(fold), rd.en.eq(~stall)]
            with m.If(~stall):
                m.d.sync += [x.eq(self.i.payload), v_x.eq(in_fire)]
        else:
            rd = tmem.read_port(domain="comb")
            m.d.comb += rd.addr.eq(fold)
            x, v_x = self.i.payload, in_fire
        cmp = Signal(s.pe * k, name="cmp_r")
        v_c = Signal(name="v_c")
        bits = []
        for p in range(s.pe):
            thr = [rd.data[(p * k + j) * tb : (p * k + j + 1) * tb].as_signed() for j in range(k)]
            bits += [x[p] >= t for t in thr]
        with m.If(~stall):
            m.d.sync += [cmp.eq(Cat(*bits)), v_c.eq(v_x)]
        values = Signal.like(self.o.payload)
        for p in range(s.pe):
            count = tree_sum([cmp[p * k + j] for j in range(k)])
            m.d.comb += values[p].eq(count + s.out_bias if s.out_bias else count)
        with m.If(~stall):
            m.d.sync += out_valid.eq(v_c)
            with m.If(v_c):
                m.d.sync += self.o.payload.eq(values)
        return m
