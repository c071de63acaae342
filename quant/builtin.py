"""Built-in models: BNN-PYNQ's CNV-W1A1, CNV-W2A2 and LFC-W1A1 as integer graphs, with their
published foldings (``BNN_PYNQ_FOLDING.md``).

* **CNV** (CIFAR-10 shape, ``32 x 32 x 3`` ``UINT8`` pixels): six 3x3 convolutions without padding
  (64, 64, pool, 128, 128, pool, 256, 256 channels; the last one, on a 3 x 3 image, is the same
  arithmetic as a product on the flattened image in ``(y, x, c)`` = ``(ky, kx, c)`` order, so it
  takes the image stream directly and needs no window generator), then fully connected
  256 -> 512 -> 512 -> 64 scores (BNN-PYNQ pads the 10 classes to 64 rows; the first 10 are the
  classes). W1A1: bipolar weights and activations, the first layer 8-bit pixels x bipolar weights.
  W2A2: ``INT2`` weights and ``UINT2`` activations (3 thresholds per channel), the first layer
  8-bit pixels x ``INT2``.
* **LFC-W1A1** (MNIST): 832 bipolar inputs (28 x 28 binarised pixels padded to 832), three hidden
  layers of 1024 and 64 scores.

Weights are random (from ``seed``) or supplied; thresholds are supplied or *calibrated*: for each
channel, sorted quantiles (drawn at random between the 15th and 85th percentile) of its accumulator
over a few random input images, so that every channel switches (a threshold outside the values the
accumulator takes would make the channel constant and the tests weaker). They always lie inside the
accumulator range. ``width`` scales the channel counts down (same topology) for quick simulations.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import LowbitError
from ..ir.datatypes import BIPOLAR, DataType
from ..ir.graph import IntegerGraph, MatMulThreshold, MaxPool, SlidingWindow

__all__ = ["ZOO", "ZooModel", "build", "published_folding", "published_bottleneck", "cnv", "lfc"]

log = logging.getLogger(__name__)

UINT2, UINT8, INT2 = DataType.uint(2), DataType.uint(8), DataType.int(2)

# (SIMD, PE) of the nine MatMuls of CNV and the four of LFC, from BNN-PYNQ's config.h.
_FOLDINGS = {
    "cnv-w1a1": [(3, 16), (32, 32), (32, 16), (32, 16), (32, 4), (32, 1), (4, 1), (8, 1), (1, 4)],
    "cnv-w2a2": [(3, 8), (16, 16), (16, 8), (16, 8), (8, 4), (8, 1), (2, 1), (2, 2), (1, 4)],
    "lfc-w1a1": [(64, 32), (32, 64), (64, 32), (8, 16)],
}
_PUBLISHED = {  # bottleneck cycles and measured microseconds per image at 299 MHz
    "cnv-w1a1": (32_768, 109.29),
    "cnv-w2a2": (115_200, 387.55),
    "lfc-w1a1": (512, 2.80),
}
ZOO = tuple(_FOLDINGS)


@dataclass(frozen=True)
class ZooModel:
    """A built-in model: its graph and the (SIMD, PE) of each of its matrix products."""

    name: str
    graph: IntegerGraph
    matmul_folding: tuple[tuple[int, int], ...]  # (SIMD, PE) per MatMulThreshold, in order


def _calibrate(rng, acc: np.ndarray, k: int, lo: int, hi: int) -> np.ndarray:
    """``(MH, k)`` sorted thresholds from per-channel quantiles of accumulator samples
    ``(N, MH)``."""
    q = np.sort(rng.uniform(0.15, 0.85, size=(acc.shape[1], k)), axis=1)
    t = np.empty((acc.shape[1], k), dtype=np.int64)
    for c in range(acc.shape[1]):
        t[c] = np.ceil(np.quantile(acc[:, c], q[c])).astype(np.int64)
    return np.clip(np.sort(t, axis=1), lo, hi + 1)


def _random_weights(rng, dtype: DataType, mh: int, mw: int) -> np.ndarray:
    if dtype == INT2:  # {-2, -1, 0, 1} with mean 0, so accumulators have no large common-mode term
        return rng.choice(np.array([-2, -1, 0, 1]), size=(mh, mw), p=[0.1, 0.2, 0.3, 0.4])
    return dtype.sample(rng, (mh, mw))


def _assemble(
    name: str,
    input_dtype: DataType,
    input_shape,
    plan,
    *,
    seed: int,
    weights: Sequence[np.ndarray] | None,
    thresholds: Sequence[np.ndarray | None] | None,
    calibration_images: int,
) -> IntegerGraph:
    """Build a graph from ``plan``: nodes, or
    ``("mm", name, in_dtype, w_dtype, mh, n_thresholds[, "flat"])`` (``"flat"``: the product takes
    the whole image as one vector)."""
    rng = np.random.default_rng(seed)
    n_mm = sum(1 for p in plan if isinstance(p, tuple))
    for what, given in (("weights", weights), ("thresholds", thresholds)):
        if given is not None and len(given) != n_mm:
            raise LowbitError(
                f"{name}: {what} must be a list of {n_mm} arrays (one per matrix product), "
                f"not {len(given)}"
            )
    h = input_dtype.sample(np.random.default_rng(seed + 1), (calibration_images, *input_shape))
    shape, dtype, nodes, k = tuple(input_shape), input_dtype, [], 0
    for step in plan:
        if not isinstance(step, tuple):
            nodes.append(step)
            shape, dtype = step.infer(shape, dtype)
            h = step.reference(h)
            continue
        _, nname, in_dtype, w_dtype, mh, n_thr, *flat = step
        mw = int(np.prod(shape)) if flat else shape[-1]
        w = _random_weights(rng, w_dtype, mh, mw) if weights is None else np.asarray(weights[k])
        try:
            probe = MatMulThreshold(nname, in_dtype, w, None, weight_dtype=w_dtype)
            if n_thr == 0:
                node = probe
            else:
                t = None if thresholds is None else thresholds[k]
                if t is None:
                    acc = probe.accumulate(h.reshape(len(h), mw) if flat else h).reshape(-1, mh)
                    t = _calibrate(rng, acc, n_thr, *probe.acc_range)
                out = BIPOLAR if n_thr == 1 else DataType.uint((n_thr + 1).bit_length() - 1)
                node = MatMulThreshold(nname, in_dtype, w, np.asarray(t), out, weight_dtype=w_dtype)
        except ValueError as e:
            raise LowbitError(f"{name}: {e}") from None
        nodes.append(node)
        shape, dtype = node.infer(shape, dtype)
        h = node.reference(h)
        k += 1
    return IntegerGraph(input_dtype, tuple(nodes), tuple(input_shape))


def _scaled(n: int, width: float) -> int:
    return max(1, int(round(n * width)))


def cnv(
    variant: str = "w1a1",
    *,
    seed: int = 0,
    width: float = 1.0,
    weights=None,
    thresholds=None,
    calibration_images: int = 8,
) -> IntegerGraph:
    """BNN-PYNQ's CNV (``variant`` ``"w1a1"`` or ``"w2a2"``) on ``32 x 32 x 3`` ``UINT8`` images."""
    if variant not in ("w1a1", "w2a2"):
        raise LowbitError(f"CNV variant must be 'w1a1' or 'w2a2', not {variant!r}")
    act, wt, n_thr = (BIPOLAR, BIPOLAR, 1) if variant == "w1a1" else (UINT2, INT2, 3)
    c64, c128, c256 = (_scaled(c, width) for c in (64, 128, 256))
    f512 = _scaled(512, width)
    plan = [
        SlidingWindow("swg0", 3),
        ("mm", "L0", UINT8, wt, c64, n_thr),
        SlidingWindow("swg1", 3),
        ("mm", "L1", act, wt, c64, n_thr),
        MaxPool("pool1", 2),
        SlidingWindow("swg2", 3),
        ("mm", "L2", act, wt, c128, n_thr),
        SlidingWindow("swg3", 3),
        ("mm", "L3", act, wt, c128, n_thr),
        MaxPool("pool3", 2),
        SlidingWindow("swg4", 3),
        ("mm", "L4", act, wt, c256, n_thr),
        (
            "mm",
            "L5",
            act,
            wt,
            c256,
            n_thr,
            "flat",
        ),  # 3x3 conv of a 3x3 image: the product on the flattened image
        ("mm", "L6", act, wt, f512, n_thr),
        ("mm", "L7", act, wt, f512, n_thr),
        ("mm", "L8", act, wt, 64 if width == 1.0 else _scaled(64, width), 0),
    ]
    return _assemble(
        f"cnv-{variant}",
        UINT8,
        (32, 32, 3),
        plan,
        seed=seed,
        weights=weights,
        thresholds=thresholds,
        calibration_images=calibration_images,
    )


