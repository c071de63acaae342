"""lowbit's DP16KD model (``lowbit.sim.dp16kd_model``) against the RTL of the memories it stands for.

Small Amaranth memories (ROMs and RAMs of 9 to 72 bits, 200 to 2,048 words, the read port's data
used directly or through a reset-less register loaded with the read enable, as the MVTU's
``w_word_r``) are synthesised with the open flow's ``synth_ecp5`` script; each netlist is written
twice, as yosys maps it (``NOREG``) and after :mod:`lowbit.tools.bram_outreg` (the register moved
into the block), and simulated in Verilator with yosys's ECP5 models plus lowbit's ``DP16KD``,
beside the RTL itself, under the same random stimulus (600 cycles of random read addresses, read
enables, writes). ``differences`` counts the cycles whose output differs from the RTL's::

    .venv/bin/python benchmarks/dp16kd_model_check.py

Results: ``benchmarks/results/dp16kd_model_check.md``.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from lowbit.sim.dp16kd_model import ecp5_models_with_bram
from lowbit.tools.bram_outreg import absorb_in_file
from lowbit.tools.simulators import ensure_verilator
from lowbit.tools.yosys import ecp5_cell_models, synth_commands, yosys_command

RESULTS = Path(__file__).resolve().parent / "results" / "dp16kd_model_check.md"
CASES = [  # depth, width, write port, register after the read
    (256, 36, False, True),
    (256, 36, False, False),
    (1024, 18, False, True),
    (2048, 9, False, True),
    (200, 30, False, True),
    (512, 72, True, True),
    (1024, 16, True, False),
]
CYCLES = 600


class Mem(wiring.Component):
    def __init__(self, depth, width, write, reg):
        self.depth, self.width, self.write, self.reg = depth, width, write, reg
        ab = (depth - 1).bit_length()
        super().__init__({"addr": In(ab), "en": In(1), "we": In(1), "waddr": In(ab),
                          "wdata": In(width), "q": Out(width)})

    def elaborate(self, platform):
        m = Module()
        rng = random.Random(self.depth * 7 + self.width)
        m.submodules.mem = mem = memory.Memory(
            shape=self.width, depth=self.depth,
            init=[rng.getrandbits(self.width) for _ in range(self.depth)])
        rp = mem.read_port()
        m.d.comb += [rp.addr.eq(self.addr), rp.en.eq(self.en)]
        if self.write:
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(self.waddr), wp.data.eq(self.wdata), wp.en.eq(self.we)]
        if self.reg:
            r = Signal(self.width, reset_less=True)
            with m.If(self.en):
                m.d.sync += r.eq(rp.data)
            m.d.comb += self.q.eq(r)
        else:
            m.d.comb += self.q.eq(rp.data)
        return m


TB = """
module tb; reg clk = 0, rst = 1; reg [{ab1}:0] addr = 0, waddr = 0; reg en = 0, we = 0;
reg [{w1}:0] wdata = 0; wire [{w1}:0] q; integer i, seed = 5;
d dut(.clk(clk), .rst(rst), .addr(addr), .en(en), .we(we), .waddr(waddr), .wdata(wdata), .q(q));
initial begin
  #1 clk = 1; #1 clk = 0; rst = 0;
  for (i = 0; i < {cycles}; i = i + 1) begin
    addr = $random(seed); en = ($random(seed) & 3) != 0; we = {write} && ($random(seed) & 1);
    waddr = $random(seed); wdata = {{$random(seed), $random(seed), $random(seed)}};
    #1 clk = 1; #1 clk = 0; $display("q=%h", q);
  end
  $finish;
end
endmodule
"""


def _simulate(work: Path, tag: str, sources: list[str], includes: list[Path]) -> list[str]:
    cmd = [str(ensure_verilator()), "--binary", "--timing", "-CFLAGS", "-std=c++20 -fcoroutines",
           "-Wno-fatal", "-Wno-SPECIFYIGN", "-Wno-INITIALDLY", "-Wno-UNOPTFLAT", "-Wno-lint",
           "-Wno-style", "--top-module", "tb", "-Mdir", f"obj_{tag}", "-j", "1",
           *(f"-I{p}" for p in includes), *sources]
    subprocess.run(cmd, cwd=work, check=True, capture_output=True, text=True)
    out = subprocess.run([f"obj_{tag}/Vtb"], cwd=work, check=True, capture_output=True, text=True)
    return re.findall(r"q=([0-9a-fx]+)", out.stdout)


def check(depth, width, write, reg, work: Path) -> dict:
    (work / "d.v").write_text(verilog.convert(Mem(depth, width, write, reg), name="d"))
    ab = (depth - 1).bit_length()
    (work / "tb.v").write_text(TB.format(ab1=ab - 1, w1=width - 1, write=int(write),
                                         cycles=CYCLES))
    script = "; ".join(["read_verilog d.v"] + synth_commands("ecp5", "d", ("-json", "n.json"))
                       + ["tee -q -o stat.txt stat"])
    subprocess.run(yosys_command() + ["-q", "-p", script], cwd=work, check=True,
                   capture_output=True)
    cells = ecp5_cell_models()
    models = ecp5_models_with_bram(cells, work / "cells.v")
    rtl = _simulate(work, "rtl", ["d.v", "tb.v"], [])
    row = {"depth": depth, "width": width, "write": write, "reg": reg}
    for tag in ("noreg", "outreg"):
        js = work / f"n_{tag}.json"
        js.write_text((work / "n.json").read_text())
        moved = absorb_in_file(js, "d") if tag == "outreg" else None
        subprocess.run(yosys_command() + ["-q", "-p", f"read_json {js.name}; write_verilog "
                                          f"-noattr net_{tag}.v"], cwd=work, check=True,
                       capture_output=True)
        got = _simulate(work, tag, [f"net_{tag}.v", "tb.v", models.name], [cells.parent])
        row[tag] = sum(a != b for a, b in zip(got, rtl)) + abs(len(got) - len(rtl))
        if moved is not None:
            row["moved"] = moved.registers
            row["skipped"] = "; ".join(sorted({r for _, _, r in moved.skipped})) or "-"
    row["cycles"] = len(rtl)
    return row


def main() -> int:
    rows = []
    for case in CASES:
        with tempfile.TemporaryDirectory(prefix="lowbit-dp16kd-") as tmp:
            rows.append(check(*case, Path(tmp)))
        print(rows[-1], flush=True)
    lines = [
        "# lowbit's DP16KD model against the RTL (`benchmarks/dp16kd_model_check.py`)",
        "",
        __doc__.split("\n\n")[1].replace("\n", " "),
        "",
        "| words x bits | port | read data | cycles | differences (NOREG) | registers moved | "
        "differences (OUTREG) | not moved because |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['depth']} x {r['width']} | {'RAM' if r['write'] else 'ROM'} "
            f"| {'register' if r['reg'] else 'direct'} | {r['cycles']} | {r['noreg']} "
            f"| {r['moved']} | {r['outreg']} | {r['skipped']} |"
        )
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["noreg"] == 0 and r["outreg"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
