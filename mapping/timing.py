"""Timing in the mapper: each unit's estimated Fmax, the slowest, and pipeline depths for a clock.

:func:`fmax_entry` is the report's ``fmax`` section: per unit (and the label select) its pipeline
depth and the Fmax the family's model (:mod:`lowbit.hw.fmax`) estimates from its logic paths, the
slowest unit, and the images per second at that Fmax beside those at the schedule's nominal clock.
Units that describe no logic paths (sliding windows, pools, width converters, the sparse engine)
are listed without an estimate. Families without a fitted model (the Xilinx ones) get no estimate.

:func:`pipeline_for_clock` is the mapper's choice of depths: for every layer that can be
pipelined, the smallest depth whose estimated Fmax reaches the schedule's clock, for the last
unit also the label select's after it, whose depth follows that unit's (the deepest the
unit takes when none does: 6, the memories' read registers and three registers inside each lane's
tree, for an MVTU with parallel MACs, :attr:`~lowbit.hw.mvtu.spec.MVTUSpec.max_pipeline`; 2 for a
bit-serial MVTU and threshold units).
"""

from __future__ import annotations

import dataclasses

from ..boards import Board, get_board
from ..hw.fmax import estimate_fmax, fmax_model
from ..hw.mvtu.spec import MVTUSpec
from ..hw.registry import stitching
from ..hw.stream.threshold import MAX_THRESHOLD_PIPELINE
from ..ir.graph import IntegerGraph

__all__ = ["fmax_entry", "pipeline_for_clock", "added_latency", "deepest_pipeline"]


def deepest_pipeline(spec) -> int:
    """The deepest ``pipeline=`` of a unit that takes one: an MVTU's
    :attr:`~lowbit.hw.mvtu.spec.MVTUSpec.max_pipeline` (6 with parallel MACs), else a threshold
    unit's :data:`~lowbit.hw.stream.threshold.MAX_THRESHOLD_PIPELINE`."""
    return spec.max_pipeline if isinstance(spec, MVTUSpec) else MAX_THRESHOLD_PIPELINE


def added_latency(specs) -> int:
    """Cycles of latency the pipeline registers add: one per stage of every unit and of the label
    select (one stage after a last unit at depth 1 or 2, its deepest after 3 to 6:
    :meth:`~lowbit.hw.stream.label.LabelSelectSpec.after`)."""
    return sum(getattr(s, "pipeline", 0) for s in specs) + stitching(specs)[1].pipeline


def fmax_entry(specs, board: Board, clock_mhz: float, cycles_per_image: int) -> dict:
    """The report's ``fmax`` section for ``specs`` on ``board`` (see the module docstring).

    ``fmax_mhz`` is the slowest unit's estimate (``None`` without a model), ``slowest`` its name,
    ``throughput_fps_at_fmax`` the images per second with the accelerator clocked there,
    ``meets_clock`` whether the estimate reaches ``clock_mhz``, ``model_bound`` the model's
    relative error bound on its calibration points.
    """
    family = board.family
    model = fmax_model(family)
    label = stitching(specs)[1]
    units = [(s.node.name, s) for s in specs] + [("label select", label)]
    rows = [
        {
            "name": name,
            "pipeline": getattr(s, "pipeline", 0),
            "fmax_mhz": None if model is None else _round(estimate_fmax(s, family)),
        }
        for name, s in units
    ]
    known = [r for r in rows if r["fmax_mhz"] is not None]
    entry: dict = {"family": family, "model_bound": None if model is None else model.bound}
    entry["units"] = rows
    if not known:
        entry.update(
            fmax_mhz=None,
            slowest=None,
            throughput_fps_at_fmax=None,
            meets_clock=None,
            note=f"no Fmax model for {family} (calibrated: ecp5, ice40)",
        )
        return entry
    slowest = min(known, key=lambda r: r["fmax_mhz"])
    fmax = slowest["fmax_mhz"]
    entry.update(
        fmax_mhz=fmax,
        slowest=slowest["name"],
        throughput_fps_at_fmax=fmax * 1e6 / cycles_per_image,
        meets_clock=fmax >= clock_mhz,
    )
    return entry


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def pipeline_for_clock(schedule, graph: IntegerGraph, *, board: Board | None = None):
    """``schedule`` with each MVTU's and threshold unit's pipeline depth the smallest whose
    estimated Fmax reaches ``schedule.clock_mhz`` (the deepest the unit takes,
    :func:`deepest_pipeline`, when none does); for the last unit, the smallest at which the label
    select that follows it reaches the clock too. Unchanged on a family without a model."""
    board = get_board(schedule.board) if board is None else board
    if fmax_model(board.family) is None:
        return schedule
    specs = schedule.apply(graph)
    layers = []
    for i, (layer, spec) in enumerate(zip(schedule.layers, specs)):
        if getattr(spec, "logic_paths", None) is None or not hasattr(spec, "pipeline"):
            layers.append(layer)
            continue
        depth = 0
        for depth in range(deepest_pipeline(spec) + 1):
            unit = dataclasses.replace(spec, pipeline=depth)
            # the last unit's depth is also the label select's (LabelSelectSpec.after)
            after = [unit] if i < len(specs) - 1 else [unit, stitching([unit])[1]]
            fmax = [estimate_fmax(u, board.family) for u in after]
            if all(f is None or f >= schedule.clock_mhz for f in fmax):
                break
        layers.append(dataclasses.replace(layer, pipeline=depth))
    return dataclasses.replace(schedule, layers=tuple(layers))
