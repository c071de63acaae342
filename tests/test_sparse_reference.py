"""EIE sparse format, oracle, cycle model and spec: hand-worked values first, then random round trips."""

import numpy as np
import pytest

from lowbit.hw.sparse.engine_spec import SparseEngineSpec
from lowbit.hw.sparse.cycle_model import column_steps, column_walk, engine_cycles
from lowbit.sw_reference.sparse import decode_sparse, dense_weights, encode_sparse, requantize, sparse_matvec

CB = np.arange(16)


def test_paper_example_padding_entry():
    # Han et al. 2016: v = [1, 2, 0, 3], z = [2, 0, 15, 2] (rows 2, 3, padding at 19, 22).
    idx = np.zeros((23, 1), dtype=np.int64)
    idx[2, 0], idx[3, 0], idx[22, 0] = 1, 2, 3
    pe = encode_sparse(idx, CB, 1).pe_images[0]
    assert pe.v.tolist() == [1, 2, 0, 3]
    assert pe.z.tolist() == [2, 0, 15, 2]
    assert pe.ptr.tolist() == [0, 4]


def test_rows_interleaved_over_pes_and_column_pointers():
    idx = np.array([[1, 0, 0], [0, 0, 2], [3, 0, 0], [0, 0, 4], [5, 0, 6]])
    im = encode_sparse(idx, CB, 2)
    # PE 0 holds rows 0, 2, 4; PE 1 rows 1, 3.
    assert im.pe_images[0].ptr.tolist() == [0, 3, 3, 4]
    assert im.pe_images[0].v.tolist() == [1, 3, 5, 6]
    assert im.pe_images[0].z.tolist() == [0, 0, 0, 2]
    assert im.pe_images[1].ptr.tolist() == [0, 0, 0, 2]
    assert im.pe_images[1].v.tolist() == [2, 4]
    assert im.pe_images[1].z.tolist() == [0, 0]
    assert im.column_entries().tolist() == [[3, 0, 1], [0, 0, 2]]


def test_run_of_exactly_16_and_32_zeros():
    idx = np.zeros((50, 1), dtype=np.int64)
    idx[16, 0], idx[49, 0] = 7, 9   # 16 zeros, then 32 zeros
    pe = encode_sparse(idx, CB, 1).pe_images[0]
    assert pe.v.tolist() == [0, 7, 0, 0, 9]
    assert pe.z.tolist() == [15, 0, 15, 15, 0]


@pytest.mark.parametrize("seed", range(6))
def test_round_trip_random(seed):
    rng = np.random.default_rng(seed)
    rows, cols = int(rng.integers(1, 90)), int(rng.integers(1, 30))
    density = [0.0, 0.01, 0.05, 0.2, 0.5, 1.0][seed]
    idx = rng.integers(1, 16, (rows, cols)) * (rng.random((rows, cols)) < density)
    for pes in (1, 3, 4, 16):
        im = encode_sparse(idx, CB, pes)
        assert np.array_equal(decode_sparse(im), idx)
        assert all(z <= 15 for p in im.pe_images for z in p.z)
        assert im.total_entries >= int(np.count_nonzero(idx))


def test_requantize_half_up_and_saturation():
    acc = np.array([-9, -6, -2, 0, 5, 6, 7, 8, 10, 1000])
    assert requantize(acc, shift=2, out_bits=4, relu=True).tolist() == [0, 0, 0, 0, 1, 2, 2, 2, 3, 7]
    assert requantize(acc, shift=2, out_bits=4, relu=False).tolist() == [-2, -1, 0, 0, 1, 2, 2, 2, 3, 7]
    # floor(-6/4 + 1/2) = -1: half rounds up (towards +inf), also for negative values.
    assert requantize(np.array([-6, -10, -40]), shift=2, out_bits=4, relu=False).tolist() == [-1, -2, -8]
    assert requantize(acc, shift=0, out_bits=16, relu=False).tolist() == acc.tolist()


def test_sparse_matvec_equals_dense_integer_product():
    rng = np.random.default_rng(3)
    idx = rng.integers(1, 16, (21, 17)) * (rng.random((21, 17)) < 0.3)
    cb = np.concatenate([[0], rng.integers(-128, 128, 15)])
    im = encode_sparse(idx, cb, 4)
    x = rng.integers(-2000, 2000, (5, 17))
    acc = x @ cb[idx].T
    assert np.array_equal(dense_weights(im), cb[idx])
    assert np.array_equal(sparse_matvec(im, x, shift=3, out_bits=16, relu=True),
                          np.clip((np.maximum(acc, 0) + 4) >> 3, -32768, 32767))


