"""The fused batch-norm layer computes what Keras' BatchNormalization computes."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from eatnas_tf.arch import codec
from eatnas_tf.arch import space as space_lib
from eatnas_tf.model import layer_weights
from eatnas_tf.model.artifact import load_keras_model
from eatnas_tf.model.builder import build_model
from eatnas_tf.model.fused_bn import FusedBatchNormalization

ARCH = "sep_k3_w1.0_d1,mb3_k3_w1.0_d1,mb3_k5_w1.0_d1_skip,mb6_k3_w1.0_d1,sep_k3_w1.0_d1," \
       "mb3_k3_w1.0_d1,mb3_k3_w1.0_d1"


def _pair(momentum=0.9):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, (8, 5, 5, 6)).astype(np.float32))
    keras_bn = keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-3)
    fused = FusedBatchNormalization(momentum=momentum, epsilon=1e-3)
    keras_bn.build(x.shape)
    fused.build(x.shape)
    gamma, beta = rng.uniform(0.5, 2, 6), rng.normal(0, 1, 6)
    mean, var = rng.normal(0, 1, 6), rng.uniform(0.5, 2, 6)
    for layer in (keras_bn, fused):
        layer.set_weights([w.astype(np.float32) for w in (gamma, beta, mean, var)])
    return x, keras_bn, fused


def test_training_forward_gradients_and_moving_statistics_match_keras():
    x, keras_bn, fused = _pair()
    outs, grads = [], []
    for layer in (keras_bn, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.sin(tf.range(6, dtype=tf.float32)))
        grads.append(tape.gradient(loss, [x, layer.gamma.value, layer.beta.value]))
        outs.append(y.numpy())
    np.testing.assert_allclose(outs[1], outs[0], atol=2e-5)
    for g_keras, g_fused in zip(*grads):
        np.testing.assert_allclose(g_fused.numpy(), g_keras.numpy(), rtol=1e-5, atol=2e-4)
    for w_keras, w_fused in zip(keras_bn.get_weights(), fused.get_weights()):
        np.testing.assert_allclose(w_fused, w_keras, rtol=1e-5, atol=1e-6)


def test_inference_matches_keras_and_falls_back_off_the_fused_case():
    x, keras_bn, fused = _pair()
    np.testing.assert_allclose(fused(x, training=False).numpy(),
                               keras_bn(x, training=False).numpy(), atol=2e-5)
    flat = tf.reshape(x, (-1, 6))  # 2-D input: Keras' own code path
    pair = [keras.layers.BatchNormalization(), FusedBatchNormalization()]
    out = [layer(flat, training=True).numpy() for layer in pair]
    np.testing.assert_allclose(out[1], out[0], atol=2e-5)


@pytest.fixture(scope="module")
def macro():
    sp = space_lib.get_space("fashion_mnist")
    return sp.macro.with_(image_size=28, in_channels=1, num_classes=10)


def test_models_share_names_and_weights_and_train_the_same(macro):
    arch = codec.from_text(ARCH)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (16, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    losses, weights = [], []
    for fused in (False, True):
        keras.utils.set_random_seed(0)
        model = build_model(arch, macro, fused_bn=fused)
        bns = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
        assert bns and all(isinstance(b, FusedBatchNormalization) == fused for b in bns)
        if weights:
            layer_weights.assign(model, weights[0])
        weights.append(layer_weights.get(model))
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        losses.append(model.fit(x, y, batch_size=8, epochs=2, verbose=0,
                                shuffle=False).history["loss"])
        keras.backend.clear_session()
    assert {k: [w.shape for w in v] for k, v in weights[0].items()} == \
           {k: [w.shape for w in v] for k, v in weights[1].items()}
    # Round-off only: equal in the first epoch, then SGD amplifies it (0.4% after 4 steps).
    np.testing.assert_allclose(losses[1][0], losses[0][0], rtol=1e-5)
    np.testing.assert_allclose(losses[1][1], losses[0][1], rtol=2e-2)


def test_keras_file_round_trip(macro, tmp_path):
    model = build_model(codec.from_text(ARCH), macro)
    x = np.random.default_rng(2).normal(0, 1, (2, 28, 28, 1)).astype(np.float32)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = load_keras_model(path)
    assert any(isinstance(la, FusedBatchNormalization) for la in loaded.layers)
    np.testing.assert_allclose(loaded(x, training=False).numpy(),
                               model(x, training=False).numpy(), atol=1e-6)
