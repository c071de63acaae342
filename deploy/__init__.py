"""From a compiled design to files for a board: the build (open-flow bitstream or Vivado plan), the
plan's dry run, the PYNQ driver, the simulated overlay and flashing."""
