"""A simulated PYNQ overlay: the Vivado plan's shell (AXI4-Stream adapter, AXI4-Lite control block
and accelerator, the very Verilog of the plan) Verilated and driven like the board's AXI DMA.

``SimulatedOverlay(plan_dir)`` offers what the generated driver uses of a ``pynq.Overlay``:
``allocate(shape, dtype)``, ``axi_dma.sendchannel`` / ``axi_dma.recvchannel`` with
``transfer(buffer)`` and ``wait()``, and ``accel.read(offset)`` / ``accel.write(offset, value)``,
which run real AXI4-Lite transactions on the simulated control block. A DMA transfer pair runs on
the compiled fast path (:mod:`lowbit.sim.fast`): the send buffer's beats go into ``s_axis`` (with
``tlast`` on the last one, as the DMA sets it), the results come back from ``m_axis``, and the
last result must carry ``tlast`` or the transfer fails as it would hang on the board. The
Verilated top is ``lowbit_sim_shell`` (:func:`shell_wrapper_verilog`, the Amaranth component
:class:`~lowbit.hw.axi.shells_sim.SimulatedShell`, whose module docstring gives its ports).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np

from .. import LowbitError
from ..boards.records import get_board
from ..hw.axi.control import MAX_WEIGHT_PORTS, REGISTERS, wbase_offsets
from ..hw.axi.shells_axis import WeightPort
from ..hw.axi.shells_sim import SimulatedShell
from ..hw.axi.sim_ddr import log_depth
from ..hw.verilog import to_verilog
from ..ir.files import confine, read_limited
from ..limits import LIMITS
from ..mapping.schedule import ddr_stream_bits
from ..sim.fast import VerilatedModel
from .flash import load_manifest

__all__ = ["SimulatedOverlay", "shell_wrapper_verilog"]

log = logging.getLogger(__name__)


def shell_wrapper_verilog(
    tin: int,
    tout: int,
    weight_ports: Sequence[dict] = (),
    *,
    rate: int = 64,
    latency: int = 16,
    log_depths: list[int] | None = None,
) -> str:
    """``lowbit_sim_shell``, the :class:`~lowbit.hw.axi.shells_sim.SimulatedShell` of
    ``lowbit_axis`` with ``tin``/``tout``-bit ``tdata`` and the weight ports ``weight_ports``
    (``build.json``'s ``weight_ports``), each with a :class:`~lowbit.hw.axi.sim_ddr.SimulatedDDR`.

    ``log_depths`` sizes each port's memory (by default from the port's weight image); ``rate`` and
    ``latency`` are the memories' bits per cycle and burst latency.
    """
    ports = [
        WeightPort(**{f.name: p[f.name] for f in fields(WeightPort) if f.name in p})
        for p in weight_ports
    ]
    shell = SimulatedShell(
        in_tdata_bits=tin,
        out_tdata_bits=tout,
        weight_ports=ports,
        log_depths=None if log_depths is None else list(log_depths),
        rate=rate,
        latency=latency,
    )
    return to_verilog(shell, name="lowbit_sim_shell")


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
            raise LowbitError(
                "the simulated DMA needs both a send and a receive transfer before waiting"
            )
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
    """A simulated contiguous buffer: a NumPy array with a bus address, like PYNQ's
    ``PynqBuffer``."""

    device_address: int = 0

    def flush(self) -> None:
        pass

    def invalidate(self) -> None:
        pass


class _Control(_MMIO):
    """The control block; starting the weight fetchers first copies their buffers into the simulated
    DDR."""

    def __init__(self, overlay: "SimulatedOverlay"):
        super().__init__(overlay.model)
        self.overlay = overlay

    def write(self, offset: int, value: int) -> None:
        if offset == REGISTERS["WCTRL"] and value & 1 and self.overlay.weight_ports:
            self.overlay._load_weights()
        super().write(offset, value)


def _manifest(plan_dir: Path) -> dict:
    """The plan's ``build.json`` (:func:`lowbit.deploy.flash.load_manifest`: a JSON object read
    inside the directory), with the keys the simulated overlay uses checked:
    ``axis.in_tdata_bits`` and ``axis.out_tdata_bits`` positive multiples of 8 up to 4096,
    ``weight_ports`` a list of objects whose ``index`` is an integer in
    [0, ``MAX_WEIGHT_PORTS``) and, with weight ports, ``board`` a string and ``clock_mhz`` a
    number in (0, ``LIMITS.clock_mhz``]."""
    path = plan_dir / "build.json"
    doc = load_manifest(plan_dir)
    axis = doc.get("axis")
    if not isinstance(axis, dict):
        raise LowbitError(f"{path}: key 'axis' must be an object, not {axis!r}")
    for key in ("in_tdata_bits", "out_tdata_bits"):
        v = axis.get(key)
        if type(v) is not int or not 0 < v <= 4096 or v % 8:
            raise LowbitError(
                f"{path}: key 'axis.{key}' must be a multiple of 8 in [8, 4096], not {v!r}"
            )
    ports = doc.get("weight_ports", [])
    if not isinstance(ports, list) or not all(
        isinstance(p, dict) and type(p.get("index")) is int and 0 <= p["index"] < MAX_WEIGHT_PORTS
        for p in ports
    ):
        raise LowbitError(
            f"{path}: key 'weight_ports' must be a list of objects with an integer 'index' in "
            f"[0, {MAX_WEIGHT_PORTS}), not {ports!r}"[:300]
        )
    if ports and not isinstance(doc.get("board"), str):
        raise LowbitError(f"{path}: key 'board' must be a string, not {doc.get('board')!r}")
    clock = doc.get("clock_mhz")
    if ports and (
        isinstance(clock, bool)
        or not isinstance(clock, (int, float))
        or not 0 < clock <= LIMITS.clock_mhz
    ):
        raise LowbitError(
            f"{path}: key 'clock_mhz' must be a number in (0, {LIMITS.clock_mhz:g}], not {clock!r}"
        )
    return doc


class SimulatedOverlay:
    """The shell of the Vivado plan in ``plan_dir`` (written by ``lowbit build``), simulated.

    Weight ports (layers whose weights stream from DDR) read a simulated DDR per port
    (:class:`~lowbit.hw.axi.sim_ddr.SimulatedDDR`) delivering ``ddr_bits_per_cycle`` (default:
    the mapper's figure for the plan's board and clock,
    :func:`lowbit.mapping.schedule.ddr_stream_bits`) after
    ``ddr_latency`` cycles per burst. It is loaded from the buffer whose address the driver wrote to
    ``WBASE(k)`` when the driver sets ``WCTRL`` bit 0.
    """

    def __init__(
        self, plan_dir: str | Path, *, ddr_bits_per_cycle: int | None = None, ddr_latency: int = 16
    ):

        plan_dir = Path(plan_dir)
        names = ("lowbit_top.v", "lowbit_ctrl.v", "lowbit_axis.v", "build.json")
        missing = [n for n in names if not (plan_dir / n).is_file()]
        if missing:
            raise LowbitError(
                f"{plan_dir}: missing {', '.join(missing)}; expected a Vivado plan from "
                "'lowbit build'"
            )

        manifest = _manifest(plan_dir)
        axis = manifest["axis"]
        self.tin, self.tout = axis["in_tdata_bits"], axis["out_tdata_bits"]
        self.weight_ports = manifest.get("weight_ports", [])
        sources = list(names[:3])
        self.log_depths = []
        if self.weight_ports:
            sources.append("lowbit_wfetch.v")
            if ddr_bits_per_cycle is None:
                ddr_bits_per_cycle = ddr_stream_bits(
                    get_board(manifest["board"]), manifest["clock_mhz"]
                )
            for p in self.weight_ports:
                image = plan_dir / "driver" / f"weights_w{p['index']}.bin"
                if not image.is_file():
                    raise LowbitError(
                        f"{plan_dir}: missing driver/{image.name} (weight port {p['index']})"
                    )
                self.log_depths.append(log_depth(image.stat().st_size))
        self.ddr_bits_per_cycle = ddr_bits_per_cycle
        text = "\n".join(
            read_limited(confine(plan_dir, n, place="plan directory"), "Verilog source").decode(
                "utf-8", "replace"
            )
            for n in sources
        )
        text += shell_wrapper_verilog(
            self.tin,
            self.tout,
            self.weight_ports,
            rate=ddr_bits_per_cycle or 64,
            latency=ddr_latency,
            log_depths=self.log_depths,
        )
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
        """Copy each weight port's buffer (the one at the address in ``WBASE(k)``) into its DDR
        model."""
        m = self.model
        for p, depth in zip(self.weight_ports, self.log_depths):
            k = p["index"]
            lo, hi = wbase_offsets(k)
            base = self.accel.read(lo) | (self.accel.read(hi) << 32)
            buf = next((b for b in self._buffers if b.device_address == base), None)
            if buf is None:
                raise LowbitError(
                    f"weight port {k}: WBASE = 0x{base:x} is not the address of an allocated buffer"
                )
            raw = np.ascontiguousarray(buf).view(np.uint8).reshape(-1)
            if raw.size > 4 << depth:
                raise LowbitError(
                    f"weight port {k}: buffer of {raw.size} bytes exceeds the simulated DDR "
                    f"({4 << depth} bytes, sized from driver/weights_w{k}.bin)"
                )
            words = np.zeros(-(-raw.size // 4) * 4, dtype=np.uint8)
            words[: raw.size] = raw
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
            raise LowbitError(
                f"the send buffer ({raw.size} bytes) is not a whole number of {ib}-byte beats"
            )
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
            raise LowbitError(
                f"the simulated shell returned fewer than {n_out} results (the DMA would hang)"
            )
        out = res.outputs.view(np.uint8)[:, :ob]
        last = (res.outputs[:, self.tout // 32] >> (self.tout % 32)) & 1
        if not last[-1] or last[:-1].any():
            raise LowbitError(
                f"m_axis tlast is on results {np.flatnonzero(last).tolist()}, "
                f"expected only on the last ({n_out - 1})"
            )
        recv.view(np.uint8).reshape(-1)[:] = out.reshape(-1)
