"""A simulated PYNQ overlay: the Vivado plan's shell (AXI4-Stream adapter, AXI4-Lite control block
and accelerator, the very Verilog of the plan) Verilated and driven like the board's AXI DMA.

``SimulatedOverlay(plan_dir)`` offers what the generated driver uses of a ``pynq.Overlay``:
``allocate(shape, dtype)``, ``axi_dma.sendchannel`` / ``axi_dma.recvchannel`` with
``transfer(buffer)`` and ``wait()``, and ``accel.read(offset)`` / ``accel.write(offset, value)``,
which run real AXI4-Lite transactions on the simulated control block. A DMA transfer pair runs on
the compiled fast path (:mod:`lowbit.sim.fast`): the send buffer's beats go into ``s_axis`` (with
``tlast`` on the last one, as the DMA sets it), the results come back from ``m_axis``, and the
last result must carry ``tlast`` or the transfer fails as it would hang on the board.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import numpy as np

from .. import LowbitError
from ..hw.axi.control import ADDR_BITS, REGISTERS, wbase_offsets
from .vivado import WeightPort, axi_read_ports
from ..sim.fast import VerilatedModel
import json
from ..mapping.schedule import ddr_stream_bits
from ..boards.records import get_board

__all__ = ["SimulatedOverlay", "shell_wrapper_verilog"]

log = logging.getLogger(__name__)

_AXIL = (("awaddr", "input", ADDR_BITS), ("awvalid", "input", 1), ("awready", "output", 1), ("wdata", "input", 32),
         ("wstrb", "input", 4), ("wvalid", "input", 1), ("wready", "output", 1), ("bresp", "output", 2),
         ("bvalid", "output", 1), ("bready", "input", 1), ("araddr", "input", ADDR_BITS), ("arvalid", "input", 1),
         ("arready", "output", 1), ("rdata", "output", 32), ("rresp", "output", 2), ("rvalid", "output", 1),
         ("rready", "input", 1))


SIM_DDR_VERILOG = """
// lowbit_sim_ddr: a simulation-only AXI4 read slave standing for the PS's DDR behind one AXI-HP
// port. 32-bit words loaded through (we, waddr, wdata); a read of byte address A returns words
// (A >> 2) & (DEPTH - 1) onwards (buffers are aligned to a power of two at least their size).
// Up to 16 bursts queued; a burst's data starts LATENCY cycles after its address was accepted; a
// beat goes out when the credit (RATE bits per cycle, at most two beats banked) covers it.
module lowbit_sim_ddr #(parameter AW = 32, DW = 64, LOG_DEPTH = 10, RATE = 64, LATENCY = 16) (
  input wire clk, input wire rst,
  input wire we, input wire [LOG_DEPTH-1:0] waddr, input wire [31:0] wdata,
  input wire [AW-1:0] araddr, input wire [7:0] arlen, input wire arvalid, output wire arready,
  output wire [DW-1:0] rdata, output wire [1:0] rresp, output wire rlast, output wire rvalid, input wire rready
);
  localparam N = DW / 32;
  reg [31:0] mem [0:(1 << LOG_DEPTH) - 1];
  always @(posedge clk) if (we) mem[waddr] <= wdata;
  reg [LOG_DEPTH-1:0] qa [0:15];
  reg [7:0] ql [0:15];
  reg [31:0] qt [0:15];
  reg [4:0] count;
  reg [3:0] head, tail;
  reg [31:0] now;
  reg [7:0] beat;
  reg [15:0] credit;
  wire active = count != 0 && now >= qt[head];
  assign arready = count != 16;
  assign rvalid = active && credit >= DW;
  assign rlast = beat == ql[head];
  assign rresp = 2'b00;
  genvar g;
  generate for (g = 0; g < N; g = g + 1) begin : word
    wire [LOG_DEPTH-1:0] idx = qa[head] + beat * N + g;
    assign rdata[32 * g +: 32] = mem[idx];
  end endgenerate
  wire push = arvalid && arready;
  wire pop = rvalid && rready && rlast;
  always @(posedge clk) begin
    if (rst) begin
      count <= 0; head <= 0; tail <= 0; now <= 0; beat <= 0; credit <= 0;
    end else begin
      now <= now + 1;
      if (push) begin
        qa[tail] <= araddr[LOG_DEPTH+1:2];
        ql[tail] <= arlen;
        qt[tail] <= now + LATENCY;
        tail <= tail + 1;
      end
      count <= count + push - pop;
      if (rvalid && rready) begin
        beat <= rlast ? 0 : beat + 1;
        if (pop) head <= head + 1;
      end
      credit <= (credit + RATE - ((rvalid && rready) ? DW : 0) > 2 * DW) ? 2 * DW
                : credit + RATE - ((rvalid && rready) ? DW : 0);
    end
  end
