# amaranth: UnusedElaboratable=no
"""The DDR weight fetcher (Amaranth simulator): an AXI4 read master against a behavioural AXI4 read
slave (random ``arready``, queued bursts answered in order after a latency, random gaps in
``rvalid``, optional SLVERR) and a consumer with random ``ready``. The words come out exact and
cyclic for every gearbox case, the bursts stay inside the image and never cross 4 KB, the FIFO never
overflows (``rready`` is always 1), the ideal-slave throughput is ``min(1, D/W)`` words per cycle
within 5 %, and ``enable``/``busy``/``error`` behave as documented."""

import random
import re
from collections import deque
from types import SimpleNamespace

import pytest
from amaranth.hdl import Shape
from amaranth.sim import Simulator

from lowbit.hw.verilog import to_verilog
from lowbit.hw.axi.wfetch import (OKAY, SLVERR, AXI4ReadSignature, WeightFetcher, image_beats, pack_image,
                                  unpack_image)

pytestmark = pytest.mark.amaranth_sim


def _image(rng: random.Random, words: int, word_bits: int) -> list[int]:
    return [rng.getrandbits(word_bits) for _ in range(words)]


def simulate(dut: WeightFetcher, mem: bytes, base: int, *, cycles: int, seed: int = 0, ar_prob: float = 1.0,
             r_prob: float = 1.0, latency: int = 20, max_queue: int = 8, ready_prob: float = 1.0,
             enable=lambda c, log: True, err_beat: int | None = None, stop=lambda log: False):
    """Run ``dut`` against an AXI4 read slave holding ``mem`` at ``base``; return the log.

    ``enable(cycle, log)`` gives the enable input of each cycle; ``stop(log)`` ends the run early.
    Protocol checks raise AssertionError from inside the simulation.
    """
    rng = random.Random(seed)
    bb, axi = dut.beat_bytes, dut.axi
    log = SimpleNamespace(words=[], ars=[], enable=[], busy=[], error=[], r_beats=[], queue_len=[], cycles=0)

    async def bench(ctx):
        q = dut._fifo  # noqa: SLF001 -- overflow check
        queue = deque()  # [addr, len - 1, cycle accepted, next beat]
        beat_no = 0
        prev = None
        ctx.set(dut.base, base)
        for c in range(cycles):
            en = bool(enable(c, log))
            log.enable.append(en)
            ctx.set(dut.enable, en)
            arready = len(queue) < max_queue and rng.random() < ar_prob
            ctx.set(axi.arready, arready)
            rvalid = rlast = 0
            if queue and c >= queue[0][2] + latency and rng.random() < r_prob:
                addr, ln, _, i = queue[0]
                off = addr - base + i * bb
                rvalid, rlast = 1, int(i == ln)
                ctx.set(axi.rdata, int.from_bytes(mem[off:off + bb], "little"))
                ctx.set(axi.rresp, SLVERR if beat_no == err_beat else OKAY)
            ctx.set(axi.rvalid, rvalid)
            ctx.set(axi.rlast, rlast)
            ready = rng.random() < ready_prob
            ctx.set(dut.o.ready, ready)
            (_, _, arvalid, araddr, arlen, arsize, arburst, arcache, arprot, rready, ovalid, payload, busy, error,
             w_en, w_rdy) = await ctx.tick().sample(
                axi.arvalid, axi.araddr, axi.arlen, axi.arsize, axi.arburst, axi.arcache, axi.arprot, axi.rready,
                dut.o.valid, dut.o.payload, dut.busy, dut.error, q.w_en, q.w_rdy)
            log.busy.append(busy)
            log.error.append(error)
            log.queue_len.append(len(queue))
            assert rready == 1, f"cycle {c}: rready fell"
            assert not (w_en and not w_rdy), f"cycle {c}: data FIFO overflow"
            # AR: a new request only after an enabled cycle; stable until accepted
            if prev is not None and prev.arvalid and not prev.arready:
                assert arvalid and (araddr, arlen) == (prev.araddr, prev.arlen), f"cycle {c}: AR changed before arready"
            elif arvalid:
                assert c > 0 and log.enable[c - 1], f"cycle {c}: AR issued after a disabled cycle"
            if arvalid and arready:
                nbytes = (arlen + 1) * bb
                assert (arsize, arburst, arcache, arprot) == (bb.bit_length() - 1, 1, 0b0011, 0), f"cycle {c}"
                assert arlen + 1 <= dut.burst, f"cycle {c}: arlen {arlen} > burst"
                assert araddr % bb == 0, f"cycle {c}: araddr {araddr:#x} not beat-aligned"
                assert base <= araddr and araddr + nbytes <= base + len(mem), \
                    f"cycle {c}: burst {araddr:#x}+{nbytes} outside the image {base:#x}+{len(mem)}"
                assert araddr // 4096 == (araddr + nbytes - 1) // 4096, f"cycle {c}: burst {araddr:#x}+{nbytes} crosses 4 KB"
                log.ars.append((c, araddr, arlen))
                queue.append([araddr, arlen, c, 0])
            if rvalid:  # rready is 1
                log.r_beats.append(c)
                beat_no += 1
                queue[0][3] += 1
                if rlast:
                    queue.popleft()
            # o: payload stable while valid and not ready (unless enable fell: withdrawal allowed)
            if prev is not None and prev.ovalid and not prev.ready and en:
                assert ovalid and payload == prev.payload, f"cycle {c}: o changed before ready"
            if ovalid and ready:
                log.words.append((c, payload))
            prev = SimpleNamespace(arvalid=arvalid, arready=arready, araddr=araddr, arlen=arlen, ovalid=ovalid,
                                   ready=ready, payload=payload)
            log.cycles = c + 1
            if stop(log):
                return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return log


