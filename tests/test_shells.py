"""Behavioural tests of the board shells around ``lowbit_top``, simulated with Verilator (lowbit.sim.fast):

* the open-flow UART shell ``lowbit_uart_top`` (boards/openflow.py), driven by a Python 8N1
  transmitter and receiver bit-banging ``uart_rx`` / ``uart_tx``;
* the Vivado AXI4-Stream adapter ``lowbit_axis`` (boards/vivado.py), driven as an AXI DMA would:
  MM2S sends each input beat as one ``tdata`` word (payload in the low ``in_bits``, upper bits zero,
  i.e. each beat padded to ``axis_width(in_bits)`` bits in memory), ``tlast`` on the last beat of a
  transfer; S2MM receives one ``axis_width(out_bits)``-bit word per image (payload in the low bits).

Results are decoded with :func:`lowbit.hw.codec.decode_result` and compared with the graph's
``predict`` / ``scores`` exactly.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from lowbit.deploy.build import build
from lowbit.deploy.openflow import payload_widths, uart_shell_verilog, BAUD
from lowbit.deploy.vivado import axis_width
from lowbit.flow.steps import compile_model
from lowbit.hw.codec import StreamFormat, decode_result, input_beats
from lowbit.sim.fast import VerilatedModel

from mapping_models import mlp

pytestmark = pytest.mark.fast_sim

GRAPH = mlp((16, 8, 4), seed=1)   # 2 input beats of 40 bits per image, 22-bit results on both boards


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << GRAPH.input_dtype.bits, (n, GRAPH.nodes[0].mw))


def _check(fmt: StreamFormat, x: np.ndarray, words: list[int]) -> None:
    assert len(words) == len(x)
    decoded = [decode_result(fmt, w) for w in words]
    assert [lab for lab, _ in decoded] == GRAPH.predict(x).tolist()
    assert [s for _, s in decoded] == GRAPH.scores(x).tolist()


# -- UART shell ------------------------------------------------------------------------------------

UART_TB = """
module uart_tb(clk, rst, rx, tx, err_n, busy_n);
  input clk;
  input rst;
  input rx;
  output tx;
  output err_n;
  output busy_n;
  lowbit_uart_top dut (.clk(clk), .btn_n(!rst), .uart_rx(rx), .uart_tx(tx), .led_err_n(err_n),
                       .led_busy_n(busy_n));