endmodule
"""


def _log_depth(image_bytes: int) -> int:
    """log2 of the 32-bit words of a simulated memory holding ``image_bytes`` bytes (at least 16 words)."""
    return max(4, (-(-image_bytes // 4) - 1).bit_length())


def shell_wrapper_verilog(tin: int, tout: int, weight_ports: list[dict] = (), *, rate: int = 64,
                          latency: int = 16, log_depths: list[int] = ()) -> str:
    """``lowbit_sim_shell``: ``lowbit_axis`` with its streams as ``i``/``o`` (``tlast`` as the top bit)
    and, for each weight port (``build.json``'s ``weight_ports``), a :data:`SIM_DDR_VERILOG` memory on
    its AXI port, loaded through ``ddr<k>__we`` / ``__addr`` / ``__data``.

    Ports are declared in the body (``input [4:0] name;``), the style the fast path's parser reads.
    """
    ports = [("clk", "input", 1), ("rst", "input", 1)] + [(f"ctrl__{n}", d, w) for n, d, w in _AXIL] + [
        ("i__valid", "input", 1), ("i__ready", "output", 1), ("i__payload", "input", tin + 1),
        ("o__valid", "output", 1), ("o__ready", "input", 1), ("o__payload", "output", tout + 1)]
    ddrs, wires, conns = [], [], []
    for p, depth in zip(weight_ports, log_depths):
        wp = WeightPort(**{f.name: p[f.name] for f in fields(WeightPort) if f.name in p})
        k, aw, dw, bus = wp.index, wp.addr_bits, wp.data_bits, wp.bus
        ports += [(f"ddr{k}__we", "input", 1), (f"ddr{k}__addr", "input", depth), (f"ddr{k}__data", "input", 32)]
        for name, _, w in axi_read_ports(wp):
            wires.append(f"  wire {'[%d:0] ' % (w - 1) if w > 1 else ''}{name};")
            conns.append(f".{name}({name})")
        ddrs.append(f"""  lowbit_sim_ddr #(.AW({aw}), .DW({dw}), .LOG_DEPTH({depth}), .RATE({rate}), .LATENCY({latency})) ddr{k} (
    .clk(clk), .rst(rst), .we(ddr{k}__we), .waddr(ddr{k}__addr), .wdata(ddr{k}__data),
    .araddr({bus}_araddr), .arlen({bus}_arlen), .arvalid({bus}_arvalid), .arready({bus}_arready),
    .rdata({bus}_rdata), .rresp({bus}_rresp), .rlast({bus}_rlast), .rvalid({bus}_rvalid), .rready({bus}_rready));""")
    decls = "\n".join(f"  {d} {'[%d:0] ' % (w - 1) if w > 1 else ''}{n};" for n, d, w in ports)
    axil_conn = ", ".join(f".s_axi_{n}(ctrl__{n})" for n, _, _ in _AXIL)
    w_conn = "".join(f",\n    {c}" for c in conns)
    return f"""
