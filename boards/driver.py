"""The PYNQ driver that ``lowbit build`` writes into ``OUT/driver/`` for a Zynq board.

The driver is the module :mod:`lowbit.boards._driver_template` with the accelerator's stream format,
AXI widths and control-register map filled in (one JSON constant): it needs only ``numpy`` and
``pynq`` on the board, packs and unpacks tensors exactly as the schedule folds them, and runs
against the simulated shell of :mod:`lowbit.boards.simbackend` unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..hw.codec import label_bits
from .control import ID_VALUE, REGISTERS

__all__ = ["driver_config", "driver_files"]


def driver_config(stream_format: dict, axis: dict, *, clock_mhz: float, predicted_cycles: int,
                  input_range: tuple[int, int]) -> dict:
    """The driver's constants: ``stream_format`` from the compile report, ``axis`` from the plan."""
    return {
        "input_size": stream_format["input_size"], "simd": stream_format["simd"],
        "in_bits": stream_format["in_bits"], "classes": stream_format["classes"],
        "score_bits": stream_format["score_bits"], "label_bits": label_bits(stream_format["classes"]),
        "input_min": input_range[0], "input_max": input_range[1],
        "in_tdata_bits": axis["in_tdata_bits"], "out_tdata_bits": axis["out_tdata_bits"],
        "registers": REGISTERS, "id": ID_VALUE, "clock_mhz": clock_mhz,
        "predicted_cycles_per_image": predicted_cycles,
    }


def driver_files(config: dict) -> dict[str, str]:
    """``{"driver/lowbit_driver.py": ..., "driver/__init__.py": ...}`` for ``config``."""
    template = Path(__file__).with_name("_driver_template.py").read_text()
    if '"""@CONFIG@"""' not in template:
        raise RuntimeError("the driver template lost its @CONFIG@ placeholder")
    source = template.replace('"""@CONFIG@"""', repr(json.dumps(config, sort_keys=True)))
    return {"driver/lowbit_driver.py": source,
            "driver/__init__.py": '"""lowbit PYNQ driver package."""\nfrom .lowbit_driver import LowbitAccelerator, '
                                  'pack_images, unpack_results  # noqa: F401\n'}
