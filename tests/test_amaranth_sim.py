"""``lowbit.sim.amaranth_sim.run_stream``: the unit-test tier's stream driver (issue 17).

A block may take input after its last output (a max-pool drops the last row of an odd height: its
pixels come in after the last maximum went out). ``run_stream`` used to stop at the last output and
leave its input driver suspended in ``ctx.tick().until(ready)``; when that coroutine was finalised
Python reported "RuntimeError: aclose(): asynchronous generator is already running" as an
unraisable exception, which could crash pytest at exit after every test passed.
"""

import gc
import sys

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from lowbit.hw._util import pack_words
from lowbit.hw.stream.pool import MaxPoolSpec
from lowbit.ir import DataType
from lowbit.ir.graph import MaxPool
from lowbit.sim.amaranth_sim import run_stream

pytestmark = pytest.mark.amaranth_sim

U3 = DataType.uint(3)


@pytest.fixture
def unraisable(monkeypatch):
    """Every unraisable exception (an exception in a finaliser) while the test runs."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    yield seen
    gc.collect()


def _pool_beats(x, simd):
    return [pack_words(row, 3) for row in np.asarray(x).reshape(-1, simd)]


@pytest.mark.parametrize("throttle", [{}, {"valid_prob": 0.6, "ready_prob": 0.5}])
def test_a_block_that_takes_input_after_its_last_output_leaves_nothing_suspended(
    unraisable, throttle
):
    """5 x 5 pixels, K = 2: the maxima of rows 0-3 are out before row 4 (5 pixels, 5 beats) goes
    in. Every beat must go in and no coroutine may be left suspended."""
    spec = MaxPoolSpec(MaxPool("p", 2), (5, 5, 2), U3, 2)
    x = np.random.default_rng(0).integers(0, 8, (2, 5, 5, 2))
    run = run_stream(spec.create(), _pool_beats(x, 2), 2 * 4, seed=3, **throttle)
    gc.collect()
    assert [str(u.exc_value) for u in unraisable] == []
    assert list(run.outputs) == _pool_beats(spec.reference(x), 2)
    assert run.inputs_taken == 50


def test_all_outputs_out_but_input_refused_is_an_error(unraisable):
    """A block that stops taking input after its outputs: the run must not pass silently."""

    class Gate(wiring.Component):
        """Passes 2 beats, then refuses input."""

        i: In(stream.Signature(data.StructLayout({"v": 8})))
        o: Out(stream.Signature(data.StructLayout({"v": 8})))

        def elaborate(self, platform):
            m = Module()
            n = Signal(range(3))
            m.d.comb += [
                self.o.valid.eq(self.i.valid & (n < 2)),
                self.o.payload.eq(self.i.payload),
                self.i.ready.eq(self.o.ready & (n < 2)),
            ]
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += n.eq(n + 1)
            return m

    with pytest.raises(RuntimeError, match=r"^simulation exceeded max_cycles \(50\) with 2 of 2 "
                                           r"outputs and 2 of 3 input beats$"):
        run_stream(Gate(), [7, 8, 9], 2, max_cycles=50)
    gc.collect()
    assert [str(u.exc_value) for u in unraisable] == []
