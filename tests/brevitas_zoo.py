"""A zoo of real Brevitas models trained on the 8x8 digits, exported through both QONNX paths.

Issue 16 ("every Brevitas/QONNX export runs in hardware with the model's own answers") names seven
models; each is trained briefly here (seeded, CPU, one thread, Adam) and exported with
:func:`brevitas.export.export_qonnx` twice: by the default (dynamo) exporter and with
``dynamo=False`` (the TorchScript-style graph: ``Transpose`` + ``MatMul``, constant ``Pow`` kept).

* ``w1a1_mlp_tensornorm``: the BNN-PYNQ LFC recipe: 8-bit input, binary weights and activations,
  batch-norm, a ``TensorNorm`` after the last layer;
* ``w2a2_mlp_float_bias``: 2-bit MLP whose last ``QuantLinear`` has a float bias;
* ``w1a1_cnn_pad_pool``: binary CNN, ``padding=1`` convolutions and 2x2 max-pools;
* ``ternary_mlp_float_in``: ternary weights reading float pixels, no input quantizer;
* ``w4a4_per_channel``: 4-bit weights with per-output-channel scales, 4-bit activations;
* ``cnn_bias_free``: 4-bit CNN without any bias or batch-norm;
* ``cnn_avgpool_int32``: CNN ending in ``TruncAvgPool2d`` global pooling and an ``Int32Bias``
  last layer.

Issue 19 ("beyond chains") adds two networks that are not chains (:data:`DAG_MODELS`):

* ``resnet_w4a4``: a ResNet-style CNN, three residual blocks (identity, 1x1-projection with
  stride 2, identity), each ``Add`` of the main branch's and the shortcut's own 4-bit quantizers
  (different scales), then ``QuantReLU``; ``TruncAvgPool2d`` global pooling;
* ``mobilenet_w4a4``: a MobileNet-v1-style CNN, three depthwise-separable blocks (3x3 ``Conv``
  with ``groups == channels``, batch-norm, 4-bit ``QuantReLU``, then a 1x1 pointwise ``Conv``),
  4-bit weights and activations, ``TruncAvgPool2d`` global pooling.

Trained state dicts and both exports are cached under ``$LOWBIT_CACHE/brevitas_zoo`` (default
``~/.cache/lowbit/brevitas_zoo``), keyed by the model name, :data:`VERSION` and the torch and
Brevitas versions; files are written atomically and training holds a per-model file lock, so
parallel test workers train each model once.

Inputs: every model reads the digits' pixels (integers 0..16) divided by 16, as floats: ``(B, 64)``
for the MLPs, ``(B, 1, 8, 8)`` for the CNNs (:func:`model_input`); the ONNX export reads the same.
The model without an input quantizer is imported with ``input_quant=PIXELS`` (UINT5 codes at scale
1/16, :func:`import_kwargs`): the importer cannot know that grid from the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import brevitas
import brevitas.nn as qnn
import numpy as np
import torch
from brevitas.export import export_qonnx
from brevitas.quant import (
    Int32Bias,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    SignedTernaryWeightPerTensorConst,
)

from lowbit._io import atomic_write
from lowbit.ir import DataType
from lowbit.ir.boundary import InputQuant
from lowbit.quant.data import load_digits_split

try:
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm
except ImportError:  # brevitas_examples is not always installed: the same module

    class TensorNorm(torch.nn.Module):  # type: ignore[no-redef]
        """Scalar-affine normalisation (BNN-PYNQ): one running mean/var, one weight and bias."""

        def __init__(self, eps=1e-4, momentum=0.1):
            super().__init__()
            self.eps, self.momentum = eps, momentum
            self.weight = torch.nn.Parameter(torch.ones(1))
            self.bias = torch.nn.Parameter(torch.zeros(1))
            self.register_buffer("running_mean", torch.zeros(1))
            self.register_buffer("running_var", torch.ones(1))

        def forward(self, x):
            if self.training:
                mean, var = x.mean(), x.var(unbiased=False)
                m = self.momentum
                with torch.no_grad():
                    self.running_mean.mul_(1 - m).add_(m * mean)
                    self.running_var.mul_(1 - m).add_(m * x.var(unbiased=True))
                return (x - mean) / (var + self.eps).pow(0.5) * self.weight + self.bias
            norm = (x - self.running_mean) / (self.running_var + self.eps).pow(0.5)
            return norm * self.weight + self.bias


__all__ = ["ALL_MODELS", "DAG_MODELS", "MODELS", "PIXELS", "TIE_RTOL", "VERSION", "ZooModel",
           "cache_dir", "export", "import_kwargs", "model_input", "torch_outputs", "trained",
           "untied"]

VERSION = "2"
"""Bump when a model, its training or its input changes: the cache key holds it."""

BIN_W = {"weight_quant": SignedBinaryWeightPerTensorConst, "bias": False}


def _bin_act():
    return qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)


def _inp():
    return qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)


class W1A1MLPTensorNorm(torch.nn.Module):
    """LFC recipe: 8-bit input, (binary QuantLinear, BatchNorm1d, binary act) x 2, binary
    QuantLinear, TensorNorm."""

    def __init__(self, hidden=128):
        super().__init__()
        self.inp = _inp()
        self.fc0 = qnn.QuantLinear(64, hidden, **BIN_W)
        self.bn0 = torch.nn.BatchNorm1d(hidden)
        self.act0 = _bin_act()
        self.fc1 = qnn.QuantLinear(hidden, hidden, **BIN_W)
        self.bn1 = torch.nn.BatchNorm1d(hidden)
        self.act1 = _bin_act()
        self.fc2 = qnn.QuantLinear(hidden, 10, **BIN_W)
        self.tn = TensorNorm()

    def forward(self, x):
        x = self.act0(self.bn0(self.fc0(self.inp(x))))
        x = self.act1(self.bn1(self.fc1(x)))
        return self.tn(self.fc2(x))


class W2A2MLPFloatBias(torch.nn.Module):
    """2-bit weights and activations; the last QuantLinear's bias stays float (Brevitas'
    default ``bias_quant``)."""

    def __init__(self, hidden=64):
        super().__init__()
        self.inp = _inp()
        self.fc0 = qnn.QuantLinear(64, hidden, bias=False, weight_bit_width=2)
        self.bn0 = torch.nn.BatchNorm1d(hidden)
        self.act0 = qnn.QuantReLU(bit_width=2, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(hidden, hidden, bias=False, weight_bit_width=2)
        self.bn1 = torch.nn.BatchNorm1d(hidden)
        self.act1 = qnn.QuantReLU(bit_width=2, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(hidden, 10, bias=True, weight_bit_width=2)

    def forward(self, x):
        x = self.act0(self.bn0(self.fc0(self.inp(x))))
        x = self.act1(self.bn1(self.fc1(x)))
        return self.fc2(x)


class W1A1CNNPadPool(torch.nn.Module):
    """Binary CNN: padded 3x3 convolutions (zero padding), batch-norm, binary acts, 2x2
    max-pools."""

    def __init__(self, c0=32, c1=64):
        super().__init__()
        self.inp = _inp()
        self.conv0 = qnn.QuantConv2d(1, c0, 3, padding=1, **BIN_W)
        self.bn0 = torch.nn.BatchNorm2d(c0)
        self.act0 = _bin_act()
        self.pool0 = torch.nn.MaxPool2d(2)
        self.conv1 = qnn.QuantConv2d(c0, c1, 3, padding=1, **BIN_W)
        self.bn1 = torch.nn.BatchNorm2d(c1)
        self.act1 = _bin_act()
        self.pool1 = torch.nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(c1 * 2 * 2, 10, **BIN_W)

    def forward(self, x):
        x = self.pool0(self.act0(self.bn0(self.conv0(self.inp(x)))))
        x = self.pool1(self.act1(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(x, 1))


class TernaryMLPFloatInput(torch.nn.Module):
    """Ternary weights, 2-bit activations; the first layer reads the float input directly (no
    input quantizer: Brevitas' default ``input_quant`` is none)."""

    def __init__(self, hidden=64):
        super().__init__()
        tern = {"weight_quant": SignedTernaryWeightPerTensorConst, "bias": False}
        self.fc0 = qnn.QuantLinear(64, hidden, **tern)
        self.bn0 = torch.nn.BatchNorm1d(hidden)
        self.act0 = qnn.QuantReLU(bit_width=2, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(hidden, 10, **tern)

    def forward(self, x):
        return self.fc1(self.act0(self.bn0(self.fc0(x))))


class W4A4PerChannel(torch.nn.Module):
    """4-bit weights with one scale per output channel (the last layer's too), 4-bit acts."""

    def __init__(self, hidden=64):
        super().__init__()
        w4 = {"weight_bit_width": 4, "weight_scaling_per_output_channel": True, "bias": False}
        self.inp = _inp()
        self.fc0 = qnn.QuantLinear(64, hidden, **w4)
        self.bn0 = torch.nn.BatchNorm1d(hidden)
        self.act0 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(hidden, 10, **w4)

    def forward(self, x):
        return self.fc1(self.act0(self.bn0(self.fc0(self.inp(x)))))


class CNNBiasFree(torch.nn.Module):
    """4-bit CNN without biases or batch-norm: conv, ReLU, conv, ReLU, max-pool, linear."""

    def __init__(self, c0=16, c1=32):
        super().__init__()
        w4 = {"weight_bit_width": 4, "bias": False}
        self.inp = _inp()
        self.conv0 = qnn.QuantConv2d(1, c0, 3, **w4)
        self.act0 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.conv1 = qnn.QuantConv2d(c0, c1, 3, **w4)
        self.act1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(c1 * 2 * 2, 10, **w4)

    def forward(self, x):
        x = self.act1(self.conv1(self.act0(self.conv0(self.inp(x)))))
        return self.fc(torch.flatten(self.pool(x), 1))


class CNNAvgPoolInt32Bias(torch.nn.Module):
    """4-bit CNN ending in ``TruncAvgPool2d`` global average pooling and a last ``QuantLinear``
    with an ``Int32Bias``."""

    def __init__(self, c0=16, c1=32):
        super().__init__()
        w4 = {"weight_bit_width": 4, "bias": False}
        self.inp = _inp()
        self.conv0 = qnn.QuantConv2d(1, c0, 3, padding=1, **w4)
        self.bn0 = torch.nn.BatchNorm2d(c0)
        self.act0 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.pool0 = torch.nn.MaxPool2d(2)
        self.conv1 = qnn.QuantConv2d(c0, c1, 3, padding=1, **w4)
        self.bn1 = torch.nn.BatchNorm2d(c1)
        self.act1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.gap = qnn.TruncAvgPool2d(kernel_size=4)
        self.fc = qnn.QuantLinear(c1, 10, weight_bit_width=4, bias=True, bias_quant=Int32Bias)

    def forward(self, x):
        x = self.pool0(self.act0(self.bn0(self.conv0(self.inp(x)))))
        x = self.gap(self.act1(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(x, 1))


W4 = {"weight_bit_width": 4, "bias": False}


def _relu4():
    return qnn.QuantReLU(bit_width=4, return_quant_tensor=True)


class _ResidualBlock(torch.nn.Module):
    """conv3x3 (stride), BN, 4-bit ReLU, conv3x3, BN, 4-bit quantizer; the shortcut (the input,
    or a 1x1 projection conv and BN) through its own 4-bit quantizer; Add, 4-bit ReLU. The two
    quantizers learn their own scales, so the sum adds tensors of different scales (as floats:
    Brevitas adds QuantTensors only of one scale)."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv0 = qnn.QuantConv2d(cin, cout, 3, stride=stride, padding=1, **W4)
        self.bn0 = torch.nn.BatchNorm2d(cout)
        self.act0 = _relu4()
        self.conv1 = qnn.QuantConv2d(cout, cout, 3, padding=1, **W4)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.q_main = qnn.QuantIdentity(bit_width=4, return_quant_tensor=False)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = qnn.QuantConv2d(cin, cout, 1, stride=stride, **W4)
            self.proj_bn = torch.nn.BatchNorm2d(cout)
        self.q_short = qnn.QuantIdentity(bit_width=4, return_quant_tensor=False)
        self.act1 = _relu4()

    def forward(self, x):
        y = self.q_main(self.bn1(self.conv1(self.act0(self.bn0(self.conv0(x))))))
        s = x if self.proj is None else self.proj_bn(self.proj(x))
        return self.act1(y + self.q_short(s))


class ResNetW4A4(torch.nn.Module):
    """Stem conv3x3 (16), residual blocks 16 -> 16, 16 -> 32 (stride 2, projection), 32 -> 32,
    ``TruncAvgPool2d`` over the 4x4 map, 4-bit ``QuantLinear``."""

    def __init__(self, c0=16, c1=32):
        super().__init__()
        self.inp = _inp()
        self.stem = qnn.QuantConv2d(1, c0, 3, padding=1, **W4)
        self.bn = torch.nn.BatchNorm2d(c0)
        self.act = _relu4()
        self.block0 = _ResidualBlock(c0, c0)
        self.block1 = _ResidualBlock(c0, c1, stride=2)
        self.block2 = _ResidualBlock(c1, c1)
        self.gap = qnn.TruncAvgPool2d(kernel_size=4)
        self.fc = qnn.QuantLinear(c1, 10, **W4)

    def forward(self, x):
        x = self.act(self.bn(self.stem(self.inp(x))))
        x = self.block2(self.block1(self.block0(x)))
        return self.fc(torch.flatten(self.gap(x), 1))


class _SeparableBlock(torch.nn.Module):
    """Depthwise conv3x3 (``groups == channels``, stride), BN, 4-bit ReLU; pointwise conv1x1, BN,
    4-bit ReLU."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.dw = qnn.QuantConv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, **W4)
        self.bn0 = torch.nn.BatchNorm2d(cin)
        self.act0 = _relu4()
        self.pw = qnn.QuantConv2d(cin, cout, 1, **W4)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.act1 = _relu4()

    def forward(self, x):
        return self.act1(self.bn1(self.pw(self.act0(self.bn0(self.dw(x))))))


class MobileNetW4A4(torch.nn.Module):
    """Stem conv3x3 (16), separable blocks 16 -> 32, 32 -> 32 (stride 2), 32 -> 64,
    ``TruncAvgPool2d`` over the 4x4 map, 4-bit ``QuantLinear``."""

    def __init__(self):
        super().__init__()
        self.inp = _inp()
        self.stem = qnn.QuantConv2d(1, 16, 3, padding=1, **W4)
        self.bn = torch.nn.BatchNorm2d(16)
        self.act = _relu4()
        self.blocks = torch.nn.Sequential(
            _SeparableBlock(16, 32), _SeparableBlock(32, 32, stride=2), _SeparableBlock(32, 64)
        )
        self.gap = qnn.TruncAvgPool2d(kernel_size=4)
        self.fc = qnn.QuantLinear(64, 10, **W4)

    def forward(self, x):
        x = self.blocks(self.act(self.bn(self.stem(self.inp(x)))))
        return self.fc(torch.flatten(self.gap(x), 1))


PIXELS = InputQuant(DataType.uint(5), scale=1 / 16, zero_point=0.0)
"""The inputs ``pixels / 16`` as the importer must read them when no input quantizer does: UINT5
codes at scale 1/16 (exact in float32)."""


@dataclass(frozen=True)
class ZooModel:
    """How to build, feed, train and import one model of the zoo."""

    build: Callable[[], torch.nn.Module]
    image: bool
    """True: the model reads ``(B, 1, 8, 8)``; False: ``(B, 64)``."""
    epochs: int
    lr: float
    input_quant: InputQuant | None = None
    """For a model without an input quantizer: how ``import_onnx`` reads its float input."""


MODELS: dict[str, ZooModel] = {
    "w1a1_mlp_tensornorm": ZooModel(W1A1MLPTensorNorm, False, 12, 1e-2),
    "w2a2_mlp_float_bias": ZooModel(W2A2MLPFloatBias, False, 12, 1e-2),
    "w1a1_cnn_pad_pool": ZooModel(W1A1CNNPadPool, True, 8, 1e-2),
    "ternary_mlp_float_in": ZooModel(TernaryMLPFloatInput, False, 12, 1e-2, PIXELS),
    "w4a4_per_channel": ZooModel(W4A4PerChannel, False, 12, 1e-2),
    "cnn_bias_free": ZooModel(CNNBiasFree, True, 8, 3e-3),
    "cnn_avgpool_int32": ZooModel(CNNAvgPoolInt32Bias, True, 8, 1e-2),
}
"""The seven models of issue 16, by name."""

DAG_MODELS: dict[str, ZooModel] = {
    "resnet_w4a4": ZooModel(ResNetW4A4, True, 8, 1e-2),
    "mobilenet_w4a4": ZooModel(MobileNetW4A4, True, 8, 1e-2),
}
"""The two networks of issue 19 that are not chains (residual, depthwise-separable), by name."""

ALL_MODELS: dict[str, ZooModel] = {**MODELS, **DAG_MODELS}
"""Every model of the zoo; :func:`trained`, :func:`export` and the helpers take any of them."""

SEED = 0
BATCH = 64


def cache_dir() -> Path:
    """``$LOWBIT_CACHE/brevitas_zoo`` (default ``~/.cache/lowbit/brevitas_zoo``)."""
    return Path(os.environ.get("LOWBIT_CACHE", Path.home() / ".cache" / "lowbit")) / "brevitas_zoo"


def _entry(name: str) -> Path:
    tv = torch.__version__.replace("+", "_")
    return cache_dir() / f"{name}-v{VERSION}-torch{tv}-brevitas{brevitas.__version__}"


def model_input(name: str, x_int_pixels) -> np.ndarray:
    """The float32 array model ``name`` and its ONNX export read for integer pixels
    ``(B, 64)``."""
    spec = ALL_MODELS[name]
    x = np.asarray(x_int_pixels).reshape(-1, 64).astype(np.float32) / np.float32(16)
    return x.reshape(-1, 1, 8, 8) if spec.image else x


@contextlib.contextmanager
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _train(name: str) -> torch.nn.Module:
    spec = ALL_MODELS[name]
    d = load_digits_split()
    torch.manual_seed(SEED)
    model = spec.build()
    x = torch.from_numpy(model_input(name, d.x_train))
    y = torch.from_numpy(d.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, spec.epochs)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(spec.epochs):
        for idx in torch.randperm(len(x), generator=gen).split(BATCH):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(_value(model(x[idx])), y[idx])
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


def _value(out) -> torch.Tensor:
    return out.value if hasattr(out, "value") else out


@contextlib.contextmanager
def _quiet():
    """No warnings, and torch.onnx's logger (the torchvision notes) at ERROR, for one export."""
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        onnx_log.setLevel(level)


def _export(model: torch.nn.Module, name: str, path: Path, dynamo: bool) -> None:
    spec = ALL_MODELS[name]
    example = torch.zeros((1, 1, 8, 8) if spec.image else (1, 64))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with _quiet():
            export_qonnx(model, example, str(tmp), dynamo=dynamo, verbose=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _onnx_name(dynamo: bool) -> str:
    return "dynamo.onnx" if dynamo else "torchscript.onnx"


_LOADED: dict[Path, torch.nn.Module] = {}


def trained(name: str) -> torch.nn.Module:
    """Model ``name`` trained (from the cache when there), in eval mode; both exports cached."""
    if name not in ALL_MODELS:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(ALL_MODELS)}")
    entry = _entry(name)
    if entry in _LOADED and all((entry / _onnx_name(d)).is_file() for d in (True, False)):
        return _LOADED[entry]
    state = entry / "state.pt"
    with _one_thread(), _locked(entry.with_name(entry.name + ".lock")):
        if state.is_file():
            model = ALL_MODELS[name].build()
            model.load_state_dict(torch.load(state, weights_only=True))
            model.eval()
        else:
            model = _train(name)
            atomic_write(state, lambda f: torch.save(model.state_dict(), f))
        for dynamo in (True, False):
            if not (entry / _onnx_name(dynamo)).is_file():
                _export(model, name, entry / _onnx_name(dynamo), dynamo)
    _LOADED[entry] = model
    return model


def import_kwargs(name: str) -> dict:
    """The keyword arguments :func:`lowbit.quant.onnx.importer.import_onnx` needs for model
    ``name``'s export: ``input_quant`` for a model without an input quantizer, else none."""
    q = ALL_MODELS[name].input_quant
    return {} if q is None else {"input_quant": q}


def export(name: str, path_dir: str | os.PathLike, dynamo: bool) -> Path:
    """Train (cached) and export model ``name``; a copy of the export in ``path_dir``.

    ``dynamo=True`` is ``export_qonnx``'s default exporter, ``False`` the TorchScript one.
    """
    trained(name)
    src = _entry(name) / _onnx_name(dynamo)
    dst = Path(path_dir) / f"{name}-{'dynamo' if dynamo else 'torchscript'}.onnx"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


TIE_RTOL = 2.0**-16
"""Top-2 gaps up to this share of a row's largest ``|output|`` count as ties: 128 float32 ulps
(2^-23 each), room for the few roundings by which torch's float32 tail (scale, bias, TensorNorm)
can differ from the exact value."""


def untied(outputs) -> np.ndarray:
    """Mask of the rows of ``outputs`` ``(B, classes)`` whose best class leads the second by more
    than :data:`TIE_RTOL` of the row's largest magnitude: their argmax does not depend on float32
    rounding."""
    out = np.asarray(outputs, dtype=np.float64)
    top2 = np.sort(out, axis=1)[:, -2:]
    bound = TIE_RTOL * np.abs(out).max(axis=1)
    return top2[:, 1] - top2[:, 0] > bound


def torch_outputs(name: str, x_float) -> np.ndarray:
    """The float32 outputs ``(B, 10)`` of trained model ``name`` (eval mode) for ``x_float``
    (as :func:`model_input` gives it)."""
    model = trained(name)
    with _one_thread(), torch.no_grad():
        out = _value(model(torch.as_tensor(np.asarray(x_float, dtype=np.float32))))
    return out.numpy().astype(np.float32)
