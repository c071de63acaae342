"""The matrix-vector-threshold unit: its spec (no Amaranth), the component and the MAC arrays."""
