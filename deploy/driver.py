"""The PYNQ driver that ``lowbit build`` writes into ``OUT/driver/`` for a Zynq board.

The driver is the module :mod:`lowbit.deploy._driver_template` with the accelerator's stream format,
AXI widths and control-register map filled in (one JSON constant): it needs only ``numpy`` and
``pynq`` on the board, packs and unpacks tensors exactly as the schedule folds them, encodes float
images with the graph's input quantizer exactly as :meth:`lowbit.ir.boundary.InputQuant.encode`
does, and runs against the simulated shell of :mod:`lowbit.deploy.simbackend` unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..hw.axi.control import ID_VALUE, REGISTERS
from ..hw.codec import label_bits
from ..ir.datatypes import DataType

__all__ = ["driver_config", "driver_files"]


def driver_config(
    stream_format: dict,
    axis: dict,
    *,
    clock_mhz: float,
    predicted_cycles: int,
    input_dtype: DataType,
    input_quant: dict | None = None,
    class_map: dict | None = None,
    weight_ports: Sequence[dict] = (),
) -> dict:
    """The driver's constants: ``stream_format`` from the compile report, ``axis`` and
    ``weight_ports`` (the layers whose weights stream from DDR) from the plan's summary, the
    graph's ``input_dtype`` and its input quantizer (``InputQuant.to_json()``, or ``None`` when
    the driver takes integer codes only) and the last layer's class map (``ClassMap.to_json()``,
    or ``None``: the integer scores decide as they are)."""
    lo, hi = input_dtype.stored_range
    return {
        "input_size": stream_format["input_size"],
        "simd": stream_format["simd"],
        "in_bits": stream_format["in_bits"],
        "classes": stream_format["classes"],
        "score_bits": stream_format["score_bits"],
        "label_bits": label_bits(stream_format["classes"]),
        "input_dtype": input_dtype.name,
        "input_min": lo,
        "input_max": hi,
        "input_quant": input_quant,
        "class_map": class_map,
        "in_tdata_bits": axis["in_tdata_bits"],
        "out_tdata_bits": axis["out_tdata_bits"],
        "registers": REGISTERS,
        "id": ID_VALUE,
        "clock_mhz": clock_mhz,
        "predicted_cycles_per_image": predicted_cycles,
        "weight_ports": [
            {
                "index": p["index"],
                "file": weight_file(p["index"]),
                "align": 16 * p["data_bits"] // 8,
            }
            for p in weight_ports
        ],
    }


def weight_file(index: int) -> str:
    """Name (in the driver's directory) of weight port ``index``'s DDR image."""
    return f"weights_w{index}.bin"


def driver_files(config: dict, images: Sequence[bytes] = ()) -> dict[str, str | bytes]:
    """``{"driver/lowbit_driver.py": ..., "driver/__init__.py": ...}`` for ``config``, plus the DDR
    image of each weight port (``images[k]`` for port ``k``) as ``driver/weights_w<k>.bin``."""
    if len(images) != len(config["weight_ports"]):
        raise ValueError(
            f"images must hold one DDR image per weight port ({len(config['weight_ports'])}), "
            f"not {len(images)}"
        )
    template = Path(__file__).with_name("_driver_template.py").read_text()
    if '"""@CONFIG@"""' not in template:
        raise RuntimeError("the driver template lost its @CONFIG@ placeholder")
    source = template.replace('"""@CONFIG@"""', repr(json.dumps(config, sort_keys=True)))
    files = {
        f"driver/{p['file']}": bytes(image) for p, image in zip(config["weight_ports"], images)
    }
    return {
        **files,
        "driver/lowbit_driver.py": source,
        "driver/__init__.py": '"""lowbit PYNQ driver package."""\n'
        "from .lowbit_driver import LowbitAccelerator, encode_images, pack_images, unpack_results"
        "  # noqa: F401\n",
    }
