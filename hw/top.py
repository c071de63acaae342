"""The stitched accelerator: the graph's units chained by streams, width converters where the
element counts per beat differ, and a label select at the end.

Units, in graph order: an MVTU per :class:`~lowbit.ir.graph.MatMulThreshold` (one input vector
per output pixel after a sliding window) or, where the schedule places a fully connected layer on
it, the sparse engine with its thresholds (:class:`~lowbit.hw.sparse.layer_spec.SparseLayerSpec`), a
sliding-window generator per :class:`~lowbit.ir.graph.SlidingWindow`, a streaming max-pool or
global accumulate-pool per pool node. A :class:`~lowbit.hw.stream.dwc.StreamWidthConverter` goes
between two units whenever the producer's elements per beat (``PE`` of an MVTU, ``SIMD`` of a
block) differ from the consumer's ``SIMD``; the elements keep their order (pixels in raster order,
channels last), so re-chunking is all that is needed.

Ports: ``i`` carries the first unit's ``SIMD`` input elements per beat (the image in raster order,
channels last: ``input_size / SIMD`` beats per image); ``o`` carries one beat per image:
``{label, scores[classes]}``, the label the graph's class decision (through the last node's class
map when it has one, :class:`~lowbit.hw.stream.label.LabelSelect`), the scores the raw integers;
``ws<k>``, for each unit ``k`` whose weights stream from DDR (``weight_ram="external"``), takes
its weight words in memory order, cyclically. With
``ddr_bits_per_cycle``, those ports are fed inside by
:class:`~lowbit.hw.axi.ddr_model.WeightStreamer` models of that rate instead (simulation).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ..ir.graph import MatMulThreshold
from .axi.ddr_model import WeightStreamer
from .codec import StreamFormat
from .mvtu.spec import streams_weights
from .registry import stitching
from .stream.dwc import StreamWidthConverter
from .unit import UnitSpec

__all__ = ["Accelerator", "stream_format"]


class Accelerator(wiring.Component):
    """The accelerator of ``specs`` (from :meth:`lowbit.mapping.Schedule.apply`), in graph order."""

    def __init__(self, specs: Sequence, *, ddr_bits_per_cycle: int | None = None):
        specs = tuple(specs)
        if not specs:
            raise ValueError("specs must hold at least one unit spec")
        for i, s in enumerate(specs):
            if not isinstance(s, UnitSpec) or s.node is None:
                raise TypeError(
                    f"specs[{i}] must be a unit spec (MVTUSpec, SWGSpec, MaxPoolSpec, "
                    f"AccPoolSpec), not {s!r}"
                )
        mlp = all(isinstance(s.node, MatMulThreshold) for s in specs)
        if mlp:
            for a, b in zip(specs, specs[1:]):
                if a.node.mh != b.node.mw or a.node.output_dtype != b.node.input_dtype:
                    raise ValueError(
                        f"layer {b.node.name!r} (MW {b.node.mw}, {b.node.input_dtype}) cannot "
                        f"follow {a.node.name!r} (MH {a.node.mh}, {a.node.output_dtype})"
                    )
        if not isinstance(specs[-1].node, MatMulThreshold) or specs[-1].node.thresholds is not None:
            raise ValueError(
                f"the last layer {specs[-1].node.name!r} must be a matrix product emitting scores"
            )
        self.specs = specs
        self.layers = [s.create() for s in specs]
        for a, b, sa, sb in zip(self.layers, self.layers[1:], specs, specs[1:]):
            ea, eb = a.o.payload.shape().elem_shape, b.i.payload.shape().elem_shape
            if ea != eb:
                raise ValueError(
                    f"unit {sb.node.name!r} takes elements of {eb}, but {sa.node.name!r} "
                    f"produces {ea}"
                )
        self.converters, self.label_spec = stitching(specs)
        self.label = self.label_spec.create()
        self.streamed = [k for k, s in enumerate(specs) if streams_weights(s)]
        if ddr_bits_per_cycle is not None and (
            not isinstance(ddr_bits_per_cycle, int) or ddr_bits_per_cycle < 1
        ):
            raise ValueError(
                f"ddr_bits_per_cycle must be a positive integer, not {ddr_bits_per_cycle!r}"
            )
        self.ddr_bits_per_cycle = ddr_bits_per_cycle
        members = {
            "i": In(stream.Signature(self.layers[0].i.payload.shape())),
            "o": Out(stream.Signature(self.label.result_layout)),
        }
        if ddr_bits_per_cycle is None:
            for k in self.streamed:
                members[f"ws{k}"] = In(stream.Signature(self.layers[k].ws.payload.shape()))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for s, layer in zip(self.specs, self.layers):
            m.submodules[s.node.name] = layer
        m.submodules.label = self.label
        connect(m, flipped(self.i), self.layers[0].i)
        for k, (a, b) in enumerate(zip(self.layers, self.layers[1:])):
            conv = self.converters[k]
            if conv is None:
                connect(m, a.o, b.i)
            else:  # the converter the stitching priced, on the producer's element shape
                shape = a.o.payload.shape().elem_shape
                dwc = StreamWidthConverter(shape, n_in=conv.n_in, n_out=conv.n_out)
                m.submodules[f"dwc{k}"] = dwc
                connect(m, a.o, dwc.i)
                connect(m, dwc.o, b.i)
        for k in self.streamed:
            if self.ddr_bits_per_cycle is None:
                connect(m, flipped(getattr(self, f"ws{k}")), self.layers[k].ws)
            else:
                spec = self.specs[k]
                m.submodules[f"ddr{k}"] = ddr = WeightStreamer(
                    spec.weight_image(), spec.weight_word_bits, self.ddr_bits_per_cycle
                )
                connect(m, ddr.o, self.layers[k].ws)
        connect(m, self.layers[-1].o, self.label.i)
        connect(m, self.label.o, flipped(self.o))
        return m


def stream_format(acc: "Accelerator"):
    """The :class:`~lowbit.hw.codec.StreamFormat` of an accelerator's ports."""
    first, last = acc.layers[0], acc.layers[-1]
    shape = first.i.payload.shape()
    return StreamFormat(
        input_size=acc.specs[0].in_size,
        simd=shape.length,
        in_bits=shape.elem_shape.width,
        classes=acc.label_spec.classes,
        score_bits=last.out_shape.width,
    )
