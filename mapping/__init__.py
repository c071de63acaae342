"""Mapping: choose how each layer is folded onto the hardware, and keep that choice as a
schedule."""

from .dataflow_model import (
    Buffering,
    Fifo,
    PipelineTiming,
    Stage,
    bnn_pynq_lfc_w1a1,
    min_fifo_depths,
    simulate_pipeline,
)
from .folding import DEFAULT_BUDGET, search_folding
from .placement import placement_reasons
from .schedule import (
    ENGINES,
    SCHEDULE_FORMAT,
    SCHEDULE_VERSION,
    LayerFolding,
    Schedule,
    input_stream_cycles,
    layer_cycles,
    output_stream_cycles,
    pipeline_cycles,
    pipeline_resources,
)

__all__ = [
    "search_folding",
    "DEFAULT_BUDGET",
    "LayerFolding",
    "Schedule",
    "SCHEDULE_FORMAT",
    "SCHEDULE_VERSION",
    "ENGINES",
    "input_stream_cycles",
    "output_stream_cycles",
    "layer_cycles",
    "pipeline_cycles",
    "pipeline_resources",
    "placement_reasons",
    "Buffering",
    "Stage",
    "Fifo",
    "PipelineTiming",
    "simulate_pipeline",
    "min_fifo_depths",
    "bnn_pynq_lfc_w1a1",
]
