"""Outputs staged in temporary files and directories and renamed into place get the permissions a
plain open() or mkdir() would give them under the umask, not tempfile's 0600/0700 (issue 18)."""

import os
import stat
from pathlib import Path

import pytest

from lowbit._io import atomic_write, umask_mode
from lowbit.deploy.build import build as build_design
from lowbit.flow.steps import compile_model

from mapping_models import mlp


@pytest.fixture
def umask():
    """Set the process's umask for one test (the parameter), and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(mask: int) -> int:
        os.umask(mask)
        return mask

    yield set_umask
    os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """The permission bits of ``root`` and of everything under it, by relative path."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)],
                         ids=["umask 022", "umask 077"])
def test_outputs_follow_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    assert umask_mode() == file_mode and umask_mode(directory=True) == dir_mode
    assert umask_mode(executable=True) == dir_mode
    graph = mlp((16, 8, 4), seed=1)
    model = graph.save(tmp_path / "model.npz")
    assert stat.S_IMODE(model.stat().st_mode) == file_mode
    compiled, build = tmp_path / "compiled", tmp_path / "build"
    compile_model(graph, compiled, board="pynq-z2")
    build_design(compiled, "pynq-z2", build)
    for root, member in ((compiled, "model.npz"), (build, "driver/lowbit_driver.py")):
        found = modes(root)
        assert member in found, found
        expected = {name: dir_mode if (root / name).is_dir() or name == "build.sh" else file_mode
                    for name in found}
        assert {k: oct(v) for k, v in found.items()} == {k: oct(v) for k, v in expected.items()}


def test_atomic_write_replacing_a_file_follows_the_umask(tmp_path, umask):
    """A replaced output gets the umask's bits, as a new one does."""
    umask(0o022)
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    path.chmod(0o600)
    atomic_write(path, "new\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.read_text() == "new\n"
