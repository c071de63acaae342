"""``lowbit eval`` and ``lowbit trace``: the integer graph on labelled data, next to its source.

* ``lowbit eval MODEL --images data.npz [--onnx SOURCE.onnx] [--count N] [--json PATH]``: the
  accuracy of the integer graph (``MODEL`` is a graph ``.npz`` or an ONNX model, imported) and,
  when there is a source model (``--onnx``, or ``MODEL`` itself when it is ONNX), the source's
  accuracy under its own executor and the labels on which the two differ.
* ``lowbit trace MODEL.onnx --images data.npz [--count N] [--json PATH]``: every graph node's
  integer output, turned into the values it stands for, next to the ONNX tensor it corresponds to;
  the first node where they part ways is marked.

The source model runs in onnxruntime (plain ONNX) or in qonnx's executor (QONNX/FINN custom-op
domains, after ``qonnx.util.cleanup.cleanup_model``), one image at a time when its batch is fixed
at 1.
"""

from __future__ import annotations

import copy
import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from .. import LowbitError
from ._args import images
from ._data import accuracy, boundary_lines, check_labels, graph_codes, read_images
from ._options import json_option

__all__ = ["register", "run_source", "TIE_RTOL", "TRACE_RTOL"]

TIE_RTOL = 2.0**-16
"""A label the graph and the source disagree on is a tie when the source scores the graph's class
within this share of its largest score magnitude of the top score (float rounding of the
source's float32 arithmetic)."""

TRACE_RTOL = 2.0**-20
"""``trace`` counts an element as differing when ``|graph - source|`` exceeds this share of the
ONNX tensor's largest magnitude: more than float32 rounding, less than one quantization step of
any code below ``2^20``."""

_QUANTIZERS = ("Quant", "BipolarQuant", "IntQuant", "Trunc", "MultiThreshold", "QuantizeLinear")
"""ONNX operators that end a layer: the graph node's codes are their output (a QuantizeLinear's
DequantizeLinear after it)."""


def _is_qonnx(model) -> bool:
    return any(n.domain not in ("", "ai.onnx", "com.microsoft") for n in model.graph.node)


def _graph_input(model):
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise LowbitError(f"the source model has {len(inputs)} inputs; lowbit runs models with one")
    return inputs[0]


def _dims(value_info) -> list[int | None]:
    return [
        d.dim_value if d.HasField("dim_value") else None
        for d in value_info.type.tensor_type.shape.dim
    ]


def _with_outputs(model, names):
    """A copy of ``model`` that also outputs the tensors ``names`` (types from shape inference)."""
    import onnx
    from onnx import TensorProto, helper

    m = copy.deepcopy(model)
    have = {o.name for o in m.graph.output}
    try:
        inferred = onnx.shape_inference.infer_shapes(m)
        types = {v.name: v for v in inferred.graph.value_info}
    except Exception:  # shape inference is a convenience here; untyped outputs still run
        types = {}
    for n in names:
        if n in have:
            continue
        vi = types.get(n)
        m.graph.output.append(
            copy.deepcopy(vi)
            if vi is not None
            else helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
        )
        have.add(n)
    keep = [v for v in m.graph.value_info if v.name not in have]  # an output is not value_info
    del m.graph.value_info[:]
    m.graph.value_info.extend(keep)
    return m


def run_source(model, x: np.ndarray, extra=(), label: str = "source") -> tuple[dict, str]:
    """Run the ONNX ``model`` on ``x`` (its input layout) with its own executor.

    Returns the values of the model's first output (key ``None``) and of the tensors ``extra`` (by
    name), each ``(B, ...)``, and the executor's name (``"onnxruntime"`` or ``"qonnx"``).
    """
    from onnx import helper

    inp = _graph_input(model)
    dims = _dims(inp)
    try:
        np_type = helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
    except (KeyError, ValueError):
        np_type = np.dtype(np.float32)
    x = np.asarray(x).astype(np_type)
    one = bool(dims) and dims[0] == 1
    extra = [n for n in dict.fromkeys(extra) if n != model.graph.output[0].name]
    m = _with_outputs(model, extra)
    qonnx = _is_qonnx(model)
    runner = "qonnx" if qonnx else "onnxruntime"
    try:
        if qonnx:
            from qonnx.core.modelwrapper import ModelWrapper
            from qonnx.core.onnx_exec import execute_onnx
            from qonnx.util.cleanup import cleanup_model

            mw = cleanup_model(ModelWrapper(m))
            iname = mw.graph.input[0].name
            onames = [o.name for o in mw.graph.output]

            def call(xb):
                ctx = execute_onnx(mw, {iname: xb})
                return [ctx[o] for o in onames]
        else:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            sess = ort.InferenceSession(
                m.SerializeToString(), opts, providers=["CPUExecutionProvider"]
            )
            onames = [o.name for o in m.graph.output]
            iname = inp.name

            def call(xb):
                return sess.run(onames, {iname: xb})

        batches = [x[i : i + 1] for i in range(len(x))] if one else [x]
        outs = [call(b) for b in batches]
    except ImportError as e:
        raise LowbitError(
            f"{label}: running the source model needs {runner} ({e}); install lowbit's onnx extra"
        ) from None
    except LowbitError:
        raise
    except Exception as e:  # the third-party executors raise anything on a model they reject
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise LowbitError(
            f"{label}: {runner} could not run the model ({type(e).__name__}: {msg})"
        ) from None
    # the model's first output, then the extra ones in order (graph outputs keep their order
    # through qonnx's clean-up, which renames them)
    first = len(onames) - len(extra)
    result = {None: np.concatenate([np.asarray(o[0]) for o in outs])}
    for j, name in enumerate(extra):
        result[name] = np.concatenate([np.asarray(o[first + j]) for o in outs])
    return result, runner