def segments(log):
    """The words of each enabled run, split where enable was 0."""
    out, cur, k = [], [], 0
    for c, en in enumerate(log.enable):
        if not en and cur:
            out.append(cur)
            cur = []
        while k < len(log.words) and log.words[k][0] == c:
            cur.append(log.words[k][1])
            k += 1
    if cur:
        out.append(cur)
    return out


def assert_cyclic(got, image):
    want = [image[i % len(image)] for i in range(len(got))]
    bad = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
    assert bad is None, f"word {bad} (pass {bad // len(image)}, index {bad % len(image)}): {got[bad]:#x} != {want[bad]:#x}"


# (word_bits, words, data_bits, burst, outstanding, base)
CONFIGS = [
    (64, 7, 64, 16, 4, 0x1000_0000),     # one word per beat, 7 beats < burst
    (32, 5, 64, 16, 4, 0x1000_0080),     # two words per beat, padding
    (16, 9, 64, 2, 1, 0x40),             # four words per beat, padding
    (9, 13, 64, 4, 1, 0x2000_0000),      # neither divides, W < D, padding of more than a word
    (24, 7, 32, 4, 4, 0x100),            # neither divides, W < D, padding
    (256, 3, 64, 16, 4, 0x3000_0000),    # four beats per word
    (2048, 2, 64, 16, 2, 0x0),           # 32 beats per word
    (96, 11, 64, 4, 4, 0x1000_0000),     # neither divides, W > D, padding
    (200, 4, 128, 2, 1, 0x1000_0020),    # neither divides, W > D, padding
    (128, 1, 32, 16, 4, 0x5000_0000),    # one word of four beats
    (64, 48, 64, 16, 4, 0x1000_0000),    # burst 16, beats a multiple of 16
    (96, 30, 64, 16, 1, 0x1000_0000),    # burst 16, 45 beats: last burst 13
    (64, 40, 64, 3, 2, 0x2000 - 5 * 8),  # burst 3 (not a power of two): cut at the 4 KB boundary
    (33, 23, 32, 5, 3, 0x1000 - 3 * 4),  # burst 5 at a 4 KB boundary, W just above D
    (40, 5, 32, 1, 1, 0x4),              # single-beat bursts, one in flight (a one-beat FIFO)
    (1, 100, 32, 8, 2, 0x20),            # 32 one-bit words per beat, padding
]


