"""Learning-rate schedules and SGD with coupled weight decay (paper §4.1, §4.2).

Schedules are step-based `keras.optimizers.schedules.LearningRateSchedule`s built from a
`TrainConfig` and the number of steps per epoch, so the optimiser's own `iterations`
counter drives them and a resumed run continues where it stopped:

  constant         lr                                   (paper: search, 0.0256 / 0.05)
  cosine           lr_end + (lr - lr_end)·(1 + cos(π t)) / 2 over the run
  cosine_restarts  SGDR: the same within periods of restart_epochs × restart_mult^i
                   (paper: CIFAR-10 retraining, 630 epochs = 10 + 20 + ... + 320)
  polynomial       lr_end + (lr - lr_end)·(1 - t)^power (paper: ImageNet, 0.1 → 1e-4)

each with an optional linear warm-up from 0 over `warmup_epochs` (the schedule then runs
over the remaining steps). "The run" is `schedule_epochs` epochs when set (a run may stop
partway and be continued from its checkpoint: the optimiser's step counter is restored,
so the LR carries on along the same curve), else `epochs`.

Weight decay is *coupled* L2, as in the paper's PyTorch/TF setting: the gradient of every
conv / dense kernel gets `+ weight_decay × w` before the momentum update (the same as
adding `weight_decay/2 · Σ‖w‖²` to the loss). BN parameters and biases are not decayed
(TF-slim / MnasNet convention). Keras' own `weight_decay=` argument is the decoupled
(AdamW-style) variant, which under momentum 0.9 decays ~10× less; it is not used.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from eatnas_tf.train.config import TrainConfig

DECAYED_WEIGHTS = ("kernel", "depthwise_kernel")


class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The schedule of a `TrainConfig` in optimiser steps (see the module docstring)."""

    def __init__(self, kind: str, learning_rate: float, total_steps: int, *, lr_end: float = 0.0,
                 warmup_steps: int = 0, restart_steps: int = 1, restart_mult: float = 2.0,
                 power: float = 1.0):
        self.kind = kind
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        self.lr_end = float(lr_end)
        self.warmup_steps = int(warmup_steps)
        self.restart_steps = max(1, int(restart_steps))
        self.restart_mult = float(restart_mult)
        self.power = float(power)

    def __call__(self, step):
        base, end = self.learning_rate, self.lr_end
        step = tf.cast(step, tf.float32)
        s = tf.maximum(step - self.warmup_steps, 0.0)
        span = float(max(self.total_steps - self.warmup_steps, 1))
        t = tf.clip_by_value(s / span, 0.0, 1.0)
        if self.kind == "constant":
            lr = tf.constant(base, tf.float32)
        elif self.kind == "cosine":
            lr = end + 0.5 * (base - end) * (1.0 + tf.cos(math.pi * t))
        elif self.kind == "polynomial":
            lr = end + (base - end) * tf.pow(1.0 - t, self.power)
        elif self.kind == "cosine_restarts":
            t0, m = float(self.restart_steps), self.restart_mult
            if m == 1.0:
                i = tf.floor(s / t0)
                start, period = i * t0, tf.constant(t0)
            else:
                i = tf.floor(tf.math.log(1.0 - s / t0 * (1.0 - m)) / math.log(m))
                start = t0 * (1.0 - tf.pow(m, i)) / (1.0 - m)
                period = t0 * tf.pow(m, i)
            frac = tf.clip_by_value((s - start) / period, 0.0, 1.0)
            lr = end + 0.5 * (base - end) * (1.0 + tf.cos(math.pi * frac))
        else:
            raise ValueError(f"lr_schedule: received {self.kind!r}")
        if self.warmup_steps > 0:
            lr = tf.where(step < self.warmup_steps, base * (step + 1.0) / self.warmup_steps, lr)
        return lr

    def get_config(self):
        return {"kind": self.kind, "learning_rate": self.learning_rate,
                "total_steps": self.total_steps, "lr_end": self.lr_end,
                "warmup_steps": self.warmup_steps, "restart_steps": self.restart_steps,
                "restart_mult": self.restart_mult, "power": self.power}


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> EpochSchedule:
    """`config`'s schedule for `steps_per_epoch` optimiser steps per epoch."""
    span = config.schedule_epochs if config.schedule_epochs is not None else config.epochs
    return EpochSchedule(
        config.lr_schedule, config.learning_rate, int(round(span * steps_per_epoch)),
        lr_end=config.lr_end, warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
        restart_steps=int(round(config.restart_epochs * steps_per_epoch)),
        restart_mult=config.restart_mult, power=config.lr_power)


def _is_decayed(variable) -> bool:
    name = getattr(variable, "path", None) or variable.name
    return name.split(":")[0].split("/")[-1] in DECAYED_WEIGHTS


class CoupledSGD(keras.optimizers.SGD):
    """SGD (+ momentum) whose weight decay is L2 on the loss: g ← g + l2 · w for kernels."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, l2: float = 0.0,
                 name="coupled_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
                         name=name, **kwargs)
        self.l2 = float(l2)
        self._decay_mask = []

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._decay_mask = [_is_decayed(v) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        if self.l2 and self._decay_mask[self._get_variable_index(variable)]:
            gradient = gradient + tf.cast(self.l2, gradient.dtype) * tf.cast(
                variable, gradient.dtype
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["l2"] = self.l2
        return config


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> CoupledSGD:
    return CoupledSGD(learning_rate=make_schedule(config, steps_per_epoch),
                      momentum=config.momentum, nesterov=config.nesterov, l2=config.weight_decay)