module lowbit_sim_shell({", ".join(n for n, _, _ in ports)});
{decls}
{chr(10).join(wires)}
  lowbit_axis shell (.aclk(clk), .aresetn(!rst),
    .s_axis_tdata(i__payload[{tin - 1}:0]), .s_axis_tvalid(i__valid), .s_axis_tready(i__ready),
    .s_axis_tlast(i__payload[{tin}]),
    .m_axis_tdata(o__payload[{tout - 1}:0]), .m_axis_tvalid(o__valid), .m_axis_tready(o__ready),
    .m_axis_tlast(o__payload[{tout}]),
    {axil_conn}{w_conn});
{chr(10).join(ddrs)}
endmodule
""" + (SIM_DDR_VERILOG if weight_ports else "")


class _Channel:
    def __init__(self, dma: "_DMA", name: str):
        self.dma, self.name, self.buffer = dma, name, None

    def transfer(self, buffer) -> None:
        if self.buffer is not None:
            raise LowbitError(f"axi_dma.{self.name}: a transfer is already pending")
        self.buffer = buffer

    def wait(self) -> None:
        self.dma._run()


class _DMA:
    def __init__(self, overlay: "SimulatedOverlay"):
        self.overlay = overlay
        self.sendchannel = _Channel(self, "sendchannel")
        self.recvchannel = _Channel(self, "recvchannel")

    def _run(self) -> None:
        send, recv = self.sendchannel.buffer, self.recvchannel.buffer
        if send is None and recv is None:
            return
        if send is None or recv is None:
            raise LowbitError("the simulated DMA needs both a send and a receive transfer before waiting")
        self.sendchannel.buffer = self.recvchannel.buffer = None
        self.overlay._stream(np.asarray(send), recv)


class _MMIO:
    """AXI4-Lite transactions on the simulated control block."""

    def __init__(self, model):
        self.m = model

    def _wait(self, port: str, limit: int = 100) -> None:
        for _ in range(limit):
            if self.m.peek(port):
                return
            self.m.step(1)
        raise LowbitError(f"the control block did not raise {port} within {limit} cycles")

    def write(self, offset: int, value: int) -> None:
        m = self.m
        m.poke("ctrl__awaddr", offset)
        m.poke("ctrl__wdata", int(value) & 0xFFFFFFFF)
        m.poke("ctrl__wstrb", 0xF)
        m.poke("ctrl__awvalid", 1)
        m.poke("ctrl__wvalid", 1)
        m.poke("ctrl__bready", 1)
        self._wait("ctrl__awready")
        m.step(1)
        m.poke("ctrl__awvalid", 0)
        m.poke("ctrl__wvalid", 0)
        self._wait("ctrl__bvalid")
        if m.peek("ctrl__bresp"):
            raise LowbitError(f"AXI4-Lite write to 0x{offset:02x} answered {m.peek('ctrl__bresp')}")
        m.step(1)
        m.poke("ctrl__bready", 0)

    def read(self, offset: int) -> int:
        m = self.m
        m.poke("ctrl__araddr", offset)
        m.poke("ctrl__arvalid", 1)
        m.poke("ctrl__rready", 1)
        self._wait("ctrl__arready")
        m.step(1)
        m.poke("ctrl__arvalid", 0)
        self._wait("ctrl__rvalid")
        value = m.peek("ctrl__rdata")
        m.step(1)
        m.poke("ctrl__rready", 0)
        return value


class _Buffer(np.ndarray):
    """A simulated contiguous buffer: a NumPy array with a bus address, like PYNQ's ``PynqBuffer``."""

    device_address: int = 0

    def flush(self) -> None:
        pass

    def invalidate(self) -> None:
        pass


class _Control(_MMIO):
    """The control block; starting the weight fetchers first copies their buffers into the simulated DDR."""

    def __init__(self, overlay: "SimulatedOverlay"):
        super().__init__(overlay.model)
        self.overlay = overlay

    def write(self, offset: int, value: int) -> None:
        if offset == REGISTERS["WCTRL"] and value & 1 and self.overlay.weight_ports:
            self.overlay._load_weights()
        super().write(offset, value)


