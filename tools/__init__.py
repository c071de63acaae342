"""Every external tool lowbit runs, behind one wrapper each: simulators (Verilator and Icarus
discovery, the cocotb runner), yosys (FPGA synthesis and the CMOS gate-level area)."""
