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
from pathlib import Path

import numpy as np

from .. import LowbitError

__all__ = ["SimulatedOverlay", "shell_wrapper_verilog"]

log = logging.getLogger(__name__)

_AXIL = (("awaddr", "input", 5), ("awvalid", "input", 1), ("awready", "output", 1), ("wdata", "input", 32),
         ("wstrb", "input", 4), ("wvalid", "input", 1), ("wready", "output", 1), ("bresp", "output", 2),
         ("bvalid", "output", 1), ("bready", "input", 1), ("araddr", "input", 5), ("arvalid", "input", 1),
         ("arready", "output", 1), ("rdata", "output", 32), ("rresp", "output", 2), ("rvalid", "output", 1),
         ("rready", "input", 1))


def shell_wrapper_verilog(tin: int, tout: int) -> str:
    """``lowbit_sim_shell``: ``lowbit_axis`` with its streams as ``i``/``o`` (``tlast`` as the top bit).

    Ports are declared in the body (``input [4:0] name;``), the style the fast path's parser reads.
    """
    ports = [("clk", "input", 1), ("rst", "input", 1)] + [(f"ctrl__{n}", d, w) for n, d, w in _AXIL] + [
        ("i__valid", "input", 1), ("i__ready", "output", 1), ("i__payload", "input", tin + 1),
        ("o__valid", "output", 1), ("o__ready", "input", 1), ("o__payload", "output", tout + 1)]
    decls = "\n".join(f"  {d} {'[%d:0] ' % (w - 1) if w > 1 else ''}{n};" for n, d, w in ports)
    axil_conn = ", ".join(f".s_axi_{n}(ctrl__{n})" for n, _, _ in _AXIL)
    return f"""
module lowbit_sim_shell({", ".join(n for n, _, _ in ports)});
{decls}
  lowbit_axis shell (.aclk(clk), .aresetn(!rst),
    .s_axis_tdata(i__payload[{tin - 1}:0]), .s_axis_tvalid(i__valid), .s_axis_tready(i__ready),
    .s_axis_tlast(i__payload[{tin}]),
    .m_axis_tdata(o__payload[{tout - 1}:0]), .m_axis_tvalid(o__valid), .m_axis_tready(o__ready),
    .m_axis_tlast(o__payload[{tout}]),
    {axil_conn});
endmodule
"""


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


class SimulatedOverlay:
    """The shell of the Vivado plan in ``plan_dir`` (written by ``lowbit build``), simulated."""

    def __init__(self, plan_dir: str | Path):
        from ..sim.fast import VerilatedModel

        plan_dir = Path(plan_dir)
        names = ("lowbit_top.v", "lowbit_ctrl.v", "lowbit_axis.v", "build.json")
        missing = [n for n in names if not (plan_dir / n).is_file()]
        if missing:
            raise LowbitError(f"{plan_dir}: missing {', '.join(missing)}; expected a Vivado plan from 'lowbit build'")
        import json

        axis = json.loads((plan_dir / "build.json").read_text())["axis"]
        self.tin, self.tout = axis["in_tdata_bits"], axis["out_tdata_bits"]
        text = "\n".join((plan_dir / n).read_text() for n in names[:3])
        text += shell_wrapper_verilog(self.tin, self.tout)
        self.model = VerilatedModel.build(text, top="lowbit_sim_shell")
        self.model.reset()
        self.model.poke("o__ready", 1)
        self.axi_dma = _DMA(self)
        self.accel = _MMIO(self.model)

    @staticmethod
    def allocate(shape, dtype=np.uint8) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

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