@pytest.mark.parametrize("word_bits, words, data_bits, burst, outstanding, base", CONFIGS)
def test_words_exact_over_passes(word_bits, words, data_bits, burst, outstanding, base):
    rng = random.Random(word_bits * 1000 + words)
    image = _image(rng, words, word_bits)
    mem = pack_image(image, word_bits, data_bits)
    dut = WeightFetcher(word_bits=word_bits, words=words, data_bits=data_bits, burst=burst, outstanding=outstanding)
    dut.check_base(base)
    need = 3 * words + 2  # into a fourth pass
    log = simulate(dut, mem, base, cycles=20000, seed=words, ar_prob=0.6, r_prob=0.75, latency=6,
                   ready_prob=0.7, stop=lambda log: len(log.words) >= need)
    got = [w for _, w in log.words]
    assert len(got) >= need, f"only {len(got)} words in {log.cycles} cycles"
    assert_cyclic(got, image)
    beats = image_beats(words, word_bits, data_bits)
    assert sum(1 for _, a, _ in log.ars if a == base) >= 4  # every pass starts at base
    assert sum(ln + 1 for _, _, ln in log.ars) >= 3 * beats
    assert not any(log.error)
    if burst in (3, 5):  # the burst at the 4 KB boundary was cut
        bb = data_bits // 8
        assert any(ln + 1 < burst and (a + (ln + 1) * bb) % 4096 == 0 for _, a, ln in log.ars)


THROUGHPUT = {}


@pytest.mark.parametrize("word_bits, words, data_bits", [(256, 50, 64), (64, 100, 64), (32, 101, 64), (96, 77, 64)])
def test_throughput_with_an_ideal_slave(word_bits, words, data_bits):
    rng = random.Random(7)
    image = _image(rng, words, word_bits)
    dut = WeightFetcher(word_bits=word_bits, words=words, data_bits=data_bits)
    start, end = 400, 2400
    log = simulate(dut, pack_image(image, word_bits, data_bits), 0x1000_0000, cycles=end, latency=20)
    assert_cyclic([w for _, w in log.words], image)
    n = sum(1 for c, _ in log.words if start <= c < end)
    rate, bound = n / (end - start), min(1.0, data_bits / word_bits)
    THROUGHPUT[(word_bits, data_bits)] = rate
    print(f"W={word_bits} D={data_bits}: {rate:.4f} words/cycle ({rate / bound:.1%} of {bound:g})")
    assert rate >= 0.95 * bound, f"{rate:.4f} words/cycle < 95 % of {bound}"


