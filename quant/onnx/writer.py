"""Export the typed integer graph to QONNX (for the ``qonnx`` package and FINN) and to plain ONNX.

Both exports take the graph's integer input (``(B, *input_shape)``, images NHWC) as float32 values
(bipolar bits as ``-1``/``+1``, the FINN convention) and produce the graph's integer scores, or,
when the last node has a class map, its decision values ``mult * score + offset`` (a per-class
``Mul`` and ``Add``). Every intermediate value is an integer below ``2^24`` (checked), so float32
runtimes compute them exactly.

* QONNX: ``Im2Col``, ``MatMul`` on integer-valued float weights, ``MultiThreshold`` (thresholds on
  the dot product; ``BIPOLAR`` outputs with ``out_scale=2, out_bias=-1``), ``MaxPoolNHWC`` and
  ``ReduceSum``, with FINN ``finn_datatype`` annotations on the input, weights and activations.
  :func:`lowbit.quant.onnx.importer.import_onnx` reads it back to an identical graph.
* plain ONNX (opset 13) for ``onnxruntime``: the same computation in standard operators (a one-hot
  ``Conv`` for the sliding window, ``GreaterOrEqual`` + ``ReduceSum`` for thresholds).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ... import LowbitError
from ..._io import atomic_write
from ...ir.datatypes import DataType, Kind
from ...ir.graph import GlobalAccPool, IntegerGraph, MatMulThreshold, MaxPool, SlidingWindow

__all__ = ["to_qonnx", "to_onnx", "save_model", "QONNX_DOMAIN", "EXPORT_OPSET"]

log = logging.getLogger(__name__)

QONNX_DOMAIN = "qonnx.custom_op.general"
EXPORT_OPSET = 13
_EXACT = 1 << 24


def _finn_name(dtype: DataType) -> str:
    if dtype.kind is Kind.POW2:
        return f"INT{dtype.max_exponent + 2}"
    return dtype.name


class _Writer:
    def __init__(self, graph: IntegerGraph, qonnx: bool):
        self.g, self.qonnx = graph, qonnx
        self.batch = 1 if qonnx else "batch"  # FINN's front end expects batch 1
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.annot: dict[str, str] = {}
        self.meta: dict[str, str] = {}
        self.shapes: dict[str, list] = {}
        self.n = 0

    def const(self, name, value, dtype=np.float32):
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op, inputs, out, name, domain="", **attrs):
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, domain=domain, **attrs))
        return out

    def check_exact(self, what, lo, hi):
        if max(abs(lo), abs(hi)) >= _EXACT:
            raise LowbitError(
                f"node {what!r}: values up to {max(abs(lo), abs(hi))} exceed 2^24 "
                "and would not be exact in float32"
            )

    def build(self) -> onnx.ModelProto:
        g = self.g
        g.require_chain("ONNX export")
        x = "global_in"
        shape = list(g.input_shape_of(0))
        inp = helper.make_tensor_value_info(x, TensorProto.FLOAT, [self.batch, *shape])
        self.annot[x] = _finn_name(g.input_dtype)
        self.meta[f"lowbit.dtype.{x}"] = g.input_dtype.name
        if len(shape) == 3:
            self.meta[f"lowbit.layout.{x}"] = "NHWC"
        dtype = g.input_dtype
        for i, n in enumerate(g.nodes):
            ishape = g.input_shape_of(i)
            out = f"{n.name}_out"
            if isinstance(n, SlidingWindow):
                x = self.sliding_window(n, x, out, ishape, dtype)
            elif isinstance(n, MaxPool):
                x = self.maxpool(n, x, out)
            elif isinstance(n, GlobalAccPool):
                axes = self.const(f"{n.name}_axes", [1, 2], np.int64)
                x = self.node("ReduceSum", [x, axes], out, n.name, keepdims=0)
            else:
                x = self.matmul(n, x, out, ishape)
            dtype = n.output_dtype if isinstance(n, MatMulThreshold) else n.infer(ishape, dtype)[1]
            self.shapes[x] = list(g.output_shape(i))
            if not (isinstance(n, MatMulThreshold) and n.thresholds is None):
                self.annot[x] = _finn_name(dtype)
        outp = helper.make_tensor_value_info(x, TensorProto.FLOAT, [self.batch, g.classes])
        vi = [
            helper.make_tensor_value_info(t, TensorProto.FLOAT, [self.batch, *shp])
            for t, shp in self.shapes.items()
            if t != x
        ]
        graph = helper.make_graph(self.nodes, "lowbit", [inp], [outp], self.inits, value_info=vi)
        if self.qonnx:
            for t, name in self.annot.items():
                a = onnx.TensorAnnotation(tensor_name=t)
                a.quant_parameter_tensor_names.add(key="finn_datatype", value=name)
                graph.quantization_annotation.append(a)
        ops = [helper.make_opsetid("", EXPORT_OPSET)]
        if self.qonnx:
            ops.append(helper.make_opsetid(QONNX_DOMAIN, 1))
        model = helper.make_model(graph, opset_imports=ops, producer_name="lowbit")
        model.ir_version = 8
        for k, v in self.meta.items():
            model.metadata_props.add(key=k, value=v)
        return model

    def sliding_window(self, n: SlidingWindow, x, out, ishape, dtype):
        h, w, c = ishape
        pad_value = 2 * n.pad_value - 1 if dtype.kind is Kind.BIPOLAR else n.pad_value
        if self.qonnx:
            return self.node(
                "Im2Col",
                [x],
                out,
                n.name,
                domain=QONNX_DOMAIN,
                stride=[n.stride, n.stride],
                kernel_size=[n.kernel, n.kernel],
                input_shape=f"(1, {h}, {w}, {c})",
                pad_amount=[n.pad] * 4,
                pad_value=int(pad_value),
            )
        k = n.kernel
        t = self.node("Transpose", [x], f"{n.name}_nchw", f"{n.name}_to_nchw", perm=[0, 3, 1, 2])
        if n.pad:
            pads = self.const(f"{n.name}_pads", [0, 0, n.pad, n.pad, 0, 0, n.pad, n.pad], np.int64)
            pv = self.const(f"{n.name}_padval", pad_value)
            t = self.node(
                "Pad", [t, pads, pv], f"{n.name}_padded", f"{n.name}_pad", mode="constant"
            )
        onehot = np.zeros((k * k * c, c, k, k), dtype=np.float32)
        for ky in range(k):
            for kx in range(k):
                for ch in range(c):
                    onehot[(ky * k + kx) * c + ch, ch, ky, kx] = 1
        wname = self.const(f"{n.name}_onehot", onehot)
        t = self.node(
            "Conv",
            [t, wname],
            f"{n.name}_cols",
            f"{n.name}_conv",
            kernel_shape=[k, k],
            strides=[n.stride, n.stride],
        )
        return self.node("Transpose", [t], out, n.name, perm=[0, 2, 3, 1])

    def maxpool(self, n: MaxPool, x, out):
        if self.qonnx:
            return self.node(
                "MaxPoolNHWC",
                [x],
                out,
                n.name,
                domain=QONNX_DOMAIN,
                kernel_shape=[n.kernel, n.kernel],
                pads=[0, 0, 0, 0],
                strides=[n.stride, n.stride],
            )
        t = self.node("Transpose", [x], f"{n.name}_nchw", f"{n.name}_to_nchw", perm=[0, 3, 1, 2])
        t = self.node(
            "MaxPool",
            [t],
            f"{n.name}_pooled",
            f"{n.name}_pool",
            kernel_shape=[n.kernel, n.kernel],
            strides=[n.stride, n.stride],
        )
        return self.node("Transpose", [t], out, n.name, perm=[0, 2, 3, 1])

    def matmul(self, n: MatMulThreshold, x, out, ishape):
        lo, hi = n.score_range
        self.check_exact(n.name, lo, hi)
        if ishape[-1] != n.mw:
            x = self.node("Flatten", [x], f"{n.name}_flat", f"{n.name}_flatten", axis=1)
            self.shapes[x] = [n.mw]
        wname = f"{n.name}_W"
        self.const(wname, n.weight_values.T)
        self.annot[wname] = _finn_name(n.weight_dtype)
        self.meta[f"lowbit.dtype.{wname}"] = n.weight_dtype.name
        cm = n.class_map
        if n.thresholds is None and cm is None:
            return self.node("MatMul", [x, wname], out, n.name)
        if cm is not None:  # the class map: decision values mult * score + offset
            self.check_exact(f"{n.name} class map", *cm.value_range(lo, hi))
            s = self.node("MatMul", [x, wname], f"{n.name}_scores", n.name)
            self.shapes[s] = [n.mh]
            m = self.node(
                "Mul", [s, self.const(f"{n.name}_class_mult", cm.mult)], f"{n.name}_mapped",
                f"{n.name}_class_mult",
            )
            self.shapes[m] = [n.mh]
            return self.node(
                "Add", [m, self.const(f"{n.name}_class_offset", cm.offset)], out,
                f"{n.name}_class_offset",
            )
        assert n.thresholds is not None  # a scores node has returned above
        acc = self.node("MatMul", [x, wname], f"{n.name}_acc", n.name)
        self.shapes[acc] = list(ishape[:-1]) + [n.mh] if ishape[-1] == n.mw else [n.mh]
        t = 2 * n.thresholds - n.mw if n.xnor else n.thresholds  # thresholds on the dot product
        tname = self.const(f"{n.name}_T", t)
        bipolar = n.output_dtype.kind is Kind.BIPOLAR
        image = len(ishape) == 3 and ishape[-1] == n.mw
        if self.qonnx:
            return self.node(
                "MultiThreshold",
                [acc, tname],
                out,
                f"{n.name}_threshold",
                domain=QONNX_DOMAIN,
                out_dtype=n.output_dtype.name,
                out_scale=2.0 if bipolar else 1.0,
                out_bias=-1.0 if bipolar else 0.0,
                data_layout="NHWC" if image else "NC",
            )
        axes = self.const(f"{n.name}_axes", [-1], np.int64)
        u = self.node("Unsqueeze", [acc, axes], f"{n.name}_u", f"{n.name}_unsqueeze")
        ge = self.node("GreaterOrEqual", [u, tname], f"{n.name}_ge", f"{n.name}_compare")
        cf = self.node("Cast", [ge], f"{n.name}_gef", f"{n.name}_cast", to=TensorProto.FLOAT)
        s = self.node(
            "ReduceSum",
            [cf, axes],
            f"{n.name}_count" if bipolar else out,
            f"{n.name}_count",
            keepdims=0,
        )
        if not bipolar:
            return s
        m = self.node(
            "Mul", [s, self.const(f"{n.name}_two", 2.0)], f"{n.name}_x2", f"{n.name}_times2"
        )
        return self.node("Sub", [m, self.const(f"{n.name}_one", 1.0)], out, f"{n.name}_to_pm1")


def to_qonnx(graph: IntegerGraph) -> onnx.ModelProto:
    """The graph as a QONNX model
    (``Im2Col``/``MatMul``/``MultiThreshold``/``MaxPoolNHWC``/``ReduceSum``)."""
    return _Writer(graph, qonnx=True).build()


def to_onnx(graph: IntegerGraph) -> onnx.ModelProto:
    """The graph as a plain ONNX model (opset 13, standard operators only) that ``onnxruntime``
    runs."""
    return _Writer(graph, qonnx=False).build()


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """Write an ONNX model atomically."""
    return atomic_write(path, model.SerializeToString())