endmodule
"""


@pytest.fixture(scope="module")
def uart_design(tmp_path_factory):
    d = tmp_path_factory.mktemp("icebreaker")
    rep = compile_model(GRAPH, d, board="icebreaker")
    verilog = (d / "lowbit_top.v").read_text()
    return verilog, rep.stream_format, rep.mapping


def _uart_model(verilog: str, div: int) -> VerilatedModel:
    in_bits, out_bits = payload_widths(verilog)
    text = verilog + "\n" + uart_shell_verilog(in_bits, out_bits, div * BAUD) + UART_TB
    assert f"({div} clocks per bit)" in text
    m = VerilatedModel.build(text, top="uart_tb", in_stream=None, out_stream=None)
    m.poke("rx", 1)
    m.poke("rst", 1)          # the button, held
    m.step(8)
    m.poke("rst", 0)
    m.step(24)                # past the 16-cycle power-on reset and the button synchroniser
    return m


def _uart_exchange(m: VerilatedModel, div: int, data: bytes, n_out: int, gaps: list[int]) -> bytes:
    """Send ``data`` (8N1, ``div`` cycles per bit, ``gaps[k]`` idle cycles before byte k) while
    receiving; returns the bytes received once ``n_out`` have arrived."""
    levels: list[int] = []
    for b, gap in zip(data, gaps):
        levels += [1] * gap
        for bit in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
            levels += [bit] * div
    got = bytearray()
    sample_at, bits = None, []
    level = 1
    limit = len(levels) + 40 * div * (n_out + 4)
    for c in range(limit):
        want = levels[c] if c < len(levels) else 1
        if want != level:
            m.poke("rx", want)
            level = want
        tx = m.peek("tx")
        if sample_at is None:
            if tx == 0:                          # start bit's falling edge: sample mid-bit from here
                sample_at, bits = c + div // 2, []
        elif c == sample_at:
            bits.append(tx)
            sample_at += div
            if len(bits) == 10:
                assert bits[0] == 0 and bits[9] == 1, f"framing error at cycle {c}: {bits}"
                got.append(sum(b << i for i, b in enumerate(bits[1:9])))
                sample_at = None
                if len(got) == n_out and c >= len(levels):
                    break
        m.step(1)
    for _ in range(12 * div):                    # and nothing more: the line stays idle
        assert m.peek("tx") == 1, "an extra byte"
        m.step(1)
    return bytes(got)


@pytest.mark.parametrize("div,n,gap", [(8, 12, "random"), (8, 6, "none")])
def test_uart_shell_carries_images(uart_design, div, n, gap):
    verilog, fmt, _ = uart_design
    in_bits, out_bits = payload_widths(verilog)
    nin, nout = -(-in_bits // 8), -(-out_bits // 8)
    m = _uart_model(verilog, div)
    x = _images(n, seed=div + n)
    data = b"".join(beat.to_bytes(nin, "little") for image in input_beats(fmt, x) for beat in image)
    r = random.Random(7)
    gaps = [r.randrange(0, 3 * div) if gap == "random" else 0 for _ in data]
    got = _uart_exchange(m, div, data, n * nout, gaps)
    assert len(got) == n * nout
    words = [int.from_bytes(got[k * nout:(k + 1) * nout], "little") for k in range(n)]
    assert all(w >> out_bits == 0 for w in words)
    _check(fmt, x, words)
    assert m.peek("err_n") == 1   # no beat was dropped


def test_uart_shell_at_the_boards_divisor(uart_design):
    """The iCEBreaker's 12 MHz clock: 104 clocks per bit (the same generator call as build_open_flow)."""
    verilog, fmt, _ = uart_design
    in_bits, out_bits = payload_widths(verilog)
    nin, nout = -(-in_bits // 8), -(-out_bits // 8)
    div = round(12e6 / BAUD)
    m = _uart_model(verilog, div)
    x = _images(2, seed=3)
    data = b"".join(beat.to_bytes(nin, "little") for image in input_beats(fmt, x) for beat in image)
    got = _uart_exchange(m, div, data, 2 * nout, [div] * len(data))
    _check(fmt, x, [int.from_bytes(got[k * nout:(k + 1) * nout], "little") for k in range(2)])
    assert m.peek("err_n") == 1


# -- AXI4-Stream adapter ---------------------------------------------------------------------------


def _axis_tb(tin: int, tout: int) -> str:
    return f"""
module axis_tb(clk, rst, s_tdata, s_tvalid, s_tready, s_tlast, m_tdata, m_tvalid, m_tready, m_tlast);
  input clk;
  input rst;
  input [{tin - 1}:0] s_tdata;
  input s_tvalid;
  output s_tready;
  input s_tlast;
  output [{tout - 1}:0] m_tdata;
  output m_tvalid;
  input m_tready;
  output m_tlast;
  lowbit_axis dut (.aclk(clk), .aresetn(!rst),
    .s_axis_tdata(s_tdata), .s_axis_tvalid(s_tvalid), .s_axis_tready(s_tready), .s_axis_tlast(s_tlast),
    .m_axis_tdata(m_tdata), .m_axis_tvalid(m_tvalid), .m_axis_tready(m_tready), .m_axis_tlast(m_tlast));
endmodule
"""


@pytest.fixture(scope="module")
def axis_model(tmp_path_factory):
    """The adapter and accelerator exactly as ``lowbit build --board pynq-z2`` writes them."""
    root = tmp_path_factory.mktemp("pynq")
    compile_model(GRAPH, root / "compiled", board="pynq-z2")
    manifest = build(root / "compiled", "pynq-z2", root / "plan")
    ax = manifest["axis"]
    report = (root / "plan" / "compiled" / "report.json").read_text()
    fmt = StreamFormat(**json.loads(report)["stream_format"])
    assert ax["in_tdata_bits"] == axis_width(ax["in_payload_bits"]) == 64
    assert ax["beats_per_image"] == fmt.beats_per_image == 2
    text = "\n".join((root / "plan" / f).read_text() for f in ("lowbit_top.v", "lowbit_ctrl.v", "lowbit_axis.v"))
    m = VerilatedModel.build(text + _axis_tb(ax["in_tdata_bits"], ax["out_tdata_bits"]), top="axis_tb",
                             in_stream=None, out_stream=None)
    return m, fmt, ax


def _dma(m: VerilatedModel, beats: list[int], lasts: list[int], n_out: int, *, p_valid: float, p_ready: float,
         seed: int, max_cycles: int = 20000):
    """Drive ``beats`` into s_axis (tvalid asserted with probability ``p_valid`` and then held until
    accepted, as AXI requires) and accept m_axis beats with probability ``p_ready`` per cycle."""
    r = random.Random(seed)
    m.poke("rst", 1)
    m.poke("s_tvalid", 0)
    m.poke("m_tready", 0)
    m.step(4)
    m.poke("rst", 0)
    out, out_last = [], []
    i, valid = 0, 0
    for _ in range(max_cycles):
        if not valid and i < len(beats) and r.random() < p_valid:
            valid = 1
        m.poke("s_tvalid", valid)
        m.poke("s_tdata", beats[i] if valid else 0)
        m.poke("s_tlast", lasts[i] if valid else 0)
        ready = int(r.random() < p_ready)
        m.poke("m_tready", ready)
        if m.peek("m_tvalid") and ready:
            out.append(m.peek("m_tdata"))
            out_last.append(m.peek("m_tlast"))
        if valid and m.peek("s_tready"):
            i, valid = i + 1, 0
        m.step(1)
        if len(out) == n_out and i == len(beats):
            break
    m.poke("s_tvalid", 0)
    m.poke("m_tready", 1)
    m.step(200)
    assert not m.peek("m_tvalid"), "an extra result beat"
    return out, out_last


@pytest.mark.parametrize("p_valid,p_ready,seed", [(1.0, 1.0, 0), (0.5, 0.5, 1), (0.9, 0.15, 2), (0.2, 0.9, 3)])
def test_axis_adapter_carries_images_and_tlast(axis_model, p_valid, p_ready, seed):
    m, fmt, ax = axis_model
    n = 24
    x = _images(n, seed=100 + seed)
    # DMA transfers of 1..5 images each: tlast on the last beat of each transfer
    r = random.Random(seed)
    ends, k = set(), 0
    while k < n:
        k = min(n, k + r.randint(1, 5))
        ends.add(k - 1)
    beats, lasts, want_last = [], [], []
    for img, image in enumerate(input_beats(fmt, x)):
        beats += image
        lasts += [0] * (len(image) - 1) + [int(img in ends)]
        want_last.append(int(img in ends))
    out, out_last = _dma(m, beats, lasts, n, p_valid=p_valid, p_ready=p_ready, seed=seed)
    assert len(out) == n
    assert all(w >> ax["out_payload_bits"] == 0 for w in out)
    _check(fmt, x, out)
    assert out_last == want_last


def test_axis_adapter_ignores_tlast_inside_an_image(axis_model):
    """A transfer that ends mid-image (tlast on a beat that is not an image's last) sets no flag."""
    m, fmt, _ = axis_model
    x = _images(4, seed=9)
    beats = [b for image in input_beats(fmt, x) for b in image]
    lasts = [1, 0, 0, 1, 1, 0, 0, 0]
    out, out_last = _dma(m, beats, lasts, 4, p_valid=0.7, p_ready=0.7, seed=5)
    _check(fmt, x, out)
    assert out_last == [0, 1, 0, 0]


DEEP_STUB = """
// A stand-in for lowbit_top with room for 256 images (one 16-bit beat each; result = input):
// more images in flight than the adapter's tlast FIFO tracks, so the adapter must stall the input.
module lowbit_top(input wire clk, input wire rst, input wire i__valid, output wire i__ready,
                  input wire [15:0] i__payload, output wire o__valid, input wire o__ready,
                  output wire [15:0] o__payload);
  reg [15:0] mem [0:255];
  reg [8:0] w = 0, r = 0;
  wire [8:0] n = w - r;
  assign i__ready = n != 9'd256;
  assign o__valid = n != 9'd0;
  assign o__payload = mem[r[7:0]];
  always @(posedge clk) begin
    if (rst) begin w <= 0; r <= 0; end
    else begin
      if (i__valid && i__ready) begin mem[w[7:0]] <= i__payload; w <= w + 9'd1; end
      if (o__valid && o__ready) r <= r + 9'd1;
    end
  end
endmodule
"""


def test_axis_adapter_stalls_when_its_tlast_fifo_is_full_also_after_wrapping():
    """With ``m_axis_tready`` low the adapter accepts exactly TLAST_FIFO_DEPTH images, also once its
    FIFO pointers have wrapped (after 2 * depth images), and every result keeps its own tlast."""
    from lowbit.deploy.vivado import TLAST_FIFO_DEPTH, axis_adapter_verilog, control_verilog

    m = VerilatedModel.build(DEEP_STUB + control_verilog(1) + axis_adapter_verilog(16, 16, 1) + _axis_tb(32, 32),
                             top="axis_tb",
                             in_stream=None, out_stream=None)
    r = random.Random(11)
    n = 3 * 2 * TLAST_FIFO_DEPTH + 40
    data = [r.randrange(1 << 16) for _ in range(n)]
    lasts = [int(r.random() < 0.3) for _ in range(n)]
    m.poke("rst", 1)
    m.step(4)
    m.poke("rst", 0)
    i, out, out_last = 0, [], []

    def cycle(ready: int, limit: int) -> None:
        nonlocal i
        valid = int(i < limit)
        m.poke("s_tvalid", valid)
        m.poke("s_tdata", data[i] if valid else 0)
        m.poke("s_tlast", lasts[i] if valid else 0)
        m.poke("m_tready", ready)
        if ready and m.peek("m_tvalid"):
            out.append(m.peek("m_tdata"))
            out_last.append(m.peek("m_tlast"))
        if valid and m.peek("s_tready"):
            i += 1
        m.step(1)

    # stalls after 100, 200 and 300 images: the first two stalls cross a wrap of the 7-bit pointers
    for start in (100, 200, 300):
        while len(out) < start:
            cycle(1, start)
        for _ in range(200):
            cycle(0, n)
        in_flight = i - len(out)
        assert in_flight == TLAST_FIFO_DEPTH and not m.peek("s_tready"), f"{in_flight} in flight after {start}"
    while len(out) < n:
        cycle(1, n)
    assert i == n
    assert out == data
    assert out_last == lasts


# -- the shells as Amaranth components: ports from signatures ------------------------------------


def _widths(signature) -> dict:
    from amaranth.hdl import Shape

    from lowbit.hw.axi.shells import port_names

    return {name: (m.flow, Shape.cast(m.shape).width) for name, m in port_names(signature).items()}


def test_accelerator_signature_matches_the_accelerators_ports():
    """The black box ``lowbit_top`` the shells instantiate has the ports of the real accelerator,
    widths from its stream format (no Verilog read): also with a weight port streamed from DDR."""
    from lowbit.hw.axi.shells import accelerator_signature, payload_bits
    from lowbit.hw.mvtu.spec import MVTUSpec
    from lowbit.hw.top import Accelerator, stream_format

    g = mlp((64, 32, 16, 10), seed=3)
    for ram in ("auto", "external"):
        specs = [MVTUSpec(n, pe=2, simd=8, weight_ram=ram if i == 1 else "auto")
                 for i, n in enumerate(g.nodes)]
        acc = Accelerator(specs)
        words = {k: specs[k].weight_word_bits for k in acc.streamed}
        black_box = accelerator_signature(*payload_bits(stream_format(acc)), words)
        assert _widths(black_box) == _widths(acc.signature)


@pytest.mark.parametrize("shell", ["uart", "axis", "sim"])
def test_shell_verilog_ports_are_the_components_signature(shell):
    """The top module each deploy function writes has exactly the ports of its component's
    signature, read back by the one Verilog port parser (ANSI header or Amaranth body)."""
    from lowbit.deploy.simbackend import shell_wrapper_verilog
    from lowbit.deploy.vivado import WeightPort, axis_adapter_verilog
    from lowbit.hw.axi.shells_axis import AXISAdapter
    from lowbit.hw.axi.shells_sim import SimulatedShell
    from lowbit.hw.axi.shells_uart import UARTShell
    from lowbit.sim._harness import parse_ports

    ports = [WeightPort(0, 1, 64, 48, 64, 32), WeightPort(1, 2, 96, 20, 128, 40)]
    extra = {}
    if shell == "uart":
        text, top = uart_shell_verilog(40, 22, 12e6), "lowbit_uart_top"
        component = UARTShell(in_bits=40, out_bits=22, clk_hz=12e6, baud=BAUD)
    elif shell == "axis":
        text, top = axis_adapter_verilog(21, 40, 3, ports), "lowbit_axis"
        component = AXISAdapter(in_bits=21, out_bits=40, beats_per_image=3, weight_ports=ports)
        busif = "ASSOCIATED_BUSIF s_axis:m_axis:s_axi:m_axi_w0:m_axi_w1, ASSOCIATED_RESET aresetn"
        assert busif in text
    else:
        fields = ("index", "unit", "word_bits", "words", "data_bits", "addr_bits")
        text = shell_wrapper_verilog(32, 64, [{f: getattr(p, f) for f in fields} for p in ports])
        top = "lowbit_sim_shell"
        component = SimulatedShell(in_tdata_bits=32, out_tdata_bits=64, weight_ports=ports)
        extra = {"clk": ("input", 1), "rst": ("input", 1)}  # its sync domain
    parsed = {p.name: (p.direction, p.width) for p in parse_ports(text, top)}
    expect = {n: ("input" if str(flow) == "In" else "output", w)
              for n, (flow, w) in _widths(component.signature).items()}
    assert parsed == {**expect, **extra}


def test_sim_shell_sizes_each_ddr_model_like_the_overlay():
    """Without ``log_depths`` each memory holds the port's weight image, as SimulatedOverlay sizes
    it from the driver's weights_w<k>.bin (pack_image of the image)."""
    from lowbit.deploy.vivado import WeightPort
    from lowbit.hw.axi.shells_sim import SimulatedShell
    from lowbit.hw.axi.sim_ddr import log_depth
    from lowbit.hw.axi.wfetch import pack_image

    ports = [WeightPort(0, 1, 64, 48, 64, 32), WeightPort(1, 3, 96, 20, 128, 40)]
    shell = SimulatedShell(in_tdata_bits=32, out_tdata_bits=64, weight_ports=ports)
    images = [pack_image([0] * p.words, p.word_bits, p.data_bits) for p in ports]
    assert shell.log_depths == [log_depth(len(image)) for image in images] == [7, 6]
    with pytest.raises(ValueError, match=r"log_depths must hold one entry per weight port \(2\), "
                                         r"not \[7\]"):
        SimulatedShell(in_tdata_bits=32, out_tdata_bits=64, weight_ports=ports, log_depths=[7])


def test_shell_components_name_the_bad_parameter():
    from lowbit.deploy.vivado import WeightPort
    from lowbit.hw.axi.shells import accelerator_signature, black_box
    from lowbit.hw.axi.shells_axis import AXISAdapter
    from lowbit.hw.axi.shells_uart import UARTShell

    with pytest.raises(ValueError, match="in_bits must be a positive integer, not 0"):
        UARTShell(in_bits=0, out_bits=8, clk_hz=12e6, baud=BAUD)
    with pytest.raises(ValueError, match="clk_hz must give at least 4 clocks per bit at 115200 "
                                         "baud, not 400000"):
        UARTShell(in_bits=8, out_bits=8, clk_hz=400_000, baud=BAUD)
    with pytest.raises(ValueError, match="beats_per_image must be a positive integer, not 0"):
        AXISAdapter(in_bits=8, out_bits=8, beats_per_image=0)
    with pytest.raises(ValueError, match="tlast_depth must be a power of two, not 48"):
        AXISAdapter(in_bits=8, out_bits=8, beats_per_image=1, tlast_depth=48)
    with pytest.raises(ValueError, match=r"weight_ports\[0\]\.index must be 0, not 1"):
        AXISAdapter(in_bits=8, out_bits=8, beats_per_image=1,
                    weight_ports=[WeightPort(1, 0, 8, 4, 64, 32)])
    names = ("i__valid", "i__ready", "i__payload", "o__valid", "o_ready", "o__payload")
    with pytest.raises(ValueError, match=r"ports of lowbit_top must match its signature: "
                                         r"missing \['o__ready'\], unknown \['o_ready'\]"):
        black_box("lowbit_top", accelerator_signature(8, 8), {n: None for n in names})


ACCEL_WITH_WS = """module lowbit_top(clk, rst, i__valid, i__ready, i__payload, o__valid, o__ready,
  o__payload, ws1__valid, ws1__ready, ws1__payload);
  input clk;
  input rst;
  input i__valid;
  output i__ready;
  input [39:0] i__payload;
  output o__valid;
  input o__ready;
  output [21:0] o__payload;
  input ws1__valid;
  output ws1__ready;
  input [63:0] ws1__payload;
endmodule
"""


def test_vivado_plan_checks_the_weight_ports_width_in_the_accelerators_verilog():
    from lowbit import LowbitError
    from lowbit.boards import get_board
    from lowbit.deploy.vivado import WeightPort, vivado_plan_files

    board, top = get_board("pynq-z2"), ACCEL_WITH_WS
    args = dict(clock_mhz=100.0, in_bits=40, out_bits=22, beats_per_image=2)
    files, _ = vivado_plan_files(board, top, weight_ports=[WeightPort(0, 1, 64, 8, 64, 32)], **args)
    assert "lowbit_wfetch0 wfetch0" in files["lowbit_axis.v"]
    with pytest.raises(LowbitError, match="weight port ws1 takes 64-bit words, not the 128-bit "
                                          "words of weight port 0"):
        vivado_plan_files(board, top, weight_ports=[WeightPort(0, 1, 128, 8, 64, 32)], **args)
    with pytest.raises(LowbitError, match="has no module lowbit_top"):
        vivado_plan_files(board, top.replace("lowbit_top", "other"), **args)


def _stub_top(ws: bool = False) -> str:
    """A ``lowbit_top`` that drives its outputs from its inputs, for linting a shell around it."""
    ws_ports = (",\n  input wire ws1__valid, output wire ws1__ready, input wire [63:0] ws1__payload"
                if ws else "")
    ws_logic = "  assign ws1__ready = ws1__valid && ws1__payload[0];\n" if ws else ""
    return ("module lowbit_top(input wire clk, input wire rst, input wire i__valid,\n"
            "  output wire i__ready, input wire [39:0] i__payload, output wire o__valid,\n"
            f"  input wire o__ready, output wire [21:0] o__payload{ws_ports});\n"
            "  assign i__ready = !rst && clk; assign o__valid = i__valid && o__ready;\n"
            f"  assign o__payload = i__payload[21:0];\n{ws_logic}endmodule\n")


def test_shells_lint_clean(tmp_path):
    """``verilator --lint-only -Wall`` with the library's waivers: the UART shell is clean; in the
    AXI-Stream adapter's plan only the control block's case statements warn (CASEINCOMPLETE)."""
    from lowbit.deploy.vivado import (WeightPort, axis_adapter_verilog, control_verilog,
                                      fetcher_verilog)
    from lowbit.hw.verilog import lint

    uart = tmp_path / "uart.v"
    uart.write_text(_stub_top() + uart_shell_verilog(40, 22, 12e6))
    assert lint(uart, top="lowbit_uart_top") == []
    ports = [WeightPort(0, 1, 64, 8, 64, 32)]
    axis = tmp_path / "axis.v"
    axis.write_text(_stub_top(ws=True) + control_verilog(2, 1) + fetcher_verilog(ports)
                    + axis_adapter_verilog(40, 22, 2, ports))
    warnings = lint(axis, top="lowbit_axis")
    assert all("CASEINCOMPLETE" in w for w in warnings), warnings
