"""How long the open flow (yosys + nextpnr + the packer) takes on a design, and how much memory it
needs, estimated from the design's size before anything runs.

The estimate is **approximate**: a power law in the mapper's LUT estimate (the design's total
LUT6 equivalents, :meth:`lowbit.mapping.Schedule.report`'s ``resources``),

* ``seconds = scale * lut ** exponent``, stated within a factor ``factor`` either way
  (``seconds_low``/``seconds_high``),
* ``peak_mib = base + per_lut * lut``, stated as at most ``peak_mib_high`` (``memory_factor``
  times it),

fitted per family (least squares on ``log seconds`` and on ``peak_mib``; over sizes spanning less
than a factor of 2 the exponent is 1 and the memory a constant) to builds measured with
``benchmarks/openflow.py --calibrate`` on this project's build machine (2 cores, shared). The
calibration points are in ``benchmarks/results/buildsize_calibration.json``, the coefficients in
``buildsize.json`` next to this module with the points they were fitted on; every calibration
point lies within the stated bounds (``tests/test_buildsize.py``). Times are the CPU seconds of
``lowbit build`` from a compiled directory and the tools it ran (Amaranth elaboration, timed apart,
is not in them): the wall-clock time of a build with a core to itself, since the tools run one
after the other on one thread each. On a loaded machine the wall-clock time is longer (the
calibration builds ran beside other work at a load of 10-15 on 2 cores and took 3-4 times their
CPU time: ``benchmarks/results/openflow.md`` has both). Peak memory is the largest resident set
of the build and the tools it ran. The model reads the LUT estimate only: designs of one size but
other weight types or foldings differ (the stated factor covers the calibration points, not every
design), and a design outside the
calibrated sizes (``lut_range``) may not follow the power law: the estimate says when it is
extrapolated (:attr:`BuildEstimate.extrapolated`). Larger designs grow faster than linearly
(issue 21: a ternary MLP of 21,131 LUT6-eq did not finish yosys within an hour).

A family without its own coefficients (none measured) uses ECP5's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from .. import LowbitError
from ..boards.records import Board
from .folding import DEFAULT_BUDGET

__all__ = [
    "DesignSize",
    "BuildEstimate",
    "design_size",
    "estimate_build",
    "coefficients",
    "default_budget",
    "OPEN_FLOW_LUT6",
]

COEFFICIENTS = Path(__file__).with_name("buildsize.json")
"""The fitted coefficients, per family."""


@dataclass(frozen=True)
class DesignSize:
    """The size of a mapped design as the build-size model reads it.

    Attributes
    ----------
    lut, ff, bram36 : float
        The mapper's resource estimate of the whole accelerator (LUT6 equivalents, flip-flops,
        RAMB36 equivalents).
    lanes : int
        MAC lanes: the sum of ``pe * simd`` over the layers.
    """

    lut: float
    ff: float
    bram36: float
    lanes: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BuildEstimate:
    """The estimated open-flow build of a design (see the module docstring: approximate).

    Attributes
    ----------
    family : str
        The device family the coefficients are for.
    lut : float
        The design's LUT6 equivalents the estimate is computed from.
    seconds, seconds_low, seconds_high : float
        Seconds of ``lowbit build`` with a core to itself (yosys, nextpnr, the packer): the
        estimate and the range the calibration points lie in.
    peak_mib, peak_mib_high : float
        Peak resident memory in MiB: the estimate and its stated upper bound.
    lut_range : tuple of float
        The smallest and largest design the coefficients were fitted on; outside it the estimate
        is an extrapolation (:attr:`extrapolated`).
    """

    family: str
    lut: float
    seconds: float
    seconds_low: float
    seconds_high: float
    peak_mib: float
    peak_mib_high: float
    lut_range: tuple[float, float]

    @property
    def extrapolated(self) -> bool:
        """Whether the design lies outside the calibrated sizes."""
        return not self.lut_range[0] <= self.lut <= self.lut_range[1]

    def summary(self) -> str:
        """One line: ``about 3.2 min (1.6-6.4 min), peak memory about 600 MiB``, and when the
        design lies outside the calibrated sizes, ``, extrapolated from 2,949-5,212 LUT6-eq``."""
        lo, hi = self.lut_range
        beyond = f", extrapolated from {lo:,.0f}-{hi:,.0f} LUT6-eq" if self.extrapolated else ""
        return (
            f"about {_minutes(self.seconds)} ({_minutes(self.seconds_low, unit=False)}-"
            f"{_minutes(self.seconds_high)}), peak memory about {self.peak_mib:.0f} MiB{beyond}"
        )


def _minutes(seconds: float, unit: bool = True) -> str:
    m = seconds / 60
    text = f"{m:.1f}" if m < 10 else f"{m:.0f}"
    return f"{text} min" if unit else text


def design_size(mapping: Mapping) -> DesignSize:
    """The :class:`DesignSize` of a mapping report (:meth:`lowbit.mapping.Schedule.report`, a
    compiled directory's ``report.json`` ``mapping``)."""
    try:
        res = mapping["resources"]
        lanes = sum(
            int(layer["pe"]) * int(layer["simd"])
            for layer in mapping.get("layers", [])
            if isinstance(layer.get("pe"), int) and isinstance(layer.get("simd"), int)
        )
        return DesignSize(
            lut=float(res["lut"]["used"]),
            ff=float(res["ff"]["used"]),
            bram36=float(res["bram36"]["used"]),
            lanes=lanes,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise LowbitError(f"a mapping report without its resources ({e!r})") from None


@cache
def coefficients() -> dict:
    """The fitted coefficients (``buildsize.json``), by family."""
    return json.loads(COEFFICIENTS.read_text())


def estimate_build(size: DesignSize | float, family: str) -> BuildEstimate:
    """The estimated time and peak memory of the open-flow build of a design of ``size`` (a
    :class:`DesignSize` or its LUT6 equivalents) on a ``family`` device (``"ecp5"``,
    ``"ice40"``)."""
    lut = size.lut if isinstance(size, DesignSize) else float(size)
    if not math.isfinite(lut) or lut < 0:
        raise LowbitError(f"design size must be a finite number of LUTs >= 0, not {lut!r}")
    table = coefficients()["families"]
    fam = family if family in table else "ecp5"
    c = table[fam]
    t, m = c["seconds"], c["peak_mib"]
    seconds = t["scale"] * max(lut, 1.0) ** t["exponent"]
    peak = m["base"] + m["per_lut"] * lut
    return BuildEstimate(
        family=fam,
        lut=lut,
        seconds=seconds,
        seconds_low=seconds / t["factor"],
        seconds_high=seconds * t["factor"],
        peak_mib=peak,
        peak_mib_high=peak * m["factor"],
        lut_range=(float(c["lut_range"][0]), float(c["lut_range"][1])),
    )


OPEN_FLOW_LUT6 = 5000
"""LUT6 equivalents a design may use by default on an open-flow board (:func:`default_budget`)."""


def default_budget(board: Board) -> float:
    """The budget a folding search uses on ``board`` when none is given: ``lowbit build``,
    ``map``, ``compile`` and ``run``, the API's ``Model.map``/``compile``/``build`` and
    :func:`lowbit.flow.compile_model` (and the help texts, ``cli._options.BUDGET_DEFAULT``).

    Zynq boards: :data:`lowbit.mapping.DEFAULT_BUDGET`. Open-flow boards: the share of the board
    that holds :data:`OPEN_FLOW_LUT6` LUT6 equivalents, to one significant digit, at most
    ``DEFAULT_BUDGET`` (0.1 on the ECP5-85F, 0.7 on the iCE40 UP5K), so that the open flow builds
    a model in minutes (this module's estimate).
    """
    if not board.is_open_flow:
        return DEFAULT_BUDGET
    return min(DEFAULT_BUDGET, float(f"{OPEN_FLOW_LUT6 / board.capacity().lut:.1g}"))
