"""Stage 3 of the import: turn a float activation into integer codes.

When a consumer needs integer codes, the lowering (:mod:`.lower`) hands the activation here:

* a pending matrix product (:class:`~.states.Pending`) becomes its graph nodes: the
  ``MatMulThreshold`` whose thresholds fold the exact functions up to the chain's last quantizer
  (:func:`lowbit.quant.streamline.solve_thresholds`), then its max-pools (:func:`solve_layer`);
* the float model input (:class:`~.states.Raw`) becomes the codes of its quantizer
  (:func:`solve_input`).

Both return exact per-channel scales and offsets of the new codes. They raise ``ValueError`` with
a message for the user; the lowering names the node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ir.datatypes import BIPOLAR, DataType, Kind
from ...ir.graph import MatMulThreshold, MaxPool, MaxPool1D
from ..streamline import (
    BipolarQuantizer,
    IntQuantizer,
    SignQuantizer,
    ThresholdQuantizer,
    solve_thresholds,
)
from .states import Codes, Pending, Raw, stored

__all__ = ["SolvedLayer", "solve_layer", "solve_input"]


@dataclass(frozen=True, eq=False)
class SolvedLayer:
    """A pending layer as graph nodes and the codes it produces.

    Parameters
    ----------
    nodes : tuple of (graph node, str)
        The ``MatMulThreshold`` and its max-pools (``MaxPool`` or ``MaxPool1D``), each with the
        name of the ONNX node it comes from.
    codes : Codes
        The layer's output codes; ``codes.scale`` and ``codes.offset`` give their values.
    """

    nodes: tuple
    codes: Codes


def _value_of(act, q: int):
    """The value of code ``code`` of channel ``c`` after the quantizer at ``chain[q]``."""
    quant, post = act.chain[q], act.chain[q + 1 :]

    def value_of(code, c):
        v = quant.value(code, c)
        for op in post:
            v = op(v, c)
        return v

    return value_of


def solve_layer(act: Pending) -> SolvedLayer:
    """Thresholds for the pending layer ``act`` up to its last quantizer (which must exist).

    Weights of channels whose function decreases are negated; an ``INT`` weight type grows by one
    bit when a negated weight needs it.
    """
    q = act.last_quantizer()
    if q is None:
        raise ValueError(f"the output of {act.origin!r} has no quantizer")
    quant = act.chain[q]
    value_of = _value_of(act, q)
    mm = act.layer
    pre = act.chain[:q]

    def func(a, c):
        d = 2 * a - mm.weights.shape[1] if mm.xnor else a
        v = mm.scale[c] * d + mm.offset[c]
        for op in pre:
            v = op(v, c)
        return v

    def func_vec(a, c):
        d = 2 * a - mm.weights.shape[1] if mm.xnor else a
        v = float(mm.scale[c]) * d + float(mm.offset[c])
        for op in pre:
            v = op.vec(v, c)
        return v

    probe = MatMulThreshold(
        "probe",
        mm.input_dtype,
        stored(mm.weights, mm.weight_dtype),
        None,
        weight_dtype=mm.weight_dtype,
    )
    lo, hi = probe.acc_range
    mw = mm.weights.shape[1]
    neg = (lambda a: mw - a) if mm.xnor else (lambda a: -a)

    def solve(lo: int, hi: int):
        """Thresholds for accumulators in ``[lo, hi]`` and the weights with negated rows."""
        solved = solve_thresholds(
            func,
            quant.code,
            value_of,
            act.channels,
            lo,
            hi,
            neg,
            mm.name,
            quant.nominal,
            func_vec,
            quant.vcode,
        )
        w = mm.weights.copy()
        w[solved.negate] *= -1
        return solved, w

    solved, w = solve(lo, hi)
    wdtype = mm.weight_dtype
    if not wdtype.contains(w) and wdtype.kind is Kind.INT:
        # a negated row may need one more bit: solve again for the wider accumulator range
        wdtype = DataType.int(wdtype.bits + 1)
        node_probe = MatMulThreshold("probe", mm.input_dtype, w, None, weight_dtype=wdtype)
        solved, w = solve(*node_probe.acc_range)
    nodes: list[tuple[MatMulThreshold | MaxPool | MaxPool1D, str]] = [
        (
            MatMulThreshold(
                mm.name, mm.input_dtype, stored(w, wdtype), solved.thresholds, solved.dtype, wdtype
            ),
            act.origin,
        )
    ]
    nodes += [
        ((MaxPool1D if pool.dims == 1 else MaxPool)(pool.name, pool.kernel, pool.stride), pool.name)
        for pool in act.pools
    ]
    codes = Codes(act.idx, act.phys, act.origin, solved.dtype, solved.scale, solved.offset)
    return SolvedLayer(tuple(nodes), codes)


def solve_input(act: Raw) -> Codes:
    """The codes of the input quantizer of ``act`` (its last quantizer, which must exist).

    Raises
    ------
    ValueError
        When that quantizer is not one an integer input can carry.
    """
    q = act.last_quantizer()
    if q is None:
        raise ValueError(f"{act.origin} has no quantizer")
    quant = act.chain[q]
    value_of = _value_of(act, q)
    if isinstance(quant, BipolarQuantizer):
        dtype, lo, hi = BIPOLAR, 0, 1
    elif isinstance(quant, IntQuantizer):
        lo, hi = quant.lo, quant.hi
        dtype = DataType.for_range(min(lo, -2) if lo < 0 else lo, hi)  # INT types: >= 2 bits
    elif isinstance(quant, ThresholdQuantizer):
        lo, hi = 0, quant.thresholds.shape[1]
        dtype = BIPOLAR if hi == 1 else DataType.for_range(0, hi)
    elif isinstance(quant, SignQuantizer):
        lo, hi, dtype = -1, 1, DataType.int(2)
    else:
        raise ValueError(
            "the input quantizer must be Quant, BipolarQuant, MultiThreshold, "
            "QuantizeLinear or Sign"
        )
    c = act.channels
    scale, offset = np.empty(c, dtype=object), np.empty(c, dtype=object)
    for ch in range(c):
        if dtype.kind is Kind.BIPOLAR:
            v0, v1 = value_of(lo, ch), value_of(lo + 1, ch)
            scale[ch], offset[ch] = (v1 - v0) / 2, (v1 + v0) / 2
        else:
            v0, v1 = value_of(0, ch), value_of(1, ch)
            scale[ch], offset[ch] = v1 - v0, v0
    return Codes(act.idx, act.phys, act.origin, dtype, scale, offset)
