"""Drive a stream component in the Amaranth simulator (unit-test tier, no Verilog).

``run_stream`` pushes input beats through ``dut.i`` and collects beats from ``dut.o``, with
``valid`` and ``ready`` optionally throttled at random from a seeded generator. Payloads are
plain integers (the flattened bits of the stream payload). With ``reset_after=n`` the ``sync``
domain is reset for ``reset_cycles`` cycles right after the ``n``-th input beat was accepted (in the
middle of a stream); the outputs collected before the reset are dropped, and ``n_out`` counts the
outputs after it.
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
    any)."""
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
    outputs: list[int] = []
    out_cycles: list[int] = []
    cycle = [0]
    reset_done = [reset_after is None]

    async def clock_counter(ctx):
        async for _ in ctx.tick():
            cycle[0] += 1

    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.dut = dut

    async def producer(ctx):
        for k, beat in enumerate(beats):
            if k == reset_after:
                ctx.set(cd.rst, 1)
                for _ in range(reset_cycles):
                    await ctx.tick()  # a bare tick never raises DomainReset
                outputs.clear()
                out_cycles.clear()
                ctx.set(cd.rst, 0)
                reset_done[0] = True
            while rng_in.random() >= valid_prob:
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.as_value(), beat)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        while len(outputs) < n_out or not reset_done[0]:
            ready = rng_out.random() < ready_prob
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload.as_value())
            if ready and valid:
                outputs.append(int(payload))
                out_cycles.append(cycle[0])
            if cycle[0] > max_cycles:
                raise RuntimeError(
                    f"simulation exceeded max_cycles ({max_cycles}) with "
                    f"{len(outputs)} of {n_out} outputs"
                )

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_process(clock_counter)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return StreamRun(tuple(outputs), tuple(out_cycles))
