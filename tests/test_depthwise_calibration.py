"""The depthwise engine's resource model against its yosys calibration (no yosys here).

``benchmarks/calibrate_depthwise.py`` synthesised a seeded grid of depthwise engines and fitted
``hw/depthwise_coefficients.json``; ``benchmarks/results/depthwise_calibration.json`` records each
engine's configuration and cell counts. :meth:`DepthwiseSpec.resources` states its bound in its
docstring; this test holds it to every recorded point.
"""

import json
import re
import sys
from pathlib import Path

import pytest

from lowbit.hw.dag.depthwise import DepthwiseSpec, depthwise_coefficients
from lowbit.tools.yosys import resources_from_cells

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "depthwise_calibration.json"
sys.path.insert(0, str(ROOT / "benchmarks"))

import calibrate_depthwise as cal  # noqa: E402


def _bound() -> tuple[float, float]:
    """The LUT and FF bounds (fractions) that ``DepthwiseSpec.resources``' docstring states."""
    doc = " ".join((DepthwiseSpec.resources.__doc__ or "").split())
    m = re.search(r"within (\d+) % of yosys' LUTs and (\d+) % of its FFs", doc)
    assert m, "DepthwiseSpec.resources' docstring must state its bounds"
    return int(m[1]) / 100, int(m[2]) / 100


def _points() -> list[tuple[str, dict, DepthwiseSpec]]:
    doc = json.loads(RESULTS.read_text())
    pts = [(p["split"], p, cal.make_spec(p)) for p in doc["points"]]
    pts += [("depthwise_synth", r, s) for r, s in cal.synth_table_specs()]
    return pts


def test_the_coefficients_are_the_ones_recorded_with_the_points():
    doc = json.loads(RESULTS.read_text())
    assert depthwise_coefficients() == doc["coefficients"]


@pytest.mark.parametrize("split", ["train", "test", "depthwise_synth"])
def test_every_calibration_point_lies_within_the_stated_bound(split):
    lut_bound, ff_bound = _bound()
    pts = [(p, s) for sp, p, s in _points() if sp == split]
    assert pts
    for p, spec in pts:
        real, est = resources_from_cells(p["cells"]), spec.resources()
        label = cal.label(p)
        assert abs(est.lut - real.lut) <= lut_bound * real.lut, (label, est.lut, real.lut)
        assert abs(est.ff - real.ff) <= ff_bound * real.ff, (label, est.ff, real.ff)
        assert est.bram36 == real.bram36 and est.dsp == real.dsp == 0, label
