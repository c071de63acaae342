"""AXI infrastructure: AXI4-Lite slave, control block, DDR weight fetcher and the DDR stream
model."""