def lfc(
    *,
    seed: int = 0,
    width: float = 1.0,
    weights=None,
    thresholds=None,
    calibration_images: int = 64,
    inputs: int = 832,
) -> IntegerGraph:
    """BNN-PYNQ's LFC-W1A1: ``inputs`` bipolar pixels (832, or 784 unpadded), 3 x 1024, 64
    scores."""
    h = _scaled(1024, width)
    plan = [
        ("mm", "L0", BIPOLAR, BIPOLAR, h, 1),
        ("mm", "L1", BIPOLAR, BIPOLAR, h, 1),
        ("mm", "L2", BIPOLAR, BIPOLAR, h, 1),
        ("mm", "L3", BIPOLAR, BIPOLAR, 64 if width == 1.0 else 16, 0),
    ]
    return _assemble(
        "lfc-w1a1",
        BIPOLAR,
        (inputs,),
        plan,
        seed=seed,
        weights=weights,
        thresholds=thresholds,
        calibration_images=calibration_images,
    )


def build(
    name: str, *, seed: int = 0, width: float = 1.0, weights=None, thresholds=None
) -> ZooModel:
    """The built-in model ``name`` (one of :data:`ZOO`) with its published folding (scaled by
    ``width``).

    ``weights`` / ``thresholds``: one array per matrix product (``None`` entries in ``thresholds``
    are calibrated); by default random from ``seed``.
    """
    key = name.lower()
    if key not in _FOLDINGS:
        raise LowbitError(f"unknown built-in model {name!r}; expected one of {', '.join(ZOO)}")
    if key.startswith("cnv"):
        graph = cnv(key[4:], seed=seed, width=width, weights=weights, thresholds=thresholds)
    else:
        graph = lfc(seed=seed, width=width, weights=weights, thresholds=thresholds)
    folding = (
        published_folding(key) if width == 1.0 else _fit_folding(graph, published_folding(key))
    )
    return ZooModel(key, graph, folding)


def published_folding(name: str) -> tuple[tuple[int, int], ...]:
    """(SIMD, PE) of each matrix product of ``name`` as BNN-PYNQ publishes it."""
    if name not in _FOLDINGS:
        raise LowbitError(f"unknown built-in model {name!r}; expected one of {', '.join(ZOO)}")
    return tuple(_FOLDINGS[name])


def published_bottleneck(name: str) -> tuple[int, float]:
    """``(bottleneck cycles, measured microseconds per image at 299 MHz)`` from BNN-PYNQ."""
    return _PUBLISHED[name]


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def _fit_folding(graph: IntegerGraph, folding) -> tuple[tuple[int, int], ...]:
    """The published folding shrunk to a scaled-down graph: the largest divisors not above it (of
    the input channels for a convolution, of ``MW`` otherwise, and of ``MH``)."""
    out = []
    for (simd, pe), node in zip(folding, graph.matmuls):
        k = graph.nodes.index(node)
        conv = k > 0 and isinstance(graph.nodes[k - 1], SlidingWindow)
        cols = graph.input_shape_of(k - 1)[-1] if conv else node.mw
        out.append((_largest_divisor(cols, simd), _largest_divisor(node.mh, pe)))
    return tuple(out)
