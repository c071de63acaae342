"""Post-training quantization of a float ONNX model with a calibration set.

The float model is rewritten into a QONNX model and then imported like any QONNX file, so the
integer graph is exactly what the inserted quantizers define:

* every ``Gemm``/``MatMul``/``Conv`` weight initializer is replaced by its quantized form, one scale
  per output channel: ``bipolar`` (``BipolarQuant``, scale ``mean |w|``), ``ternary`` (TWN:
  ``delta = 0.7 mean |w|``, scale = mean of the ``|w| > delta``; ``ARITHMETIC.md`` section 3),
  ``pow2_b`` (nearest power of two in the log domain, ``b`` bits; section 4) or ``int<k>``
  (symmetric, narrow);
* the activation entering every ``Gemm``/``MatMul``/``Conv``/``AveragePool`` gets a quantizer whose
  scale comes from the calibration set: ``uint<k>`` (``max / (2^k - 1)``), ``int<k>`` (symmetric) or
  ``bipolar``; the model input gets ``input_bits`` (unsigned when the calibration inputs are
  non-negative).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ... import LowbitError
from . import ops as onnx_ops
from .importer import ImportResult, import_onnx
from .ops import OPS
from .read import check_model, load_model

__all__ = ["PTQConfig", "quantize_model", "insert_quantizers", "quantize_weights"]

log = logging.getLogger(__name__)
_QDOMAIN = onnx_ops.QONNX_DOMAIN


@dataclass(frozen=True)
class PTQConfig:
    """``weights``: bipolar, ternary, pow2_<b> or int<k>; ``acts``: bipolar, uint<k> or int<k>."""

    weights: str = "int4"
    acts: str = "uint4"
    input_bits: int = 8

    def __post_init__(self):
        if not re.fullmatch(r"bipolar|ternary|pow2_[2-6]|int([2-9]|1[0-6])", self.weights):
            raise LowbitError(
                "--weights must be bipolar, ternary, pow2_<2..6> or int<2..16>, "
                f"not {self.weights!r}"
            )
        if not re.fullmatch(r"bipolar|u?int([1-9]|1[0-6])", self.acts) or self.acts in ("int1",):
            raise LowbitError(
                f"--acts must be bipolar, uint<1..16> or int<2..16>, not {self.acts!r}"
            )
        if not 1 <= self.input_bits <= 16:
            raise LowbitError(f"--input-bits must be 1 to 16, not {self.input_bits!r}")


def quantize_weights(
    w: np.ndarray, scheme: str, out_axis: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer codes, per-output-channel scales and bit width of ``w`` under ``scheme``."""
    moved = np.moveaxis(w, out_axis, 0).reshape(w.shape[out_axis], -1).astype(np.float64)
    codes = np.zeros(moved.shape, dtype=np.int64)
    scales = np.ones(moved.shape[0])
    for r, row in enumerate(moved):
        a = np.abs(row)
        if scheme == "bipolar":
            codes[r], scales[r] = np.where(row >= 0, 1, -1), max(a.mean(), 1e-8)
        elif scheme == "ternary":
            delta = 0.7 * a.mean()
            big = a > delta
            codes[r] = np.where(big, np.sign(row), 0).astype(np.int64)
            scales[r] = a[big].mean() if big.any() else 1.0
        elif scheme.startswith("pow2_"):
            b = int(scheme[5:])
            emax = (1 << (b - 1)) - 2  # stored exponents 0 .. emax
            top = np.floor(np.log2(max(a.max(), 1e-30)))
            scale = 2.0 ** (top - emax)
            e = np.clip(np.round(np.log2(np.maximum(a, 1e-30) / scale)), -1, emax)
            codes[r] = np.where(e < 0, 0, np.sign(row) * 2.0 ** np.maximum(e, 0)).astype(np.int64)
            scales[r] = scale
        else:
            k = int(scheme[3:])
            qmax = (1 << (k - 1)) - 1
            scales[r] = max(a.max(), 1e-8) / qmax
            codes[r] = np.clip(np.round(row / scales[r]), -qmax, qmax).astype(np.int64)
    bits = {"bipolar": 1, "ternary": 2}.get(scheme)
    if bits is None:
        bits = (1 << (int(scheme[5:]) - 1)) if scheme.startswith("pow2_") else int(scheme[3:])
    shape = (w.shape[out_axis],) + tuple(np.delete(np.array(w.shape), out_axis))
    weight_codes: np.ndarray = np.moveaxis(codes.reshape(shape), 0, out_axis)  # back to w's axes
    scales_full = np.moveaxis(
        np.broadcast_to(scales.reshape((-1,) + (1,) * (w.ndim - 1)), shape), 0, out_axis
    )
    return weight_codes, np.ascontiguousarray(scales_full), bits


def _producers(model):
    return {o: n for n in model.graph.node for o in n.output}


