"""C++ source of the compiled harness around a Verilated model (generated per design).

The harness exports a small C API used through ``ctypes`` by :mod:`lowbit.sim.fast`:

``lb_new``/``lb_free``; ``lb_poke``/``lb_peek`` (port index, little-endian 32-bit words);
``lb_step`` (clock cycles); ``lb_cycle``; ``lb_stream`` (the hot loop: a whole array of input
beats through one input stream and output beats out of one output stream, with optional
``valid``/``ready`` patterns); ``lb_trace_open``/``lb_trace_close`` (VCD of a cycle window, when
built with tracing).

Clock protocol: between calls ``clk`` is low. A cycle sets the inputs, evaluates (the falling
edge and the combinational outputs such as ``ready`` settle), samples the handshakes, then raises
``clk`` and evaluates (registers update) and lowers it again without evaluating: two ``eval()``
per cycle, as in a hand-written Verilator loop. ``lb_peek`` and the end of ``lb_stream`` evaluate,
so outputs read between calls are settled. A transfer happens on a stream
exactly when ``valid & ready`` hold before the rising edge, as in the cocotb testbenches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Port", "parse_ports", "cxx_name", "harness_source", "HARNESS_VERSION"]

HARNESS_VERSION = 4


@dataclass(frozen=True)
class Port:
    name: str
    direction: str  # "input" or "output"
    width: int

    @property
    def words(self) -> int:
        return (self.width + 31) // 32


_DECL = r"(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s*)?(\\?[A-Za-z_$][\w$]*)"


def parse_ports(verilog: str, top: str) -> list[Port]:
    """Ports of module ``top`` in ``verilog``: the declarations in its header (ANSI style,
    ``input wire [7:0] name,``, one name each, as the board shells' top modules write them) and then
    those in its body (``input [7:0] name;``, as Amaranth writes every module).

    The one Verilog port parser of lowbit. lowbit's own modules get their ports from their
    components' signatures; this is for Verilog that is only at hand as text: whatever a caller
    hands :meth:`lowbit.sim.fast.VerilatedModel.build` (test benches, a compiled directory's
    ``lowbit_top.v``) and the files of a Vivado plan checked on disk
    (:mod:`lowbit.deploy.plancheck`).
    """
    m = re.search(rf"^module\s+{re.escape(top)}\s*\((.*?)\);(.*?)^endmodule", verilog, re.S | re.M)
    if not m:
        raise ValueError(f"module {top!r} not found in the Verilog")
    header = re.sub(r"\(\*.*?\*\)", " ", m.group(1), flags=re.S)  # attributes
    decls = re.findall(rf"(?:^|[(,])\s*{_DECL}\s*(?=,|$)", header, re.M)
    decls += re.findall(rf"^\s*{_DECL}\s*;", m.group(2), re.M)
    ports = []
    for d, msb, lsb, name in decls:
        width = int(msb) - int(lsb) + 1 if msb else 1
        ports.append(Port(name.lstrip("\\"), d, width))
    if not ports:
        raise ValueError(f"module {top!r} has no ports")
    return ports


def cxx_name(name: str) -> str:
    """The member name Verilator gives a port (it escapes ``__`` as ``___05F``)."""
    return name.replace("__", "___05F")


def _set(p: Port, src: str) -> str:
    n = cxx_name(p.name)
    if p.width <= 32:
        return f"top->{n} = {src}[0];"
    if p.width <= 64:
        return f"top->{n} = (uint64_t){src}[0] | ((uint64_t){src}[1] << 32);"
    return f"for (int k = 0; k < {p.words}; ++k) top->{n}[k] = {src}[k];"


def _get(p: Port, dst: str) -> str:
    n = cxx_name(p.name)
    if p.width <= 32:
        return f"{dst}[0] = (uint32_t)top->{n};"
    if p.width <= 64:
        return f"{dst}[0] = (uint32_t)top->{n}; {dst}[1] = (uint32_t)((uint64_t)top->{n} >> 32);"
    return f"for (int k = 0; k < {p.words}; ++k) {dst}[k] = top->{n}[k];"


def harness_source(
    ports: list[Port],
    *,
    clock: str,
    reset: str | None,
    in_stream: str | None,
    out_stream: str | None,
    trace: bool,
) -> str:
    by_name = {p.name: p for p in ports}
    pokes = "\n".join(
        f"    case {i}: {_set(p, 'w')} break;"
        for i, p in enumerate(ports)
        if p.direction == "input"
    )
    peeks = "\n".join(f"    case {i}: {_get(p, 'w')} break;" for i, p in enumerate(ports))
    clk = cxx_name(clock)
    if in_stream and out_stream:
        iv, ir, ip = (by_name[f"{in_stream}__{s}"] for s in ("valid", "ready", "payload"))
        ov, orr, op = (by_name[f"{out_stream}__{s}"] for s in ("valid", "ready", "payload"))
        stream = f"""
int64_t lb_stream(void* h, const uint32_t* in, uint64_t n_in, uint32_t* out, uint64_t n_out,
                  const uint8_t* vpat, uint64_t vlen, const uint8_t* rpat, uint64_t rlen,
                  uint64_t max_cycles, uint64_t* out_cycles) {{
    Sim* s = (Sim*)h; Vtop* top = s->top;
    const uint64_t IW = {ip.words}, OW = {op.words};
    uint64_t i = 0, o = 0, c = 0;
    while (o < n_out && c < max_cycles) {{
        bool v = i < n_in && (vlen == 0 || vpat[c % vlen]);
        top->{cxx_name(iv.name)} = v;
        if (v) {{ const uint32_t* w = in + i * IW; {_set(ip, "w")} }}
        top->{cxx_name(orr.name)} = rlen == 0 || rpat[c % rlen];
        top->eval();
        bool in_fire = v && top->{cxx_name(ir.name)};
        if (top->{cxx_name(ov.name)} && top->{cxx_name(orr.name)}) {{
            uint32_t* w = out + o * OW; {_get(op, "w")}
            out_cycles[o] = s->cycle;
            ++o;
        }}
        if (in_fire) ++i;
        tick(s);
        ++c;
    }}
    top->{cxx_name(iv.name)} = 0;
    top->{cxx_name(orr.name)} = 0;
    top->eval();
    return o == n_out ? (int64_t)c : -(int64_t)c - 1;
}}
"""
    else:
        stream = ""
    trace_inc = '#include "verilated_vcd_c.h"' if trace else ""
    trace_fns = (
        """
int lb_trace_open(void* h, const char* path, uint64_t start, uint64_t stop) {
    Sim* s = (Sim*)h;
    if (s->tfp) { s->tfp->close(); delete s->tfp; }
    s->ctx->traceEverOn(true);
    s->tfp = new VerilatedVcdC;
    s->top->trace(s->tfp, 99);
    s->tfp->open(path);
    s->t_start = start; s->t_stop = stop;
    return s->tfp->isOpen() ? 0 : -1;
}
void lb_trace_close(void* h) {
    Sim* s = (Sim*)h;
    if (s->tfp) { s->tfp->close(); delete s->tfp; s->tfp = nullptr; }
}
"""
        if trace
        else ""
    )
    dump = (
        """
    if (s->tfp && s->cycle >= s->t_start && s->cycle < s->t_stop) {
        s->tfp->dump(2 * s->cycle);
        s->top->CLK = 1; s->top->eval(); s->tfp->dump(2 * s->cycle + 1);
    } else {
        s->top->CLK = 1; s->top->eval();
    }""".replace("CLK", clk)
        if trace
        else f"""
    s->top->{clk} = 1; s->top->eval();"""
    )
    return f"""// generated by lowbit.sim._harness (version {HARNESS_VERSION}); do not edit
#include "Vtop.h"
#include "verilated.h"
{trace_inc}
#include <cstdint>

struct Sim {{
    VerilatedContext* ctx;
    Vtop* top;
    uint64_t cycle;
    {"VerilatedVcdC* tfp; uint64_t t_start, t_stop;" if trace else ""}
}};

// Rising edge; clk is lowered without evaluating: the next eval() (after the next cycle's
// inputs are set) settles the falling edge and the inputs together.
static inline void tick(Sim* s) {{{dump}
    s->top->{clk} = 0;
    ++s->cycle;
}}

extern "C" {{
void* lb_new() {{
    Sim* s = new Sim();
    s->ctx = new VerilatedContext;
    s->top = new Vtop{{s->ctx}};
    s->cycle = 0;
    s->top->{clk} = 0;
    s->top->eval();
    return s;
}}
void lb_free(void* h) {{
    Sim* s = (Sim*)h;
    {"if (s->tfp) { s->tfp->close(); delete s->tfp; }" if trace else ""}
    s->top->final();
    delete s->top; delete s->ctx; delete s;
}}
void lb_poke(void* h, int port, const uint32_t* w) {{
    Vtop* top = ((Sim*)h)->top;
    switch (port) {{
{pokes}
    default: break;
    }}
    top->eval();
}}
void lb_peek(void* h, int port, uint32_t* w) {{
    Vtop* top = ((Sim*)h)->top;
    top->eval();
    switch (port) {{
{peeks}
    default: break;
    }}
}}
void lb_step(void* h, uint64_t n) {{
    Sim* s = (Sim*)h;
    for (uint64_t k = 0; k < n; ++k) {{ s->top->eval(); tick(s); }}
}}
uint64_t lb_cycle(void* h) {{ return ((Sim*)h)->cycle; }}
{stream}
{trace_fns}
}}
"""
