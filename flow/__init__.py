"""The flow as steps over a compiled-design directory: compile (map + Verilog + reports), simulate
(cocotb or the fast path), the demo, and sweeps over models, boards and budgets.

:class:`CompiledDesign` names the directory's files and :class:`CompiledReport` types its
``report.json``; no other module spells those names.
"""

from .compiled import CompiledDesign, CompiledReport, write_json
from .steps import (
    compile_model,
    compile_zoo,
    load_compiled,
    run_demo,
    simulate_compiled,
    verify_compiled_fast,
    zoo_schedule,
)

__all__ = [
    "CompiledDesign",
    "CompiledReport",
    "compile_model",
    "compile_zoo",
    "zoo_schedule",
    "load_compiled",
    "simulate_compiled",
    "verify_compiled_fast",
    "run_demo",
    "write_json",
]
