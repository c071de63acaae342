"""Hardware: one frozen spec per engine (no Amaranth: the mapper reads its cost cheaply) and the
Amaranth component its ``create()`` returns; the stitched accelerator and its Verilog.

Subpackages: :mod:`.mvtu` (matrix-vector-threshold unit), :mod:`.sparse` (EIE-style engine),
:mod:`.stream` (dataflow blocks), :mod:`.axi` (AXI and DDR infrastructure); :mod:`.top` stitches the
accelerator, :mod:`.codec` lays out its ports, :mod:`.verilog` writes and lints Verilog,
:mod:`.cost` holds the resource model.

The names below are imported on first use, so importing a spec does not import Amaranth.
"""

import importlib

_PUBLIC = {
    "MVTUSpec": ".mvtu.spec",
    "SparseEngineSpec": ".sparse.engine_spec",
    "SparseLayerSpec": ".sparse.layer_spec",
    "SWGSpec": ".stream.swg",
    "MaxPoolSpec": ".stream.pool",
    "AccPoolSpec": ".stream.pool",
    "FIFOSpec": ".stream.fifo",
    "ThresholdSpec": ".stream.threshold",
    "StreamWidthConverter": ".stream.dwc",
    "LabelSelect": ".stream.label",
    "Accelerator": ".top",
    "stream_format": ".top",
    "StreamFormat": ".codec",
    "TOPLEVEL": ".verilog",
    "to_verilog": ".verilog",
    "write_verilog": ".verilog",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
