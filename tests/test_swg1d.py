# amaranth: UnusedElaboratable=no
"""The 1-D sliding-window generator (issue 19): the windows of hand-worked sequences, then the
component against the graph node's reference under random valid/ready throttling (seed in the
test id), and its steady-state cycles per sequence against the exact replay."""

import numpy as np
import pytest

from lowbit.hw._util import pack_words
from lowbit.hw.dag.swg1d import SWG1DSpec, steady_cycles_1d
from lowbit.ir import BIPOLAR, DataType
from lowbit.ir.graph import SlidingWindow1D
from lowbit.sim.amaranth_sim import run_stream

U3 = DataType.uint(3)


def test_windows_hand_worked():
    # L = 4, C = 1, K = 3, S = 1, pad 1 of value 7: positions -1..4
    spec = SWG1DSpec(SlidingWindow1D("w", 3, 1, 1, 7), (4, 1), U3, 1)
    x = np.array([[[1], [2], [3], [4]]])
    assert spec.reference(x).tolist() == [[[7, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 7]]]
    assert spec.out_length == 4 and spec.positions == 6
    # C = 2, K = 2, S = 2: windows (k, c) order
    spec = SWG1DSpec(SlidingWindow1D("w", 2, 2), (4, 2), U3, 2)
    x = np.array([[[1, 5], [2, 6], [3, 7], [4, 0]]])
    assert spec.reference(x).tolist() == [[[1, 5, 2, 6], [3, 7, 4, 0]]]


# (L, C, SIMD, K, S, pad, dtype)
CASES = [
    (8, 2, 1, 3, 1, 1, U3),
    (8, 4, 2, 3, 2, 1, U3),
    (9, 3, 3, 2, 3, 0, U3),
    (6, 2, 2, 5, 1, 2, BIPOLAR),
    (10, 1, 1, 4, 4, 0, DataType.int(4)),
    (7, 2, 1, 1, 1, 0, U3),
    (5, 2, 2, 3, 1, 0, U3),
]


def _run(spec, x, **throttle):
    width = spec.elem_bits
    beats = [pack_words(row, width) for row in np.asarray(x).reshape(-1, spec.simd)]
    n_out = len(x) * spec.out_size // spec.simd
    run = run_stream(spec.create(), beats, n_out, max_cycles=50 * len(beats) + 2000, **throttle)
    got = []
    for word in run.outputs:
        for p in range(spec.simd):
            v = (word >> (p * width)) & ((1 << width) - 1)
            got.append(v - (1 << width) if spec.dtype.signed and v >> (width - 1) else v)
    return np.array(got).reshape((len(x), spec.out_length, -1)), run


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("case, seed", [
    pytest.param(c, s, id=f"L{c[0]}-C{c[1]}-simd{c[2]}-K{c[3]}-S{c[4]}-P{c[5]}-"
                 + ("steady" if s is None else f"seed{s}"))
    for c in CASES for s in (None, 3)])
def test_swg1d_equals_reference(case, seed):
    length, c, simd, k, s, pad, dt = case
    rng = np.random.default_rng([length, c, k])
    pad_value = int(dt.sample(rng, (1,))[0]) if pad else 0
    spec = SWG1DSpec(SlidingWindow1D("w", k, s, pad, pad_value), (length, c), dt, simd)
    n = 5
    x = dt.sample(rng, (n, length, c))
    throttle = {} if seed is None else dict(seed=seed, valid_prob=0.6, ready_prob=0.5)
    got, run = _run(spec, x, **throttle)
    assert np.array_equal(got, spec.reference(x))
    if seed is None:
        per = spec.out_size // spec.simd  # output beats per sequence
        firsts = np.array(run.out_cycles)[::per]
        # the steady state: every sequence after the first two takes cycles() exactly
        assert np.diff(firsts)[2:].tolist() == [spec.cycles()] * (n - 3)
        lo = max(length, spec.out_length * k) * c // simd
        assert spec.cycles() >= lo


def test_replay_hand_worked():
    # K = 1, S = 1: one output beat per input beat, no waiting: L * CF cycles
    assert steady_cycles_1d(7, 2, 1, 1, 0, 2) == 14
    # K = 3, S = 1, pad 1, one beat per position: 8 outputs of 3 beats = 24 cycles
    assert steady_cycles_1d(8, 1, 3, 1, 1, 6) == 24


def test_swg1d_spec_errors():
    with pytest.raises(ValueError, match=r"^SIMD \(3\) must divide the channels C \(4\) of node "
                                         r"'w'$"):
        SWG1DSpec(SlidingWindow1D("w", 3), (8, 4), U3, 3)
    with pytest.raises(ValueError, match=r"^node 'w': in_shape must be \(L, C\), not \(8, 4, 1\)$"):
        SWG1DSpec(SlidingWindow1D("w", 3), (8, 4, 1), U3, 1)
