"""Brevitas/QONNX fidelity (issue 16): do real Brevitas exports run with the model's own answers?

For each of the seven models of ``tests/brevitas_zoo.py`` (trained on the 8x8 digits, cached) and
each export path of ``brevitas.export.export_qonnx`` (the default dynamo exporter and
``dynamo=False``, the TorchScript graph), on the 450 test images:

1. torch: the trained model's accuracy (eval mode, float32);
2. import: ``lowbit.quant.onnx.importer.import_onnx`` succeeds, or the error it gives (with
   ``input_quant`` for the model that reads floats without an input quantizer, which records
   what the import says without it too);
3. ``ImportResult.predict``: the imported model's exact integer execution with its float tail
   applied exactly; its accuracy and how many *untied* images (torch's top-2 gap above
   ``brevitas_zoo.TIE_RTOL`` of the row's largest output) it labels unlike torch;
4. the integer graph alone, ``res.graph.predict(res.encode(x))`` (what the hardware's label select
   computes): the same two figures;
5. RTL (when it imports): ``lowbit.flow.compile_model`` on pynq-z2 within ``--budget``, then every
   image through the Verilated design on the fast path (``verify_compiled_fast``: back to back and
   under two throttled handshake patterns): accuracy, images whose scores or label differ from the
   integer graph (all runs), labels unlike torch on untied images, and predicted against measured
   (steady run) cycles per image: the mapper's figure, or for a design with a sparse-engine layer
   the exact one from the data (``lowbit.sim.verify.predict_cycles``: the engine's cycle model on
   each image's own input vector, compared image by image with ``==``), the mapper's estimate at
   the layer's assumed activation density beside it.

Writes ``benchmarks/results/brevitas_fidelity.md`` and ``brevitas_fidelity.json``.

    .venv/bin/python benchmarks/brevitas_fidelity.py [--models a,b] [--no-rtl] [--budget 0.1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import brevitas  # noqa: E402
import brevitas_zoo as zoo  # noqa: E402
import torch  # noqa: E402

import lowbit  # noqa: E402
from lowbit import LowbitError  # noqa: E402
from lowbit._io import atomic_write  # noqa: E402
from lowbit.flow.compiled import CompiledDesign  # noqa: E402
from lowbit.flow.steps import compile_model  # noqa: E402
from lowbit.quant.data import load_digits_split  # noqa: E402
from lowbit.quant.onnx.importer import import_onnx  # noqa: E402
from lowbit.sim.verify import default_patterns, verify_fast  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
EXPORTS = {"dynamo": True, "torchscript": False}
FALLBACK_BUDGET = 0.7
"""The budget a design that does not fit ``--budget`` is compiled within (``lowbit compile``'s)."""

log = logging.getLogger("brevitas_fidelity")


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _disagree(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> int:
    return int(np.sum((pred != ref) & mask))


def _compile(graph, out_dir: Path, board: str, budget: float):
    """Compile within ``budget`` of the board, else within ``FALLBACK_BUDGET``; the report and
    the budget used."""
    try:
        return compile_model(graph, out_dir, board=board, budget=budget), budget
    except LowbitError as e:
        if "does not fit" not in str(e) or budget >= FALLBACK_BUDGET:
            raise
        log.info("%s; compiling within %s", e, FALLBACK_BUDGET)
        return compile_model(graph, out_dir, board=board, budget=FALLBACK_BUDGET), FALLBACK_BUDGET


def _rtl(res, codes, y, ref, mask, graph_pred, out_dir: Path, board: str, budget: float) -> dict:
    row: dict = {"error": None}
    try:
        t = time.perf_counter()
        report, row["budget"] = _compile(res.graph, out_dir, board, budget)
        row["compile_s"] = round(time.perf_counter() - t, 2)
        design = CompiledDesign.open(out_dir)
        graph, schedule = design.load()
        compiled = design.report()
        # verify_compiled_fast's run, with the schedule: the predicted cycles per image as well
        fast = verify_fast(graph, design.require(compiled.simulated_verilog),
                           compiled.stream_format, codes, patterns=default_patterns((1, 2)),
                           waves_dir=design.root / "waves", schedule=schedule)
    except Exception as e:  # recorded, not raised: the table shows every case
        row["error"] = _err(e)
        return row
    pred = fast.cycles
    assert pred is not None  # verify_fast was given the schedule
    row.update(
        accuracy=float(np.mean(fast.labels == y)),
        mismatched_images=sum(r["mismatched_images"] for r in fast.runs),
        labels_unlike_graph=int(np.sum(fast.labels != graph_pred)),
        timed_out=any(r["timed_out"] for r in fast.runs),
        first_mismatch=None if fast.mismatch is None else str(fast.mismatch),
        disagree_torch=_disagree(fast.labels, ref, mask),
        cycles_predicted=report.cycles_per_image if pred.exact is None else pred.exact,
        cycles_measured=fast.cycles_per_image,
        cycles_estimate=pred.estimate,
        cycles_sparse_layer=pred.sparse_layer,
        cycles_equal_per_image=pred.equal,
        cycles_reason=pred.reason,
        folding=[(u["name"], u.get("pe"), u.get("simd")) for u in report.mapping["layers"]],
        seconds={k: round(v, 2) for k, v in fast.seconds.items()},
    )
    return row


def _describe(q) -> str:
    """An ``InputQuant`` in a few words: ``UINT5, scale 0.0625, zero point 0``."""
    scale = ", ".join(f"{v:g}" for v in q.scale)
    zero = ", ".join(f"{v:g}" for v in q.zero_point)
    return f"{q.dtype.name}, scale {scale}, zero point {zero}"


def _plain_import(path: Path) -> str | None:
    """What ``import_onnx`` says without the ``input_quant`` a float input needs."""
    try:
        import_onnx(path)
    except Exception as e:
        return _err(e).replace(f"{path.parent}{os.sep}", "")
    return None


def evaluate(name: str, export: str, data, work: Path, *, rtl: bool, board: str,
             budget: float) -> dict:
    """One row of the table: model ``name`` through export path ``export``."""
    x = zoo.model_input(name, data.x_test)
    t = time.perf_counter()
    path = zoo.export(name, work / "onnx", EXPORTS[export])
    out = zoo.torch_outputs(name, x)
    ref = out.argmax(axis=1)
    mask = zoo.untied(out)
    row: dict = {
        "model": name,
        "export": export,
        "torch_accuracy": float(np.mean(ref == data.y_test)),
        "untied": int(mask.sum()),
        "imports": False,
        "error": None,
        "export_s": round(time.perf_counter() - t, 2),
    }
    kwargs = zoo.import_kwargs(name)
    if kwargs:
        row["input_quant"] = _describe(kwargs["input_quant"])
        row["plain_import_error"] = _plain_import(path)
    try:
        res = import_onnx(path, **kwargs)
    except Exception as e:
        row["error"] = _err(e).replace(f"{path.parent}{os.sep}", "")
        return row
    row["imports"] = True
    row["layers"] = len(res.graph.nodes)
    try:
        pred = res.predict(x)
        codes = res.encode(x)
        graph_pred = res.graph.predict(codes)
    except Exception as e:
        row["error"] = f"after import: {_err(e)}"
        return row
    row.update(
        predict_accuracy=float(np.mean(pred == data.y_test)),
        predict_disagree=_disagree(pred, ref, mask),
        graph_accuracy=float(np.mean(graph_pred == data.y_test)),
        graph_disagree=_disagree(graph_pred, ref, mask),
    )
    if rtl:
        row["rtl"] = _rtl(res, codes, data.y_test, ref, mask, graph_pred,
                          work / "rtl" / f"{name}-{export}", board, budget)
    return row


INTRO = """\
Seven Brevitas models trained on the 8x8 digits (`tests/brevitas_zoo.py`), each exported by
`export_qonnx` twice (the default dynamo exporter; `dynamo=False`, the TorchScript graph), imported
with `import_onnx` and run on the 450 test images. *predict*: `ImportResult.predict` (exact
integers, the float tail applied exactly); *graph*: `res.graph.predict(res.encode(x))`, the
integer graph's own class decision, what the hardware is to compute; *RTL*: the compiled design's
labels on the fast Verilator path. In brackets, *disagree*: untied images (torch's top-2 gap above
{tie:.3g} of the row's largest |output|) whose label differs from torch's argmax. *RTL vs graph*:
images whose RTL scores or label differ from the graph's scores and their argmax
(`verify_compiled_fast`, summed over its three runs: back to back and two throttled handshake
patterns) / images whose RTL label differs from `res.graph.predict`. Cycles per image: the
prediction / the steady run's measurement (its mean interval between results after the first
tenth); for a design with a layer on the sparse engine (marked "exact") the prediction is the
exact one from the data, and its per-image output cycles equal the measured ones with `==` (see
the note below the table). Regenerate with
`.venv/bin/python benchmarks/brevitas_fidelity.py`."""


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.2f} %"


def _cell(v) -> str:
    return "—" if v is None else str(v)


def _cycles(rtl: dict, budget: float) -> str:
    meas, pred = rtl["cycles_measured"], rtl["cycles_predicted"]
    pred_text = f"{pred:.2f}" if isinstance(pred, float) else _cell(pred)
    text = f"{pred_text} / {'—' if meas is None else f'{meas:.2f}'}"
    if rtl.get("cycles_sparse_layer"):
        text += " exact" if rtl.get("cycles_equal_per_image") else " (estimate)"
    return text if rtl["budget"] == budget else f"{text} (budget {rtl['budget']})"


def _sparse_notes(rows: list[dict]) -> list[str]:
    """Per RTL row with a sparse-engine layer: the estimate, the exact figure and the check."""
    out = []
    for r in rows:
        rtl = r.get("rtl") or {}
        if rtl.get("error") or not rtl.get("cycles_sparse_layer"):
            continue
        head = (
            f"* **{r['model']} / {r['export']}**: layer `{rtl['cycles_sparse_layer']}` runs on "
            f"the sparse engine. The mapper's {rtl['cycles_estimate']} cycles/image is an "
            "estimate (the layer at its assumed activation density)"
        )
        if rtl.get("cycles_reason"):
            out.append(f"{head}; no exact figure: {rtl['cycles_reason']}")
        else:
            verdict = "equal" if rtl["cycles_equal_per_image"] else "DIFFER from"
            out.append(
                f"{head}; from each image's own input vector to that layer (the engine's cycle "
                f"model, coupled with the dense stages), {rtl['cycles_predicted']:.4f} cycles/"
                f"image, and the predicted cycles at which the 450 results leave {verdict} the "
                f"measured ones (`==`, image by image); measured {rtl['cycles_measured']:.4f}."
            )
    return out


def markdown(doc: dict) -> str:
    rows = doc["rows"]
    lines = [
        "# Brevitas/QONNX fidelity (issue 16)",
        "",
        INTRO.format(tie=doc["tie_rtol"]),
        "",
        f"Run: {doc['date']}, lowbit {doc['lowbit_commit']}"
        f"{' + uncommitted edits in the working tree' if doc['lowbit_dirty'] else ''}, "
        f"torch {doc['torch']}, brevitas {doc['brevitas']}, board {doc['board']}, budget "
        f"{doc['budget']} (a design that does not fit: {FALLBACK_BUDGET}).",
        "",
        "| model | export | torch | untied | imports | predict (disagree) | graph (disagree) | "
        "RTL (disagree) | RTL vs graph | cycles/img pred / meas |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if not r["imports"] or "predict_accuracy" not in r:
            cells = ["no", "—", "—", "—", "—", "—"]
        else:
            rtl = r.get("rtl") or {}
            if not rtl:
                rtl_cells = ["not run", "—", "—"]
            elif rtl["error"]:
                rtl_cells = ["fails (below)", "—", "—"]
            else:
                rtl_cells = [
                    f"{_pct(rtl['accuracy'])} ({rtl['disagree_torch']})",
                    f"{rtl['mismatched_images']} / {rtl['labels_unlike_graph']}"
                    + (" (timed out)" if rtl["timed_out"] else ""),
                    _cycles(rtl, doc["budget"]),
                ]
            cells = [
                "yes",
                f"{_pct(r['predict_accuracy'])} ({r['predict_disagree']})",
                f"{_pct(r['graph_accuracy'])} ({r['graph_disagree']})",
                *rtl_cells,
            ]
        lines.append(
            f"| {r['model']} | {r['export']} | {_pct(r['torch_accuracy'])} | {r['untied']} | "
            + " | ".join(cells)
            + " |"
        )
    notes = _sparse_notes(rows)
    if notes:
        lines += ["", "Cycles of the designs with a sparse-engine layer:", "", *notes]
    errors = [(r, r["error"]) for r in rows if r["error"]]
    errors += [(r, "RTL: " + r["rtl"]["error"]) for r in rows if (r.get("rtl") or {}).get("error")]
    if errors:
        lines += ["", "## Errors", ""]
        for r, e in errors:
            lines.append(f"* **{r['model']} / {r['export']}**: `{e}`")
    quantized = [r for r in rows if "input_quant" in r]
    if quantized:
        lines += ["", "## Float inputs without an input quantizer", ""]
        for r in quantized:
            plain = r["plain_import_error"]
            lines.append(
                f"* **{r['model']} / {r['export']}** is imported with `input_quant` "
                f"({r['input_quant']}); without it: "
                + (f"`{plain}`" if plain else "imports")
            )
    lines.append("")
    return "\n".join(lines)


def _git() -> tuple[str, bool]:
    """The commit of the lowbit that runs (not necessarily this checkout's: ``PYTHONPATH`` may point
    at another clone) and whether its tree has uncommitted edits."""
    src = Path(lowbit.__file__).resolve().parent

    def run(*a):
        return subprocess.run(["git", *a], cwd=src, capture_output=True, text=True).stdout.strip()

    return run("rev-parse", "--short", "HEAD") or "unknown", bool(run("status", "--porcelain"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(zoo.MODELS), help="comma-separated zoo names")
    ap.add_argument("--no-rtl", action="store_true", help="skip compiling and simulating")
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--budget", type=float, default=0.1, help="share of the board per resource")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("lowbit", "torch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    data = load_digits_split()
    commit, dirty = _git()
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="brevitas_fidelity.") as tmp:
        for name in args.models.split(","):
            for export in EXPORTS:
                t = time.perf_counter()
                row = evaluate(name, export, data, Path(tmp), rtl=not args.no_rtl,
                               board=args.board, budget=args.budget)
                row["seconds"] = round(time.perf_counter() - t, 2)
                log.info("%-22s %-11s %s", name, export,
                         row["error"] or f"predict {row['predict_accuracy']:.4f} "
                                         f"graph {row['graph_accuracy']:.4f}")
                rows.append(row)
    doc = {
        "date": time.strftime("%Y-%m-%d"),
        "lowbit_commit": commit,
        "lowbit_dirty": dirty,
        "lowbit_source": str(Path(lowbit.__file__).resolve().parent),
        "torch": torch.__version__,
        "brevitas": brevitas.__version__,
        "python": platform.python_version(),
        "board": args.board,
        "budget": args.budget,
        "tie_rtol": zoo.TIE_RTOL,
        "zoo_version": zoo.VERSION,
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }
    atomic_write(args.out / "brevitas_fidelity.json", json.dumps(doc, indent=2) + "\n")
    atomic_write(args.out / "brevitas_fidelity.md", markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