def _onnx_layout(x: np.ndarray, model) -> np.ndarray:
    """``x`` reshaped to the source model's input shape (same batch)."""
    dims = [d for d in _dims(_graph_input(model))[1:] if d is not None]
    if len(dims) != len(_dims(_graph_input(model))) - 1:
        return x  # symbolic dimensions: the data's own layout
    if math.prod(dims) != math.prod(x.shape[1:]):
        raise LowbitError(
            f"the images have {math.prod(x.shape[1:])} values each; the source model's input "
            f"takes {'x'.join(map(str, dims))}"
        )
    return x.reshape((len(x), *dims))


def _load_model_arg(path: str):
    """``(graph, import_result or None)`` of a MODEL argument (``.npz`` graph or ONNX)."""
    from ..ir.graph import IntegerGraph

    if Path(path).suffix == ".npz":
        return IntegerGraph.load(path), None
    from ..quant.onnx.importer import import_onnx

    result = import_onnx(path)
    return result.graph, result


def _slice(x, y, count, source):
    if count is not None:  # >= 1 (_args.images)
        x, y = x[:count], None if y is None else y[:count]
    if len(x) == 0:
        raise LowbitError(f"{source}: 'x' holds no images; zero images measure nothing")
    return x, y


def cmd_eval(args) -> int:
    from ..flow import write_json
    from ..ir.graph import values

    graph, result = _load_model_arg(args.model)
    x, y = read_images(args.images, labels=True)
    assert y is not None
    x, y = _slice(x, y, args.count, args.images)
    check_labels(y, graph.classes, args.images)
    source_path = args.onnx or (args.model if result is not None else None)
    if result is not None:
        x = _onnx_layout(x, result.model)
        codes = result.encode(x)
        source_x = x
    else:
        codes = graph_codes(graph, x, args.images)
        if x.dtype.kind == "f":
            source_x = x
        else:  # codes: the source reads the values they stand for
            q = graph.input_quant
            source_x = q.decode(codes) if q is not None else values(codes, graph.input_dtype)
        if len(graph.input_shape) == 3:  # graph images are (H, W, C); ONNX ones (C, H, W)
            source_x = np.moveaxis(source_x.reshape((len(x),) + graph.input_shape), -1, 1)
    pred = graph.predict(codes)
    report: dict = {
        "model": str(args.model),
        "images": str(args.images),
        "count": len(y),
        **graph.boundary(),
        "accuracy": {"graph": accuracy(pred, y)},
        "correct": {"graph": int(np.sum(pred == y))},
    }
    print(f"lowbit eval: {args.model} on {args.images} ({len(y)} labelled images)")
    print("  " + boundary_lines(graph).replace("\n", "\n  "))
    print(
        f"  integer graph      : accuracy {report['accuracy']['graph']:.4f} "
        f"({report['correct']['graph']} of {len(y)})"
    )
    if source_path is not None:
        from ..quant.onnx.importer import load_model

        model, label = load_model(source_path)
        print(f"running the source model {label} ...", file=sys.stderr, flush=True)
        out, runner = run_source(model, _onnx_layout(source_x, model), label=label)
        scores = out[None].reshape(len(y), -1).astype(np.float64)
        if scores.shape[1] != graph.classes:
            raise LowbitError(
                f"{label}: the source model outputs {scores.shape[1]} values per image; the "
                f"graph has {graph.classes} classes"
            )
        src = np.argmax(scores, axis=1)
        differ = np.flatnonzero(src != pred)
        top = scores.max(axis=1)
        tol = TIE_RTOL * np.maximum(np.abs(scores).max(axis=1), np.finfo(np.float64).tiny)
        ties = [int(i) for i in differ if scores[i, pred[i]] >= top[i] - tol[i]]
        report["source"] = {"model": label, "runner": runner}
        report["accuracy"]["source"] = accuracy(src, y)
        report["correct"]["source"] = int(np.sum(src == y))
        report["labels_differ"] = len(differ)
        report["ties"] = len(ties)
        report["differing_images"] = [int(i) for i in differ[:100]]
        print(
            f"  {'source (' + runner + ')':19s}: accuracy {report['accuracy']['source']:.4f} "
            f"({report['correct']['source']} of {len(y)})"
        )
        print(
            f"  labels differing   : {len(differ)}"
            + (
                f" ({len(ties)} of them ties within float rounding in the source's top-2)"
                if len(differ)
                else ""
            )
        )
    if args.json:
        write_json(args.json, report)
    return 0


