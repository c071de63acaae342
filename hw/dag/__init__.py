"""Blocks beyond a chain (issue 19): the depthwise engine, the stream fork and the adder/joiner of
residual blocks. Each module pair is a spec (no Amaranth) and its component."""
