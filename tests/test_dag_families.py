"""The specs of issue 19's nodes answer the unit protocol (hw/unit.py), built from graph nodes."""

import numpy as np

from lowbit.hw.dag import (
    DAG_FAMILIES,
    AddSpec,
    DepthwiseSpec,
    ForkSpec,
    GlobalAvgPoolSpec,
    MaxPool1DSpec,
    SWG1DSpec,
)
from lowbit.hw.unit import UnitSpec
from lowbit.ir import BIPOLAR, DataType
from lowbit.ir.graph import Add, DepthwiseConv, GlobalAvgPool, MaxPool1D, SlidingWindow1D
from lowbit.ir.resources import Resources

U2 = DataType.uint(2)


def test_families_build_from_nodes_and_answer_the_protocol():
    dw = DepthwiseConv("dw", BIPOLAR, np.ones((4, 9), dtype=int), np.full((4, 1), 5))
    add = Add("add", (U2, U2), np.ones(4, dtype=int), np.ones(4, dtype=int),
              np.array([[1, 2, 3]]), U2)
    specs = [
        DepthwiseSpec(dw, 2),
        SWG1DSpec(SlidingWindow1D("w", 3, 1, 1), (8, 4), U2, 2),
        MaxPool1DSpec(MaxPool1D("p", 2), (8, 4), U2, 2),
        AddSpec.from_node(add, 2),
        GlobalAvgPoolSpec(GlobalAvgPool("gap", U2, np.array([[4, 8, 12]]), U2), (2, 2, 4), U2, 2),
        ForkSpec(U2, 2, beats=4),
    ]
    assert [type(s) for s in specs[:5]] == [f[0] for f in DAG_FAMILIES.values()]
    for spec in specs:
        assert isinstance(spec, UnitSpec)
        assert isinstance(spec.resources(), Resources)
        assert isinstance(spec.cycles_per_image(), int)
    # depthwise 9 taps x 2 folds; SWG 8 windows x 3 taps x 2 beats; 1-D max-pool 8 positions x 2
    # beats; add 2 folds; global average pool 4 pixels x 2 beats; fork 4 beats
    assert [s.cycles_per_image() for s in specs] == [18, 48, 16, 2, 8, 4]
    # the global average pool: the sums over the image, then the node's thresholds
    x = np.arange(16).reshape(1, 2, 2, 4) % 4
    assert np.array_equal(specs[4].reference(x), GlobalAvgPool("gap", U2, np.array([[4, 8, 12]]),
                                                               U2).reference(x))
    assert specs[4].reference(x).tolist() == [[0, 1, 2, 3]]
    assert (specs[0].in_size, specs[0].out_size) == (36, 4)
    assert (specs[1].in_size, specs[1].out_size) == (32, 96)
