"""The fuzzer of issue 17: malformed inputs for every command-line entry, and the property each
refusal must have.

A *case* is a command line (``lowbit import``, ``map``, ``export``, ``compile --schedule``,
``flash``, or numbers typed on a flag) and the files it reads, made by mutating a valid seed
(an ONNX model, a lowbit model file, a schedule, a build directory) with Hypothesis draws:
truncation, bit flips, field swaps, extreme and non-finite values, wrong types, deep nesting,
paths that escape their directory. :func:`run_case` runs the command in a forked child under a
memory limit and a time limit and checks:

* exit status 0, or 2 with at most three lines on stderr and no traceback;
* a refusal names something the user gave (a file, a flag, a node or a field);
* nothing is left at the output path after a refusal;
* no hang (the time limit) and no unbounded allocation (the child's address-space limit and its
  peak resident memory);
* an input known to be invalid (``must_refuse``) is refused, not accepted.

``tests/test_fuzz.py`` runs a bounded profile in ``make test``; ``benchmarks/fuzz.py`` the long
one. Shared here so both use the same seeds, mutations and property.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

__all__ = ["Case", "Outcome", "Seeds", "make_seeds", "cases", "run_case", "TARGETS"]

MEMORY_LIMIT = 3 << 30
"""Bytes a case may add to the child's data segment (beyond the parent's) before it fails."""
RSS_LIMIT = 2 << 30
"""Peak resident bytes of a case's child above which the case counts as an unbounded
allocation."""

EXTREME_INTS = [0, -1, 1, 2, 3, 7, 33, 64, 255, 1 << 31, 1 << 40, -(1 << 40), 1 << 62]
EXTREME_FLOATS = [0.0, -1.0, 0.5, 1e-30, 1e30, 1e12, float("nan"), float("inf"), -float("inf")]
WRONG_TYPES = ["", "x", None, [], {}, [1, 2], {"a": 1}, True, "../../etc/passwd"]


@dataclass(frozen=True)
class Case:
    """One command line and the files (relative to the case's directory) it needs."""

    target: str
    mutation: str
    argv: tuple[str, ...]
    files: tuple[tuple[str, bytes], ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    """Symbolic links to create: (name, target)."""
    output: str | None = None
    """The output path, which must not exist after a refusal."""
    must_refuse: bool = False


@dataclass
class Outcome:
    status: int | None
    stderr: str
    seconds: float
    peak_rss: int
    problems: list[str] = field(default_factory=list)


# -- seeds -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeds:
    onnx: bytes
    graph: bytes
    schedule: bytes
    manifest: dict
    bitstream: bytes
    compiled: tuple[tuple[str, bytes], ...]
    """The files of a ``lowbit compile`` output directory of the model."""


def make_seeds(workdir: Path) -> Seeds:
    """Valid inputs: a small QONNX MLP, the lowbit model it imports to, a schedule for it and a
    (fake, flashable) pynq-z2 build."""
    sys.path.insert(0, str(Path(__file__).parent))
    import onnx_models

    from lowbit.mapping import search_folding
    from lowbit.quant.onnx.importer import import_onnx

    model = onnx_models.qonnx_mlp(np.random.default_rng(0), sizes=(8, 6, 4))
    onnx_bytes = model.SerializeToString()
    p = workdir / "seed.onnx"
    p.write_bytes(onnx_bytes)
    graph = import_onnx(p).graph
    gp = graph.save(workdir / "seed.npz")
    sched = search_folding(graph, "pynq-z2", budget=0.05).to_json().encode()
    from test_build_flash import handmade_bit

    from lowbit.flow import compile_model

    out = workdir / "compiled"
    compile_model(graph, out, board="pynq-z2", budget=0.05)
    compiled = tuple(
        (str(Path("c") / f.relative_to(out)), f.read_bytes())
        for f in sorted(out.rglob("*")) if f.is_file()
    )

    return Seeds(
        onnx=onnx_bytes,
        graph=gp.read_bytes(),
        schedule=sched,
        manifest={"board": "pynq-z2", "part": "xc7z020clg400-1", "flow": "vivado",
                  "bitstream": "lowbit.bit"},
        bitstream=handmade_bit("7z020clg400", bytes(range(16))),
        compiled=compiled,
    )


# -- byte-level mutations --------------------------------------------------------------------------


def _bytes_mutation(draw, data: bytes) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["truncate", "flip", "zero-run", "empty"]))
    if kind == "empty" or not data:
        return "empty", b""
    if kind == "truncate":
        return kind, data[: draw(st.integers(0, len(data) - 1))]
    buf = bytearray(data)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
        return kind, bytes(buf)
    i = draw(st.integers(0, len(buf) - 1))
    n = draw(st.integers(1, 64))
    buf[i : i + n] = bytes(len(buf[i : i + n]))
    return kind, bytes(buf)