def test_encoder_errors_name_the_parameter():
    with pytest.raises(ValueError, match=r"^codebook entry 0 is reserved for the value 0, not 5$"):
        encode_sparse(np.zeros((2, 2), dtype=int), np.arange(16) + 5, 1)
    with pytest.raises(ValueError, match=r"^indices must lie in 0\.\.15 \(index_bits=4\), not 0\.\.16$"):
        encode_sparse(np.array([[0, 16]]), CB, 1)
    with pytest.raises(ValueError, match=r"^pes must be an integer >= 1, not 0$"):
        encode_sparse(np.array([[1]]), CB, 0)


def test_cycle_model_hand_worked():
    # One PE, one column of 3 entries, lanes 1, depth 1, 4 rows. Cycle 0 accepts the beat, 1
    # broadcasts, 2 pops, 3 reads pointers, 4-6 issue the entries, 7 decode, 8 accumulate, 9 idle;
    # then 4 output beats: 9 + 4 + 3 = 16.
    assert engine_cycles([[3]], [5], depth=1, lanes=1, rows=4).cycles == 16
    assert engine_cycles([[0]], [5], depth=1, lanes=1, rows=4).cycles == 11
    assert engine_cycles([[3]], [0], depth=1, lanes=1, rows=4).cycles == 9


def test_cycle_model_stalls_only_with_full_queues():
    # Two PEs; PE 0 has 10 entries per column, PE 1 none: with depth 1 broadcasts stall on PE 0.
    cnt = [[10] * 8, [0] * 8]
    deep = engine_cycles(cnt, np.ones(8), depth=16, lanes=4, rows=2)
    shallow = engine_cycles(cnt, np.ones(8), depth=1, lanes=4, rows=2)
    assert deep.stall == 0 and shallow.stall > 0
    assert deep.compute == shallow.compute  # PE 0 is the bottleneck either way
    assert deep.entries == 80


def test_spec_errors_and_defaults():
    with pytest.raises(ValueError, match=r"^pes must be a positive integer, not 0$"):
        SparseEngineSpec(rows=4, cols=4, pes=0)
    with pytest.raises(TypeError, match=r"^depth must be an integer, not 2\.0$"):
        SparseEngineSpec(rows=4, cols=4, pes=1, depth=2.0)
    with pytest.raises(ValueError, match=r"^entries_per_word must be a power of two, not 3$"):
        SparseEngineSpec(rows=4, cols=4, pes=1, entries_per_word=3)
    im = encode_sparse(np.ones((4, 4), dtype=int), CB, 2)
    with pytest.raises(ValueError, match=r"^image pes \(2\) must equal the spec's pes \(1\)$"):
        SparseEngineSpec(rows=4, cols=4, pes=1, image=im)
    with pytest.raises(ValueError, match=r"^capacity \(3\) must hold the image's fullest PE \(8 entries\)$"):
        SparseEngineSpec(rows=4, cols=4, pes=2, image=im, capacity=3)
    s = SparseEngineSpec(rows=4, cols=4, pes=2, image=im)
    assert s.capacity == 8 and s.out_beats == 2 and s.beats == 1
    assert s.resources().dsp == 2
    x = np.array([1, 0, 2, 0])
    assert s.entries_per_word == 8
    assert s.timing(x).cycles == engine_cycles(column_steps(im, 8), x, depth=8, lanes=4, rows=4).cycles


def _one_column(v, z):
    from lowbit.sw_reference.sparse import PEImage, SparseImage
    rows = int(np.sum(np.asarray(z) + 1))
    pe = PEImage(np.array([0, len(v)]), np.array(v), np.array(z))
    return SparseImage(rows, 1, 1, CB, (pe,))


@pytest.mark.parametrize("v, z, epw, steps, squashed", [
    ([0, 5], [15, 0], 2, 2, True),          # padding then the last entry: that slot is squashed
    ([0, 5, 6], [15, 0, 0], 2, 2, False),   # padding + successor in one cycle
    ([5, 0, 6], [0, 15, 0], 2, 3, False),   # the padding is the last entry of its word: no skip
    ([5, 0, 6, 7], [0, 15, 0, 0], 4, 3, False),
    ([5, 0, 6], [0, 15, 0], 4, 3, True),
    ([0, 0, 5, 6], [15, 15, 0, 0], 4, 3, False),
    ([0, 5, 6], [15, 0, 0], 1, 3, False),   # one entry per word: never
])
def test_column_steps_padding_skip_hand_worked(v, z, epw, steps, squashed):
    im = _one_column(v, z)
    assert column_steps(im, epw).tolist() == [[steps]]
    assert column_walk(im, epw)[1].tolist() == [[squashed]]
