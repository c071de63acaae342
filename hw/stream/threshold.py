"""Standalone MultiThreshold unit: integer accumulator values in, k-bit activations out.

``out[c] = sum_i [acc[c] >= T[c, i]]`` (``ARITHMETIC.md`` section 2): one threshold gives a bipolar
output (a bit), ``2^k - 1`` give ``UINTk``. Input beats carry ``PE`` channels; channels cycle
through ``C / PE`` folds (pixel after pixel), so the thresholds of fold ``f`` live in word ``f`` of
a small read-only memory. One beat per cycle; an output register with the usual stall rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...ir.datatypes import BIPOLAR, DataType
from ...ir.resources import Resources
from ...sw_reference import multithreshold
from .._util import pack_words, tree_sum
from ..cost import rom_resources
from ..mvtu.unit import element_shape

__all__ = ["ThresholdSpec", "MultiThresholdUnit"]


@dataclass(frozen=True, eq=False)
class ThresholdSpec:
    """MultiThreshold of ``in_dtype`` values by ``thresholds`` ``(C, k)``, ``pe`` channels per
    beat."""

    thresholds: np.ndarray
    in_dtype: DataType
    pe: int
    name: str = field(default="threshold")

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
        object.__setattr__(self, "thresholds", t.astype(np.int64))

    @property
    def channels(self) -> int:
        return self.thresholds.shape[0]

    @property
    def folds(self) -> int:
        return self.channels // self.pe

    @property
    def out_dtype(self) -> DataType:
        k = self.thresholds.shape[1]
        return BIPOLAR if k == 1 else DataType.uint((k + 1).bit_length() - 1)

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

    def resources(self) -> Resources:
        k = self.thresholds.shape[1]
        rom, logic = rom_resources(self.folds, self.pe * k * self.thr_bits)
        return rom + Resources(
            lut=int(self.pe * k * self.thr_bits // 2 + logic) + 20,
            ff=self.pe * self.out_dtype.bits + 20,
        )

    def reference(self, acc: np.ndarray) -> np.ndarray:
        return multithreshold(acc, self.thresholds)

    def create(self) -> "MultiThresholdUnit":
        return MultiThresholdUnit(self)


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
            m.d.comb += values[p].eq(tree_sum([acc >= t for t in thr]))
        with m.If(in_fire):
            m.d.sync += [
                out_valid.eq(1),
                self.o.payload.eq(values),
                fold.eq(Mux(fold == s.folds - 1, 0, fold + 1)),
            ]
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)
        return m
