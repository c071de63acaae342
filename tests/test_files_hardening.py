"""lowbit's own files against careless and hostile input (issue 17): the model ``.npz``, the
schedule JSON and the compiled directory. Every malformed file gets a ``LowbitError`` naming the
file and the field (on the command line: exit status 2, at most three lines, no traceback), before
any work or allocation whose size the file controls; no path read from a file leaves its directory.

The build manifest and flashing are in ``test_build_flash.py``."""

import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.cli.app import main
from lowbit.flow import CompiledDesign
from lowbit.flow.steps import compile_model
from lowbit.ir import BIPOLAR, DataType, GlobalAccPool, IntegerGraph, MatMulThreshold, SlidingWindow
from lowbit.limits import LIMITS
from lowbit.mapping.schedule import LayerFolding, Schedule

from mapping_models import mlp

# -- the model file --------------------------------------------------------------------------------


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)  # the test writes pickled members on purpose
    return buf.getvalue()


def npy_header(shape: tuple, descr: str = "|u1") -> bytes:
    """The header of a ``.npy`` member declaring ``shape`` (no data)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n.removesuffix(".npy"): z.read(n) for n in z.namelist()}


def write_members(path: Path, arrays: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in arrays.items():
            z.writestr(name + ".npy", data)
    return path


def edited(src: Path, dst: Path, head=None, **arrays) -> Path:
    """``src`` with its header edited (a function of the header dict returning a dict, or the new
    header text) and arrays replaced (``None`` removes one; bytes are a raw ``.npy`` member)."""
    m = members(src)
    if head is not None:
        doc = json.loads(np.load(io.BytesIO(m["header"])).tobytes())
        new = head if isinstance(head, str) else json.dumps(head(doc))
        m["header"] = npy(np.frombuffer(new.encode(), np.uint8))
    for name, a in arrays.items():
        if a is None:
            m.pop(name)
        else:
            m[name] = a if isinstance(a, bytes) else npy(a)
    return write_members(dst, m)


def nested(depth: int) -> list:
    """A JSON value ``depth`` lists deep: ``[[...[]...]]``."""
    out: list = []
    for _ in range(depth - 1):
        out = [out]
    return out


def node(i: int, **change):
    def edit(h):
        h["nodes"][i].update(change)
        return h
    return edit


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """16 -> 8 -> 4: UINT5 inputs, bipolar hidden layer (one threshold per row), scores."""
    return mlp((16, 8, 4), seed=1).save(tmp_path_factory.mktemp("model") / "model.npz")


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory) -> Path:
    """(6, 6, 1) UINT8 -> 3x3 windows -> conv (4 channels, bits) -> sum pool -> 3 scores."""
    rng = np.random.default_rng(0)
    conv = MatMulThreshold("conv", DataType.uint(8), rng.integers(0, 2, (4, 9)), np.zeros((4, 1), int))
    fc = MatMulThreshold("fc", DataType.int(6), rng.integers(0, 2, (3, 4)), None)
    g = IntegerGraph(DataType.uint(8), (SlidingWindow("swg", 3), conv, GlobalAccPool("gap", BIPOLAR), fc),
                     (6, 6, 1))
    return g.save(tmp_path_factory.mktemp("conv") / "conv.npz")


MODEL_CASES = [
    # (id, header edit, arrays, message after "<path>: ")
    ("deep header", "[" * 100_000 + "]" * 100_000, {},
     r"header: JSON nesting depth 100000 exceeds lowbit's limit of 32$"),
    ("header 33 deep", lambda h: {**h, "x": nested(32)}, {},
     r"header: JSON nesting depth 33 exceeds lowbit's limit of 32$"),
    ("header a list", "[1, 2]", {}, r"header must be a JSON object, not list$"),
    ("header a string", '"lowbit"', {}, r"header must be a JSON object, not str$"),
    ("header not UTF-8", None, {"header": np.frombuffer(b'{"a": "\xff"}', np.uint8)},
     r"header: not UTF-8 text"),
    ("header float array", None, {"header": np.zeros(3)},
     r"array 'header' holds float64; expected integers$"),
    ("nodes a dict", lambda h: {**h, "nodes": {}}, {},
     r"header: 'nodes' must be a list of node objects, not dict$"),
    ("nodes a string", lambda h: {**h, "nodes": "fc0"}, {},
     r"header: 'nodes' must be a list of node objects, not str$"),
    ("node a number", lambda h: {**h, "nodes": [h["nodes"][0], 7]}, {},
     r"node 1: must be a JSON object, not int$"),
    ("node without name", lambda h: {**h, "nodes": [{"op": "MaxPool", "kernel": 2}] + h["nodes"]}, {},
     r"node 0: missing entry 'name'$"),
    ("op not a string", node(0, op=["MatMulThreshold"]), {},
     r"node 0: unknown op \['MatMulThreshold'\]; expected one of MatMulThreshold, "),
    ("float weights", None, {"weights_0": np.zeros((8, 16))},
     r"node 0 \('fc0'\): array 'weights_0' holds float64; expected integers$"),
    ("pickled weights", None, {"weights_0": np.array([[{"a": 1}]], dtype=object)},
     r"node 0 \('fc0'\): array 'weights_0' holds Python objects \(pickled data\), "
     r"which lowbit never loads$"),
    ("1-D weights", None, {"weights_0": np.zeros(128, np.uint8)},
     r"node 0 \('fc0'\): array 'weights_0' must be 2-D \(MH, MW\), not shape \(128,\)$"),
    ("weights one column short", None, {"weights_0": np.zeros((8, 15), np.uint8)},
     r"node 0 \('fc0'\): array 'weights_0' has shape \(8, 15\), but its input \(16,\) needs MW = 16$"),
    ("weights of the wrong layer", None, {"weights_1": np.zeros((4, 16), np.uint8)},
     r"node 1 \('fc1'\): array 'weights_1' has shape \(4, 16\), but its input \(8,\) needs MW = 8$"),
    ("weights missing", None, {"weights_1": None}, r"node 1 \('fc1'\): missing array 'weights_1'$"),
    ("float thresholds", None, {"thresholds_0": np.zeros((8, 1))},
     r"node 0 \('fc0'\): array 'thresholds_0' holds float64; expected integers$"),
    ("3-D thresholds", None, {"thresholds_0": np.zeros((8, 1, 1), int)},
     r"node 0 \('fc0'\): array 'thresholds_0' must be 2-D \(MH, k\), not shape \(8, 1, 1\)$"),
    ("thresholds of another row count", None, {"thresholds_0": np.zeros((7, 1), int)},
     r"invalid model: node 'fc0': thresholds must be integers of shape \(MH=8, k\), not int64 \(7, 1\)$"),
    ("thresholds beyond the limit", None, {"thresholds_0": np.zeros((1, 1 << 16), np.int8)},
     r"node 0 \('fc0'\): array 'thresholds_0': thresholds per channel 65536 exceeds lowbit's limit "
     r"of 65535$"),
    ("has_thresholds not a boolean", node(1, has_thresholds="no"), {},
     r"node 1 \('fc1'\): 'has_thresholds' must be true or false, not 'no'$"),
    ("weight type too wide", node(1, weight_dtype="INT17"), {},
     r"node 1 \('fc1'\): weight_dtype INT17: bit width 17 exceeds lowbit's limit of 16$"),
    ("input type too wide", lambda h: node(0, input_dtype="UINT17")({**h, "input_dtype": "UINT17"}), {},
     r"input_dtype UINT17: bit width 17 exceeds lowbit's limit of 16$"),
    ("output type too wide", node(0, output_dtype="UINT17"), {},
     r"node 0 \('fc0'\): output_dtype UINT17: bit width 17 exceeds lowbit's limit of 16$"),
    ("scores type too wide", node(1, output_dtype="INT60"), {},
     r"node 1 \('fc1'\): output_dtype INT60: bit width 60 exceeds lowbit's limit of 59$"),
    ("type not a name", node(1, weight_dtype=5), {},
     r"node 1 \('fc1'\): weight_dtype must be a data type name, not 5$"),
    ("input_shape a string", lambda h: {**h, "input_shape": "16"}, {},
     r"header: 'input_shape' must be a list of positive integers, not '16'$"),
    ("input_shape of floats", lambda h: {**h, "input_shape": [16.0]}, {},
     r"header: 'input_shape' must be a list of positive integers, not \[16.0\]$"),
    ("unknown version", lambda h: {**h, "version": 99}, {},
     r"expected format 'lowbit-integer-graph' version 1 to \d, got 'lowbit-integer-graph' version 99$"),
    ("declared shape of 2^40 elements", None,
     {"weights_0": npy_header((1 << 40,)) + bytes(64)},
     r"node 0 \('fc0'\): array 'weights_0': elements 1099511627776 exceeds lowbit's limit of 67108864$"),
]


@pytest.mark.parametrize("header, arrays, message", [c[1:] for c in MODEL_CASES],
                         ids=[c[0] for c in MODEL_CASES])
def test_malformed_model_files_name_the_file_and_the_field(model, tmp_path, header, arrays, message):
    bad = edited(model, tmp_path / "bad.npz", header, **arrays)
    with pytest.raises(LowbitError, match="^" + re.escape(str(bad)) + ": " + message):
        IntegerGraph.load(bad)


def test_the_model_fixtures_load(model, conv_model):
    """The edits above start from valid files (and a header 32 deep is still accepted)."""
    assert [n.name for n in IntegerGraph.load(model).nodes] == ["fc0", "fc1"]
    assert IntegerGraph.load(conv_model).input_shape == (6, 6, 1)
    ok = edited(model, model.with_name("deep32.npz"), lambda h: {**h, "x": nested(31)})
    assert IntegerGraph.load(ok).classes == 4
    # scores are wider than activations: 16 + 16 bits times 2^26 terms fit 59 bits
    wide = edited(model, model.with_name("wide.npz"), node(1, output_dtype="INT59"))
    assert IntegerGraph.load(wide).nodes[1].output_dtype == DataType.int(5)  # the exact range


@pytest.mark.parametrize("data", [b"hello", b"PK\x03\x04 not a zip", b"\x93NUMPY\x01\x00garbage",
                                  npy(np.array([{"a": 1}], dtype=object))],
                         ids=["text", "cut zip", "npy", "pickle"])
def test_corrupt_model_files_never_suggest_pickling(tmp_path, data):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data)
    with pytest.raises(LowbitError) as e:
        IntegerGraph.load(bad)
    text = str(e.value)
    assert text.startswith(f"{bad}: not a lowbit model: not a valid .npz (zip) archive"), text
    assert "pickle" not in text and "allow_pickle" not in text, text


def test_pickled_member_is_refused(model, tmp_path):
    bad = edited(model, tmp_path / "p.npz", thresholds_0=np.array([[{"__reduce__": 1}]] * 8, dtype=object))
    with pytest.raises(LowbitError, match=r"array 'thresholds_0' holds Python objects \(pickled data\)"):
        IntegerGraph.load(bad)


def test_image_and_node_output_sizes_are_bounded(conv_model, tmp_path):
    """A (10000, 10000, 1) image has 10^8 > 2^26 elements; padding a 6x6 image by 1500 gives 3x3
    windows of a 3004 x 3004 image, 3004^2 * 9 = 81216144 elements."""
    big = edited(conv_model, tmp_path / "big.npz", lambda h: {**h, "input_shape": [10000, 10000, 1]})
    with pytest.raises(LowbitError, match=re.escape(f"{big}: input_shape (10000, 10000, 1): elements "
                                                    "100000000 exceeds lowbit's limit of 67108864")):
        IntegerGraph.load(big)
    pad = edited(conv_model, tmp_path / "pad.npz", node(0, pad=1500))
    with pytest.raises(LowbitError, match=re.escape(f"{pad}: node 0 ('swg'): output (3004, 3004, 9): elements "
                                                    "81216144 exceeds lowbit's limit of 67108864")):
        IntegerGraph.load(pad)


def test_weights_over_the_element_limit_are_refused_before_reading(tmp_path):
    """8192 x 8193 = 67117056 weights, 8192 over the limit, in a file of a few hundred kB that
    today's loader accepts."""
    mw, mh = 8193, 8192
    w = np.zeros((mh, mw), np.uint8)
    g = IntegerGraph(DataType.uint(1), (
        MatMulThreshold("fc0", DataType.uint(1), w[:1, :mw], np.zeros((1, 1), int)),
        MatMulThreshold("fc1", BIPOLAR, np.zeros((2, 1), np.uint8), None)))
    path = edited(g.save(tmp_path / "small.npz"), tmp_path / "wide.npz",
                  thresholds_0=np.zeros((mh, 1), np.int64), weights_0=w,
                  weights_1=np.zeros((2, mh), np.uint8))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(LowbitError, match=re.escape(f"{path}: node 0 ('fc0'): array 'weights_0': elements "
                                                    "67117056 exceeds lowbit's limit of 67108864")):
        IntegerGraph.load(path)


