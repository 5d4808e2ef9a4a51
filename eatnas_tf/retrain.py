"""Fully retrains one architecture and saves it for export (paper §4.1, §4.2 retraining).

    python -m eatnas_tf.retrain --arch=ARCH --space=cifar10 --output_dir=DIR \
        --flagfile=flags/eat_cifar10_retrain.cfg [--aux_head]

Trains on the whole train split, checkpoints every epoch (rerunning the same command
resumes), evaluates test accuracy and writes `DIR/model/` (model.keras + meta.json),
`DIR/retrain.json` and TensorBoard logs in `DIR/tb/`. The logic is
`eatnas_tf.train.retrain_lib.retrain`.
"""

import json

from absl import flags

from eatnas_tf import cli

cli.quiet_import_tensorflow()  # before the library: keeps usage errors one line
from eatnas_tf.arch import codec
from eatnas_tf.arch import space as space_lib
from eatnas_tf.train import flags as train_flags
from eatnas_tf.train import retrain_lib

_ARCH = flags.DEFINE_string("arch", None, "Architecture: text form, JSON or a file path.",
                            required=True)
_SPACE = flags.DEFINE_enum("space", "fashion_mnist", list(space_lib.SPACES),
                           "Search space: strides, stem/head and channel mode.")
_CHANNEL_MODE = flags.DEFINE_enum("channel_mode", None, ["relative", "mbv2"],
                                  "How widths give channels (default: the space's): relative "
                                  "= N_out / N_in (paper), mbv2 = MobileNetV2 bases x width.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Output directory (resumed if it exists).",
                                  required=True)
_AUX_HEAD = flags.DEFINE_bool("aux_head", False, "Train with the auxiliary tower (paper §4.1).")
_DROPOUT = flags.DEFINE_float("dropout", 0.0, "Dropout before the logits.")
_SEED = flags.DEFINE_integer("seed", 0, "Initialisation, shuffling and augmentation seed.")
_VERBOSE = flags.DEFINE_integer("verbose", 1, "0 quiet, 1 a line per epoch, 2 progress bars.")
train_flags.define_data_flags()
train_flags.define_train_flags()


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}; pass everything as --flags")
    space = space_lib.get_space(_SPACE.value, _CHANNEL_MODE.value)
    arch = codec.parse_arch(_ARCH.value, **space.arch_defaults())
    data_cfg = train_flags.data_config_from_flags(split="final", seed=_SEED.value)
    train_cfg = train_flags.train_config_from_flags(seed=_SEED.value)
    train_flags.check_plain_last_epochs(data_cfg, train_cfg)
    if not 0.0 <= _DROPOUT.value < 1.0:
        raise cli.UsageError(f"dropout: received {_DROPOUT.value}; allowed values: [0, 1)")
    record = retrain_lib.retrain(arch, space, data_cfg, train_cfg, _OUTPUT_DIR.value,
                                 aux_head=_AUX_HEAD.value, dropout=_DROPOUT.value,
                                 verbose=_VERBOSE.value)
    print(json.dumps({k: record.get(k) for k in ("arch", "test_acc", "val_acc", "params", "madds",
                                                 "epochs", "wall_s")}))


if __name__ == "__main__":
    cli.run(main)
