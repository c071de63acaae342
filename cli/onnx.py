"""Sub-commands of ``lowbit`` for ONNX/QONNX import, export and quantize (issue 4).

* ``lowbit import MODEL.onnx [-o graph.npz] [--json report.json]``: per-layer table (op, shapes,
  data types, parameters, memory bits, MACs by kind, bit-operations) and, with ``-o``, the integer
  graph.
* ``lowbit export MODEL -o out.onnx [--format qonnx|onnx]``: a lowbit graph (``.npz``) or an ONNX
  model, written as QONNX (``qonnx``/FINN) or plain ONNX (``onnxruntime``).
* ``lowbit quantize MODEL.onnx --weights W --acts A --calib data.npz -o graph.npz``: post-training
  quantization of a float model with a calibration set (array ``x``).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from .. import LowbitError
from ._data import boundary_lines
from ._options import json_option, output_option

__all__ = ["register", "format_table"]


def _dtype(name: str | None):
    if name is None:
        return None
    from ..ir.datatypes import DataType

    try:
        return DataType.parse(name.upper())
    except ValueError as e:
        raise LowbitError(f"--input-dtype: {e}") from None


def _load_any(path: str, input_dtype=None):
    """A lowbit graph from ``.npz`` or an ONNX model (imported)."""
    from ..ir.graph import IntegerGraph
    from ..quant.onnx.importer import import_onnx

    if Path(path).suffix == ".npz":
        return IntegerGraph.load(path), None
    result = import_onnx(path, input_dtype=input_dtype)
    return result.graph, result


def format_table(rows: list[dict]) -> str:
    """The per-layer table of :func:`lowbit.quant.onnx.importer.layer_table` as text, with
    totals."""
    head = [
        "layer",
        "op",
        "from",
        "input",
        "output",
        "in",
        "weights",
        "out",
        "params",
        "mem bits",
        "XNOR",
        "ternary",
        "shift",
        "int",
        "BOPs",
    ]
    lines = []
    for r in rows:
        m = r["macs"]
        lines.append(
            [
                r["name"],
                r["op"],
                r["from"],
                "x".join(map(str, r["input_shape"])),
                "x".join(map(str, r["output_shape"])),
                r["input"],
                r["weights"] or "-",
                r["output"],
                f"{r['params']:,}",
                f"{r['memory_bits']:,}",
                f"{m['xnor']:,}",
                f"{m['ternary']:,}",
                f"{m['shift']:,}",
                f"{m['integer']:,}",
                f"{r['bops']:,}",
            ]
        )
    tot = (
        [
            "total",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            f"{sum(r['params'] for r in rows):,}",
            f"{sum(r['memory_bits'] for r in rows):,}",
        ]
        + [f"{sum(r['macs'][k] for r in rows):,}" for k in ("xnor", "ternary", "shift", "integer")]
        + [f"{sum(r['bops'] for r in rows):,}"]
    )
    table = [head] + lines + [tot]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    right = set(range(8, len(head)))
    out = []
    for k, row in enumerate(table):
        cells = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        ]
        out.append("  ".join(cells).rstrip())
        if k == 0 or k == len(lines):
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


MAX_CALIB_BITS = 8
"""``import --calib``: the widest exact grid taken as the input quantizer; data on no grid that
narrow get an 8-bit quantizer spanning them."""


def _parse_input_quant(text: str):
    """``TYPE:SCALE[:ZERO_POINT]`` (``UINT5:0.0625``, ``INT8:1/128:0``) as an ``InputQuant``."""
    from ..ir.boundary import InputQuant
    from ..ir.datatypes import DataType

    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError("expected TYPE:SCALE[:ZERO_POINT]")
        dtype = DataType.parse(parts[0].upper())
        scale = float(Fraction(parts[1]))
        zero = float(Fraction(parts[2])) if len(parts) == 3 else 0.0
        return InputQuant(dtype, (scale,), (zero,))
    except (ValueError, ZeroDivisionError) as e:
        raise LowbitError(
            f"--input-quant: expected TYPE:SCALE[:ZERO_POINT] such as UINT5:0.0625 or "
            f"INT8:1/128, not {text!r} ({e})"
        ) from None


def calibrated_input_quant(x: np.ndarray, source: str):
    """The input quantizer of float calibration inputs ``x`` and whether it is exact: the
    narrowest grid ``k * scale`` (zero point 0, at most :data:`MAX_CALIB_BITS` bits) holding
    every value, else 8 bits spanning the data (``UINT8`` for data >= 0, ``INT8`` otherwise)."""
    from ..ir.boundary import InputQuant
    from ..ir.datatypes import DataType

    v = np.unique(np.asarray(x, dtype=np.float32))
    if v.size == 0 or not np.isfinite(v).all():
        raise LowbitError(f"{source}: calibration inputs 'x' must be finite numbers (and some)")
    if not v.any():
        raise LowbitError(f"{source}: calibration inputs 'x' are all zero; no scale to derive")
    fr = [Fraction(float(t)) for t in v]
    den = max(f.denominator for f in fr)  # float32 values: powers of two, so the lcm is the max
    grid = Fraction(math.gcd(*(int(f * den) for f in fr)), den)
    lo, hi = int(fr[0] / grid), int(fr[-1] / grid)
    dtype = DataType.for_range(min(lo, 0), max(hi, 0))
    if dtype.bits <= MAX_CALIB_BITS and np.float32(float(grid)) == grid:
        return InputQuant(dtype, (float(grid),), (0.0,)), True
    a, b = float(v[0]), float(v[-1])
    if a >= 0:
        return InputQuant(DataType.uint(8), (b / 255,), (0.0,)), False
    return InputQuant(DataType.int(8), (max(-a, b) / 127,), (0.0,)), False


def _input_args(args) -> tuple[dict, tuple[np.ndarray, bool] | None]:
    """The input type or quantizer ``import_onnx`` gets from ``--input-dtype``, ``--input-quant``
    or ``--calib``, and (``--calib``) the calibration inputs and whether they lie on the grid."""
    given = [
        f
        for f, v in (
            ("--input-dtype", args.input_dtype),
            ("--input-quant", args.input_quant),
            ("--calib", args.calib),
        )
        if v
    ]
    if len(given) > 1:
        raise LowbitError(f"give one of {', '.join(given)}: each sets the input's codes")
    if args.input_dtype:
        dtype = _dtype(args.input_dtype)
        print(
            f"note: --input-dtype {dtype} reads a float input as {dtype} codes of scale 1 (the "
            f"value of code k is k); for another scale use --input-quant {dtype}:SCALE"
        )
        return {"input_dtype": dtype}, None
    if args.input_quant:
        return {"input_quant": _parse_input_quant(args.input_quant)}, None
    if args.calib:
        x, _ = _calib(args.calib)
        if x.dtype.kind not in "fiu":
            raise LowbitError(
                f"{args.calib}: calibration inputs 'x' must be numbers, not {x.dtype}"
            )
        q, exact = calibrated_input_quant(x, args.calib)
        return {"input_quant": q}, (x, exact)
    return {}, None


def _report_calibration(path: str, result, calib: tuple[np.ndarray, bool], q) -> None:
    """Print the derived input quantizer; when it is not exact, how many of the float model's
    decisions on the calibration inputs the quantized input changes."""
    from ..quant.onnx import ops as onnx_ops

    x, exact = calib
    if exact:
        print(f"input quantizer from {path}: {q.describe()} (every calibration input on its grid)")
        return
    g = result.graph
    float_out = next(iter(onnx_ops.run(result.model, x.astype(np.float32)).values()))
    xg = np.moveaxis(x, 1, -1) if x.ndim == 4 else x  # ONNX images are NCHW, the graph's HWC
    changed = int(
        np.sum(
            np.argmax(float_out.reshape(len(x), -1), axis=1)
            != g.predict(g.encode(xg.reshape((len(x),) + g.input_shape)))
        )
    )
    print(
        f"warning: the calibration inputs in {path} lie on no grid of at most {MAX_CALIB_BITS} "
        f"bits; input quantizer {q.describe()} spans [{float(x.min()):.6g}, "
        f"{float(x.max()):.6g}]\n  the hardware sees these quantized inputs, not the floats: "
        f"{changed} of {len(x)} calibration decisions change (float model vs integer graph)"
    )


def cmd_import(args) -> int:
    from .._io import atomic_write
    from ..quant.onnx.importer import import_onnx, layer_table

    kw, calib = _input_args(args)
    result = import_onnx(args.model, **kw)
    if calib is not None:
        _report_calibration(args.calib, result, calib, kw["input_quant"])
    rows = layer_table(result.graph, result.origins)
    g = result.graph
    print(
        f"{args.model}: {len(g.nodes)} integer nodes, input {g.input_dtype} "
        f"{'x'.join(map(str, g.input_shape_of(0)))}, {g.classes} classes"
    )
    print(boundary_lines(g))
    print(format_table(rows))
    if args.output:
        g.save(args.output)
        print(f"wrote {args.output}")
    if args.json:
        atomic_write(args.json, json.dumps({"model": str(args.model), "layers": rows}, indent=2))
    return 0


def cmd_export(args) -> int:
    from ..quant.onnx.writer import save_model, to_onnx, to_qonnx

    graph, result = _load_any(args.model, _dtype(args.input_dtype))
    model = to_qonnx(graph) if args.format == "qonnx" else to_onnx(graph)
    save_model(model, args.output)
    print(
        f"wrote {args.output} ({args.format}, {len(model.graph.node)} ONNX nodes from "
        f"{len(graph.nodes)} integer nodes)"
    )
    return 0


def _calib(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    p = Path(path)
    if not p.is_file():
        raise LowbitError(f"{p}: no such calibration file")
    try:
        with np.load(p, allow_pickle=False) as z:
            if "x" not in z.files:
                raise LowbitError(
                    f"{p}: expected an array named 'x' (B, ...) of calibration inputs"
                )
            return z["x"], (z["y"] if "y" in z.files else None)
    except (OSError, ValueError) as e:
        raise LowbitError(f"{p}: cannot read calibration data ({e})") from None


def cmd_quantize(args) -> int:
    from ..quant.onnx import ops as onnx_ops
    from ..quant.onnx.importer import layer_table, load_model
    from ..quant.onnx.ptq import PTQConfig, quantize_model
    from ..quant.onnx.writer import save_model
    from ._progress import Bar
    from ._vocab import parse_scheme, ptq_spelling

    config = PTQConfig(
        weights=ptq_spelling(parse_scheme(args.weights, "--weights", "quantize-weights")),
        acts=ptq_spelling(parse_scheme(args.acts, "--acts", "quantize-acts")),
        input_bits=args.input_bits,
    )
    x, y = _calib(args.calib)
    result, qmodel = quantize_model(
        args.model, x, config, progress=Bar("quantize", 2, unit="steps")
    )
    model, _ = load_model(args.model)
    ref = next(iter(onnx_ops.run(model, x.astype(np.float32)).values()))
    ours = result.run(x)
    agree = float(np.mean(ours.argmax(-1) == ref.argmax(-1)))
    print(format_table(layer_table(result.graph, result.origins)))
    msg = f"argmax agreement with the float model on the calibration set: {agree:.4f}"
    if y is not None:
        msg += (
            f"; accuracy float {np.mean(ref.argmax(-1) == y):.4f}, "
            f"quantized {np.mean(ours.argmax(-1) == y):.4f}"
        )
    print(msg)
    result.graph.save(args.output)
    print(f"wrote {args.output}")
    if args.qonnx:
        save_model(qmodel, args.qonnx)
        print(f"wrote {args.qonnx} (the float model with its quantizers, QONNX)")
    return 0


def register(sub) -> None:
    """Add this module's sub-commands to the ``lowbit`` parser's ``sub`` (an argparse sub-parsers
    object)."""
    i = sub.add_parser(
        "import",
        help="import an ONNX/QONNX/QDQ model: per-layer table, optional integer graph",
        parents=[
            output_option("file", "the integer graph (.npz)"),
            json_option("the per-layer table"),
        ],
    )
    i.add_argument("model", help="ONNX file")
    i.add_argument(
        "--input-dtype",
        help="type of a float input without quantizer, read as codes of scale 1 (e.g. UINT8; "
        "default: the model's own quantizer)",
    )
    i.add_argument(
        "--input-quant",
        metavar="TYPE:SCALE[:ZERO_POINT]",
        help="quantizer of a float input without one (e.g. UINT5:0.0625): code = "
        "clip(round(x / SCALE + ZERO_POINT)); the graph records it (default: none)",
    )
    i.add_argument(
        "--calib",
        metavar="DATA.npz",
        help="derive that quantizer from calibration inputs 'x': the narrowest exact grid "
        "(at most 8 bits), else 8 bits spanning the data (with a warning; default: none)",
    )
    i.set_defaults(func=cmd_import)

    e = sub.add_parser(
        "export",
        help="export a model to QONNX (qonnx, FINN) or plain ONNX (onnxruntime)",
        parents=[output_option("file", "the .onnx model", required=True)],
    )
    e.add_argument("model", help="lowbit graph (.npz) or ONNX model")
    e.add_argument(
        "--format",
        choices=("qonnx", "onnx"),
        default="qonnx",
        help="qonnx (quantizers as QONNX Quant nodes, for qonnx/FINN) or onnx (plain, for "
        "onnxruntime)",
    )
    e.add_argument(
        "--input-dtype",
        help="type of a float input without quantizer (ONNX models; default: none)",
    )
    e.set_defaults(func=cmd_export)

    q = sub.add_parser(
        "quantize",
        help="post-training quantization of a float ONNX model with calibration data",
        parents=[output_option("file", "the integer graph (.npz)", required=True)],
    )
    q.add_argument("model", help="float ONNX model")
    q.add_argument(
        "--weights",
        default="INT4",
        metavar="SCHEME",
        help="BIPOLAR, TERNARY, POW2_<2..6> or INT<2..16>, case-insensitive (default INT4)",
    )
    q.add_argument(
        "--acts",
        default="UINT4",
        metavar="SCHEME",
        help="BIPOLAR, UINT<1..16> or INT<2..16>, case-insensitive (default UINT4)",
    )
    q.add_argument(
        "--input-bits", type=int, default=8, help="bits of the input quantizer (default 8)"
    )
    q.add_argument(
        "--calib", required=True, help=".npz with calibration inputs 'x' (and optional labels 'y')"
    )
    q.add_argument("--qonnx", help="also write the quantized model as QONNX (default: not written)")
    q.set_defaults(func=cmd_quantize)
