"""Two 1-D convolution networks (issue 19: keyword spotting, radio classification) trained with
Brevitas on the digits read as sequences, exported through both QONNX paths, cached like
``tests/brevitas_zoo.py`` (the same cache folder, lock and export helpers).

Input: the digits' pixels (integers 0..16) divided by 16, each image as a sequence of its 8 rows
(positions) of 8 pixels (channels): ``(B, 8, 8)`` in ``(N, C, L)`` order, i.e. the image
transposed (:func:`model_input`).

* ``conv1d_w4a4_pool``: 8-bit input, ``QuantConv1d`` (8 -> 16, kernel 3, padding 1), BN, 4-bit
  ``QuantReLU``, ``QuantConv1d`` (16 -> 32, kernel 3, padding 1), BN, 4-bit ``QuantReLU``,
  ``MaxPool1d(2)``, flatten, 4-bit ``QuantLinear`` (128 -> 10);
* ``conv1d_w4a4``: the same without the pool, the second convolution of stride 2 (a chain of 1-D
  windows and products only, which the hardware maps today).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import brevitas
import brevitas.nn as qnn
import brevitas_zoo as zoo
import numpy as np
import torch

from lowbit._io import atomic_write
from lowbit.quant.data import load_digits_split

__all__ = ["MODELS", "VERSION", "export", "model_input", "torch_outputs", "trained"]

VERSION = "1"
"""Bump when a model, its training or its input changes: the cache key holds it."""

W4 = {"weight_bit_width": 4, "bias": False}
EPOCHS, LR, SEED, BATCH = 8, 1e-2, 0, 64


class Conv1dNet(torch.nn.Module):
    """Two 4-bit 1-D convolutions over the rows, then a 4-bit linear layer; ``pool``: the second
    convolution keeps the length and a ``MaxPool1d(2)`` halves it, else it has stride 2."""

    def __init__(self, pool: bool, c0=16, c1=32):
        super().__init__()
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv0 = qnn.QuantConv1d(8, c0, 3, padding=1, **W4)
        self.bn0 = torch.nn.BatchNorm1d(c0)
        self.act0 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.conv1 = qnn.QuantConv1d(c0, c1, 3, stride=1 if pool else 2, padding=1, **W4)
        self.bn1 = torch.nn.BatchNorm1d(c1)
        self.act1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.pool = torch.nn.MaxPool1d(2) if pool else None
        self.fc = qnn.QuantLinear(c1 * 4, 10, **W4)

    def forward(self, x):
        x = self.act0(self.bn0(self.conv0(self.inp(x))))
        x = self.act1(self.bn1(self.conv1(x)))
        if self.pool is not None:
            x = self.pool(x)
        return self.fc(torch.flatten(x, 1))


MODELS = {
    "conv1d_w4a4_pool": lambda: Conv1dNet(pool=True),
    "conv1d_w4a4": lambda: Conv1dNet(pool=False),
}


def model_input(x_int_pixels) -> np.ndarray:
    """The float32 ``(B, 8, 8)`` sequences (channels: a row's pixels; positions: the rows)."""
    x = np.asarray(x_int_pixels).reshape(-1, 8, 8).astype(np.float32) / np.float32(16)
    return np.ascontiguousarray(x.transpose(0, 2, 1))


def _entry(name: str) -> Path:
    tv = torch.__version__.replace("+", "_")
    return zoo.cache_dir() / f"{name}-v{VERSION}-torch{tv}-brevitas{brevitas.__version__}"


def _train(name: str) -> torch.nn.Module:
    d = load_digits_split()
    torch.manual_seed(SEED)
    model = MODELS[name]()
    x = torch.from_numpy(model_input(d.x_train))
    y = torch.from_numpy(d.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(x), generator=gen).split(BATCH):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(zoo._value(model(x[idx])), y[idx])
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


def _export(model: torch.nn.Module, path: Path, dynamo: bool) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zoo._quiet():
            zoo.export_qonnx(model, torch.zeros((1, 8, 8)), str(tmp), dynamo=dynamo,
                             verbose=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_LOADED: dict[Path, torch.nn.Module] = {}


def trained(name: str) -> torch.nn.Module:
    """Model ``name`` trained (from the cache when there), in eval mode; both exports cached."""
    entry = _entry(name)
    if entry in _LOADED and all((entry / zoo._onnx_name(d)).is_file() for d in (True, False)):
        return _LOADED[entry]
    state = entry / "state.pt"
    with zoo._one_thread(), zoo._locked(entry.with_name(entry.name + ".lock")):
        if state.is_file():
            model = MODELS[name]()
            model.load_state_dict(torch.load(state, weights_only=True))
            model.eval()
        else:
            model = _train(name)
            atomic_write(state, lambda f: torch.save(model.state_dict(), f))
        for dynamo in (True, False):
            if not (entry / zoo._onnx_name(dynamo)).is_file():
                _export(model, entry / zoo._onnx_name(dynamo), dynamo)
    _LOADED[entry] = model
    return model


def export(name: str, path_dir: str | os.PathLike, dynamo: bool) -> Path:
    """Train (cached) and export model ``name``; a copy of the export in ``path_dir``."""
    trained(name)
    src = _entry(name) / zoo._onnx_name(dynamo)
    dst = Path(path_dir) / f"{name}-{'dynamo' if dynamo else 'torchscript'}.onnx"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def torch_outputs(name: str, x_float) -> np.ndarray:
    """The float32 outputs ``(B, 10)`` of trained model ``name`` for ``x_float``."""
    model = trained(name)
    with zoo._one_thread(), torch.no_grad():
        out = zoo._value(model(torch.as_tensor(np.asarray(x_float, dtype=np.float32))))
    return out.numpy().astype(np.float32)
