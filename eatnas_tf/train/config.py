"""Training settings of one run (paper §4.1, §4.2): optimiser, schedule, loss extras.

`TrainConfig` is plain data; `flags.train_config_from_flags` builds it from the command
line and `trainer.train` reads it. The defaults are the paper's CIFAR-10 *search* setting:
1 epoch, batch 128, SGD lr 0.0256 constant, momentum 0.9, weight decay 3e-4.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

LR_SCHEDULES = ("constant", "cosine", "cosine_restarts", "polynomial")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Attributes:
      epochs: training epochs (a search candidate: 1).
      batch_size: global batch size; the data bundle's batches are used as they are, this
        is recorded and checked against them.
      learning_rate: initial (peak) learning rate.
      momentum: SGD momentum.
      weight_decay: coupled L2 on conv / dense kernels (gradient += wd × w), as the
        paper's "weight decay 3e-4" in a PyTorch/TF-L2 setting.
      lr_schedule: "constant", "cosine" (one annealing to `lr_end`), "cosine_restarts"
        (SGDR: first period `restart_epochs`, each next one × `restart_mult`) or
        "polynomial" (to `lr_end` with exponent `lr_power`).
      lr_end: final learning rate of cosine / polynomial, minimum of cosine_restarts.
      restart_epochs: first SGDR period in epochs (10: with ×2 periods end at 630 epochs,
        the paper's CIFAR-10 retraining length).
      restart_mult: SGDR period multiplier.
      lr_power: exponent of the polynomial decay.
      warmup_epochs: linear warm-up from 0 over this many epochs (fractional allowed).
      label_smoothing: label smoothing of the cross-entropy (0 = off).
      aux_weight: weight of the auxiliary tower's loss (paper §4.1: 0.4) for two-output models.
      mixed_precision: "mixed_float16" policy (GPUs); the loss is scaled dynamically.
      jit_compile: XLA-compile the train step (GPUs; 4× slower on this CPU, docs/design.md §5).
      fused_bn: build the model's batch norms on TensorFlow's fused kernel
        (`model.fused_bn`: the same function and weights, ~1.4× faster training on 2 CPU
        cores, results equal to float round-off); False: Keras' own layer (bit-exact with
        runs made before it, e.g. the smoke search's golden records).
      bn_recalibration_batches: before the final validation, recompute BN moving statistics
        as the average over this many un-augmented training batches (0 = off).
      steps_per_epoch: cap on steps per epoch (None = one full pass over the training set).
      seed: `keras.utils.set_random_seed` seed (initialisation, dropout).
      validate_every: evaluate on the validation set every N epochs (the last epoch always).
      nesterov: Nesterov momentum.
      schedule_epochs: the number of epochs the LR schedule (and its warm-up-free part)
        spans; None: `epochs`. Set larger than `epochs` to stop a run partway along a
        longer schedule that a continuation (resumed checkpoint, more `epochs`) carries on
        (EcoNAS: one cosine over 3E, trained E, then continued to 2E and 3E).
    """

    epochs: int = 1
    batch_size: int = 128
    learning_rate: float = 0.0256
    momentum: float = 0.9
    weight_decay: float = 3e-4
    lr_schedule: str = "constant"
    lr_end: float = 1e-4
    restart_epochs: float = 10.0
    restart_mult: float = 2.0
    lr_power: float = 1.0
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    aux_weight: float = 0.4
    mixed_precision: bool = False
    jit_compile: bool = False
    fused_bn: bool = True
    bn_recalibration_batches: int = 0
    steps_per_epoch: Optional[int] = None
    seed: int = 0
    validate_every: int = 1
    nesterov: bool = False
    schedule_epochs: Optional[float] = None

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule: received {self.lr_schedule!r}; allowed values: "
                             f"{', '.join(LR_SCHEDULES)}")
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1,
            "learning_rate": self.learning_rate > 0, "momentum": 0 <= self.momentum < 1,
            "weight_decay": self.weight_decay >= 0, "lr_end": self.lr_end >= 0,
            "restart_epochs": self.restart_epochs > 0, "restart_mult": self.restart_mult >= 1,
            "lr_power": self.lr_power > 0, "warmup_epochs": 0 <= self.warmup_epochs < self.epochs
            or self.warmup_epochs == 0, "label_smoothing": 0 <= self.label_smoothing < 1,
            "aux_weight": self.aux_weight >= 0,
            "bn_recalibration_batches": self.bn_recalibration_batches >= 0,
            "steps_per_epoch": self.steps_per_epoch is None or self.steps_per_epoch >= 1,
            "validate_every": self.validate_every >= 1,
            "schedule_epochs": self.schedule_epochs is None or self.schedule_epochs > 0,
        }
        allowed = {"epochs": ">= 1", "batch_size": ">= 1", "learning_rate": "> 0",
                   "momentum": "[0, 1)", "weight_decay": ">= 0", "lr_end": ">= 0",
                   "restart_epochs": "> 0", "restart_mult": ">= 1", "lr_power": "> 0",
                   "warmup_epochs": "[0, epochs)", "label_smoothing": "[0, 1)",
                   "aux_weight": ">= 0", "bn_recalibration_batches": ">= 0",
                   "steps_per_epoch": ">= 1 or None", "validate_every": ">= 1",
                   "schedule_epochs": "> 0 or None"}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name}: received {getattr(self, name)!r}; allowed values: "
                                 f"{allowed[name]}")

    def replace(self, **kw) -> "TrainConfig":
        return dataclasses.replace(self, **kw)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
