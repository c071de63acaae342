"""Deep Compression pipeline (prune, share, fine-tune, fixed point) on the 8x8 digits."""

import numpy as np
import pytest

from lowbit.hw.sparse.engine_spec import SparseEngineSpec
from lowbit.quant.deep_compression import (accuracy, compress_mlp, compression_ratio, integer_forward,
                                           integer_layers, mlp_forward, prune_mask, share_weights)
from lowbit.quant.data import load_digits_split
from lowbit.sw_reference.sparse import decode_sparse


def test_prune_mask_keeps_the_largest_magnitudes():
    w = np.array([[0.1, -0.9, 0.3], [-0.2, 0.5, -0.05]])
    assert prune_mask(w, 0.5).tolist() == [[0, 1, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match=r"^density must lie in \(0, 1\], not 0$"):
        prune_mask(w, 0)


def test_share_weights_linear_init_and_reserved_zero():
    # Two well-separated groups: k-means from a linear init puts them in the two end clusters.
    w = np.array([[0.0, -1.0, -1.02, 0.0], [2.0, 2.04, 0.0, -0.98]])
    layer = share_weights(w, index_bits=1)       # one non-zero centroid + the reserved zero
    assert layer.indices.tolist() == [[0, 1, 1, 0], [1, 1, 0, 1]]
    assert layer.centroids[0] == 0
    layer = share_weights(w, index_bits=2)       # three centroids, linear init over [-1.02, 2.04]
    assert layer.indices[0, 0] == 0 and layer.indices[1, 2] == 0
    assert len(set(layer.indices[w < 0])) == 1 and len(set(layer.indices[w > 0])) == 1
    assert layer.centroids[layer.indices[1, 0]] == pytest.approx(2.02)
    assert layer.centroids[layer.indices[0, 1]] == pytest.approx(-1.0)


@pytest.fixture(scope="module")
def digits_compressed():
    d = load_digits_split()
    c = compress_mlp(d.x_train / 16.0, d.y_train, hidden=(40,), densities=(0.3, 0.6), epochs=30,
                     retrain_epochs=8, steps=2, finetune_epochs=3)
    return d, c


def test_compressed_digits_mlp_keeps_accuracy_and_encodes_exactly(digits_compressed):
    d, c = digits_compressed
    dense_acc = accuracy(mlp_forward(c.dense, d.x_test / 16.0), d.y_test)
    shared_acc = accuracy(mlp_forward([s.weights for s in c.shared], d.x_test / 16.0), d.y_test)
    assert dense_acc > 0.9
    assert shared_acc >= dense_acc - 0.03
    for layer, density in zip(c.shared, (0.3, 0.6)):
        assert layer.density == pytest.approx(density, abs=1 / layer.indices.size)
        assert layer.centroids[0] == 0 and layer.indices.max() <= 15
    specs = integer_layers(c.shared, d.x_train, pes=4)
    for spec, layer in zip(specs, c.shared):
        assert np.array_equal(decode_sparse(spec.image), layer.indices)
        assert spec.image.codebook[0] == 0 and np.abs(spec.image.codebook).max() == 127
    assert [s.relu for s in specs] == [True, False]
    logits = integer_forward(specs, d.x_test)[-1]
    assert accuracy(logits, d.y_test) >= shared_acc - 0.02
    # The shift keeps the calibration maxima inside the output width without saturating.
    hidden = integer_forward(specs, d.x_train)[0]
    assert hidden.max() < 1 << 14
    ratio = compression_ratio([s.image for s in specs])
    bits = sum(s.image.encoded_bits() for s in specs)
    assert ratio == sum(s.rows * s.cols for s in specs) * 32 / bits


@pytest.mark.amaranth_sim
def test_compressed_mlp_runs_bit_exact_on_the_engine_chained(digits_compressed):
    from lowbit.sim.sparse_sim import run_amaranth

    d, c = digits_compressed
    layers = integer_layers(c.shared, d.x_train, pes=4)
    specs = [SparseEngineSpec.for_layer(layer, depth=4) for layer in layers]
    assert all(s.image is layer.image and s.shift == layer.shift for s, layer in zip(specs, layers))
    x = d.x_test[:4]
    expected = integer_forward(specs, x)
    a = x
    for spec, ref in zip(specs, expected):
        run = run_amaranth(spec, a)      # each layer fed with the previous layer's hardware outputs
        a = np.array(run.outputs)
        assert a.tolist() == ref.tolist()
        assert list(run.cycles) == [spec.timing(xi).cycles for xi in (x if spec is specs[0] else expected[0])]
    assert np.argmax(a, axis=1).tolist() == np.argmax(expected[-1], axis=1).tolist()
