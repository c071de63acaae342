"""The unit protocol (``lowbit.hw.unit``): every spec family answers the same questions, with
``cycles_per_image`` meaning cycles per image everywhere. Hand-worked values first."""

import numpy as np
import pytest

from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.hw.registry import FAMILIES, candidates, stitching, unit_spec
from lowbit.hw.stream.dwc import WidthConverterSpec
from lowbit.hw.stream.fifo import FIFOSpec
from lowbit.hw.stream.label import LabelSelectSpec
from lowbit.hw.stream.pool import AccPoolSpec, MaxPoolSpec
from lowbit.hw.stream.swg import SWGSpec
from lowbit.hw.stream.threshold import ThresholdSpec
from lowbit.hw.unit import SearchContext, UnitSpec
from lowbit.ir import (
    BIPOLAR,
    DataType,
    GlobalAccPool,
    MatMulThreshold,
    MaxPool,
    SlidingWindow,
    Threshold,
)

U3 = DataType.uint(3)


def _node(mw=12, mh=6):
    w = np.random.default_rng(0).integers(0, 2, (mh, mw))
    return MatMulThreshold("fc", BIPOLAR, w, np.zeros((mh, 1), dtype=int))


SPECS = {
    # MW 12, MH 6, PE 3, SIMD 4: NF 2 x SF 3 = 6 cycles a vector
    "mvtu": (MVTUSpec(_node(), pe=3, simd=4), 4, 24),
    # 5x6x4, K 3, S 2, pad 1, SIMD 2: in 5*6*2 = 60 beats, out 3*3*9*2 = 162 beats
    "swg": (SWGSpec(SlidingWindow("s", 3, 2, 1), (5, 6, 4), U3, 2), 1, 162),
    # 6x4x6, K 2, SIMD 3: 6*4*2 = 48 beats in
    "maxpool": (MaxPoolSpec(MaxPool("p", 2), (6, 4, 6), U3, 3), 1, 48),
    # 3x3x4, SIMD 2: 3*3*2 = 18 beats in
    "accpool": (AccPoolSpec(GlobalAccPool("g", BIPOLAR), (3, 3, 4), BIPOLAR, 2), 1, 18),
    # 5 beats a vector, 3 vectors
    "fifo": (FIFOSpec(U3, 2, 8, beats=5), 3, 15),
    # C 4, PE 2: 2 cycles a pixel, 3 pixels
    "threshold": (ThresholdSpec(np.zeros((4, 1), dtype=int), DataType.int(4), 2), 3, 6),
    # 12 elements a vector, 3 in, 2 out: the slower side takes 6 cycles
    "dwc": (WidthConverterSpec(elem_bits=2, n_in=3, n_out=2, size=12), 1, 6),
    # 10 classes, 2 a beat
    "label": (LabelSelectSpec(classes=10, pe=2, score_bits=8), 1, 5),
}


@pytest.mark.parametrize("name", SPECS)
def test_every_spec_implements_the_protocol_with_one_meaning_of_cycles(name):
    spec, vectors, cycles = SPECS[name]
    assert isinstance(spec, UnitSpec)
    assert spec.cycles_per_image(vectors) == cycles
    assert spec.resources().lut >= 0 and spec.in_elems >= 1 and spec.out_elems >= 1


def test_block_streams_are_their_simd_and_element_bits():
    swg, _, _ = SPECS["swg"]
    assert (swg.in_elems, swg.out_elems, swg.in_bits, swg.out_bits) == (2, 2, 3, 3)
    assert (swg.in_size, swg.out_size) == (5 * 6 * 4, 3 * 3 * 9 * 4)
    acc, _, _ = SPECS["accpool"]
    assert acc.out_bits == acc.out_dtype.bits and acc.out_size == 4


def test_an_mvtu_streaming_weights_waits_for_ddr():
    node = _node(64, 32)
    spec = MVTUSpec(node, pe=4, simd=16, weight_ram="external")
    # NF 8 x SF 4 = 32 cycles a vector; 32 words of 4*16 = 64 bits at 16 bits a cycle: 128 cycles
    assert spec.cycles_per_image(1, ddr_bits=16) == 128
    assert spec.cycles_per_image(1, ddr_bits=4096) == 32
    with pytest.raises(ValueError, match=r"^layer 'fc' streams its weights from DDR, but the board"):
        spec.cycles_per_image(1)


def test_registry_covers_every_node_type_and_names_the_engines():
    assert set(FAMILIES) == {MatMulThreshold, SlidingWindow, MaxPool, GlobalAccPool, Threshold}
    assert [f.ENGINE for f in FAMILIES[MatMulThreshold]] == ["mvtu", "sparse"]
    spec = unit_spec(SlidingWindow("s", 3), (5, 5, 4), U3, pe=2, simd=2)
    assert isinstance(spec, SWGSpec) and spec.simd == 2
    with pytest.raises(ValueError, match=r"^PE \(1\) must equal SIMD \(2\) for a MaxPool"):
        unit_spec(MaxPool("p", 2), (4, 4, 2), U3, pe=1, simd=2)


def test_candidates_come_from_the_families():
    node = _node(12, 6)
    specs = candidates(node, SearchContext(columns=12))
    # divisors of MH 6 (4) x divisors of MW 12 (6), all on the MVTU: no density, no sparse engine
    assert len(specs) == 4 * 6 and {s.ENGINE for s in specs} == {"mvtu"}
    with_ddr = candidates(node, SearchContext(columns=12, ddr_bits=64))
    assert len(with_ddr) == 2 * 24 and sum(s.weight_ram == "external" for s in with_ddr) == 24


def test_stitching_adds_a_converter_where_beats_differ_and_the_label_select():
    a = MVTUSpec(_node(12, 6), pe=3, simd=4)
    w = np.random.default_rng(1).integers(0, 2, (4, 6))
    b = MVTUSpec(MatMulThreshold("out", BIPOLAR, w, None), pe=2, simd=2)
    (dwc,), label = stitching([a, b])
    assert dwc == WidthConverterSpec(elem_bits=1, n_in=3, n_out=2, size=6)
    assert (label.classes, label.pe) == (4, 2)
    (none,), _ = stitching([a, MVTUSpec(MatMulThreshold("o", BIPOLAR, w, None), pe=2, simd=3)])
    assert none is None
