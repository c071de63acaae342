"""Data loaders without network access: IDX (MNIST, Fashion-MNIST) and CIFAR-10 python batches from a
local path, with clear errors for missing or malformed files."""

import gzip
import pickle

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.quant.data import load_cifar10_dir, load_dataset, load_idx_dir, read_idx


def write_idx(path, arr: np.ndarray, gz=False):
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.fixture
def idx_dir(tmp_path):
    rng = np.random.default_rng(0)
    tr, te = rng.integers(0, 256, (7, 28, 28)), rng.integers(0, 256, (3, 28, 28))
    write_idx(tmp_path / "train-images-idx3-ubyte", tr)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(7) % 10)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", te, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([3, 1, 4]), gz=True)
    return tmp_path, tr, te


def test_idx_round_trip(idx_dir):
    d, tr, te = idx_dir
    data = load_idx_dir(d)
    assert data.x_train.shape == (7, 784) and data.x_test.shape == (3, 784)
    assert np.array_equal(data.x_train[2], tr[2].ravel()) and np.array_equal(data.x_test, te.reshape(3, -1))
    assert data.y_test.tolist() == [3, 1, 4] and data.image_shape == (28, 28, 1) and data.input_dtype.name == "UINT8"
    assert load_dataset(f"idx:{d}").x_train.shape == (7, 784)


def test_idx_errors(idx_dir, tmp_path):
    d, _, _ = idx_dir
    with pytest.raises(LowbitError, match="no such directory"):
        load_idx_dir(d / "nope")
    bad = d / "train-labels-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x07abc")  # header says 7 bytes, 3 follow
    with pytest.raises(LowbitError, match=r"train-labels-idx1-ubyte: IDX header \(7,\) needs 7 data bytes, found 3$"):
        load_idx_dir(d)
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(LowbitError, match=r"not an IDX file"):
        read_idx(bad)
    bad.unlink()
    with pytest.raises(LowbitError, match=r"missing train-labels-idx1-ubyte \(or \.gz\)"):
        load_idx_dir(d)
    with pytest.raises(LowbitError, match=r"^--dataset must be digits, mnist5k, idx:DIR or cifar10:DIR, not 'mnist'$"):
        load_dataset("mnist")


def test_cifar10_batches(tmp_path):
    rng = np.random.default_rng(1)
    planes = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
        planes[name] = x
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"data": x, b"labels": [1, 2]}, f)
    data = load_cifar10_dir(tmp_path)
    assert data.x_train.shape == (10, 3072) and data.image_shape == (32, 32, 3)
    # Planes (C, H, W) become HWC: pixel (h=1, w=2) channel 2 is plane 2's entry 1 * 32 + 2.
    img = data.x_test[0].reshape(32, 32, 3)
    assert img[1, 2, 2] == planes["test_batch"][0, 2 * 1024 + 1 * 32 + 2]
    (tmp_path / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(LowbitError, match=r"data_batch_3: not a CIFAR-10 python batch"):
        load_cifar10_dir(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(LowbitError, match=r"data_batch_3: missing CIFAR-10 batch"):
        load_cifar10_dir(tmp_path)
