"""The label select and the width converter as unit specs: their cost now counts in every estimate.

Hand-worked flip-flop counts first, then the model against the yosys grid of
``benchmarks/label_select_synth.py`` (flip-flops equal, LUTs within the stated 15 %; with a class
map within the stated 25 %, no DSP), then the pipeline total: units + converters + label select,
as the accelerator holds them.
"""

import json
from pathlib import Path

import pytest
from amaranth.hdl import signed, unsigned

from lowbit.hw.cost import label_select_resources
from lowbit.hw.registry import stitching
from lowbit.hw.stream.dwc import StreamWidthConverter, WidthConverterSpec
from lowbit.hw.stream.label import LabelSelect, LabelSelectSpec
from lowbit.hw.unit import UnitSpec
from lowbit.hw.verilog import to_verilog
from lowbit.ir import Resources
from lowbit.ir.boundary import ClassMap
from lowbit.mapping import Schedule, pipeline_resources, search_folding

from mapping_models import mlp

ROWS = json.loads((Path(__file__).parent.parent / "benchmarks" / "results" / "label_select_synth.json")
                  .read_text())["rows"]
GRID = [r for r in ROWS if "class_map" not in r]
MAP_GRID = [r for r in ROWS if "class_map" in r]


def test_flip_flops_hand_worked():
    # 10 classes of 8 bits, one per beat: result 10 * 8 + label 4 + valid 1; buffer 9 * 8;
    # running maximum 8, its index 4, beat counter 4 (10 beats).
    assert label_select_resources(10, 8, 1).ff == 80 + 4 + 1 + 72 + 8 + 4 + 4 == 173
    # All 10 in one beat: no buffer, no running state.
    assert label_select_resources(10, 8, 10).ff == 80 + 4 + 1 == 85


@pytest.mark.parametrize("row", GRID, ids=[f"c{r['classes']}-pe{r['pe']}-b{r['bits']}" for r in GRID])
def test_model_against_synthesis(row):
    est = label_select_resources(row["classes"], row["bits"], row["pe"])
    assert est.ff == row["ff"]
    assert abs(est.lut - row["lut"]) <= 0.15 * row["lut"]
    assert est.bram36 == row["bram36"] == 0


@pytest.mark.parametrize("row", MAP_GRID, ids=[f"c{r['classes']}-pe{r['pe']}-b{r['bits']}-{r['map']}"
                                              for r in MAP_GRID])
def test_class_map_model_against_synthesis(row):
    cm = ClassMap.from_json(row["class_map"])
    est = label_select_resources(row["classes"], row["bits"], row["pe"], class_map=cm)
    assert est.ff == row["ff"]
    assert abs(est.lut - row["lut"]) <= 0.25 * row["lut"]
    assert est.bram36 == row["bram36"] == 0
    assert est.dsp == row["dsp"] == 0                    # the multipliers are adders
    # the map costs something: more LUTs than the same select without one, in synthesis too
    plain = next((r for r in GRID if (r["classes"], r["pe"], r["bits"]) ==
                  (row["classes"], row["pe"], row["bits"])), None)
    if plain is not None:
        assert row["lut"] > plain["lut"] and est.lut > label_select_resources(
            row["classes"], row["bits"], row["pe"]).lut


def test_the_class_map_grid_covers_both_multipliers_and_wide_values():
    from lowbit.hw.cost import class_map_lanes
    kinds = {lane.shift_add for r in MAP_GRID
             for lane in class_map_lanes(ClassMap.from_json(r["class_map"]), r["pe"], r["bits"])}
    assert kinds == {True, False}
    assert any(ClassMap.from_json(r["class_map"]).bits(-(1 << (r["bits"] - 1)), 1 << (r["bits"] - 1))
               > 64 for r in MAP_GRID)
    assert {r["pe"] for r in MAP_GRID} >= {1, 2, 5, 10}


def test_label_spec_creates_the_component_the_accelerator_used():
    spec = LabelSelectSpec(classes=10, pe=2, score_bits=9)
    assert isinstance(spec, UnitSpec)
    assert to_verilog(spec.create(), name="u") == to_verilog(LabelSelect(signed(9), classes=10, pe=2), name="u")
    assert spec.cycles_per_image() == 5 and spec.cycles_per_image(3) == 15
    assert spec.reference([[1, 5, 5, 0], [7, 7, 7, 7]]).tolist() == [1, 0]   # ties to the lower class
    with pytest.raises(ValueError, match=r"^PE \(3\) must divide classes \(10\)$"):
        LabelSelectSpec(classes=10, pe=3, score_bits=9)


def test_width_converter_spec():
    spec = WidthConverterSpec(elem_bits=2, n_in=3, n_out=2, size=12)
    assert isinstance(spec, UnitSpec)
    assert spec.cycles_per_image() == 6          # the slower side: 12 elements, 2 a cycle
    assert to_verilog(spec.create(), name="u") == to_verilog(
        StreamWidthConverter(unsigned(2), n_in=3, n_out=2), name="u")


def test_pipeline_total_counts_units_converters_and_label():
    g = mlp((64, 96, 10))
    specs = search_folding(g, "pynq-z2", budget=0.05).apply(g)
    total, converters = pipeline_resources(specs)
    dwcs, label = stitching(specs)
    assert label == LabelSelectSpec(classes=10, pe=specs[-1].pe, score_bits=specs[-1].out_bits)
    units = sum((s.resources() for s in specs), Resources())
    assert total == units + sum(converters, Resources()) + label.resources()
    assert label.resources().lut > 0 and label.resources().ff > 0


def test_report_lists_the_label_select():
    g = mlp((64, 96, 10))
    rep = search_folding(g, "pynq-z2", budget=0.05).report(g)
    assert rep["label_select"]["classes"] == 10
    assert rep["label_select"]["resources"]["ff"] == label_select_resources(
        10, rep["label_select"]["score_bits"], rep["label_select"]["pe"]).ff
    assert isinstance(Schedule.from_json(search_folding(g, "pynq-z2", budget=0.05).to_json()), Schedule)