def _consumers(model) -> dict[str, list]:
    out: dict[str, list] = {}
    for n in model.graph.node:
        for t in n.input:
            out.setdefault(t, []).append(n)
    return out


def _layer_tensor(model, node_name: str, *, walk: bool) -> str | None:
    """The ONNX tensor holding a graph node's output values: the output of ONNX node
    ``node_name``, or (``walk``) of the quantizer that ends its layer, following single consumers
    (a QuantizeLinear's DequantizeLinear)."""
    nodes = {n.name: n for n in model.graph.node}
    node = nodes.get(node_name)
    if node is None or not node.output:
        return None
    if not walk:
        return node.output[0]
    cons = _consumers(model)
    for _ in range(len(model.graph.node)):
        t = node.output[0]
        if node.op_type in _QUANTIZERS and node.op_type != "QuantizeLinear":
            return t
        nxt = cons.get(t, [])
        if len(nxt) != 1:
            return None
        if node.op_type == "QuantizeLinear":
            return nxt[0].output[0] if nxt[0].op_type == "DequantizeLinear" else None
        node = nxt[0]
    return None


def _as_values(codes: np.ndarray, dtype, scale, offset) -> np.ndarray:
    """``scale[c] * values(code) + offset[c]`` (channels on the last axis), float64."""
    from ..ir.graph import values

    s = np.array([float(Fraction(v)) for v in scale])
    o = np.array([float(Fraction(v)) for v in offset])
    return values(codes, dtype) * s + o


def _compare(ours: np.ndarray, theirs: np.ndarray) -> dict:
    theirs = np.asarray(theirs, dtype=np.float64)
    if ours.ndim == 4 and theirs.ndim == 4:  # graph images (B, H, W, C); ONNX ones (B, C, H, W)
        ours = np.moveaxis(ours, -1, 1)
    if ours.shape != theirs.shape:
        if ours.size != theirs.size:
            return {"shape": f"{ours.shape} vs {theirs.shape}"}
        theirs = theirs.reshape(ours.shape)
    diff = np.abs(ours - theirs)
    tol = TRACE_RTOL * max(float(np.abs(theirs).max(initial=0.0)), np.finfo(np.float64).tiny)
    bad = diff > tol
    first = None
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        first = {"index": list(i), "graph": float(ours[i]), "onnx": float(theirs[i])}
    return {
        "max_abs_diff": float(diff.max(initial=0.0)),
        "differing": int(bad.sum()),
        "elements": int(bad.size),
        "first": first,
    }