class SimulatedOverlay:
    """The shell of the Vivado plan in ``plan_dir`` (written by ``lowbit build``), simulated.

    Weight ports (layers whose weights stream from DDR) read a simulated DDR per port
    (:data:`SIM_DDR_VERILOG`) delivering ``ddr_bits_per_cycle`` (default: the mapper's figure for
    the plan's board and clock, :func:`lowbit.mapping.schedule.ddr_stream_bits`) after
    ``ddr_latency`` cycles per burst. It is loaded from the buffer whose address the driver wrote to
    ``WBASE(k)`` when the driver sets ``WCTRL`` bit 0.
    """

    def __init__(self, plan_dir: str | Path, *, ddr_bits_per_cycle: int | None = None, ddr_latency: int = 16):

        plan_dir = Path(plan_dir)
        names = ("lowbit_top.v", "lowbit_ctrl.v", "lowbit_axis.v", "build.json")
        missing = [n for n in names if not (plan_dir / n).is_file()]
        if missing:
            raise LowbitError(f"{plan_dir}: missing {', '.join(missing)}; expected a Vivado plan from 'lowbit build'")

        manifest = json.loads((plan_dir / "build.json").read_text())
        axis = manifest["axis"]
        self.tin, self.tout = axis["in_tdata_bits"], axis["out_tdata_bits"]
        self.weight_ports = manifest.get("weight_ports", [])
        sources = list(names[:3])
        self.log_depths = []
        if self.weight_ports:

            sources.append("lowbit_wfetch.v")
            if ddr_bits_per_cycle is None:
                ddr_bits_per_cycle = ddr_stream_bits(get_board(manifest["board"]), manifest["clock_mhz"])
            for p in self.weight_ports:
                image = plan_dir / "driver" / f"weights_w{p['index']}.bin"
                if not image.is_file():
                    raise LowbitError(f"{plan_dir}: missing driver/{image.name} (weight port {p['index']})")
                self.log_depths.append(_log_depth(image.stat().st_size))
        self.ddr_bits_per_cycle = ddr_bits_per_cycle
        text = "\n".join((plan_dir / n).read_text() for n in sources)
        text += shell_wrapper_verilog(self.tin, self.tout, self.weight_ports, rate=ddr_bits_per_cycle or 64,
                                      latency=ddr_latency, log_depths=self.log_depths)
        self.model = VerilatedModel.build(text, top="lowbit_sim_shell")
        self.model.reset()
        self.model.poke("o__ready", 1)
        self.axi_dma = _DMA(self)
        self.accel = _Control(self)
        self._buffers: list[_Buffer] = []
        self._next_address = 0x1000_0000

    def allocate(self, shape, dtype=np.uint8) -> np.ndarray:
        """A zeroed buffer with a ``device_address`` aligned to a power of two at least its size."""
        buf = np.zeros(shape, dtype=dtype).view(_Buffer)
        align = 1 << max(12, (max(buf.nbytes, 1) - 1).bit_length())
        addr = -(-self._next_address // align) * align
        buf.device_address = addr
        self._next_address = addr + max(buf.nbytes, 1)
        self._buffers.append(buf)
        return buf

    def _load_weights(self) -> None:
        """Copy each weight port's buffer (the one at the address in ``WBASE(k)``) into its DDR model."""
        m = self.model
        for p, depth in zip(self.weight_ports, self.log_depths):
            k = p["index"]
            lo, hi = wbase_offsets(k)
            base = self.accel.read(lo) | (self.accel.read(hi) << 32)
            buf = next((b for b in self._buffers if b.device_address == base), None)
            if buf is None:
                raise LowbitError(f"weight port {k}: WBASE = 0x{base:x} is not the address of an allocated buffer")
            raw = np.ascontiguousarray(buf).view(np.uint8).reshape(-1)
            if raw.size > 4 << depth:
                raise LowbitError(f"weight port {k}: buffer of {raw.size} bytes exceeds the simulated DDR "
                                  f"({4 << depth} bytes, sized from driver/weights_w{k}.bin)")
            words = np.zeros(-(-raw.size // 4) * 4, dtype=np.uint8)
            words[:raw.size] = raw
            m.poke(f"ddr{k}__we", 1)
            for i, w in enumerate(words.view("<u4").tolist()):
                m.poke(f"ddr{k}__addr", i)
                m.poke(f"ddr{k}__data", w)
                m.step(1)
            m.poke(f"ddr{k}__we", 0)
        log.info("loaded %d weight image(s) into the simulated DDR", len(self.weight_ports))

    def _stream(self, send: np.ndarray, recv: np.ndarray) -> None:
        ib, ob = self.tin // 8, self.tout // 8
        raw = np.ascontiguousarray(send).view(np.uint8).reshape(-1)
        if raw.size % ib:
            raise LowbitError(f"the send buffer ({raw.size} bytes) is not a whole number of {ib}-byte beats")
        n_in = raw.size // ib
        n_out = recv.view(np.uint8).size // ob
        words_in = (self.tin + 1 + 31) // 32
        beats = np.zeros((n_in, words_in * 4), dtype=np.uint8)
        beats[:, :ib] = raw.reshape(n_in, ib)
        beats = beats.view("<u4").astype(np.uint32)
        top_word, top_bit = divmod(self.tin, 32)
        beats[-1, top_word] |= np.uint32(1 << top_bit)  # tlast on the transfer's last beat
        res = self.model.stream(beats, n_out)
        if res.timed_out:
            raise LowbitError(f"the simulated shell returned fewer than {n_out} results (the DMA would hang)")
        out = res.outputs.view(np.uint8)[:, :ob]
        last = (res.outputs[:, self.tout // 32] >> (self.tout % 32)) & 1
        if not last[-1] or last[:-1].any():
            raise LowbitError(f"m_axis tlast is on results {np.flatnonzero(last).tolist()}, "
                              f"expected only on the last ({n_out - 1})")
        recv.view(np.uint8).reshape(-1)[:] = out.reshape(-1)
