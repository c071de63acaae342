"""A behavioural model of the ECP5 block RAM ``DP16KD`` for the gate-level check (issue 21).

yosys's ``cells_sim.v`` declares ``DP16KD`` without behaviour, so until now an ECP5 netlist was
simulated with ``-nobram`` (memories in LUT RAM and logic). This model gives the block the
behaviour its documentation and yosys's memory mapping (``brams_map_16kd.v``) assume, in the
configurations ``synth_ecp5`` produces for lowbit's memories, so that the netlist the open flow
places (block RAM, and its output registers after :mod:`lowbit.tools.bram_outreg`) is what the
gate-level check simulates:

* the contents are 1,024 units of 18 bits, unit ``16 k + i`` of ``INITVAL_k`` at bits
  ``20 i .. 20 i + 17`` (``init_slice`` of ``brams_map_16kd.v``);
* port widths 18 (address ``AD[13:4]``, one unit; writes under the byte enables ``AD[1:0]``) and 9
  (address ``AD[13:3]``, the low or high 9 bits of a unit), and the pseudo-dual-port 36-bit mode
  (``DATA_WIDTH_A`` 36): port A writes the word ``{DIB, DIA}`` at ``ADA[13:5]`` under the byte
  enables ``ADA[3:0]`` and ``CEA``, port B reads ``{DOB, DOA}`` (units ``2a + 1`` and ``2a``) at
  ``ADB[13:5]`` under ``CEB``, wholly in ``CLKB``'s domain (as nextpnr times it);
* a read happens at the clock edge when the port's ``CE`` is high, its chip selects match
  ``CSDECODE``, and it does not write (``WRITEMODE`` ``NORMAL``: a writing port's output holds);
* ``REGMODE`` ``NOREG`` shows the read data at once; ``OUTREG`` through the output register,
  loaded from them at the next edge when ``OCE`` is high (port B's ``OCEB`` for the whole 36-bit
  word);
* each port's ``CE``, ``OCE``, ``WE`` and ``RST`` inverted by its ``MUX`` parameter ``"INV"`` (the
  output-register move sets ``OCExMUX``);
* ``RST`` clears the read data and the output register at a clock edge (synchronous only: yosys
  ties it low for lowbit's memories, and asynchronous reset is not modelled).

Other widths (1, 2, 4) and chip-select decodes other than ``0b000`` stop the simulation with a
message rather than be simulated wrongly. It is lowbit's reading of the primitive, not Lattice's
model: ``tests/test_gate_level_bram.py`` checks it against the RTL through whole accelerators.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["dp16kd_model", "ecp5_models_with_bram"]


def _pins(s: str) -> list[tuple[str, str]]:
    """``(direction, name)`` of port ``s``'s pins (``"A"`` or ``"B"``), in the primitive's order."""
    return (
        [("input", f"DI{s}{i}") for i in range(18)]
        + [("input", f"AD{s}{i}") for i in range(14)]
        + [("input", f"{p}{s}") for p in ("CE", "OCE", "CLK", "WE", "RST")]
        + [("input", f"CS{s}{i}") for i in range(3)]
        + [("output", f"DO{s}{i}") for i in range(18)]
    )


def _ports() -> list[str]:
    return [f"{d} {n}" for s in "AB" for d, n in _pins(s)]


def _params() -> list[str]:
    p = [
        'DATA_WIDTH_A = 18', 'DATA_WIDTH_B = 18', 'REGMODE_A = "NOREG"', 'REGMODE_B = "NOREG"',
        'RESETMODE = "SYNC"', 'ASYNC_RESET_RELEASE = "SYNC"', 'CSDECODE_A = "0b000"',
        'CSDECODE_B = "0b000"', 'WRITEMODE_A = "NORMAL"', 'WRITEMODE_B = "NORMAL"',
        'GSR = "ENABLED"', "WID = 0",
    ]  # fmt: skip
    p += [f'{n}MUX = "{n}"' for s in "AB" for _, n in _pins(s)]  # every pin's inversion mux
    p += [f"INITVAL_{k:02X} = 320'h0" for k in range(64)]
    return p


def _bus(name: str, n: int) -> str:
    return "{" + ", ".join(f"{name}{i}" for i in reversed(range(n))) + "}"


def dp16kd_model() -> str:
    """The Verilog text of the model (module ``DP16KD``, the primitive's ports and parameters)."""
    init = "\n".join(
        f"        mem[{16 * k + i}] = INITVAL_{k:02X}[{20 * i + 17}:{20 * i}];"
        for k in range(64)
        for i in range(16)
    )
    lines = [
        "// lowbit's behavioural model of the ECP5 DP16KD (lowbit.sim.dp16kd_model)",
        "module DP16KD (",
        ",\n".join(f"    {p}" for p in _ports()),
        ");",
        *(f"    parameter {p};" for p in _params()),
        "    reg [17:0] mem [0:1023];",
        "    initial begin",
        init,
        "    end",
        "    wire pdp = DATA_WIDTH_A == 36;",
        f"    wire [17:0] dia = {_bus('DIA', 18)}, dib = {_bus('DIB', 18)};",
        f"    wire [13:0] ada = {_bus('ADA', 14)}, adb = {_bus('ADB', 14)};",
        '    wire clka = CLKA ^ (CLKAMUX == "INV"), clkb = CLKB ^ (CLKBMUX == "INV");',
        "    wire csa = ~CSA0 & ~CSA1 & ~CSA2, csb = ~CSB0 & ~CSB1 & ~CSB2;",
        *(
            f'    wire {n.lower()}{s.lower()} = {n}{s} ^ ({n}{s}MUX == "INV");'
            for n in ("CE", "OCE", "WE", "RST")
            for s in "AB"
        ),
        "    reg [17:0] lat_a = 0, lat_b = 0, out_a = 0, out_b = 0;",
        "    initial begin",
        '        if (CSDECODE_A != "0b000" || CSDECODE_B != "0b000") begin',
        '            $display("DP16KD model: chip-select decode %s/%s not modelled", '
        "CSDECODE_A, CSDECODE_B);",
        "            $finish;",
        "        end",
        "        if (!(DATA_WIDTH_A == 36 ? DATA_WIDTH_B == 36 : "
        "(DATA_WIDTH_A == 9 || DATA_WIDTH_A == 18) && (DATA_WIDTH_B == 9 || DATA_WIDTH_B == 18)))"
        " begin",
        '            $display("DP16KD model: widths %0d/%0d not modelled", DATA_WIDTH_A, '
        "DATA_WIDTH_B);",
        "            $finish;",
        "        end",
        "    end",
        _port_logic("A"),
        _port_logic("B"),
        "    // pseudo dual port: port A writes the 36-bit word, port B reads it (CLKB's domain)",
        "    always @(posedge clka) begin",
        "        if (pdp && cea && csa) begin",
        "            if (ada[0]) mem[{ada[13:5], 1'b0}][8:0] <= dia[8:0];",
        "            if (ada[1]) mem[{ada[13:5], 1'b0}][17:9] <= dia[17:9];",
        "            if (ada[2]) mem[{ada[13:5], 1'b1}][8:0] <= dib[8:0];",
        "            if (ada[3]) mem[{ada[13:5], 1'b1}][17:9] <= dib[17:9];",
        "        end",
        "    end",
        "    reg [17:0] plo = 0, phi = 0, pout_lo = 0, pout_hi = 0;",
        "    always @(posedge clkb) begin",
        "        if (pdp) begin",
        "            if (rstb) begin plo <= 0; phi <= 0; end",
        "            else if (ceb && csb) begin",
        "                plo <= mem[{adb[13:5], 1'b0}];",
        "                phi <= mem[{adb[13:5], 1'b1}];",
        "            end",
        "            if (rstb) begin pout_lo <= 0; pout_hi <= 0; end",
        "            else if (oceb) begin pout_lo <= plo; pout_hi <= phi; end",
        "        end",
        "    end",
        '    wire [17:0] doa = pdp ? (REGMODE_B == "OUTREG" ? pout_lo : plo)',
        '        : (REGMODE_A == "OUTREG" ? out_a : lat_a);',
        '    wire [17:0] dob = pdp ? (REGMODE_B == "OUTREG" ? pout_hi : phi)',
        '        : (REGMODE_B == "OUTREG" ? out_b : lat_b);',
        f"    assign {_bus('DOA', 18)} = doa;",
        f"    assign {_bus('DOB', 18)} = dob;",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def _port_logic(s: str) -> str:
    """One port of the true dual-port modes (widths 9 and 18)."""
    lo = s.lower()
    return f"""    // port {s}, widths 9 and 18
    wire [9:0] unit_{lo} = ad{lo}[13:4];  // x9: ad[3] picks the half
    wire half_{lo} = ad{lo}[3];
    always @(posedge clk{lo}) begin
        if (!pdp) begin
            if (rst{lo}) lat_{lo} <= 0;
            else if (ce{lo} && cs{lo}) begin
                if (we{lo}) begin
                    if (DATA_WIDTH_{s} == 18) begin
                        if (ad{lo}[0]) mem[unit_{lo}][8:0] <= di{lo}[8:0];
                        if (ad{lo}[1]) mem[unit_{lo}][17:9] <= di{lo}[17:9];
                    end else if (half_{lo}) mem[unit_{lo}][17:9] <= di{lo}[8:0];
                    else mem[unit_{lo}][8:0] <= di{lo}[8:0];
                end else if (DATA_WIDTH_{s} == 18) lat_{lo} <= mem[unit_{lo}];
                else lat_{lo} <= {{9'b0, half_{lo} ? mem[unit_{lo}][17:9] : mem[unit_{lo}][8:0]}};
            end
            if (rst{lo}) out_{lo} <= 0;
            else if (oce{lo}) out_{lo} <= lat_{lo};
        end
    end
"""


_BLACKBOX = re.compile(r"\(\* blackbox \*\)\s*module DP16KD\(.*?endmodule\s*", re.S)


def ecp5_models_with_bram(cells_sim: Path, out: Path) -> Path:
    """yosys's ECP5 ``cells_sim.v`` (``cells_sim``) with its ``DP16KD`` black box replaced by
    :func:`dp16kd_model`, written to ``out`` (compile it with ``cells_sim``'s directory on the
    include path)."""
    text = cells_sim.read_text()
    stripped, n = _BLACKBOX.subn("", text, count=1)
    if n != 1:
        raise RuntimeError(f"{cells_sim}: no DP16KD black box to replace")
    out.write_text(stripped + "\n" + dp16kd_model())
    return out