def cmd_trace(args) -> int:
    from ..flow import write_json
    from ..ir.graph import (
        Add,
        DepthwiseConv,
        GlobalAvgPool,
        MatMulThreshold,
        MaxPool,
        Threshold,
    )

    thresholded = (MatMulThreshold, DepthwiseConv, GlobalAvgPool, Add, Threshold)
    from ..quant.onnx.importer import import_onnx, load_model

    if Path(args.model).suffix == ".npz":
        raise LowbitError(
            f"{args.model}: trace compares with the source model: give the ONNX file (.onnx)"
        )
    result = import_onnx(args.model)
    graph = result.graph
    model, label = load_model(args.model)
    x, _ = read_images(args.images)
    x, _ = _slice(x, None, args.count, args.images)
    x = _onnx_layout(x, model)
    codes = result.encode(x)
    outs = graph.trace(codes)

    # (row name, op, ONNX tensor, our values or None, why not compared)
    plan: list[tuple[str, str, str | None, np.ndarray | None, str]] = []
    if result.input_tensor is not None:
        plan.append(
            (
                "(input)",
                "input codes",
                result.input_tensor,
                _as_values(codes, graph.input_dtype, result.input_scale, result.input_offset),
                "",
            )
        )
    scale = (result.input_scale, result.input_offset)
    for i, (node, out) in enumerate(zip(graph.nodes, outs)):
        op = type(node).__name__
        origin = result.origins.get(node.name, [])
        if i == len(graph.nodes) - 1:
            plan.append((node.name, op, model.graph.output[0].name, result.outputs(out), ""))
        elif isinstance(node, thresholded) and node.name in result.layer_scales and origin:
            scale = result.layer_scales[node.name]
            t = _layer_tensor(model, origin[0], walk=True)
            mine = _as_values(out, node.output_dtype, *scale)
            plan.append((node.name, op, t, mine, "" if t else "no single quantizer output"))
        elif isinstance(node, MaxPool) and origin and all(Fraction(v) > 0 for v in scale[0]):
            t = _layer_tensor(model, origin[0], walk=False)
            dtype = graph.output_dtype(i - 1) if i else graph.input_dtype
            plan.append((node.name, op, t, _as_values(out, dtype, *scale), ""))
        else:
            plan.append((node.name, op, None, None, "no ONNX tensor"))
    wanted = [t for _, _, t, v, _ in plan if t is not None and v is not None]
    print(f"running the source model {label} ...", file=sys.stderr, flush=True)
    src, runner = run_source(model, x, extra=wanted, label=label)
    src[model.graph.output[0].name] = src.pop(None)

    rows = []
    first = None
    for name, op, t, ours, why in plan:
        row: dict = {"node": name, "op": op, "onnx_tensor": t}
        if t is not None and ours is not None and t in src:
            row.update(_compare(ours, src[t]))
        else:
            row["skipped"] = why or "not computed by the source executor"
        if first is None and row.get("differing"):
            first = name
        rows.append(row)

    print(f"lowbit trace: {args.model} on {args.images} ({len(x)} images, source run by {runner})")
    head = ("node", "op", "ONNX tensor", "max |diff|", "differing")
    table = [head]
    for r in rows:
        if "differing" in r:
            table.append(
                (
                    r["node"],
                    r["op"],
                    r["onnx_tensor"],
                    f"{r['max_abs_diff']:.6g}",
                    f"{r['differing']} of {r['elements']}",
                )
            )
        else:
            table.append(
                (r["node"], r["op"], r["onnx_tensor"] or "-", "-", r.get("shape") or r["skipped"])
            )
    widths = [max(len(str(cells[k])) for cells in table) for k in range(len(head))]
    for k, cells in enumerate(table):
        line = "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
        mark = "  <== first difference" if k and rows[k - 1]["node"] == first else ""
        print("  " + line + mark)
    if first is None:
        print(
            "the integer graph and the source model agree on every compared tensor "
            f"(within float32 rounding, relative {TRACE_RTOL:.3g})"
        )
    else:
        r = next(r for r in rows if r["node"] == first)
        print(
            f"they part ways at {first} (ONNX tensor {r['onnx_tensor']}): {r['differing']} of "
            f"{r['elements']} elements differ; first at {tuple(r['first']['index'])}: graph "
            f"{r['first']['graph']:.9g}, source {r['first']['onnx']:.9g}"
        )
    if args.json:
        write_json(
            args.json,
            {
                "model": str(args.model),
                "images": str(args.images),
                "count": len(x),
                "runner": runner,
                "rows": rows,
                "first_difference": first,
            },
        )
    return 0 if first is None else 1


def register(sub) -> None:
    """Add ``eval`` and ``trace`` to the ``lowbit`` parser's ``sub`` (argparse sub-parsers)."""
    e = sub.add_parser(
        "eval",
        help="accuracy of the integer graph on labelled data, next to the source model's",
        parents=[json_option("the results")],
    )
    e.add_argument("model", help="integer graph (.npz) or ONNX model (imported)")
    e.add_argument(
        "--images",
        required=True,
        help=".npz with images 'x' and labels 'y': float 'x' are encoded by the input quantizer, "
        "integer 'x' are input codes; layout (B, H, W, C) or flat for a graph, the ONNX input's "
        "for an ONNX model",
    )
    e.add_argument(
        "--onnx", metavar="SOURCE", help="also run this source ONNX model (default: none)"
    )
    e.add_argument("--count", type=images, help="only the first COUNT images (default: all)")
    e.set_defaults(func=cmd_eval)

    t = sub.add_parser(
        "trace",
        help="per-layer integer activations of an imported ONNX model next to the model's own "
        "tensors (exit 1 when they differ)",
        parents=[json_option("the rows")],
    )
    t.add_argument("model", help="ONNX model")
    t.add_argument("--images", required=True, help=".npz with inputs 'x' (the ONNX input layout)")
    t.add_argument("--count", type=images, help="only the first COUNT images (default: all)")
    t.set_defaults(func=cmd_trace)
