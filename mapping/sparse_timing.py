"""Exact, data-driven timing of a pipeline that holds a sparse-engine layer.

The schedule's figure for a sparse layer
(:meth:`~lowbit.hw.sparse.layer_spec.SparseLayerSpec.cycles`) is an estimate at an assumed
activation density: the engine's cycles depend on which of its inputs are non-zero. Given the
images, the integer graph's reference trace gives the layer's input vector of every image exactly,
and the engine's cycle model (:func:`~lowbit.hw.sparse.cycle_model.engine_cycles`, exact per
vector) its cycles ``c_i``. This module couples them with the dense stages around the
layer, whose timing does not depend on the data:

* **before the layer** — the dense stages (or the accelerator's input port when the layer comes
  first) offer image ``i``'s vector to the layer's input FIFO as a burst of one beat per cycle that
  starts ``P`` cycles after image ``i - 1``'s (``P``: the dense stages' own cycles per image, the
  largest of :func:`~lowbit.mapping.schedule.pipeline_cycles` before the layer, the input port
  included);
* **the engine** takes no input while it computes and reads out a vector; it accepts the next
  vector's first beat in the cycle after its last output beat, and then at most one beat a cycle
  (a beat costs a cycle, or one per non-zero activation it holds), so behind a burst it never
  waits for a beat once it has started. Hence, counting from the cycle image 0's first beat is
  accepted::

      start_0 = 0
      start_i = max(i * P, done_{i-1} + 1)
      done_i  = start_i + c_i - 1

  (``done_i``: the cycle the engine's last output beat of image ``i`` is accepted);
* **after the layer** — the dense stages take each output vector into an empty pipeline, so every
  result leaves a constant number of cycles after ``done_i``: image ``i``'s result leaves
  ``done_i - done_0`` cycles after image 0's.

What the model needs, and checks (a :class:`ValueError` names the condition otherwise):

* one sparse layer, fed by the input port or by a sliding window whose window is the whole image
  (one vector per image, emitted in one burst once the image is in), with no width converter in
  between (a converter packing beats would thin the burst out);
* when the layer is not first, the engine has accepted every beat of vector ``i - 1`` before
  vector ``i``'s burst starts (cycle ``i * P - 1``): then the input FIFO, one vector deep, never
  fills, and the dense stages before it are never held up (the input port, when the layer is
  first, simply waits: that is what the recurrence counts);
* the results leave the stages after the layer before the next vector reaches them: consecutive
  ``done`` at least the sum of those stages' cycles (the schedule's latency bound) apart, so their
  timing is the same for every image and the engine's output is never held up.

Pure NumPy; the RTL check is :func:`lowbit.sim.verify.verify_fast`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..hw.registry import stitching
from ..hw.sparse.layer_spec import SparseLayerSpec
from ..hw.stream.swg import SWGSpec
from ..ir.datatypes import BIPOLAR
from ..ir.graph import IntegerGraph
from .schedule import input_stream_cycles, pipeline_cycles, vectors_per_image

__all__ = ["SparsePipelineTiming", "sparse_pipeline_timing", "sparse_layer_index"]


@dataclass(frozen=True, eq=False)
class SparsePipelineTiming:
    """Per-image timing of a pipeline with one sparse layer (see the module docstring).

    Attributes
    ----------
    layer : str
        The sparse layer's node name.
    period : int
        ``P``: cycles per image of the dense stages before the layer (input port included).
    engine_cycles : ndarray of int
        ``c_i``: the engine's cycles on image ``i``'s input vector, first beat to last output beat.
    start, done : ndarray of int
        The cycles the engine accepts image ``i``'s first beat and its last output beat, counted
        from the first beat of image 0.
    """

    layer: str
    period: int
    engine_cycles: np.ndarray
    start: np.ndarray
    done: np.ndarray

    @property
    def out_cycles(self) -> np.ndarray:
        """Cycle each image's result leaves the accelerator, counted from image 0's result."""
        return self.done - self.done[0]

    @property
    def late(self) -> int:
        """Images whose vector waited for the engine (``start_i > i * P``)."""
        return int(np.sum(self.start > self.period * np.arange(len(self.start))))


def sparse_layer_index(specs) -> int | None:
    """Index of the unit on the sparse engine in ``specs``, ``None`` without one; a
    :class:`ValueError` when there are several."""
    found = [k for k, s in enumerate(specs) if isinstance(s, SparseLayerSpec)]
    if len(found) > 1:
        names = ", ".join(repr(specs[k].node.name) for k in found)
        raise ValueError(
            f"the exact sparse timing covers one sparse layer, not {len(found)}: {names}"
        )
    return found[0] if found else None


def sparse_pipeline_timing(
    graph: IntegerGraph,
    specs,
    x: np.ndarray,
    *,
    vectors: list[int] | None = None,
    ddr_bits: int | None = None,
) -> SparsePipelineTiming:
    """The per-image timing of ``specs`` (from :meth:`~lowbit.mapping.Schedule.apply` on
    ``graph``) on images ``x``, with inputs always valid and the output always ready.

    Parameters
    ----------
    graph : IntegerGraph
    specs : list of unit specs
        Exactly one of them a :class:`~lowbit.hw.sparse.layer_spec.SparseLayerSpec`.
    x : ndarray
        The images, as :meth:`~lowbit.ir.graph.IntegerGraph.check_input` takes them.
    vectors, ddr_bits
        As :func:`~lowbit.mapping.schedule.pipeline_cycles` takes them: vectors per image of each
        unit (default :func:`~lowbit.mapping.schedule.vectors_per_image` of ``graph``), the DDR
        weight-stream rate.

    Raises
    ------
    ValueError
        The design or the data lies outside the model (the message names the condition).
    """
    specs = list(specs)
    k = sparse_layer_index(specs)
    if k is None:
        raise ValueError("the design has no layer on the sparse engine")
    spec: SparseLayerSpec = specs[k]
    name = spec.node.name
    vectors = vectors_per_image(graph) if vectors is None else list(vectors)
    if k > 0:
        src = specs[k - 1]
        out_shape = graph.output_shape(k - 1)
        if not isinstance(src, SWGSpec) or math.prod(out_shape[:-1]) != 1:
            raise ValueError(
                f"sparse layer {name!r} is fed by {src.node.name!r} "
                f"({type(src.node).__name__}), which does not deliver its vector in one burst: "
                "the exact timing covers the input port and a sliding window over the whole image"
            )
        if stitching(specs)[0][k - 1] is not None:
            raise ValueError(
                f"a width converter joins {src.node.name!r} ({src.out_elems} elements a beat) to "
                f"sparse layer {name!r} ({spec.lanes} lanes): the exact timing needs them equal"
            )
    x = graph.check_input(x)
    if not len(x):
        raise ValueError("x holds no image")
    if k == 0:
        acts = x.reshape(len(x), -1)
        period = input_stream_cycles(spec)  # the input port's beats
    else:
        acts = graph.trace(x)[k - 1].reshape(len(x), -1)
        period = max(pipeline_cycles(specs[:k], None, vectors[:k], ddr_bits))
    if spec.node.input_dtype is BIPOLAR:
        acts = 2 * acts - 1  # the adapter's activations: a bipolar bit is -1 or +1, never 0
    timings = [spec.engine.timing(a) for a in acts]
    c = np.array([t.cycles for t in timings], dtype=np.int64)
    last = np.array([t.last_accept for t in timings], dtype=np.int64)
    start = np.zeros(len(c), dtype=np.int64)
    done = np.zeros(len(c), dtype=np.int64)
    for i in range(len(c)):
        ready = i * period
        if i:
            if k > 0 and start[i - 1] + last[i - 1] >= ready - 1:
                raise ValueError(
                    f"sparse layer {name!r} is still taking image {i - 1}'s vector (last beat at "
                    f"cycle {start[i - 1] + last[i - 1]}) when image {i}'s arrives (cycle "
                    f"{ready - 1}): its input FIFO would hold up {specs[k - 1].node.name!r}, "
                    "which the exact timing does not model"
                )
            start[i] = max(ready, done[i - 1] + 1)
        else:
            start[i] = 0
        done[i] = start[i] + c[i] - 1
    if k + 1 < len(specs) and len(c) > 1:
        drain = sum(pipeline_cycles(specs[k + 1 :], None, vectors[k + 1 :], ddr_bits))
        gaps = np.diff(done)
        if gaps.min() < drain:
            i = int(np.argmin(gaps)) + 1
            raise ValueError(
                f"image {i} leaves sparse layer {name!r} {int(gaps.min())} cycles after image "
                f"{i - 1}, less than the {drain} cycles the units after it take per image in all: "
                "they may hold up the engine, which the exact timing does not model"
            )
    return SparsePipelineTiming(name, int(period), c, start, done)
