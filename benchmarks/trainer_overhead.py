"""Trainer vs a bare `model.fit`: throughput ratio and per-candidate overhead.

    python benchmarks/trainer_overhead.py [--max_train_examples=N]

Same model (a tiny Fashion-MNIST encoding), same tf.data pipeline, same process:
  1. `trainer.train` for one epoch (a search candidate): records images/s after the first
     step, and the per-candidate overhead = build + compile (`build_s`) + first-step tracing
     (`tracing_s`) + `clear_session` (`clear_s`), as a fraction of the candidate's wall time.
  2. a bare `model.compile(SGD) + model.fit` on the same data, timed the same way.
Targets (issue 8): throughput ratio >= 0.95, overhead fraction <= 10%.
Falls back to scikit-learn digits when the Fashion-MNIST files are absent.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

from eatnas_tf.arch import codec  # noqa: E402
from eatnas_tf.arch import space as space_lib  # noqa: E402
from eatnas_tf.data import datasets as D  # noqa: E402
from eatnas_tf.data import idx  # noqa: E402
from eatnas_tf.model.builder import build_model  # noqa: E402
from eatnas_tf.train import trainer as T  # noqa: E402
from eatnas_tf.train.config import TrainConfig  # noqa: E402

TINY = ("sep_k3_w1.0_d1,mb3_k3_w1.0_d1,mb3_k3_w1.5_d1,mb3_k3_w1.0_d1,mb3_k3_w1.5_d1,"
        "mb3_k3_w1.0_d1,mb3_k3_w1.0_d1")


class _Timer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.t0, self.first = time.perf_counter(), None

    def on_train_batch_end(self, batch, logs=None):
        if self.first is None:
            self.first = time.perf_counter() - self.t0


def bare_fit(arch, macro, data, lr):
    keras.utils.set_random_seed(0)
    t0 = time.perf_counter()
    model = build_model(arch, macro)
    model.compile(optimizer=keras.optimizers.SGD(lr, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)
    timer = _Timer()
    t1 = time.perf_counter()
    model.fit(data.train, epochs=1, verbose=0, callbacks=[timer], shuffle=False)
    train_s = time.perf_counter() - t1
    images = data.steps_per_epoch * data.config.batch_size
    out = {"images_per_s": images / train_s,
           "images_per_s_steady": (images - data.config.batch_size) / (train_s - timer.first),
           "train_s": train_s, "first_step_s": timer.first, "build_s": t1 - t0}
    del model
    keras.backend.clear_session()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max_train_examples", type=int, default=None,
                   help="cap on training images (default: the whole 48k search split)")
    p.add_argument("--repeats", type=int, default=2,
                   help="alternating trainer / bare-fit pairs (medians are reported; the "
                        "machine is shared, single runs are noisy)")
    args = p.parse_args()
    name = "fashion_mnist" if idx.available() else "digits"
    sp = space_lib.get_space(name)
    arch = codec.from_text(TINY, **sp.arch_defaults())
    data = D.load_data(D.DataConfig(name, max_train_examples=args.max_train_examples,
                                    augment=("crop", "flip")))
    lr = 0.05
    runs, bares = [], []
    for r in range(args.repeats):
        order = ("trainer", "bare") if r % 2 == 0 else ("bare", "trainer")
        for which in order:
            if which == "trainer":
                runs.append(T.train(lambda: build_model(arch, sp.macro), data,
                                    TrainConfig(learning_rate=lr), return_weights=False).record)
            else:
                bares.append(bare_fit(arch, sp.macro, data, lr))
    ratios = sorted(
        t["images_per_s_steady"] / b["images_per_s_steady"] for t, b in zip(runs, bares)
    )
    trained = sorted(runs, key=lambda t: t["wall_s"])[len(runs) // 2]
    bare = sorted(bares, key=lambda b: b["images_per_s_steady"])[len(bares) // 2]
    overhead_s = trained["build_s"] + trained["tracing_s"] + trained["clear_s"]
    out = {
        "dataset": name, "num_train": data.num_train, "steps": trained["steps"],
        "params": trained["params"], "val_acc": trained["val_acc"],
        "trainer_images_per_s_steady": trained["images_per_s_steady"],
        "bare_fit_images_per_s_steady": bare["images_per_s_steady"],
        "throughput_ratio_steady": ratios[(len(ratios) - 1) // 2],  # lower median
        "throughput_ratios_per_pair": ratios,
        "throughput_ratio_whole_epoch": trained["images_per_s"] / bare["images_per_s"],
        "candidate_wall_s": trained["wall_s"], "build_compile_s": trained["build_s"],
        "first_step_tracing_s": trained["tracing_s"], "clear_s": trained["clear_s"],
        "eval_s": trained["eval_s"], "overhead_s": overhead_s,
        "overhead_fraction": overhead_s / trained["wall_s"],
        "bare_first_step_s": bare["first_step_s"], "bare_build_compile_s": bare["build_s"],
    }
    print(json.dumps(out, indent=2))
    print(
        f"trainer / bare fit images/s (after first step, median of {len(ratios)} pairs): "
        f"{out['throughput_ratio_steady']:.3f}"
        f" (target >= 0.95); whole epoch incl. tracing: {out['throughput_ratio_whole_epoch']:.3f}"
    )
    print(f"per-candidate overhead (build+compile {out['build_compile_s']:.2f}s, tracing "
          f"{out['first_step_tracing_s']:.2f}s, clear {out['clear_s']:.2f}s) = "
          f"{100 * out['overhead_fraction']:.1f}% of a {out['candidate_wall_s']:.1f}s 1-epoch "
          f"candidate (target <= 10%); 1-epoch val_acc {out['val_acc']:.3f}")


if __name__ == "__main__":
    main()
