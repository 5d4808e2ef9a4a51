"""Batch normalization on TensorFlow's fused kernel: the same function as Keras 3's layer,
about 1.4× faster training on CPU (measured ad hoc, README "Cost model and trainer").

Keras 3's `BatchNormalization` computes the batch moments and the normalisation with
separate ops (mean, squared difference, mean, rsqrt, mul, sub, add, and their gradients);
on 2 CPU cores those elementwise ops and reductions took ~43% of a search candidate's
training-step op time. Keras 2 (`tf_keras`) used `FusedBatchNormV3` (one forward and one
backward kernel per layer, oneDNN on x86); this layer does the same for Keras 3 models:

    x = FusedBatchNormalization(momentum=0.9, epsilon=1e-3, name="b1_l1_bn")(x)

Same weights (gamma, beta, moving mean, moving variance: names and shapes as Keras', so
layer-wise sharing, `layer_weights` and the `tf_keras` rebuild for QAT are unchanged), the
same moving-statistics update (`moving = m·moving + (1 − m)·batch`, with the *biased* batch
variance as Keras uses; the fused kernel returns the unbiased one, which is rescaled), the
same normalisation in inference. Results agree with Keras' layer to float round-off
(tests/test_fused_bn.py), not bit for bit. Cases the fused kernel does not cover (masks,
renorm, non-4D or float16 inputs, a channel axis other than the last, no scale or center)
fall back to Keras' own code path.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="eatnas_tf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by `tf.raw_ops.FusedBatchNormV3`."""

    def _fusable(self, inputs, mask) -> bool:
        return (mask is None and not self.renorm and len(inputs.shape) == 4
                and self.axis in (-1, 3) and self.scale and self.center
                and inputs.dtype == tf.float32 and not self.synchronized)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        gamma, beta = self.gamma.value, self.beta.value
        if training and self.trainable:
            empty = tf.zeros([0], tf.float32)  # no running stats in: factor 1.0
            y, mean, var, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=gamma, offset=beta, mean=empty, variance=empty,
                epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC",
                is_training=True)
            shape = tf.shape(inputs)
            n = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
            var = var * ((n - 1.0) / tf.maximum(n, 1.0))  # unbiased -> biased, as Keras
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + var * (1.0 - m))
            return y
        y, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=gamma, offset=beta, mean=self.moving_mean.value,
            variance=self.moving_variance.value, epsilon=self.epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=False)
        return y
