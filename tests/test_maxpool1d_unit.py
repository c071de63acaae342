# amaranth: UnusedElaboratable=no
"""The streaming 1-D max-pool (issue 19): the pooled values of hand-worked sequences, then the
component against the graph node's reference under random valid/ready throttling (seed in the
test id), and its cycles per sequence measured == the spec's ``L * C / SIMD``."""

import numpy as np
import pytest

from lowbit.hw._util import pack_words
from lowbit.hw.dag import MaxPool1DSpec
from lowbit.hw.unit import UnitSpec
from lowbit.hw.verilog import to_verilog
from lowbit.ir import BIPOLAR, DataType
from lowbit.ir.graph import MaxPool1D
from lowbit.ir.resources import Resources
from lowbit.sim.amaranth_sim import run_stream

U3 = DataType.uint(3)


def test_pool_hand_worked():
    # L = 5, C = 2, K = 2 (stride 2): windows [0, 1], [2, 3]; position 4 is dropped
    spec = MaxPool1DSpec(MaxPool1D("p", 2), (5, 2), U3, 1)
    x = np.array([[[1, 7], [4, 2], [3, 0], [3, 5], [7, 7]]])
    assert spec.reference(x).tolist() == [[[4, 7], [3, 5]]]
    assert (spec.out_length, spec.in_size, spec.out_size, spec.cycles()) == (2, 10, 4, 10)
    # bits: the OR; K = 1, S = 2: every other position
    spec = MaxPool1DSpec(MaxPool1D("p", 1, 2), (4, 1), BIPOLAR, 1)
    assert spec.reference(np.array([[[1], [0], [0], [1]]])).tolist() == [[[1], [0]]]
    assert isinstance(spec, UnitSpec) and isinstance(spec.resources(), Resources)
    assert spec.cycles_per_image() == 4 and (spec.in_bits, spec.out_elems) == (1, 1)


# (L, C, SIMD, K, S, dtype)
CASES = [
    (8, 2, 1, 2, 2, U3),
    (9, 4, 2, 3, 3, U3),
    (7, 3, 3, 2, 3, BIPOLAR),
    (6, 2, 2, 1, 1, U3),
    (10, 4, 1, 2, 4, DataType.uint(4)),
    (5, 1, 1, 5, 5, BIPOLAR),
]


def _run(spec, x, **throttle):
    width = spec.elem_bits
    beats = [pack_words(row, width) for row in np.asarray(x).reshape(-1, spec.simd)]
    n_out = len(x) * spec.out_size // spec.simd
    run = run_stream(spec.create(), beats, n_out, max_cycles=50 * len(beats) + 2000, **throttle)
    got = [(word >> (p * width)) & ((1 << width) - 1) for word in run.outputs
           for p in range(spec.simd)]
    return np.array(got[: len(x) * spec.out_size]).reshape((len(x), spec.out_length, -1)), run


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("case, seed", [
    pytest.param(c, s, id=f"L{c[0]}-C{c[1]}-simd{c[2]}-K{c[3]}-S{c[4]}-"
                 + ("steady" if s is None else f"seed{s}"))
    for c in CASES for s in (None, 5)])
def test_maxpool1d_equals_reference(case, seed):
    length, c, simd, k, s, dt = case
    rng = np.random.default_rng([length, c, k, s])
    spec = MaxPool1DSpec(MaxPool1D("p", k, s), (length, c), dt, simd)
    n = 5
    x = dt.sample(rng, (n, length, c))
    throttle = {} if seed is None else dict(seed=seed, valid_prob=0.6, ready_prob=0.5)
    got, run = _run(spec, x, **throttle)
    assert np.array_equal(got, spec.reference(x))
    if seed is None:
        per = spec.out_size // spec.simd  # output beats per sequence
        firsts = np.array(run.out_cycles)[::per]
        assert np.diff(firsts).tolist() == [spec.cycles()] * (n - 1)


def test_maxpool1d_writes_verilog():
    spec = MaxPool1DSpec(MaxPool1D("p", 2), (8, 4), U3, 2)
    v = to_verilog(spec.create(), name="pool1d")
    assert "module pool1d" in v


def test_maxpool1d_spec_errors():
    with pytest.raises(ValueError, match=r"^SIMD \(3\) must divide the channels C \(4\) of node "
                                         r"'p'$"):
        MaxPool1DSpec(MaxPool1D("p", 2), (8, 4), U3, 3)
    with pytest.raises(ValueError, match=r"^node 'p': the streaming 1-D max-pool needs a stride "
                                         r"\(1\) of at least the kernel \(2\)$"):
        MaxPool1DSpec(MaxPool1D("p", 2, 1), (8, 4), U3, 1)
    with pytest.raises(ValueError, match=r"^node 'p': in_shape must be \(L, C\) positive, not "
                                         r"\(8, 4, 1\)$"):
        MaxPool1DSpec(MaxPool1D("p", 2), (8, 4, 1), U3, 1)
    with pytest.raises(ValueError, match=r"max-pool needs BIPOLAR or UINT inputs, not INT3"):
        MaxPool1DSpec(MaxPool1D("p", 2), (8, 4), DataType.int(3), 1)