def test_model_file_size_is_bounded(tmp_path):
    big = tmp_path / "big.npz"
    with open(big, "wb") as f:
        f.truncate(LIMITS.file_bytes + 1)  # sparse: no disk used
    with pytest.raises(LowbitError, match=re.escape(f"{big}: file size (bytes) {LIMITS.file_bytes + 1} "
                                                    f"exceeds lowbit's limit of {LIMITS.file_bytes}")):
        IntegerGraph.load(big)


def deflated(data: bytes) -> tuple[bytes, int, int]:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(), zlib.crc32(data), len(data)


def zeros_bomb(header: bytes, zeros: int) -> tuple[bytes, int, int]:
    """``header`` then ``zeros`` zero bytes (a multiple of 1 MiB), deflated by hand: one block of
    1 MiB of zeros after a full flush, repeated."""
    chunk = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH) == block  # a full flush forgets history
    crc = zlib.crc32(header)
    for _ in range(zeros >> 20):
        crc = zlib.crc32(chunk, crc)
    return head + block * (zeros >> 20) + c.flush(), crc, len(header) + zeros


def handmade_zip(path: Path, entries: dict[str, tuple[bytes, int, int]]) -> Path:
    """A zip archive of deflated ``entries`` (name: (data, CRC-32, inflated size))."""
    body, directory = b"", b""
    for name, (data, crc, size) in entries.items():
        fname = name.encode()
        directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(data),
                                 size, len(fname), 0, 0, 0, 0, 0, len(body)) + fname
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), size, len(fname),
                            0) + fname + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(directory), len(body), 0)
    path.write_bytes(body + directory + end)
    return path


