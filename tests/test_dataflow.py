"""Dataflow block specs (first tier, no simulation): validation, references, cycle models."""

import numpy as np
import pytest

from lowbit.hw.stream.fifo import FIFOSpec
from lowbit.hw.stream.pool import AccPoolSpec, MaxPoolSpec
from lowbit.hw.stream.swg import SWGSpec
from lowbit.hw.stream.threshold import ThresholdSpec
from lowbit.ir import BIPOLAR, DataType
from lowbit.ir.graph import GlobalAccPool, MaxPool, SlidingWindow
from lowbit.sw_reference import maxpool2d, multithreshold, sliding_window, sum_pool

U3 = DataType.uint(3)


def test_swg_reference_is_sw_reference_and_order_is_ky_kx_c():
    spec = SWGSpec(SlidingWindow("s", 3, 1, 1, 7), (4, 5, 2), U3, 1)
    x = np.arange(40).reshape(1, 4, 5, 2) % 8
    win = spec.reference(x)
    assert (win == sliding_window(x, 3, 1, 1, 7)).all()
    # window of output pixel (1, 1): rows 0..2, cols 0..2, channels innermost
    assert list(win[0, 1, 1, :4]) == [x[0, 0, 0, 0], x[0, 0, 0, 1], x[0, 0, 1, 0], x[0, 0, 1, 1]]
    assert list(win[0, 0, 0, :2]) == [7, 7]  # padding


@pytest.mark.parametrize("shape,k,s,p,simd,cycles", [
    ((32, 32, 3), 3, 1, 0, 3, 30 * 30 * 9),        # CNV L0: one output beat per cycle
    ((30, 30, 64), 3, 1, 0, 32, 28 * 28 * 9 * 2),  # CNV L1
    ((8, 8, 4), 1, 2, 0, 4, 64),                   # stride 2, K = 1: the input dominates
    # 6 x 5, K 3, S 2, one beat a pixel: rows of 5 beats, output rows of 2 * 9 = 18 beats, a ring of
    # 6 rows. Output row 0 needs rows 0..2 and frees 2 rows, row 1 (the last) all 6 and frees 4.
    # The next image's rows 0 and 1 fit in the 2 rows freed first; its row 2 waits for the last
    # output row's release at cycle e, is written in e..e+4, and its output row 0 starts at e + 5:
    # 36 output beats + 5 idle cycles (the old max(in, out) model said 36; the RTL measures 41)
    ((6, 5, 6), 3, 2, 0, 6, 36 + 5),
    # 7 x 7, K 2, S 2, 2 beats a pixel: rows of 14 beats (98 per image), output rows of 3 * 4 * 2 =
    # 24 beats, a ring of 4 rows. Output rows 0, 1, 2 need rows 0..1, 0..3, 0..6 and free 2, 2, 3.
    # The writer needs the last output row's release to write row 1 of the next image; that row
    # starts 1 cycle after row 6 is written, so the writer idles 24 - 14 = 10 cycles after row 0:
    # 98 + 10 (old model 98; the RTL measures 108)
    ((7, 7, 4), 2, 2, 0, 2, 98 + 10),
])
def test_swg_cycles(shape, k, s, p, simd, cycles):
    assert SWGSpec(SlidingWindow("s", k, s, p), shape, BIPOLAR, simd).cycles() == cycles


def test_swg_line_buffer_is_k_plus_max_k_s_rows_not_the_image():
    spec = SWGSpec(SlidingWindow("s", 3), (30, 30, 64), BIPOLAR, 32)
    assert spec.lines == 6
    assert spec.resources().bram36 <= 1


@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(simd=2), ValueError, r"^SIMD \(2\) must divide the channels C \(3\) of node 's'$"),
    (dict(simd=0), ValueError, r"^SIMD must be an integer >= 1, not 0$"),
    (dict(simd=1.0), TypeError, r"^SIMD must be an integer, not 1\.0$"),
    (dict(pad=3), ValueError, r"^node 's': pad \(3\) must be less than the kernel \(3\)$"),
    (dict(shape=(2, 2, 3)), ValueError, r"^node 's': kernel 3 exceeds the padded input \(2, 2, 3\)$"),
])
def test_swg_validation(kwargs, exc, pattern):
    shape = kwargs.pop("shape", (5, 5, 3))
    node = SlidingWindow("s", 3, 1, kwargs.pop("pad", 0))
    with pytest.raises(exc, match=pattern):
        SWGSpec(node, shape, U3, kwargs.pop("simd", 1))


def test_maxpool_spec():
    spec = MaxPoolSpec(MaxPool("p", 2), (5, 7, 6), U3, 3)
    x = np.random.default_rng(0).integers(0, 8, (2, 5, 7, 6))
    assert (spec.reference(x) == maxpool2d(x, 2)).all()
    assert spec.cycles() == 5 * 7 * 2 and spec.out_dims == (2, 3)
    with pytest.raises(ValueError, match=r"^node 'q': the streaming max-pool needs stride == kernel \(2\), "
                                         r"not stride 1$"):
        MaxPoolSpec(MaxPool("q", 2, 1), (4, 4, 2), U3, 1)
    with pytest.raises(ValueError, match=r"^node 'q': max-pool needs BIPOLAR or UINT inputs, not INT3$"):
        MaxPoolSpec(MaxPool("q", 2), (4, 4, 2), DataType.int(3), 1)


def test_accpool_spec():
    spec = AccPoolSpec(GlobalAccPool("g", BIPOLAR), (3, 3, 4), BIPOLAR, 2)
    x = np.random.default_rng(0).integers(0, 2, (2, 3, 3, 4))
    assert (spec.reference(x) == sum_pool(2 * x - 1)).all()
    assert spec.out_dtype == DataType.int(5) and spec.cycles() == 18


def test_threshold_spec():
    t = np.array([[-3, 0, 4], [1, 1, 2]])
    spec = ThresholdSpec(t, DataType.int(4), 1)
    acc = np.array([[-8, 1], [0, 2], [7, 0]])
    assert (spec.reference(acc) == multithreshold(acc, t)).all()
    assert spec.out_dtype == DataType.uint(2) and spec.cycles(3) == 6
    with pytest.raises(ValueError, match=r"^threshold: a k-bit output needs 2\^k - 1 thresholds, not 2$"):
        ThresholdSpec(t[:, :2], DataType.int(4), 1)
    with pytest.raises(ValueError, match=r"^PE \(2\) must divide the channels C \(3\) of th$"):
        ThresholdSpec(np.zeros((3, 1), dtype=int), DataType.int(4), 2, name="th")
    with pytest.raises(ValueError, match=r"^threshold: thresholds must lie in \[0, 8\] \(UINT3 inputs\), "
                                         r"found \[0, 9\]$"):
        ThresholdSpec(np.array([[0], [9]]), U3, 1)


def test_fifo_spec():
    spec = FIFOSpec(U3, 2, 8)
    x = np.arange(6)
    assert (spec.reference(x) == x).all() and spec.cycles(10) == 10
    with pytest.raises(ValueError, match=r"^depth must be a positive integer, not 0$"):
        FIFOSpec(U3, 2, 0)


def test_label_select_top_k_validation():
    from amaranth.hdl import signed
    from lowbit.hw.stream.label import LabelSelect
    with pytest.raises(ValueError, match=r"^top_k must be an integer in \[1, classes=4\], not 5$"):
        LabelSelect(signed(4), classes=4, pe=2, top_k=5)
    assert "top" not in LabelSelect(signed(4), classes=4, pe=2).result_layout.members  # k = 1: unchanged
