"""A thresholded fully connected layer of the integer graph on the EIE-style sparse engine.

:class:`SparseLayerSpec` places one :class:`~lowbit.ir.graph.MatMulThreshold` node (pruned,
weight-shared integer weights) on :class:`~lowbit.hw.sparse.engine.SparseEngine` instead of a dense
MVTU, with the same stream interface as an MVTU, so the stitched accelerator takes either:

* ``i`` carries ``lanes`` input elements per beat in the graph's element encoding (bits for
  bipolar values, unsigned or signed integers); an adapter widens them to the engine's signed
  activations (a bipolar bit ``b`` becomes ``2b - 1``);
* the engine runs in raw-accumulator mode (no ReLU, no shift, an output wide enough for the
  node's exact accumulator range), so its outputs are the node's accumulators ``W x``;
* a :class:`~lowbit.hw.stream.threshold.MultiThresholdUnit` with ``pes`` channels per beat turns
  them into the node's activations; a node without thresholds (the scores) passes the accumulators
  on;
* a FIFO of one whole input vector in front and one of a whole output vector behind: the engine
  takes no input while it computes and reads out, so without them it would hold up its neighbours
  (two sparse layers in a row then run at about the sum of their periods, not the maximum).

The weights become the engine's image: the distinct non-zero weight values form the codebook
(index 0 is zero), rows interleaved over the ``pes`` PEs (``ARITHMETIC.md`` section 6). The
outputs are bit-exact to the node's ``reference``: the engine's product is exact integer
arithmetic and the thresholds are the node's own.

Cost model: cycles per vector from the engine's cycle model on the layer's own sparsity pattern
and random activations of density ``act_density`` (the engine takes no new input while it computes
and reads out, so this is the layer's period); resources are the engine's, the threshold unit's
and the adapter's.

No Amaranth at module level (the mapper uses the spec).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ...ir.datatypes import BIPOLAR, DataType, Kind, signed_bits
from ...ir.graph import MatMulThreshold
from ...ir.resources import Resources
from ...sw_reference.sparse import encode_sparse
from ..mvtu.spec import NodeShape, divisors
from ..stream.fifo import FIFOSpec
from ..stream.threshold import ThresholdSpec
from .cycle_model import column_walk, engine_cycles
from .engine_spec import SparseEngineSpec

__all__ = [
    "SparseLayerSpec",
    "sparse_eligible",
    "check_act_density",
    "MAX_INDEX_BITS",
    "SPARSE_MAX_DENSITY",
    "SPARSE_LANES",
    "SPARSE_MAX_PES",
    "SPARSE_DEPTH",
]

MAX_INDEX_BITS = 8
"""Largest codebook index the sparse layer accepts (256 entries, index 0 = zero)."""



_CACHE: dict[tuple[int, int], tuple] = {}
_CACHE_SIZE = 64

SPARSE_MAX_DENSITY = 0.5
"""Weight density above which a layer gets no sparse-engine candidates (nothing left to skip)."""
SPARSE_LANES = (4, 16)
"""Input lane counts the search tries (those that divide ``MW``)."""
SPARSE_MAX_PES = 64
"""Most PEs the search tries."""
SPARSE_DEPTH = 8
"""Activation queue depth of the search's candidates."""


def _encode(node: MatMulThreshold, pes: int):
    """``(index_bits, codebook, image)`` of ``node``'s weights on ``pes`` PEs (memoised: the mapper
    tries several lane counts per PE count)."""
    key = (id(node.weights), pes)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is node.weights:
        return hit[1:]
    w = node.weight_values
    values = np.unique(w[w != 0])
    index_bits = max(1, int(len(values)).bit_length())
    codebook = np.zeros(1 << index_bits, dtype=np.int64)
    codebook[1 : len(values) + 1] = values
    indices = np.zeros(w.shape, dtype=np.int64)
    if len(values):
        indices[w != 0] = np.searchsorted(values, w[w != 0]) + 1
    image = encode_sparse(indices, codebook, pes, index_bits=index_bits)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (node.weights, index_bits, codebook, image)
    return index_bits, codebook, image


def check_act_density(value, columns: int | None, what: str = "act_density"):
    """``value`` as a float in (0, 1] or a tuple of ``columns`` (any number if ``None``, at least
    one) floats in [0, 1], not all zero."""
    if isinstance(value, (list, tuple, np.ndarray)):
        numbers = all(
            isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_))
            for v in value
        )
        a = np.asarray(value, dtype=float) if len(value) and numbers else np.zeros(0)
        count = len(value) if columns is None else columns
        if (
            not numbers
            or a.shape != (count,)
            or not count
            or not np.isfinite(a).all()
            or (a < 0).any()
            or (a > 1).any()
            or not a.any()
        ):
            n = "" if columns is None else f"{columns} "
            raise ValueError(
                f"{what} must be a number in (0, 1] or {n}per-column values in [0, 1], "
                f"not {len(value)} values in [{a.min() if a.size else 0:g}, "
                f"{a.max() if a.size else 0:g}]"
            )
        return tuple(float(v) for v in a)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating))
        or not 0.0 < value <= 1.0
    ):
        raise ValueError(f"{what} must lie in (0, 1], not {value!r}")
    return float(value)


