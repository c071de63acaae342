"""The open flow's build-size model (lowbit.mapping.buildsize) and what lowbit build does with it:
the estimate printed before the tools start, a warning for a long build, a refusal above
--timeout, the open-flow boards' default budget. No test here runs yosys."""

import json
import logging
from pathlib import Path

import pytest

from lowbit import LowbitError
from lowbit.boards import get_board
from lowbit.cli.app import main
from lowbit.deploy import build as build_mod
from lowbit.mapping.buildsize import (
    BuildEstimate,
    DesignSize,
    coefficients,
    default_budget,
    design_size,
    estimate_build,
)

from mapping_models import mlp

CALIBRATION = Path(__file__).resolve().parents[1] / "benchmarks/results/buildsize_calibration.json"


def test_every_calibration_point_lies_within_the_stated_bounds():
    """The docstring's claim: each measured build's time within [seconds_low, seconds_high] and
    its peak memory at most peak_mib_high of the estimate from its size."""
    points = json.loads(CALIBRATION.read_text())
    assert len(points) >= 2
    fitted = coefficients()["families"]
    for p in points:
        est = estimate_build(DesignSize(**p["size"]), p["family"])
        assert est.family in fitted
        assert est.seconds_low <= p["cpu_seconds"] <= est.seconds_high, (p["key"], est)
        assert p["peak_mib"] <= est.peak_mib_high, (p["key"], est)
    # the coefficients name the points they were fitted on, all of them in the calibration file
    keys = {p["key"] for p in points}
    for family, c in fitted.items():
        assert set(c["fitted_on"]) <= keys, family
        assert len(c["fitted_on"]) >= 2


def test_the_estimate_grows_with_the_design_and_reads_a_mapping_report():
    small, large = estimate_build(1000, "ecp5"), estimate_build(8000, "ecp5")
    assert small.seconds < large.seconds and small.peak_mib <= large.peak_mib
    assert small.seconds_low < small.seconds < small.seconds_high
    mapping = {
        "resources": {
            "lut": {"used": 1384},
            "ff": {"used": 676},
            "bram36": {"used": 2.5},
            "dsp": {"used": 0},
        },
        "layers": [{"pe": 4, "simd": 8}, {"pe": 2, "simd": 64}, {"pe": "-", "simd": "-"}],
    }
    assert design_size(mapping) == DesignSize(lut=1384.0, ff=676.0, bram36=2.5, lanes=160)
    assert estimate_build(design_size(mapping), "ecp5") == estimate_build(1384, "ecp5")
    with pytest.raises(LowbitError, match="resources"):
        design_size({"layers": []})
    lo, hi = coefficients()["families"]["ecp5"]["lut_range"]
    inside, beyond = estimate_build((lo + hi) / 2, "ecp5"), estimate_build(10 * hi, "ecp5")
    assert not inside.extrapolated and "extrapolated" not in inside.summary()
    assert beyond.extrapolated and beyond.summary().endswith(
        f", extrapolated from {lo:,.0f}-{hi:,.0f} LUT6-eq"
    )
    with pytest.raises(LowbitError, match="finite number of LUTs"):
        estimate_build(float("nan"), "ecp5")


def test_default_budget_keeps_the_large_open_flow_board_small():
    assert default_budget(get_board("ulx3s-85f")) == 0.1
    assert default_budget(get_board("icebreaker")) == 0.7
    assert default_budget(get_board("pynq-z2")) == 0.7


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "mlp.npz"
    mlp((16, 8, 4), seed=1).save(path)
    return path


def test_a_build_estimated_beyond_the_timeout_is_refused_before_the_tools(model, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["build", str(model), "--board", "ulx3s-85f", "-o", str(out), "--timeout", "1"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) <= 3 and "Traceback" not in captured.err
    assert lines[0].startswith("lowbit build: error: the open flow on ulx3s-85f is estimated at about")
    assert "more than --timeout 1 s" in lines[0]
    assert lines[1] == (
        "map it with a smaller --budget (this one 0.1) or allow more time with --timeout"
    )
    assert not out.exists()


class _Stop(Exception):
    pass


def _stop(*args, **kwargs):
    raise _Stop


def test_build_prints_the_estimate_before_the_tools_start(model, tmp_path, capsys, monkeypatch):
    searched = []
    real_search = build_mod.search_folding

    def search(graph, board, *, budget):
        searched.append(budget)
        return real_search(graph, board, budget=budget)

    monkeypatch.setattr(build_mod, "search_folding", search)
    monkeypatch.setattr(build_mod, "build_open_flow", _stop)
    with pytest.raises(_Stop):
        main(["build", str(model), "--board", "ulx3s-85f", "-o", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert out.startswith("build-size estimate: yosys + nextpnr about ")
    assert "peak memory about" in out and "LUT6-eq)" in out
    assert searched == [0.1]  # the open-flow default budget, not 0.7


def test_a_long_build_is_warned_about(model, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(build_mod, "build_open_flow", _stop)
    monkeypatch.setattr(build_mod, "WARN_BUILD_S", 0.0)
    seen: list[BuildEstimate] = []
    with caplog.at_level(logging.WARNING, logger="lowbit.deploy.build"), pytest.raises(_Stop):
        build_mod.build(
            model, "ulx3s-85f", tmp_path / "out", budget=0.05, on_estimate=seen.append
        )
    assert len(seen) == 1 and seen[0].family == "ecp5"
    assert any("a long build" in r.getMessage() and "--budget" in r.getMessage()
               for r in caplog.records)
