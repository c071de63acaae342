"""The MVTU resource model against its yosys calibration points (no yosys here).

``benchmarks/cost_calibration.py`` synthesised the units of two small accelerators and a grid of
the kinds and threshold counts whole accelerators hold, and fitted ``hw/resource_coefficients.json``
on those and the earlier recorded points (``benchmarks/calibration_results.json``, the MAC-kind
table of ``benchmarks/results/synth_resources.json``); ``benchmarks/results/cost_calibration.json``
records every point's cell counts. :func:`lowbit.hw.cost.mvtu_resources` states its bound in its
docstring; this test holds it to every recorded point.
"""

import json
import re
import sys
from pathlib import Path

import pytest

from lowbit.hw import cost
from lowbit.ir.mac import MacKind
from lowbit.tools.yosys import resources_from_cells

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cost_calibration.json"
sys.path.insert(0, str(ROOT / "benchmarks"))

import cost_calibration as cal  # noqa: E402


EARLIER = ("bipolar grid (train)", "bipolar grid (test)", "MAC kinds")
"""The splits of the calibration grids recorded before ``cost_calibration.py``."""


def _bounds() -> dict[str, tuple[float, float]]:
    """The LUT and FF bounds (fractions) that ``mvtu_resources``' docstring states: ``earlier``
    on the earlier grids, ``all`` on every recorded point."""
    doc = " ".join((cost.mvtu_resources.__doc__ or "").split())
    found = re.findall(r"within (\d+) % of yosys' LUTs and (\d+) % of its FFs on (the earlier|every)", doc)
    assert len(found) == 2, "mvtu_resources' docstring must state its bounds"
    return {("earlier" if w == "the earlier" else "all"): (int(a) / 100, int(b) / 100)
            for a, b, w in found}


def _points() -> list[dict]:
    doc = json.loads(RESULTS.read_text())
    return cal.old_points() + [p for p in doc["points"] if p["kind"] == "mvtu"]


def test_the_coefficients_are_the_ones_recorded_with_the_points():
    assert cost.coefficients() == json.loads(RESULTS.read_text())["coefficients"]


@pytest.mark.parametrize("split", [*EARLIER, "instance", "grid"])
def test_every_calibration_point_lies_within_the_stated_bound(split):
    bounds = _bounds()
    lut_bound, ff_bound = bounds["earlier" if split in EARLIER else "all"]
    pts = [p for p in _points() if p["split"] == split]
    assert pts
    for p in pts:
        real, est = resources_from_cells(p["cells"]), cost.mvtu_resources(**p["mvtu"])
        label = p.get("name") or f"{p['instance']} {p['unit']}"
        assert abs(est.lut - real.lut) <= lut_bound * real.lut, (label, est.lut, real.lut)
        assert abs(est.ff - real.ff) <= ff_bound * real.ff, (label, est.ff, real.ff)
        assert est.bram36 == real.bram36 and est.dsp == real.dsp == 0, label


def test_an_accelerator_is_the_sum_of_its_units():
    """The whole ``lowbit_top`` of each instance against the sum of its units' synthesis: nothing
    the estimate leaves out (stream glue, top-level registers) costs more than 1 %."""
    doc = json.loads(RESULTS.read_text())
    for inst in cal.INSTANCES:
        pts = [p for p in doc["points"] if p.get("instance") == inst]
        if cal.INSTANCES[inst][3] is not None:  # some units only
            continue
        top = next(resources_from_cells(p["cells"]) for p in pts if p["unit"] == "top")
        units = [resources_from_cells(p["cells"]) for p in pts if p["unit"] != "top"]
        assert abs(sum(u.lut for u in units) - top.lut) <= 0.01 * top.lut, inst
        assert abs(sum(u.ff for u in units) - top.ff) <= 0.01 * top.ff, inst


def test_tree_adder_bits_by_hand():
    # an unsigned 8-bit and a signed 5-bit operand: the unsigned one takes a sign bit, 9 + 1
    assert cost._add((8, False, 0), (5, True, 0)) == ((10, True, 0), 10)
    # x << 2 + x << 3 (x 4 bits): 8 bits wide, the 3 low bits free (one operand is zero there)
    assert cost._add((6, False, 2), (7, False, 3)) == ((8, False, 2), 5)
    # three 2-bit values: 2 + 2 -> 3 bits, then 3 + 2 -> 4 bits
    assert cost._tree_adder_bits([(2, False, 0)] * 3) == (3 + 4, (4, False, 0))


def test_multibit_lane_adder_bits_by_hand():
    """SIMD 1, UINT2 x INT2 (``lane_dot``): the partial product ``x & w0`` (2 bits unsigned) plus
    the negated ``x`` of the sign bit, shifted (4 bits signed, 1 zero bit) -> 5 bits, of which 1
    is free; the negation's ``+ 1`` bit counted as 1; its count (1 bit, shifted: 2 bits unsigned,
    1 zero bit) added -> 6 bits, 1 free: 4 + 1 + 5 = 10."""
    assert cost._lane_adder_bits(MacKind.MULTIBIT, 1, 2, 2, False) == (10, 0)
    # ADDSUB, SIMD 2 of UINT2: masked tree 3 bits, shared sum(x) 3 bits, then (masked << 1) (4
    # bits, 1 zero bit) - sum(x) (3 bits) -> 5 bits, 1 free
    assert cost._lane_adder_bits(MacKind.ADDSUB, 2, 2, 1, False) == (3 + 4, 3)
