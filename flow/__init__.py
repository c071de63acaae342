"""The flow as steps over a compiled-design directory: compile (map + Verilog + reports), simulate
(cocotb or the fast path), the demo, and sweeps over models, boards and budgets."""

from .steps import (compile_model, compile_zoo, load_compiled, run_demo, simulate_compiled,
                    verify_compiled_fast, write_json, zoo_schedule)

__all__ = ["compile_model", "compile_zoo", "zoo_schedule", "load_compiled", "simulate_compiled",
           "verify_compiled_fast", "run_demo", "write_json"]