def test_enable_drop_mid_pass_restarts_at_word_zero():
    word_bits, words, data_bits = 96, 30, 64
    rng = random.Random(3)
    image = _image(rng, words, word_bits)
    dut = WeightFetcher(word_bits=word_bits, words=words, data_bits=data_bits, burst=4, outstanding=4)
    off_cycles = (60, 2)  # long enough to flush; re-raised before the flush is complete
    sched = SimpleNamespace(phase=0, t=0, start=0, drops=[])

    def enable(c, log):
        if sched.phase in (0, 2) and len(log.words) - sched.start >= words + 11:  # into the second pass
            sched.phase, sched.t = sched.phase + 1, c
            sched.drops.append(c)
        if sched.phase in (1, 3):
            if c - sched.t < off_cycles[sched.phase // 2]:
                return False
            sched.phase, sched.start = sched.phase + 1, len(log.words)
        return True

    log = simulate(dut, pack_image(image, word_bits, data_bits), 0x1000_0000, cycles=6000, seed=5, ar_prob=0.7,
                   r_prob=0.6, latency=8, ready_prob=0.8, enable=enable,
                   stop=lambda log: sched.phase == 4 and len(log.words) - sched.start >= 2 * words + 3)
    assert sched.phase == 4, f"stuck in phase {sched.phase}"
    segs = segments(log)
    assert len(segs) == 3 and len(segs[-1]) >= 2 * words + 3
    for seg in segs:  # each run: exact from word 0
        assert_cyclic(seg, image)
    assert all(len(seg) >= words + 11 for seg in segs)
    d0, d1 = sched.drops
    assert log.queue_len[d0] > 0 and log.queue_len[d1] > 0, "no burst in flight when enable fell"
    assert 0 in log.busy[d0:d0 + 60], "busy never fell while disabled"
    first_idle = d0 + log.busy[d0:].index(0)
    assert not any(log.busy[first_idle:d0 + 61])
    assert all(log.busy[d0 + 61:d1 + 2])  # running again, then flushing (bursts in flight)
    # at most the one AR already presented when enable fell is accepted while disabled
    assert sum(1 for c, _, _ in log.ars if d0 <= c < d0 + 60) <= 1
    assert sum(1 for c, _, _ in log.ars if d1 <= c < d1 + 2) <= 1


def test_error_flag_set_by_slverr_cleared_on_restart():
    word_bits, words, data_bits = 64, 7, 64
    rng = random.Random(4)
    image = _image(rng, words, word_bits)
    dut = WeightFetcher(word_bits=word_bits, words=words, data_bits=data_bits, burst=4, outstanding=2)
    sched = SimpleNamespace(phase=0, t=0)

    def enable(c, log):
        if sched.phase == 0 and len(log.words) >= 2 * words:
            sched.phase, sched.t = 1, c
        if sched.phase == 1:
            if c - sched.t < 3 or log.busy[-1]:
                return False
            sched.phase, sched.t = 2, c
        return True

    err_beat = 3
    log = simulate(dut, pack_image(image, word_bits, data_bits), 0x800, cycles=3000, seed=9, ar_prob=0.8, r_prob=0.8,
                   latency=5, ready_prob=0.8, enable=enable, err_beat=err_beat,
                   stop=lambda log: sched.phase == 2 and log.cycles > sched.t + 60)
    bad = log.r_beats[err_beat]
    assert not any(log.error[:bad + 1]) and all(log.error[bad + 1:sched.t + 1]), "error not sticky after SLVERR"
    assert not any(log.error[sched.t + 1:]), "error not cleared by the new run"
    segs = segments(log)
    assert len(segs) == 2
    for seg in segs:  # the data of the bad beat is delivered all the same
        assert_cyclic(seg, image)


@pytest.mark.parametrize("kwargs, name", [
    (dict(word_bits=0), "word_bits"), (dict(word_bits=8.0), "word_bits"), (dict(word_bits=True), "word_bits"),
    (dict(words=0), "words"), (dict(words="3"), "words"),
    (dict(data_bits=48), "data_bits"), (dict(data_bits=2048), "data_bits"), (dict(data_bits=16), "data_bits"),
    (dict(addr_bits=31), "addr_bits"), (dict(addr_bits=65), "addr_bits"),
    (dict(burst=0), "burst"), (dict(burst=17), "burst"), (dict(burst=4.0), "burst"),
    (dict(outstanding=0), "outstanding"), (dict(outstanding=None), "outstanding"),
])
def test_constructor_validation_names_the_parameter(kwargs, name):
    args = dict(word_bits=16, words=4) | kwargs
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        WeightFetcher(**args)


def test_check_base():
    dut = WeightFetcher(word_bits=32, words=100, data_bits=64, burst=16)  # 400 bytes, 128-byte bursts
    assert dut.base_alignment == 128 and dut.check_base(0x1000_0080) == 0x1000_0080
    for bad in (0x1000_0040, -128, 2**32 - 128, 1.0, None):
        with pytest.raises(ValueError, match=r"\bbase\b"):
            dut.check_base(bad)
    odd = WeightFetcher(word_bits=32, words=100, data_bits=64, burst=5)  # cut at 4 KB instead
    assert odd.base_alignment == 8 and odd.check_base(0x1FF8) == 0x1FF8


@pytest.mark.parametrize("word_bits, data_bits", [(1, 32), (9, 64), (32, 64), (64, 64), (96, 64), (200, 128),
                                                  (2048, 1024), (7, 1024)])
def test_pack_unpack_round_trip(word_bits, data_bits):
    rng = random.Random(word_bits)
    for words in (1, 2, 13, 64):
        image = _image(rng, words, word_bits)
        data = pack_image(image, word_bits, data_bits)
        beats = image_beats(words, word_bits, data_bits)
        assert beats == -(-words * word_bits // data_bits) and len(data) == beats * data_bits // 8
        assert unpack_image(data, words, word_bits) == image
        big = int.from_bytes(data, "little")  # the documented bit layout, padding zero
        assert all((big >> (i * word_bits)) & ((1 << word_bits) - 1) == w for i, w in enumerate(image))
        assert big >> (words * word_bits) == 0


def test_pack_layout_little_endian():
    # word i at bits [9i, 9i+9): bit b is bit b % 8 of byte b // 8
    assert pack_image([0x1FF, 0, 1], 9, 32) == bytes([0xFF, 0x01, 0x04, 0x00])  # word 2 at bit 18
    assert pack_image([0x0102], 16, 64) == bytes([0x02, 0x01, 0, 0, 0, 0, 0, 0])
    assert unpack_image(bytes([0xFF, 0x01, 0x04, 0x00]), 3, 9) == [0x1FF, 0, 1]


@pytest.mark.parametrize("call, match", [
    (lambda: pack_image([], 8, 32), "image"),
    (lambda: pack_image([256], 8, 32), r"image\[0\]"),
    (lambda: pack_image([1, -1], 8, 32), r"image\[1\]"),
    (lambda: pack_image([1.5], 8, 32), r"image\[0\]"),
    (lambda: pack_image([1], 0, 32), "word_bits"),
    (lambda: pack_image([1], 8, 24), "data_bits"),
    (lambda: unpack_image(b"\x00" * 3, 4, 8), "data"),
    (lambda: unpack_image([0, 1], 1, 8), "data"),
    (lambda: unpack_image(b"\x00", 0, 8), "words"),
    (lambda: unpack_image(b"\x00", 1, -8), "word_bits"),
    (lambda: image_beats(3, 8, 100), "data_bits"),
])
def test_pack_unpack_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_signature():
    sig = AXI4ReadSignature(40, 128)
    assert sig == AXI4ReadSignature(40, 128) and sig != AXI4ReadSignature(32, 128)
    assert Shape.cast(sig.members["rdata"].shape).width == 128 and Shape.cast(sig.members["araddr"].shape).width == 40


@pytest.mark.parametrize("word_bits, words, data_bits, burst", [(96, 11, 64, 16), (9, 13, 64, 5), (256, 3, 128, 8)])
def test_converts_to_verilog(word_bits, words, data_bits, burst):
    text = to_verilog(WeightFetcher(word_bits=word_bits, words=words, data_bits=data_bits, burst=burst),
                      name="lowbit_wfetch0")
    assert "module lowbit_wfetch0" in text
    header = text[text.index("module lowbit_wfetch0"):].split(";", 1)[0]
    for port in ("axi__araddr", "axi__rdata", "axi__arvalid", "axi__rready", "o__payload", "o__valid", "o__ready",
                 "base", "enable", "busy", "error"):
        assert re.search(rf"\b{port}\b", header), port