def sparse_eligible(node) -> str | None:
    """Why ``node`` cannot run on the sparse engine, or ``None`` if it can."""
    if not isinstance(node, MatMulThreshold):
        return f"node {getattr(node, 'name', node)!r} is not a matrix product"
    if node.weight_dtype.kind is Kind.BIPOLAR:
        return f"node {node.name!r} has bipolar weights: no zero weights to skip"
    distinct = np.unique(node.weight_values)
    nonzero = int(np.count_nonzero(distinct))
    if nonzero >= 1 << MAX_INDEX_BITS:
        return (
            f"node {node.name!r} has {nonzero} distinct non-zero weights; the sparse engine's "
            f"codebook holds at most {(1 << MAX_INDEX_BITS) - 1} (share the weights, e.g. "
            "lowbit train --share 16)"
        )
    return None


@dataclass(frozen=True, eq=False)
class SparseLayerSpec(NodeShape):
    """Node ``node`` on a sparse engine of ``pes`` PEs, ``lanes`` inputs per beat, queue depth
    ``depth``.

    Parameters
    ----------
    node : MatMulThreshold
        A fully connected layer with integer (non-bipolar) weights; ``pes`` must divide its ``MH``
        and ``lanes`` its ``MW``.
    pes : int
        Processing elements (one multiplier each); also the outputs per beat (``PE`` of an MVTU).
    lanes : int
        Input elements per beat (``SIMD`` of an MVTU).
    depth : int
        Activation-queue depth per PE.
    act_density : float or tuple of float
        Expected share of non-zero input activations, for :meth:`cycles` only: one value for every
        column, or one per input column (an activation profile measured on data, see
        :func:`lowbit.mapping.folding.activation_densities`; real activations are not independent
        of which weights survived pruning, and a profile captures that).
    entries_per_word : int
        Entries per word of each PE's sparse-matrix memory.
    """

    ENGINE: ClassVar[str] = "sparse"

    node: MatMulThreshold
    pes: int
    lanes: int = 4
    depth: int = 8
    act_density: float | tuple[float, ...] = 0.5
    entries_per_word: int = 8
    engine: SparseEngineSpec = field(init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.node, MatMulThreshold):
            raise TypeError(f"node must be a MatMulThreshold, not {self.node!r}")
        why = sparse_eligible(self.node)
        if why:
            raise ValueError(why)
        for name in ("pes", "lanes", "depth"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(
                    f"node {self.node.name!r}: {name} must be a positive integer, not {v!r}"
                )
        if self.node.mh % self.pes:
            raise ValueError(
                f"PEs ({self.pes}) must divide MH ({self.node.mh}) of node {self.node.name!r}"
            )
        if self.node.mw % self.lanes:
            raise ValueError(
                f"lanes ({self.lanes}) must divide MW ({self.node.mw}) of node {self.node.name!r}"
            )
        object.__setattr__(
            self,
            "act_density",
            check_act_density(
                self.act_density, self.node.mw, f"node {self.node.name!r}: act_density"
            ),
        )
        index_bits, codebook, image = _encode(self.node, self.pes)
        lo, hi = self.node.acc_range
        in_lo, in_hi = self.in_range
        engine = SparseEngineSpec(
            rows=self.node.mh,
            cols=self.node.mw,
            pes=self.pes,
            depth=self.depth,
            lanes=self.lanes,
            entries_per_word=self.entries_per_word,
            index_bits=index_bits,
            weight_bits=signed_bits(int(codebook.min()), int(codebook.max())),
            act_bits=signed_bits(in_lo, in_hi),
            out_bits=signed_bits(lo, hi),
            shift=0,
            relu=False,
            image=image,
        )
        object.__setattr__(self, "engine", engine)

    # -- the MVTU-like face ----------------------------------------------------------------------

    @property
    def pe(self) -> int:
        """Outputs per beat."""
        return self.pes

    @property
    def simd(self) -> int:
        """Inputs per beat."""
        return self.lanes

    @property
    def in_range(self) -> tuple[int, int]:
        """Values of one input activation (a bipolar bit is ``-1`` or ``+1``)."""
        dt = self.node.input_dtype
        return (-1, 1) if dt is BIPOLAR else (dt.min, dt.max)

    @property
    def acc_dtype(self) -> DataType:
        """Type of the accumulators the engine passes to the thresholds."""
        return DataType.for_range(*self.node.acc_range)

    @property
    def weight_density(self) -> float:
        w = self.node.weight_values
        return float(np.count_nonzero(w)) / w.size

    def threshold_spec(self):
        """The :class:`~lowbit.hw.stream.threshold.ThresholdSpec` after the engine, or ``None``
        (scores)."""
        if self.node.thresholds is None:
            return None
        return ThresholdSpec(
            self.node.thresholds, self.acc_dtype, self.pes, name=f"{self.node.name}.thresholds"
        )

    @property
    def mean_act_density(self) -> float:
        d = self.act_density
        return float(np.mean(d)) if isinstance(d, tuple) else float(d)

    def cycles(self, act_density=None, *, samples: int = 8) -> int:
        """Modelled cycles per vector (input, compute and read-out), rounded up: the mean of the
        engine's cycle model over ``samples`` random vectors whose columns are non-zero with the
        probability ``act_density`` (default: the spec's; one value or one per column)."""
        density = (
            self.act_density
            if act_density is None
            else check_act_density(act_density, self.node.mw, "act_density")
        )
        p = np.broadcast_to(np.asarray(density, dtype=float), (self.node.mw,))
        steps, squashed = column_walk(self.engine.image, self.entries_per_word)
        rng = np.random.default_rng(0)
        total = 0
        for _ in range(samples):
            x = (rng.random(self.node.mw) < p).astype(np.int64)
            total += engine_cycles(
                steps, x, depth=self.depth, lanes=self.lanes, rows=self.node.mh, squashed=squashed
            ).cycles
        return math.ceil(total / samples)

    def fifo_specs(self):
        """``(input FIFO, output FIFO)``: one whole vector each
        (:class:`~lowbit.hw.stream.fifo.FIFOSpec`)."""
        return (
            FIFOSpec(self.node.input_dtype, self.lanes, self.engine.beats),
            FIFOSpec(self.node.output_dtype, self.pes, self.engine.out_beats),
        )

    def resources(self):
        """Engine + threshold unit + input adapter + FIFOs (a
        :class:`~lowbit.hw.cost.Resources`)."""
        total = self.engine.resources() + Resources(
            lut=self.lanes * self.engine.act_bits // 2, ff=0
        )
        total = total + sum((f.resources() for f in self.fifo_specs()), Resources())
        t = self.threshold_spec()
        return total + t.resources() if t is not None else total

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        """``cycles() * vectors`` (the modelled cycles per vector at the spec's activation
        density)."""
        return self.cycles() * vectors

    def folding_label(self) -> str:
        return f"sparse engine N={self.pes}, lanes={self.lanes}, D={self.depth}"

    def schedule_options(self) -> dict:
        """The :class:`~lowbit.mapping.schedule.LayerFolding` options beyond PE and SIMD."""
        return {"engine": "sparse", "depth": self.depth, "act_density": self.act_density}

    @classmethod
    def candidates(cls, node: MatMulThreshold, ctx) -> list["SparseLayerSpec"]:
        """Sparse-engine foldings worth trying (a :class:`~lowbit.hw.unit.SearchContext`): none when
        the search gives no activation density, the layer is a convolution (several vectors per
        image), not eligible (:func:`sparse_eligible`) or denser than :data:`SPARSE_MAX_DENSITY`;
        else about one PE count per power of two up to :data:`SPARSE_MAX_PES` (the cycle model is a
        cycle-level walk, too slow to run for every divisor) times the lane counts of
        :data:`SPARSE_LANES` that divide ``MW``."""
        if ctx.act_density is None or ctx.vectors != 1 or sparse_eligible(node) is not None:
            return []
        w = node.weight_values
        if w.size == 0 or (w != 0).mean() > SPARSE_MAX_DENSITY:
            return []
        lanes = [n for n in SPARSE_LANES if node.mw % n == 0] or [2 if node.mw % 2 == 0 else 1]
        best: dict[int, int] = {}
        for d in divisors(node.mh):
            if d <= SPARSE_MAX_PES:
                best[d.bit_length()] = d
        return [
            cls(node, pes=pes, lanes=n, depth=SPARSE_DEPTH, act_density=ctx.act_density)
            for pes in sorted(best.values())
            for n in lanes
        ]

    def reference(self, x: np.ndarray) -> np.ndarray:
        return self.node.reference(x)

    def create(self):
        from .layer import SparseLayer

        return SparseLayer(self)

    def describe(self) -> str:
        image = self.engine.image
        if image is None:  # __post_init__ gives the engine the layer's image
            raise ValueError(f"node {self.node.name!r}: the sparse engine holds no weight image")
        return (
            f"sparse engine N={self.pes}, lanes={self.lanes}, D={self.depth}, "
            f"{len(image.codebook) - 1}-entry codebook, "
            f"weight density {100 * self.weight_density:.1f} %"
        )