def test_a_zip_bomb_is_refused_before_it_inflates(model, tmp_path):
    """Half a MiB that inflates to 513 MiB: refused from the zip's directory, in a process that
    could not hold the inflated member (its address space capped at 400 MiB)."""
    zeros = LIMITS.member_bytes + (1 << 20)
    header = npy_header((zeros,))
    entries = {k + ".npy": deflated(v) for k, v in members(model).items()}
    entries["weights_0.npy"] = zeros_bomb(header, zeros)
    path = handmade_zip(tmp_path / "bomb.npz", entries)
    assert path.stat().st_size < 1 << 20
    with zipfile.ZipFile(path) as z:
        assert z.getinfo("weights_0.npy").file_size == len(header) + zeros
        assert z.read("header.npy") == members(model)["header"]
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (400 << 20, 400 << 20)); "
            "from lowbit.cli.app import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "map", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) <= 3, proc.stderr
    assert re.search(re.escape(f"{path}: node 0 ('fc0'): array 'weights_0': uncompressed size (bytes) "
                               f"{len(header) + zeros} exceeds lowbit's limit of {LIMITS.member_bytes}"),
                     proc.stderr), proc.stderr


@pytest.mark.parametrize("edit, fragment", [
    (("[" * 100_000 + "]" * 100_000, {}), "JSON nesting depth 100000"),
    ((lambda h: {**h, "nodes": "fc0"}, {}), "'nodes' must be a list"),
    ((None, {"weights_0": np.array([[{"a": 1}]], dtype=object)}), "pickled data"),
], ids=["deep", "nodes", "pickle"])
def test_cli_refuses_malformed_models_in_three_lines(model, tmp_path, capsys, edit, fragment):
    bad = edited(model, tmp_path / "bad.npz", edit[0], **edit[1])
    assert main(["map", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) <= 3 and "Traceback" not in err, err
    assert str(bad) in err and fragment in err, err


# -- the schedule ----------------------------------------------------------------------------------

GOOD_SCHEDULE = json.loads(Schedule("pynq-z2", 100, (LayerFolding("fc0", 2, 4),)).to_json())


def layer(**change):
    return dict(GOOD_SCHEDULE, layers=[{**GOOD_SCHEDULE["layers"][0], **change}])


SCHEDULE_CASES = [
    ("deep", "[" * 100_000 + "]" * 100_000, r"JSON nesting depth 100000 exceeds lowbit's limit of 32$"),
    ("33 deep", layer(act_density=nested(30)), r"JSON nesting depth 33 exceeds lowbit's limit of 32$"),
    ("a list", [GOOD_SCHEDULE], r"expected a JSON object, not list$"),
    ("clock 1e12", dict(GOOD_SCHEDULE, clock_mhz=1e12),
     r"field 'clock_mhz': clock frequency \(MHz\) 1000000000000.0 exceeds lowbit's limit of 1000.0$"),
    ("clock 1000.5", dict(GOOD_SCHEDULE, clock_mhz=1000.5),
     r"field 'clock_mhz': clock frequency \(MHz\) 1000.5 exceeds lowbit's limit of 1000.0$"),
    ("clock NaN", dict(GOOD_SCHEDULE, clock_mhz=float("nan")), r"field 'clock_mhz' must be a positive number, not nan$"),
    ("clock infinite", dict(GOOD_SCHEDULE, clock_mhz=float("inf")),
     r"field 'clock_mhz' must be a positive number, not inf$"),
    ("clock 0", dict(GOOD_SCHEDULE, clock_mhz=0), r"field 'clock_mhz' must be a positive number, not 0$"),
    ("clock a string", dict(GOOD_SCHEDULE, clock_mhz="100"),
     r"field 'clock_mhz' must be a positive number, not '100'$"),
    ("clock a boolean", dict(GOOD_SCHEDULE, clock_mhz=True), r"field 'clock_mhz' must be a positive number, not True$"),
    ("unknown board", dict(GOOD_SCHEDULE, board="pynq-z9"), r"field 'board' must be a known board \(arty-z7-10, .*\), not 'pynq-z9'$"),
    ("board a number", dict(GOOD_SCHEDULE, board=7), r"field 'board' must be a board name, not 7$"),
    ("pe a fraction", layer(pe=2.5), r"field 'layers\[0\]\.pe' must be a positive integer, not 2.5$"),
    ("pe a boolean", layer(pe=True), r"field 'layers\[0\]\.pe' must be a positive integer, not True$"),
    ("simd a string", layer(simd="4"), r"field 'layers\[0\]\.simd' must be a positive integer, not '4'$"),
    ("simd negative", layer(simd=-4), r"field 'layers\[0\]\.simd' must be a positive integer, not -4$"),
    ("depth zero", layer(engine="sparse", depth=0), r"field 'layers\[0\]\.depth' must be a positive integer, not 0$"),
    ("unknown engine", layer(engine="gpu"), r"field 'layers\[0\]\.engine' must be 'mvtu' or 'sparse', not 'gpu'$"),
    ("unknown placement", layer(weights="dram"),
     r"field 'layers\[0\]\.weights' must be 'onchip' or 'ddr', not 'dram'$"),
    ("layers a dict", dict(GOOD_SCHEDULE, layers={"fc0": {}}),
     r"field 'layers' must be a non-empty list, not \{'fc0': \{\}\}$"),
    ("layer a number", dict(GOOD_SCHEDULE, layers=[5]),
     r"field 'layers\[0\]' must be an object with name, pe and simd, not 5$"),
    ("name a number", layer(name=7), r"field 'layers\[0\]\.name' must be a string, not 7$"),
]


@pytest.mark.parametrize("doc, message", [c[1:] for c in SCHEDULE_CASES], ids=[c[0] for c in SCHEDULE_CASES])
def test_malformed_schedules_name_the_file_and_the_field(tmp_path, doc, message):
    path = tmp_path / "s.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(LowbitError, match="^" + re.escape(str(path)) + ": " + message):
        Schedule.load(path)


def test_schedule_bounds_accept_their_limits(tmp_path):
    """A clock of exactly 1000 MHz and a document 32 deep are accepted."""
    path = tmp_path / "s.json"
    path.write_text(json.dumps(dict(GOOD_SCHEDULE, clock_mhz=1000)))
    assert Schedule.load(path).clock_mhz == 1000.0
    deep = {**GOOD_SCHEDULE["layers"][0], "engine": "sparse", "act_density": nested(29)}
    path.write_text(json.dumps(dict(GOOD_SCHEDULE, layers=[deep])))  # 32 deep: a depth error no more
    with pytest.raises(LowbitError, match=r"field 'layers\[0\]\.act_density' must be a number"):
        Schedule.load(path)


def test_cli_refuses_a_schedule_with_an_impossible_clock(model, tmp_path, capsys):
    sched = tmp_path / "fast.json"
    good = Schedule("pynq-z2", 100, (LayerFolding("fc0", 1, 1), LayerFolding("fc1", 1, 1)))
    sched.write_text(good.to_json().replace('"clock_mhz": 100.0', '"clock_mhz": 1e12'))
    out = tmp_path / "out"
    assert main(["compile", str(model), "-o", str(out), "--schedule", str(sched)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) <= 3 and "Traceback" not in err, err
    assert f"{sched}: field 'clock_mhz'" in err and "1000.0" in err, err
    assert not out.exists()


# -- the compiled directory ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compiled") / "c"
    compile_model(mlp((16, 8, 4), seed=1), out, board="pynq-z2")
    return out


@pytest.fixture
def design(compiled_dir, tmp_path) -> Path:
    d = tmp_path / "design"
    shutil.copytree(compiled_dir, d)
    return d


def edit_report(d: Path, change) -> Path:
    path = d / "report.json"
    doc = json.loads(path.read_text())
    path.write_text(change if isinstance(change, str) else json.dumps(change(doc)))
    return path


REPORT_CASES = [
    ("deep", "[" * 100_000 + "]" * 100_000, r"JSON nesting depth 100000 exceeds lowbit's limit of 32$"),
    ("a list", "[1]", r"expected a JSON object, not list$"),
    ("verilog up", lambda r: {**r, "verilog": "../lowbit_top.v"},
     r"key 'verilog' must name a file in the directory, not '../lowbit_top.v'$"),
    ("verilog ..", lambda r: {**r, "verilog": ".."}, r"key 'verilog' must name a file in the directory, not '..'$"),
    ("verilog absolute", lambda r: {**r, "verilog": "/etc/hostname"},
     r"key 'verilog' must name a file in the directory, not '/etc/hostname'$"),
    ("cycles a boolean", lambda r: {**r, "mapping": {**r["mapping"], "cycles_per_image": True}},
     r"key 'mapping.cycles_per_image' must be a positive integer, not True$"),
    ("zoo a list", lambda r: {**r, "zoo": [1]}, r"key 'zoo' must be a JSON object, not list$"),
]


@pytest.mark.parametrize("change, message", [c[1:] for c in REPORT_CASES], ids=[c[0] for c in REPORT_CASES])
def test_malformed_reports_name_the_file_and_the_key(design, change, message):
    path = edit_report(design, change)
    with pytest.raises(LowbitError, match="^" + re.escape(str(path)) + ": " + message):
        CompiledDesign.open(design).report()


@pytest.mark.parametrize("name", ["lowbit_top.v", "model.npz", "schedule.json", "report.json"])
def test_a_symlink_out_of_the_compiled_directory_is_refused(design, compiled_dir, tmp_path, name):
    outside = tmp_path / "outside" / name
    outside.parent.mkdir()
    shutil.copy(compiled_dir / name, outside)
    (design / name).unlink()
    (design / name).symlink_to(outside)
    message = "^" + re.escape(f"{design}: {name} resolves to {outside.resolve()}, outside the directory") + "$"
    with pytest.raises(LowbitError, match=message):
        d = CompiledDesign.open(design)
        d.load()
        d.report()
        d.require(name)


def test_a_symlink_inside_the_compiled_directory_is_followed(design):
    (design / "real.v").write_text((design / "lowbit_top.v").read_text())
    (design / "lowbit_top.v").unlink()
    (design / "lowbit_top.v").symlink_to("real.v")
    assert CompiledDesign.open(design).require("lowbit_top.v") == design / "lowbit_top.v"


def test_build_refuses_a_compiled_directory_whose_verilog_links_outside(design, tmp_path, capsys):
    outside = tmp_path / "secret.v"
    outside.write_text("module secret; endmodule\n")
    (design / "lowbit_top.v").unlink()
    (design / "lowbit_top.v").symlink_to(outside)
    out = tmp_path / "build"
    assert main(["build", str(design), "--board", "pynq-z2", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) <= 3 and "Traceback" not in err, err
    assert f"lowbit_top.v resolves to {outside.resolve()}, outside the compiled directory" in err, err
    assert not out.exists()


def test_report_file_size_is_bounded(design):
    path = design / "report.json"
    with open(path, "wb") as f:
        f.truncate(LIMITS.file_bytes + 1)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (400 << 20, 400 << 20)); "
            "from lowbit.flow import CompiledDesign; from lowbit import LowbitError\n"
            "try: CompiledDesign.open(sys.argv[1]).report()\n"
            "except LowbitError as e: print(e); sys.exit(2)")
    proc = subprocess.run([sys.executable, "-c", code, str(design)], capture_output=True, text=True,
                          env={**os.environ})
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.strip() == (f"{path}: file size (bytes) {LIMITS.file_bytes + 1} exceeds lowbit's "
                                   f"limit of {LIMITS.file_bytes}")


def test_an_encrypted_member_is_refused(tmp_path):
    """Found by benchmarks/fuzz.py: a bit flip that marks a member encrypted made zipfile raise
    RuntimeError (a traceback)."""
    import numpy as np

    from lowbit.ir import BIPOLAR, IntegerGraph, MatMulThreshold

    g = IntegerGraph(BIPOLAR, (MatMulThreshold("fc", BIPOLAR, np.ones((2, 4), np.int64), None),))
    raw = bytearray(g.save(tmp_path / "g.npz").read_bytes())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = raw.find(sig)
        while i >= 0:
            raw[i + flag_at] |= 1  # general purpose bit 0: encrypted
            i = raw.find(sig, i + 4)
    bad = tmp_path / "enc.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(LowbitError, match="enc.npz"):
        IntegerGraph.load(bad)


def test_a_member_needing_a_newer_zip_version_is_refused(tmp_path):
    """Found by benchmarks/fuzz.py: a bit flip in the central directory's 'version needed to
    extract' made zipfile raise NotImplementedError ('zip file version 10.9', a traceback) when the
    archive was opened."""
    import numpy as np

    from lowbit.ir import BIPOLAR, IntegerGraph, MatMulThreshold

    g = IntegerGraph(BIPOLAR, (MatMulThreshold("fc", BIPOLAR, np.ones((2, 4), np.int64), None),))
    raw = bytearray(g.save(tmp_path / "g.npz").read_bytes())
    i = raw.find(b"PK\x01\x02")
    raw[i + 6:i + 8] = (109).to_bytes(2, "little")  # version needed to extract: 10.9
    bad = tmp_path / "v.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(LowbitError, match=r"v\.npz: not a lowbit model: not a valid \.npz \(zip\) archive "
                                          r"\(zip file version 10\.9\)"):
        IntegerGraph.load(bad)
