"""The README's demo figures are written by ``benchmarks/readme_figures.py`` from a run of the demo
(issue 18): its marked blocks parse, and they are exactly what the script's renderer makes of the
record it kept (``benchmarks/results/readme_figures.json``). The demo itself is not run here."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script():
    path = ROOT / "benchmarks" / "readme_figures.py"
    spec = importlib.util.spec_from_file_location("readme_figures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


figures = _script()

REPORT = {
    "board": "pynq-z2",
    "clock_mhz": 100.0,
    "model": [
        {"name": "fc0", "op": "MatMulThreshold", "MW": 64, "MH": 32},
        {"name": "fc1", "op": "MatMulThreshold", "MW": 32, "MH": 10},
    ],
    "accuracy": {"float": 0.95, "reference": 0.9466666, "rtl": 0.9466666},
    "test_images": 450,
    "mismatches": 0,
    "cycles_per_image": {"measured": 128.0, "predicted": 128, "relative_error": 0.0},
    "throughput_fps": 781250.0,
    "resources": {
        "lut": {"used": 812, "available": 53200},
        "ff": {"used": 301, "available": 106400},
        "bram36": {"used": 1.5, "available": 140},
        "dsp": {"used": 0, "available": 220},
    },
    "schedule": [
        {"name": "fc0", "pe": 4, "simd": 16, "cycles": 32},
        {"name": "fc1", "pe": 1, "simd": 4, "cycles": 80},
    ],
    "outputs": {"verilog": "demo_out/lowbit_top.v"},
}


def test_render_of_a_fixed_report():
    bodies = figures.render({"demo": REPORT, "overhead": {"lut": 1234, "ff": 56}})
    assert bodies == {
        "demo": "\n```\n"
        "lowbit demo on pynq-z2 @ 100 MHz\n"
        "  model            : fc0 64x32 -> fc1 32x10\n"
        "  accuracy         : float 0.9500   reference 0.9467   rtl 0.9467   (450 test images)\n"
        "  mismatches       : 0 (RTL vs reference, all runs)\n"
        "  cycles per image : measured 128.00   predicted 128   (error 0.00 %)\n"
        "  throughput       : 781,250 images/s at the board clock\n"
        "  resources (est.) : lut 812/53200, ff 301/106400, bram36 1.5/140, dsp 0/220\n"
        "  folding          : fc0 PE=4 SIMD=16 (32 cyc), fc1 PE=1 SIMD=4 (80 cyc)\n"
        "```\n",
        "demo-overhead": "1,234 LUT and 56 FF",
    }


def test_readme_blocks_are_the_rendering_of_the_kept_record():
    record = json.loads((ROOT / "benchmarks" / "results" / "readme_figures.json").read_text())
    have = figures.blocks((ROOT / "README.md").read_text())
    assert set(have) == {"demo", "demo-overhead"}
    assert have == figures.render(record)


def test_rewrite_replaces_only_the_bodies():
    x = "<!-- figures:x begin: note -->{}<!-- figures:x end -->"
    y = "<!-- figures:y begin -->{}<!-- figures:y end -->"
    text = f"a\n{x.format('old')}\nb {y.format(1)}\n"
    new = figures.rewrite(text, {"x": "\nnew\n", "y": "2"})
    assert new == f"a\n{x.format(chr(10) + 'new' + chr(10))}\nb {y.format(2)}\n"
    assert figures.blocks(new) == {"x": "\nnew\n", "y": "2"}


@pytest.mark.parametrize("text, message", [
    ("<!-- figures:x begin -->1", "'figures:x begin' has no partner"),
    ("1<!-- figures:x end -->", "'figures:x end' has no partner"),
    ("<!-- figures:x begin -->1<!-- figures:x end -->" * 2, "figures block 'x' appears twice"),
    ("<!-- figures:x begin --><!-- figures:y begin -->1<!-- figures:x end -->",
     "figures block 'x' holds another marker"),
])
def test_malformed_blocks_are_refused(text, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        figures.blocks(text)


def test_rewrite_refuses_a_block_the_renderer_does_not_make():
    message = r"^the README's figures blocks are \['x'\], the renderer makes \['y'\]$"
    with pytest.raises(ValueError, match=message):
        figures.rewrite("<!-- figures:x begin -->1<!-- figures:x end -->", {"y": "2"})
