# amaranth: UnusedElaboratable=no
"""Run-time weights over AXI4-Lite (Amaranth simulator): an MVTU with ``weights_writable=True``
whose weight memory is overwritten through :class:`AXI4LiteWeightWriter` computes with the new
weights exactly; byte strobes, read-back and out-of-range addresses behave as documented."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib.wiring import connect
from amaranth.sim import Simulator

from lowbit.hw._util import pack_words
from lowbit.hw.axi.axil import AXI4LiteWeightWriter, chunk_address, weight_chunks
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.ir import BIPOLAR, DataType, MatMulThreshold
from lowbit.ir.datatypes import TERNARY

pytestmark = pytest.mark.amaranth_sim


async def axil_write(ctx, bus, addr, data, strb=0xF):
    ctx.set(bus.awaddr, addr)
    ctx.set(bus.awvalid, 1)
    ctx.set(bus.wdata, data)
    ctx.set(bus.wstrb, strb)
    ctx.set(bus.wvalid, 1)
    ctx.set(bus.bready, 1)
    aw_done = w_done = False
    while not (aw_done and w_done):
        _, _, awr, wr = await ctx.tick().sample(bus.awready, bus.wready)
        aw_done, w_done = aw_done or awr, w_done or wr
        if aw_done:
            ctx.set(bus.awvalid, 0)
        if w_done:
            ctx.set(bus.wvalid, 0)
    while True:
        _, _, bvalid, bresp = await ctx.tick().sample(bus.bvalid, bus.bresp)
        if bvalid:
            ctx.set(bus.bready, 0)
            return bresp


async def axil_read(ctx, bus, addr):
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    ctx.set(bus.rready, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    while True:
        _, _, rvalid, rdata, rresp = await ctx.tick().sample(bus.rvalid, bus.rdata, bus.rresp)
        if rvalid:
            ctx.set(bus.rready, 0)
            return rdata, rresp


def _node(rng, weights, name="fc"):
    in_dt = DataType.uint(3)
    w = rng.integers(-1, 2, (6, 12)) if weights is None else weights
    return MatMulThreshold(name, in_dt, w, None, weight_dtype=TERNARY)


@pytest.mark.parametrize("pe, simd", [(3, 4), (6, 12)])  # 24-bit and 144-bit (5 chunks) words
def test_new_weights_over_axi4_lite_are_used_exactly(pe, simd):
    rng = np.random.default_rng(pe)
    old = _node(rng, None)
    new_w = rng.integers(-1, 2, (6, 12))
    new = _node(rng, new_w, "fc_new")
    spec = MVTUSpec(old, pe=pe, simd=simd, weights_writable=True, weight_ram="distributed")
    mvtu, writer = spec.create(), AXI4LiteWeightWriter(spec)
    m = Module()
    m.submodules.mvtu, m.submodules.writer = mvtu, writer
    connect(m, writer.w, mvtu.w)
    x = rng.integers(0, 8, (3, 12))
    beats = [pack_words(row[k * simd:(k + 1) * simd], 3) for row in x for k in range(spec.synapse_folds)]
    got, resps = [], []

    async def producer(ctx):
        for addr, data in weight_chunks(spec, new_w):
            resps.append(await axil_write(ctx, writer.axil, addr, data))
        for beat in beats:
            ctx.set(mvtu.i.valid, 1)
            ctx.set(mvtu.i.payload.as_value(), beat)
            await ctx.tick().until(mvtu.i.ready)
        ctx.set(mvtu.i.valid, 0)

    async def consumer(ctx):
        ctx.set(mvtu.o.ready, 1)
        for _ in range(5000):
            _, _, valid, payload = await ctx.tick().sample(mvtu.o.valid, mvtu.o.payload.as_value())
            if valid:
                got.append(payload)
            if len(got) == len(x) * spec.neuron_folds:
                return
        raise AssertionError(f"only {len(got)} output beats")

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    ob = mvtu.out_shape.width
    vals = [(w >> (p * ob)) & ((1 << ob) - 1) for w in got for p in range(pe)]
    vals = np.array([v - (1 << ob) if v >> (ob - 1) else v for v in vals]).reshape(len(x), 6)
    assert set(resps) == {0}
    expected, stale = new.reference(x), old.reference(x)
    assert (expected != stale).any()  # the new weights make a difference
    bad = np.argwhere(vals != expected)
    assert not len(bad), f"vector {bad[0][0]} output {bad[0][1]}: {vals[tuple(bad[0])]} != {expected[tuple(bad[0])]}"


def test_strobes_readback_and_out_of_range():
    rng = np.random.default_rng(9)
    spec = MVTUSpec(_node(rng, None), pe=6, simd=12, weights_writable=True)  # 144-bit words, 5 chunks
    writer = AXI4LiteWeightWriter(spec)
    log = {}

    async def bench(ctx):
        bus = writer.axil
        log["w0"] = await axil_write(ctx, bus, chunk_address(spec, 0, 1), 0x11223344)
        log["w1"] = await axil_write(ctx, bus, chunk_address(spec, 0, 1), 0xAABBCCDD, strb=0b0101)
        log["r"] = await axil_read(ctx, bus, chunk_address(spec, 0, 1))
        log["bad_w"] = await axil_write(ctx, bus, chunk_address(spec, 1, 0), 1)  # one word only
        log["bad_chunk"] = await axil_write(ctx, bus, chunk_address(spec, 0, 5), 1)  # 5 chunks: 0..4
        log["bad_r"] = await axil_read(ctx, bus, chunk_address(spec, 0, 6))

    sim = Simulator(writer)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert log["w0"] == log["w1"] == 0
    assert log["r"] == (0x11BB33DD, 0)
    assert log["bad_w"] == log["bad_chunk"] == 0b10
    assert log["bad_r"] == (0, 0b10)


def test_writer_needs_a_writable_unit():
    spec = MVTUSpec(_node(np.random.default_rng(1), None), pe=1, simd=1)
    with pytest.raises(ValueError, match=r"^node 'fc': the MVTU needs weights_writable=True"):
        AXI4LiteWeightWriter(spec)


def test_bipolar_unit_is_writable_too():
    node = MatMulThreshold("b", BIPOLAR, np.zeros((2, 4), dtype=np.uint8), None)
    spec = MVTUSpec(node, pe=2, simd=4, weights_writable=True, weight_ram="block")
    assert spec.weight_word_bits == 8
    assert weight_chunks(spec, np.ones((2, 4), dtype=np.uint8)) == [(0, 0xFF)]


# -- the shell's control block: every register reads back its own value -------------------------

def test_control_block_reads_every_register_back_distinctly():
    """Distinct values in every register (TARGET 5, 3 images in and 2 results out after 7 beats of
    2 per image, two weight ports with four different bases, error and busy flags on different
    ports), then each register read back: a swapped or shifted read-side mux shows."""
    from lowbit.hw.axi.control import ID_VALUE, REGISTERS, ControlBlock, wbase_offsets

    dut = ControlBlock(beats_per_image=2, weight_ports=2)
    bases = [0x1111_2222, 0x3333_4444, 0x5555_6666, 0x7777_8888]  # lo(0), hi(0), lo(1), hi(1)
    got, edges = {}, {}

    async def write(ctx, name, addr, data):
        ctx.set(dut.axil.awaddr, addr)
        ctx.set(dut.axil.wdata, data)
        ctx.set(dut.axil.wstrb, 0xF)
        ctx.set(dut.axil.awvalid, 1)
        ctx.set(dut.axil.wvalid, 1)
        ctx.set(dut.axil.bready, 1)
        await ctx.tick().until(dut.axil.awready)  # the register takes the data on this edge
        edges[name] = edges.get("now", 0)
        ctx.set(dut.axil.awvalid, 0)
        ctx.set(dut.axil.wvalid, 0)
        await ctx.tick().until(dut.axil.bvalid)

    async def bench(ctx):
        bus = dut.axil
        ctx.set(dut.werror, 0b10)
        ctx.set(dut.wbusy, 0b01)
        await write(ctx, "target", REGISTERS["TARGET"], 5)
        for k in range(2):
            lo, hi = wbase_offsets(k)
            await write(ctx, "wlo", lo, bases[2 * k])
            await write(ctx, "whi", hi, bases[2 * k + 1])
        await write(ctx, "wctrl", REGISTERS["WCTRL"], 1)
        await write(ctx, "start", REGISTERS["CTRL"], 1)
        got["running"] = (await axil_read(ctx, bus, REGISTERS["STATUS"]))[0]
        for k in range(7):  # 7 beats of 2 per image: 3 images in
            ctx.set(dut.in_beat, 1)
            ctx.set(dut.out_result, k in (2, 5))  # 2 results out
            await ctx.tick()
        ctx.set(dut.in_beat, 0)
        ctx.set(dut.out_result, 0)
        await write(ctx, "stop", REGISTERS["CTRL"], 2)
        names = ["STATUS", "TARGET", "IMAGES_IN", "IMAGES_OUT", "CYCLES_LO", "CYCLES_HI", "ID",
                 "WCTRL", "WPORTS", "CTRL"]
        for name in names:
            got[name] = (await axil_read(ctx, bus, REGISTERS[name]))[0]
        for k in range(2):
            for j, off in enumerate(wbase_offsets(k)):
                got[f"WBASE{k}_{'LO' if j == 0 else 'HI'}"] = (await axil_read(ctx, bus, off))[0]
        got["unknown"] = (await axil_read(ctx, bus, 0x28))[0]

    async def count(ctx):
        n = 0
        async for _ in ctx.tick():
            n += 1
            edges["now"] = n

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(count)
    sim.add_testbench(bench)
    sim.run()
    # the counter runs from the edge after the start write to the edge before the stop write
    cycles = edges["stop"] - edges["start"] - 1
    assert cycles > 7
    assert got == {
        "running": 0b100, "STATUS": 0b001, "TARGET": 5, "IMAGES_IN": 3, "IMAGES_OUT": 2,
        "CYCLES_LO": cycles, "CYCLES_HI": 0, "ID": ID_VALUE, "WCTRL": 1 | 0b10 << 8 | 0b01 << 16,
        "WPORTS": 2, "CTRL": 0, "WBASE0_LO": bases[0], "WBASE0_HI": bases[1],
        "WBASE1_LO": bases[2], "WBASE1_HI": bases[3], "unknown": 0,
    }


def test_control_block_is_done_at_exactly_target_results():
    """TARGET 3: after 2 results still running, after the 3rd done (STATUS 0b010) and the counters
    stop (a 4th result is not counted); TARGET 0 is done at once."""
    from lowbit.hw.axi.control import REGISTERS, ControlBlock

    dut = ControlBlock(beats_per_image=1)
    got = {}

    async def bench(ctx):
        bus = dut.axil
        await axil_write(ctx, bus, REGISTERS["TARGET"], 3)
        await axil_write(ctx, bus, REGISTERS["CTRL"], 1)
        for k in range(4):
            ctx.set(dut.out_result, 1)
            await ctx.tick()
            ctx.set(dut.out_result, 0)
            got[k] = (await axil_read(ctx, bus, REGISTERS["STATUS"]))[0], \
                (await axil_read(ctx, bus, REGISTERS["IMAGES_OUT"]))[0]
        c1 = (await axil_read(ctx, bus, REGISTERS["CYCLES_LO"]))[0]
        got["stopped"] = (await axil_read(ctx, bus, REGISTERS["CYCLES_LO"]))[0] == c1
        await axil_write(ctx, bus, REGISTERS["TARGET"], 0)
        await axil_write(ctx, bus, REGISTERS["CTRL"], 1)
        got["zero"] = (await axil_read(ctx, bus, REGISTERS["STATUS"]))[0]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == {0: (0b100, 1), 1: (0b100, 2), 2: (0b011, 3), 3: (0b011, 3), "stopped": True,
                   "zero": 0b011}