def _value(draw):
    return draw(st.sampled_from(EXTREME_INTS + EXTREME_FLOATS + WRONG_TYPES))


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- ONNX ------------------------------------------------------------------------------------------


def _onnx_case(draw, seeds: Seeds) -> Case:
    import onnx
    from onnx import TensorProto, numpy_helper

    m = onnx.ModelProto()
    m.ParseFromString(seeds.onnx)
    g = m.graph
    kind = draw(st.sampled_from([
        "bytes", "drop-input", "swap-inputs", "attr-value", "attr-drop", "init-dims",
        "init-truncate", "init-dtype", "dup-output", "op-type", "quant-bits", "external-data",
        "input-dims", "drop-node",
    ]))
    must = False
    files: list[tuple[str, bytes]] = []
    if kind == "bytes":
        kind, raw = _bytes_mutation(draw, seeds.onnx)
        kind = "onnx-" + kind
        must = kind == "onnx-empty"
        return Case("import", kind, ("import", "m.onnx", "-o", "out.npz"), (("m.onnx", raw),),
                    output="out.npz", must_refuse=must)
    nodes = list(g.node)
    node = nodes[draw(st.integers(0, len(nodes) - 1))]
    inits = list(g.initializer)
    if kind == "drop-input" and node.input:
        del node.input[draw(st.integers(0, len(node.input) - 1))]
    elif kind == "swap-inputs" and len(node.input) > 1:
        i = draw(st.integers(0, len(node.input) - 1))
        j = draw(st.integers(0, len(node.input) - 1))
        node.input[i], node.input[j] = node.input[j], node.input[i]
    elif kind == "attr-value" and node.attribute:
        a = node.attribute[draw(st.integers(0, len(node.attribute) - 1))]
        v = _value(draw)
        a.ClearField("i"), a.ClearField("f"), a.ClearField("s"), a.ClearField("ints")
        if isinstance(v, bool) or v is None or isinstance(v, (list, dict)):
            a.type, a.ints[:] = onnx.AttributeProto.INTS, [1, 2, 3]
        elif isinstance(v, int):
            a.type, a.i = onnx.AttributeProto.INT, max(min(v, (1 << 63) - 1), -(1 << 63))
        elif isinstance(v, float):
            a.type, a.f = onnx.AttributeProto.FLOAT, v
        else:
            a.type, a.s = onnx.AttributeProto.STRING, v.encode()
    elif kind == "attr-drop" and node.attribute:
        del node.attribute[draw(st.integers(0, len(node.attribute) - 1))]
    elif kind in ("init-dims", "init-truncate", "init-dtype", "quant-bits", "external-data"):
        if kind == "quant-bits":
            q = [n for n in nodes if n.op_type == "Quant"]
            if not q:
                kind = "init-dims"
            else:
                name = q[draw(st.integers(0, len(q) - 1))].input[3]
                t = next(t for t in inits if t.name == name)
                bits = draw(st.sampled_from([0.0, -1.0, 24.0, 33.0, 64.0, 2.5, float("nan")]))
                t.CopyFrom(numpy_helper.from_array(np.array(bits, np.float32), name))
                must = bits in (33.0, 64.0, 0.0, -1.0, 2.5) or bits != bits
        if kind != "quant-bits":
            t = inits[draw(st.integers(0, len(inits) - 1))]
            if kind == "init-dims" and t.dims:
                t.dims[draw(st.integers(0, len(t.dims) - 1))] = draw(
                    st.sampled_from([0, 1, 2, 1 << 20, 1 << 40, (1 << 62)]))
            elif kind == "init-truncate":
                arr = numpy_helper.to_array(t)
                t.ClearField("float_data"), t.ClearField("int64_data"), t.ClearField("int32_data")
                t.raw_data = arr.tobytes()[: max(0, arr.nbytes - draw(st.integers(1, 16)))]
                must = True
            elif kind == "init-dtype":
                t.data_type = draw(st.sampled_from([0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 16, 99]))
            elif kind == "external-data":
                where = draw(st.sampled_from(
                    ["../outside.bin", "/etc/hostname", "missing.bin", "link.bin", "beside.bin"]))
                offset = draw(st.sampled_from([0, 4, 1 << 40]))
                arr = numpy_helper.to_array(t)
                t.ClearField("float_data"), t.ClearField("raw_data")
                t.data_location = TensorProto.EXTERNAL
                del t.external_data[:]
                for k, v in (("location", where), ("offset", str(offset)),
                             ("length", str(arr.nbytes))):
                    e = t.external_data.add()
                    e.key, e.value = k, v
                files.append(("beside.bin", bytes(offset) + arr.tobytes() if offset < 64
                              else arr.tobytes()))
                kind = f"external-data:{where}"
                must = where != "beside.bin" or offset == 1 << 40
    elif kind == "dup-output" and len(nodes) > 1:
        other = nodes[draw(st.integers(0, len(nodes) - 1))]
        if other is not node and other.output and node.output:
            node.output[0] = other.output[0]
            must = True
    elif kind == "op-type":
        node.op_type = draw(st.sampled_from(
            ["Quant", "MatMul", "Gemm", "Conv", "MaxPool", "Relu", "Foo", "", "Loop"]))
    elif kind == "input-dims":
        dims = g.input[0].type.tensor_type.shape.dim
        if dims:
            dims[draw(st.integers(0, len(dims) - 1))].dim_value = draw(
                st.sampled_from([0, 3, 1 << 40]))
    elif kind == "drop-node":
        del g.node[draw(st.integers(0, len(nodes) - 1))]
    links: tuple[tuple[str, str], ...] = ()
    if kind == "external-data:link.bin":
        links = (("link.bin", "/etc/hostname"),)
    return Case("import", kind, ("import", "m.onnx", "-o", "out.npz"),
                (("m.onnx", m.SerializeToString()), *files), links, "out.npz", must)


