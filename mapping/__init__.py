"""Mapping: choose how each layer is folded onto the hardware, and keep that choice as a schedule."""

from .folding import DEFAULT_BUDGET, search_folding
from .schedule import (SCHEDULE_FORMAT, SCHEDULE_VERSION, LayerFolding, Schedule, input_stream_cycles,
                       layer_cycles, output_stream_cycles, pipeline_cycles, pipeline_resources)

__all__ = [
    "search_folding", "DEFAULT_BUDGET", "LayerFolding", "Schedule", "SCHEDULE_FORMAT", "SCHEDULE_VERSION",
    "input_stream_cycles", "output_stream_cycles", "layer_cycles", "pipeline_cycles", "pipeline_resources",
]
