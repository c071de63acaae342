"""Drive a stream component in the Amaranth simulator (unit-test tier, no Verilog).

``run_stream`` pushes input beats through ``dut.i`` and collects beats from ``dut.o``, with
``valid`` and ``ready`` optionally throttled at random from a seeded generator. Payloads are
plain integers (the flattened bits of the stream payload). With ``reset_after=n`` the ``sync``
domain is reset for ``reset_cycles`` cycles right after the ``n``-th input beat was accepted (in the
middle of a stream); the outputs collected before the reset are dropped, and ``n_out`` counts the
outputs after it.

One testbench drives both sides, cycle by cycle, and runs until ``n_out`` outputs came out *and*
every input beat went in (a block may take input after its last output: a max-pool's dropped last
row), so no coroutine is left suspended when the simulation ends.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

__all__ = ["StreamRun", "run_stream"]


@dataclass(frozen=True)
class StreamRun:
    outputs: tuple[int, ...]
    out_cycles: tuple[int, ...]  # cycle at which each output beat was accepted
    inputs_taken: int = 0  # input beats accepted (all of them when the run returns)


def run_stream(
    dut,
    beats: list[int],
    n_out: int,
    *,
    seed: int = 0,
    valid_prob: float = 1.0,
    ready_prob: float = 1.0,
    max_cycles: int = 1_000_000,
    vcd: str | None = None,
    reset_after: int | None = None,
    reset_cycles: int = 2,
) -> StreamRun:
    """Simulate ``dut`` until ``n_out`` output beats have been accepted (after the reset, if
    any) and every beat of ``beats`` went in; outputs after the ``n_out``-th, while input beats
    remain, are collected too.

    Raises
    ------
    RuntimeError
        After ``max_cycles`` cycles, naming the outputs and input beats taken so far.
    """
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
    outputs: list[int] = []
    out_cycles: list[int] = []
    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.dut = dut
    taken = [0]

    async def bench(ctx):
        k, presenting, cycle = 0, False, 0
        reset_done = reset_after is None
        while len(outputs) < n_out or not reset_done or k < len(beats):
            resetting = k == reset_after and not reset_done and not presenting
            if resetting:
                ctx.set(cd.rst, 1)
            elif not presenting and k < len(beats):
                presenting = rng_in.random() < valid_prob
                if presenting:
                    ctx.set(dut.i.payload.as_value(), beats[k])
            ctx.set(dut.i.valid, presenting)
            ready = rng_out.random() < ready_prob
            ctx.set(dut.o.ready, ready)
            if resetting:
                for _ in range(reset_cycles):
                    await ctx.tick()  # a bare tick never raises DomainReset
                    cycle += 1
                outputs.clear()
                out_cycles.clear()
                ctx.set(cd.rst, 0)
                reset_done = True
                continue
            _, _, in_ready, valid, payload = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload.as_value()
            )
            cycle += 1
            if presenting and in_ready:
                k, presenting = k + 1, False
                taken[0] = k
            if ready and valid:
                outputs.append(int(payload))
                out_cycles.append(cycle)
            if cycle > max_cycles:
                raise RuntimeError(
                    f"simulation exceeded max_cycles ({max_cycles}) with "
                    f"{len(outputs)} of {n_out} outputs and {k} of {len(beats)} input beats"
                )

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return StreamRun(tuple(outputs), tuple(out_cycles), taken[0])