def _already_quantized(model, tensor) -> bool:
    prod = _producers(model)
    while tensor in prod:
        row = OPS.get(prod[tensor].op_type)
        if row is not None and row.quantizer:
            return True
        if row is None or not row.keeps_grid:
            return False
        tensor = prod[tensor].input[0]
    return False


def insert_quantizers(
    model: onnx.ModelProto, calib: np.ndarray, config: PTQConfig
) -> onnx.ModelProto:
    """The float ``model`` with weight and activation quantizers (a QONNX model)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    env = onnx_ops.run(model, calib.astype(np.float32), keep_all=True)
    new_nodes, new_inits, n = [], [], [0]

    def const(value, tag):
        n[0] += 1
        name = f"ptq_{tag}_{n[0]}"
        new_inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    done: dict[str, str] = {}
    meta = {}

    def act_quant(tensor: str, first: bool) -> str:
        if tensor in done:
            return done[tensor]
        x = np.asarray(env[tensor], dtype=np.float64)
        out = f"{tensor}_q"
        scheme = f"uint{config.input_bits}" if first else config.acts
        if scheme.startswith("uint") and first and x.min() < 0:
            scheme = f"int{config.input_bits}"
        if scheme == "bipolar":
            new_nodes.append(
                helper.make_node(
                    "BipolarQuant",
                    [tensor, const(max(np.abs(x).mean(), 1e-8), "s")],
                    [out],
                    name=f"ptq_quant_{tensor}",
                    domain=_QDOMAIN,
                )
            )
        else:
            signed = not scheme.startswith("uint")
            k = int(scheme[4:] if not signed else scheme[3:])
            if signed:
                scale = max(np.abs(x).max(), 1e-8) / ((1 << (k - 1)) - 1)
            else:
                scale = max(x.max(), 1e-8) / ((1 << k) - 1)
            new_nodes.append(
                helper.make_node(
                    "Quant",
                    [tensor, const(scale, "s"), const(0.0, "z"), const(float(k), "b")],
                    [out],
                    name=f"ptq_quant_{tensor}",
                    domain=_QDOMAIN,
                    signed=int(signed),
                    narrow=int(signed),
                    rounding_mode="ROUND",
                )
            )
        done[tensor] = out
        return out

    first = True  # the first layer's input gets input_bits (the image or feature input)
    for node in g.node:
        row = OPS.get(node.op_type)
        if row is None:  # the model checks reject it when the result is imported
            new_nodes.append(node)
            continue
        if row.quantize_input and not _already_quantized(model, node.input[0]):
            node.input[0] = act_quant(node.input[0], first)
        first = first and row.weight_axis is None
        if row.weight_axis is not None and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
            out_axis = row.weight_axis(onnx_ops.attributes(node))
            codes, scales, bits = quantize_weights(w, config.weights, out_axis)
            qname = f"{node.input[1]}_q{n[0]}"
            n[0] += 1
            wname = const(codes * scales, "w")
            if config.weights == "bipolar":
                new_nodes.append(
                    helper.make_node(
                        "BipolarQuant",
                        [wname, const(scales, "ws")],
                        [qname],
                        name=f"ptq_wquant_{node.name}",
                        domain=_QDOMAIN,
                    )
                )
            else:
                nbits = bits
                new_nodes.append(
                    helper.make_node(
                        "Quant",
                        [wname, const(scales, "ws"), const(0.0, "z"), const(float(nbits), "b")],
                        [qname],
                        name=f"ptq_wquant_{node.name}",
                        domain=_QDOMAIN,
                        signed=1,
                        narrow=int(config.weights == "ternary"),
                        rounding_mode="ROUND",
                    )
                )
                if config.weights.startswith("pow2_"):
                    meta[f"lowbit.dtype.{qname}"] = f"POW2_{config.weights[5:]}"
            node.input[1] = qname
        new_nodes.append(node)
    del g.node[:]
    g.node.extend(new_nodes)
    g.initializer.extend(new_inits)
    opsets = {o.domain for o in model.opset_import}
    if _QDOMAIN not in opsets:
        model.opset_import.append(helper.make_opsetid(_QDOMAIN, 1))
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    return model


def quantize_model(
    source, calib: np.ndarray, config: PTQConfig, progress=None
) -> tuple[ImportResult, onnx.ModelProto]:
    """Post-training quantization: the imported integer graph and the QONNX model it came from."""
    model, label = load_model(source)
    model = check_model(model, label)
    calib = np.asarray(calib)
    if calib.ndim < 2 or not np.isfinite(calib).all():
        raise LowbitError(
            f"{label}: the calibration data must be a finite array (B, ...), "
            f"not shape {calib.shape}"
        )
    if progress:
        progress(0, 2)
    try:
        qmodel = insert_quantizers(model, calib, config)
    except (KeyError, ValueError) as e:
        raise LowbitError(f"{label}: cannot calibrate the model: {e}") from None
    if progress:
        progress(1, 2)
    result = import_onnx(qmodel)
    if progress:
        progress(2, 2)
    return result, qmodel
