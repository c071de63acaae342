"""The sparse engine in the Amaranth simulator against sw_reference (==) and the cycle model (exact)."""

import numpy as np
import pytest

from lowbit.hw.sparse.engine_spec import SparseEngineSpec
from lowbit.sim.sparse_sim import run_amaranth
from lowbit.sw_reference.sparse import encode_sparse

pytestmark = pytest.mark.amaranth_sim

# (pes, rows, cols, depth, lanes, entries_per_word, weight density)
CONFIGS = [
    (1, 37, 9, 1, 1, 4, 0.05),     # runs over 15 zeros in one PE (padding skips)
    (2, 40, 9, 2, 2, 1, 0.05),     # one entry per word: no skips
    (4, 23, 13, 2, 3, 2, 0.5),
    (16, 37, 11, 8, 4, 4, 0.2),
    (3, 50, 7, 4, 2, 2, 0.01),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=[f"N{c[0]}-{c[1]}x{c[2]}-D{c[3]}-L{c[4]}-E{c[5]}" for c in CONFIGS])
def test_engine_bit_exact_and_cycles_equal_model(cfg):
    pes, rows, cols, depth, lanes, epw, density = cfg
    rng = np.random.default_rng(sum(cfg[:6]))
    idx = rng.integers(1, 16, (rows, cols)) * (rng.random((rows, cols)) < density)
    idx[:, cols // 2] = 0                                   # an empty column
    cb = np.concatenate([[0], rng.integers(-128, 128, 15)])
    image = encode_sparse(idx, cb, pes)
    spec = SparseEngineSpec(rows=rows, cols=cols, pes=pes, depth=depth, lanes=lanes, entries_per_word=epw,
                            shift=2, relu=pes % 2 == 0, out_bits=12, image=image)
    xs = rng.integers(-2000, 2000, (4, cols)) * (rng.random((4, cols)) < np.array([[0.1], [0.5], [1.0], [0.3]]))
    xs = np.vstack([np.zeros((1, cols), dtype=np.int64), xs])  # an all-zero input first
    if pes == 1:
        from lowbit.hw.sparse.cycle_model import column_steps
        assert (column_steps(image, epw) < image.column_entries()).any()   # the padding skip is exercised
    run = run_amaranth(spec, xs)
    for k, x in enumerate(xs):
        assert list(run.outputs[k]) == spec.reference(x).tolist(), k
        assert run.cycles[k] == spec.timing(x).cycles, k


def test_padding_skip_squashes_the_last_slot_of_the_vector():
    # One column: a padding entry (row 15), then the last entry (row 16), both in one word. The
    # decode stage consumes both in one cycle, so the entry stage's last slot issues nothing and
    # the engine is idle a cycle earlier than with one entry per word.
    idx = np.zeros((17, 1), dtype=np.int64)
    idx[16, 0] = 3
    image = encode_sparse(idx, np.arange(16), 1)
    assert image.pe_images[0].v.tolist() == [0, 3]
    two = SparseEngineSpec(rows=17, cols=1, pes=1, depth=1, lanes=1, entries_per_word=2, image=image)
    one = SparseEngineSpec(rows=17, cols=1, pes=1, depth=1, lanes=1, entries_per_word=1, image=image)
    run_two, run_one = run_amaranth(two, [[7]]), run_amaranth(one, [[7]])
    assert run_two.outputs == run_one.outputs == ((0,) * 16 + (21,),)
    # Cycle 0 accepts, 1 broadcasts, 2 pops, 3 reads pointers, 4-5 issue, 6 decodes, 7 accumulates,
    # 8 is idle; 17 output beats and 3 cycles of output latency follow.
    assert run_one.cycles == (one.timing([7]).cycles,) == (8 + 17 + 3,)
    assert run_two.cycles == (two.timing([7]).cycles,) == (run_one.cycles[0] - 1,)


def test_other_codebook_size_and_zero_run_width():
    # 8-entry codebook (3-bit v), 5-bit z (runs up to 31), 6-bit weights, 10-bit activations.
    rng = np.random.default_rng(11)
    rows, cols, pes = 90, 8, 2
    idx = rng.integers(1, 8, (rows, cols)) * (rng.random((rows, cols)) < 0.04)
    cb = np.concatenate([[0], rng.integers(-32, 32, 7)])
    image = encode_sparse(idx, cb, pes, index_bits=3, zero_bits=5)
    assert any(((pe.v == 0) & (pe.z == 31)).any() for pe in image.pe_images)
    spec = SparseEngineSpec(rows=rows, cols=cols, pes=pes, depth=3, lanes=2, index_bits=3, zero_bits=5,
                            weight_bits=6, act_bits=10, out_bits=10, shift=1, image=image)
    xs = rng.integers(-512, 512, (3, cols))
    run = run_amaranth(spec, xs)
    for k, x in enumerate(xs):
        assert list(run.outputs[k]) == spec.reference(x).tolist(), k
        assert run.cycles[k] == spec.timing(x).cycles, k


def test_runtime_load_and_throttled_streams():
    rng = np.random.default_rng(7)
    rows, cols, pes = 19, 10, 4
    cb = np.concatenate([[0], rng.integers(-128, 128, 15)])
    first = encode_sparse(rng.integers(1, 16, (rows, cols)) * (rng.random((rows, cols)) < 0.5), cb, pes)
    second = encode_sparse(rng.integers(1, 16, (rows, cols)) * (rng.random((rows, cols)) < 0.3), np.r_[0, cb[1:][::-1]], pes)
    spec = SparseEngineSpec(rows=rows, cols=cols, pes=pes, depth=2, image=first, capacity=first.max_entries + 4)
    xs = rng.integers(-500, 500, (3, cols))
    run = run_amaranth(spec, xs, image=second, valid_prob=0.6, ready_prob=0.5, seed=3)
    for k, x in enumerate(xs):
        assert list(run.outputs[k]) == spec.reference(x, second).tolist(), k
        assert list(run.outputs[k]) != spec.reference(x, first).tolist(), k
