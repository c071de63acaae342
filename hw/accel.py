"""The stitched accelerator: MVTUs chained by streams, width converters where ``PE`` and the next
``SIMD`` differ, and a label select at the end.

Ports: ``i`` carries ``SIMD_0`` input elements per beat (``MW_0 / SIMD_0`` beats per image);
``o`` carries one beat per image: ``{label, scores[classes]}``.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .dwc import StreamWidthConverter
from .label import LabelSelect
from .spec import MVTUSpec

__all__ = ["Accelerator", "stream_format"]


class Accelerator(wiring.Component):
    def __init__(self, specs: Sequence[MVTUSpec]):
        specs = tuple(specs)
        if not specs:
            raise ValueError("specs must hold at least one MVTUSpec")
        for i, s in enumerate(specs):
            if not isinstance(s, MVTUSpec):
                raise TypeError(f"specs[{i}] must be an MVTUSpec, not {s!r}")
        for a, b in zip(specs, specs[1:]):
            if a.node.mh != b.node.mw or a.node.output_dtype != b.node.input_dtype:
                raise ValueError(f"layer {b.node.name!r} (MW {b.node.mw}, {b.node.input_dtype}) cannot follow "
                                 f"{a.node.name!r} (MH {a.node.mh}, {a.node.output_dtype})")
        if specs[-1].node.thresholds is not None:
            raise ValueError(f"the last layer {specs[-1].node.name!r} must emit scores")
        self.specs = specs
        self.layers = [s.create() for s in specs]
        last = self.layers[-1]
        self.label = LabelSelect(last.out_shape, classes=specs[-1].mh, pe=specs[-1].pe)
        super().__init__({
            "i": In(stream.Signature(self.layers[0].i.payload.shape())),
            "o": Out(stream.Signature(self.label.result_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        for s, layer in zip(self.specs, self.layers):
            m.submodules[s.node.name] = layer
        m.submodules.label = self.label
        connect(m, flipped(self.i), self.layers[0].i)
        for k, (a, b) in enumerate(zip(self.layers, self.layers[1:])):
            if a.spec.pe == b.spec.simd:
                connect(m, a.o, b.i)
            else:
                dwc = StreamWidthConverter(a.out_shape, n_in=a.spec.pe, n_out=b.spec.simd)
                m.submodules[f"dwc{k}"] = dwc
                connect(m, a.o, dwc.i)
                connect(m, dwc.o, b.i)
        connect(m, self.layers[-1].o, self.label.i)
        connect(m, self.label.o, flipped(self.o))
        return m


def stream_format(acc: "Accelerator"):
    """The :class:`~lowbit.hw.codec.StreamFormat` of an accelerator's ports."""
    from .codec import StreamFormat
    first, last = acc.layers[0], acc.layers[-1]
    return StreamFormat(input_size=first.spec.mw, simd=first.spec.simd, in_bits=first.in_shape.width,
                        classes=last.spec.mh, score_bits=last.out_shape.width)