# -- lowbit model files ----------------------------------------------------------------------------


def _npz_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _npz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for n, b in members.items():
            z.writestr(n, b)
    return buf.getvalue()


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _lying_npy(shape: tuple[int, ...], dtype: str = "<i8") -> bytes:
    """An .npy header declaring ``shape`` followed by a few bytes (a size field that lies)."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    pad = 64 - (10 + len(header) + 1) % 64
    header += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(16)


def _graph_case(draw, seeds: Seeds) -> Case:
    members = _npz_members(seeds.graph)
    header = json.loads(np.load(io.BytesIO(members["header.npy"])).tobytes())
    kind = draw(st.sampled_from(["bytes", "header-field", "node-field", "nesting", "array",
                                 "lying-size", "pickle", "bomb"]))
    must = kind in ("nesting", "lying-size", "pickle", "bomb")
    if kind == "bytes":
        kind, raw = _bytes_mutation(draw, seeds.graph)
        kind = "npz-" + kind
        must = kind in ("npz-truncate", "npz-empty")
    else:
        if kind == "header-field":
            key = draw(st.sampled_from(["nodes", "input_dtype", "input_shape", "version",
                                        "format", "input_quant"]))
            header[key] = _value(draw)
            kind = f"header.{key}"
            text = json.dumps(header, allow_nan=True)
        elif kind == "node-field":
            nodes = header["nodes"]
            n = nodes[draw(st.integers(0, len(nodes) - 1))]
            key = draw(st.sampled_from(sorted(n) + ["op"]))
            n[key] = draw(st.sampled_from(
                EXTREME_INTS + ["INT33", "UINT64", "BIPOLAR", "FOO", "Threshold", None, []]))
            kind = f"node.{key}"
            text = json.dumps(header, allow_nan=True)
        elif kind == "nesting":
            text = json.dumps(header)[:-1] + ', "deep": ' + _nested(draw(st.sampled_from(
                [40, 1000, 100_000]))) + "}"
        else:
            text = json.dumps(header)
        members["header.npy"] = _npy(np.frombuffer(text.encode(), dtype=np.uint8))
        names = [n for n in members if n != "header.npy"]
        target = names[draw(st.integers(0, len(names) - 1))]
        if kind == "array":
            a = np.load(io.BytesIO(members[target]))
            choice = draw(st.sampled_from(["float", "shape", "range", "empty"]))
            members[target] = _npy({
                "float": a.astype(np.float64) + 0.5,
                "shape": a.reshape(-1),
                "range": a * (1 << 40),
                "empty": np.zeros((0,), np.int64),
            }[choice])
            kind = f"array-{choice}"
        elif kind == "lying-size":
            members[target] = _lying_npy(draw(st.sampled_from(
                [(1 << 40,), (1 << 20, 1 << 20), (1 << 62,)])))
        elif kind == "pickle":
            members[target] = _npy_pickle()
        elif kind == "bomb":
            return Case("map", kind, ("map", "m.npz"), (("m.npz", _bomb(members, target)),),
                        must_refuse=True)
        raw = _npz(members)
    entry = draw(st.sampled_from(["map", "export"]))
    if entry == "export":
        return Case("export", kind, ("export", "m.npz", "-o", "out.onnx"), (("m.npz", raw),),
                    output="out.onnx", must_refuse=must)
    return Case("map", kind, ("map", "m.npz"), (("m.npz", raw),), must_refuse=must)


def _npy_pickle() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buf.getvalue()


_BOMB: bytes | None = None


def _bomb(members: dict[str, bytes], target: str) -> bytes:
    """A model file whose member ``target`` inflates to 528 MiB of zeros (about 0.5 MiB on disk)."""
    global _BOMB
    if _BOMB is None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for n, b in members.items():
                if n != target:
                    z.writestr(n, b)
            head = _lying_npy((1 << 27,))[:-16]
            with z.open(target, "w", force_zip64=True) as f:
                f.write(head)
                chunk = bytes(1 << 24)
                for _ in range(33):  # 528 MiB: just over LIMITS.member_bytes
                    f.write(chunk)
        _BOMB = buf.getvalue()
    return _BOMB


# -- schedules -------------------------------------------------------------------------------------


def _schedule_case(draw, seeds: Seeds) -> Case:
    doc = json.loads(seeds.schedule)
    kind = draw(st.sampled_from(["bytes", "field", "layer-field", "layers", "nesting"]))
    must = kind == "nesting"
    if kind == "bytes":
        kind, raw = _bytes_mutation(draw, seeds.schedule)
        kind = "schedule-" + kind
        must = kind == "schedule-empty"
    else:
        if kind == "field":
            key = draw(st.sampled_from(["board", "clock_mhz", "version", "format", "layers"]))
            doc[key] = _value(draw)
            kind = f"schedule.{key}"
        elif kind == "layer-field":
            layer = doc["layers"][draw(st.integers(0, len(doc["layers"]) - 1))]
            key = draw(st.sampled_from(["pe", "simd", "engine", "name", "depth", "act_density",
                                        "weights"]))
            layer[key] = _value(draw)
            kind = f"layer.{key}"
        elif kind == "layers":
            how = draw(st.sampled_from(["drop", "duplicate", "reverse"]))
            doc["layers"] = {"drop": doc["layers"][:-1], "duplicate": doc["layers"] * 2,
                             "reverse": doc["layers"][::-1]}[how]
            kind = f"layers-{how}"
            must = True
        raw = json.dumps(doc, allow_nan=True).encode()
        if kind == "nesting":
            raw = raw[:-1] + b', "deep": ' + _nested(100_000).encode() + b"}"
    return Case("compile", kind,
                ("compile", "m.npz", "--schedule", "s.json", "-o", "out"),
                (("m.npz", seeds.graph), ("s.json", raw)), output="out", must_refuse=must)


# -- build manifests -------------------------------------------------------------------------------


def _manifest_case(draw, seeds: Seeds) -> Case:
    doc = dict(seeds.manifest)
    kind = draw(st.sampled_from(["bitstream-path", "field", "type", "bytes", "board"]))
    must = False
    links: tuple[tuple[str, str], ...] = ()
    board = "pynq-z2"
    if kind == "bitstream-path":
        where = draw(st.sampled_from(
            ["../outside.bit", "/etc/hostname", "link.bit", "sub/../lowbit.bit", "", "missing.bit"]
        ))
        doc["bitstream"] = where
        if where == "link.bit":
            links = (("b/link.bit", "/etc/hostname"),)
        # a Vivado build whose bitstream is not built yet is previewed (the dry run shows the
        # plan, exit 0); flashing it (--yes) is refused
        must = where not in ("sub/../lowbit.bit", "missing.bit")
        kind = f"bitstream:{where}"
        raw = json.dumps(doc).encode()
    elif kind == "field":
        key = draw(st.sampled_from(["board", "part", "flow", "bitstream"]))
        doc[key] = _value(draw)
        kind = f"manifest.{key}"
        raw = json.dumps(doc, allow_nan=True).encode()
    elif kind == "type":
        raw = draw(st.sampled_from([b"[]", b'"x"', b"5", b"null", _nested(100_000).encode()]))
        must = True
    elif kind == "board":
        board = draw(st.sampled_from(["ultra96-v2", "zedboard", "ulx3s-85f"]))
        kind = f"board:{board}"
        raw = json.dumps(doc).encode()
        must = True
    else:
        kind, raw = _bytes_mutation(draw, json.dumps(doc).encode())
        kind = "manifest-" + kind
    return Case("flash", kind, ("flash", "b", "--board", board, "--via", "fpga-manager",
                                "--sysfs-root", "root"),
                (("b/build.json", raw), ("b/lowbit.bit", seeds.bitstream),
                 ("outside.bit", seeds.bitstream)), links, must_refuse=must)


# -- numbers on flags ------------------------------------------------------------------------------

FLAGS = {  # flag -> (command prefix, values that must be refused)
    "--budget": (("map", "m.npz"), ("0", "-1", "nan", "inf", "2", "1e12", "x", "")),
    "--target-fps": (("map", "m.npz"), ("0", "-5", "nan", "inf", "x", "")),
    "--act-density": (("map", "m.npz"), ("0", "-1", "nan", "2", "x")),
    "--clock": (("build", "c", "--board", "pynq-z2", "-o", "out"), ("0", "-5", "nan", "1e9", "x")),
}


def _flag_case(draw, seeds: Seeds) -> Case:
    flag = draw(st.sampled_from(sorted(FLAGS)))
    prefix, bad = FLAGS[flag]
    value = draw(st.sampled_from(list(bad) + ["0.05", "1", "1e-300", "0x10", "1_0", " 3"]))
    files = (("m.npz", seeds.graph), *(seeds.compiled if "c" in prefix else ()))
    return Case("flag", f"{flag}={value!r}", (*prefix, flag, value), files,
                output="out" if "-o" in prefix else None, must_refuse=value in bad)


# -- build configs (lowbit run) ----------------------------------------------------------------

_CONFIG = {"model": "m.npz", "board": "pynq-z2", "budget": 0.5, "steps": ["import", "map"],
           "output": "out"}
_CONFIG_KEYS = ["model", "board", "budget", "steps", "output", "clock_mhz", "simulate", "train",
                "heartbeat_s", "target_fps", "act_density", "schedule", "input_wire", "version"]
_YAML_BAD = [
    b"a: &x [1, 2]\nb: &y [*x, *x]\nc: [*y, *y]\n",  # aliases (a YAML bomb in small)
    b"- 1\n- 2\n",
    b"model: [\n",
    b"[" * 100_000 + b"]" * 100_000,
    b"model: !!python/object/apply:os.system ['true']\n",
    b"\xff\xfe\x00m",
    b"",
]


def _config_case(draw, seeds: Seeds) -> Case:
    doc = dict(_CONFIG)
    kind = draw(st.sampled_from(["field", "drop", "unknown", "path", "yaml", "bytes", "type"]))
    name, must = "cfg/c.json", False
    links: tuple[tuple[str, str], ...] = ()
    if kind == "field":
        key = draw(st.sampled_from(_CONFIG_KEYS))
        doc[key] = _value(draw)
        kind = f"config.{key}"
        raw = json.dumps(doc, allow_nan=True).encode()
    elif kind == "drop":
        del doc["model"]
        raw, must = json.dumps(doc).encode(), True
    elif kind == "unknown":
        doc[draw(st.sampled_from(["bord", "modle", "simulate.x", ""]))] = 1
        raw, must = json.dumps(doc).encode(), True
    elif kind == "path":
        key = draw(st.sampled_from(["model", "schedule", "output"]))
        where = draw(st.sampled_from(["../outside.npz", "/etc/hostname", "link.npz", "missing.npz",
                                      "", "sub/../../outside.npz"]))
        doc[key] = where
        if where == "link.npz":
            links = (("cfg/link.npz", "/etc/hostname"),)
        must = where != "missing.npz" or key != "output"
        kind, raw = f"path.{key}:{where}", json.dumps(doc).encode()
    elif kind == "yaml":
        name, raw, must = "cfg/c.yaml", draw(st.sampled_from(_YAML_BAD)), True
    elif kind == "type":
        raw, must = draw(st.sampled_from([b"[]", b'"x"', b"5", b"null"])), True
    else:
        kind, raw = _bytes_mutation(draw, json.dumps(doc).encode())
        kind = "config-" + kind
    return Case("run", kind, ("run", name, "--to", "map"),
                (("cfg/m.npz", seeds.graph), (name, raw), ("outside.npz", seeds.graph)), links,
                must_refuse=must)


TARGETS = {
    "onnx": _onnx_case,
    "graph": _graph_case,
    "schedule": _schedule_case,
    "manifest": _manifest_case,
    "flag": _flag_case,
    "config": _config_case,
}


@st.composite
def cases(draw, seeds: Seeds, targets: tuple[str, ...] = tuple(TARGETS)) -> Case:
    """A Hypothesis strategy of cases over ``targets``."""
    return TARGETS[draw(st.sampled_from(targets))](draw, seeds)


# -- running a case --------------------------------------------------------------------------------


def _child(case: Case, workdir: Path, out_fd: int, err_fd: int) -> None:
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    status = 3
    try:
        os.chdir(workdir)
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (used + MEMORY_LIMIT, hard))
        sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
        from lowbit.cli import main

        status = main(list(case.argv))
    except SystemExit as e:  # what the console script would turn into its exit status
        status = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - whatever escapes is the finding
        traceback.print_exc()
        status = 99
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status if isinstance(status, int) else 98)


def run_case(case: Case, timeout: float = 120.0) -> Outcome:
    """Run ``case`` in a forked child in a fresh directory and check the property."""
    with tempfile.TemporaryDirectory(prefix="lowbit-fuzz-") as tmp:
        work = Path(tmp)
        for name, data in case.files:
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_bytes(data)
        for name, target in case.links:
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).symlink_to(target)
        out_path, err_path = work / ".stdout", work / ".stderr"
        with open(out_path, "wb") as fo, open(err_path, "wb") as fe:
            start = time.monotonic()
            pid = os.fork()
            if pid == 0:
                _child(case, work, fo.fileno(), fe.fileno())
            status, rss, hung = None, 0, False
            while True:
                wpid, wstatus, usage = os.wait4(pid, os.WNOHANG)
                if wpid:
                    rss = usage.ru_maxrss * 1024
                    if os.WIFEXITED(wstatus):
                        status = os.WEXITSTATUS(wstatus)
                    break
                if time.monotonic() - start > timeout:
                    os.kill(pid, signal.SIGKILL)
                    os.wait4(pid, 0)
                    hung = True
                    break
                time.sleep(0.005)
            seconds = time.monotonic() - start
        stderr = err_path.read_text(errors="replace")
        o = Outcome(status, stderr, seconds, rss)
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        if hung:
            o.problems.append(f"hang (> {timeout:g} s)")
        elif status is None:
            o.problems.append("killed by a signal")
        elif status not in (0, 2):
            o.problems.append(f"exit status {status}")
        if "Traceback" in stderr:
            o.problems.append("traceback")
        if "MemoryError" in stderr or rss > RSS_LIMIT:
            o.problems.append(f"unbounded allocation (peak {rss >> 20} MiB)")
        if status == 2:
            if len(lines) > 3:
                o.problems.append(f"{len(lines)} lines on stderr")
            if not _names_something(stderr, case):
                o.problems.append("message names no file, flag, node or field")
            if case.output and (work / case.output).exists():
                o.problems.append(f"{case.output} left behind after a refusal")
        if status == 0 and case.must_refuse:
            o.problems.append("accepted an invalid input")
        return o


def _names_something(stderr: str, case: Case) -> bool:
    words = [a for a in case.argv if a.startswith("-")] + [
        Path(a).name for a in case.argv if not a.startswith("-")
    ] + [n for n, _ in case.files] + ["node", "layer", "field", "key", "'", "--"]
    return any(w and w in stderr for w in words)
