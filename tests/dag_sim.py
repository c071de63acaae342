"""A testbench for components with several stream ports (the fork, the adder/joiner and the
residual pipelines of issue 19): every source port is fed its beats and every sink port drained,
``valid`` and ``ready`` each drawn from its own seeded generator."""

import random

from amaranth.sim import Simulator


def run_ports(dut, sources, sinks, *, seed=0, valid_prob=1.0, ready_prob=1.0, max_cycles=20_000):
    """``{sink: (payloads, cycles)}``: ``sources`` ``{port: [payload, ...]}`` into ``dut``, until
    ``sinks`` ``{port: n}`` gave ``n`` beats each and every source beat went in.

    A run that does not finish within ``max_cycles`` raises ``RuntimeError`` naming what came out
    (a deadlock)."""
    rngs = {name: random.Random(f"{seed}-{name}") for name in [*sources, *sinks]}
    got = {name: ([], []) for name in sinks}
    fed = {name: 0 for name in sources}

    async def bench(ctx):
        presenting = {name: False for name in sources}
        for cycle in range(max_cycles):
            done = all(fed[s] == len(b) for s, b in sources.items())
            if done and all(len(got[s][0]) >= n for s, n in sinks.items()):
                return
            for name, beats in sources.items():
                port = getattr(dut, name)
                if not presenting[name] and fed[name] < len(beats):
                    presenting[name] = rngs[name].random() < valid_prob
                    if presenting[name]:
                        ctx.set(port.payload.as_value(), beats[fed[name]])
                ctx.set(port.valid, presenting[name])
            ready = {name: rngs[name].random() < ready_prob for name in sinks}
            for name in sinks:
                ctx.set(getattr(dut, name).ready, ready[name])
            signals = []
            for name in sources:
                signals.append(getattr(dut, name).ready)
            for name in sinks:
                port = getattr(dut, name)
                signals += [port.valid, port.payload.as_value()]
            sampled = (await ctx.tick().sample(*signals))[2:]  # after clk and rst
            k = 0
            for name in sources:
                if presenting[name] and sampled[k]:
                    fed[name] += 1
                    presenting[name] = False
                k += 1
            for name in sinks:
                valid, payload = sampled[k], sampled[k + 1]
                k += 2
                if valid and ready[name]:
                    got[name][0].append(int(payload))
                    got[name][1].append(cycle)
        raise RuntimeError(
            f"no progress within {max_cycles} cycles: inputs taken {fed}, outputs "
            f"{ {s: len(g[0]) for s, g in got.items()} }"
        )

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got
