"""Where a candidate's time goes, before and after the fused batch norm, against a bound.

    python benchmarks/trainer_profile.py [--train_examples=6400] [--profile_steps=10]
        [--out=benchmarks/results/trainer_profile.json]

Three Fashion-MNIST (28×28) nets of different sizes, each with Keras' own BatchNormalization
(`--nofused_bn`) and then with `model/fused_bn.py` (`--fused_bn`) in one process, the same
seed, data and config as a search candidate (batch 128, SGD momentum, 1 epoch):

  1. phases of `trainer.train` (its record): build + compile, first-step tracing, steady
     training, evaluation, `clear_session`; steady images/s (after the first step), and
     again in a second identical run (a search candidate is the first run of its model in
     a process; on this VM a second run of a MobileNetV2-sized net is up to 1.6× faster,
     for reasons not yet found);
  2. an op-type breakdown of `--profile_steps` steady training steps with the TF profiler
     (steps 3.. of a `model.fit` on the same model, started from a callback, so neither
     tracing nor evaluation is inside): the summed time of each op type's kernels on the
     executor threads (`tf_Compute*` lines of the host plane);
  3. the bound: peak FLOP/s of this machine (a float32 matmul) and its bandwidth (a large
     elementwise op), measured here; a training step costs ~3× the forward pass
     (forward + two backward products), so bound images/s =
     1 / max(3 × 2 × MAdds / peak, 3 × bytes_moved / bandwidth) with the cost model's
     MAdds and bytes moved (`arch.cost.count`). Efficiency = steady images/s / bound.

Prints markdown tables and writes the JSON. Wall times are noisy: say what else ran.
"""

import argparse
import collections
import glob
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from trainer_overhead import TINY  # noqa: E402

from eatnas_tf.arch import codec  # noqa: E402
from eatnas_tf.arch import cost as cost_lib  # noqa: E402
from eatnas_tf.arch import space as space_lib  # noqa: E402
from eatnas_tf.arch.registry import MOBILENET_V2_TEXT  # noqa: E402
from eatnas_tf.data import datasets as D  # noqa: E402
from eatnas_tf.model.builder import build_model  # noqa: E402
from eatnas_tf.train import trainer as T  # noqa: E402
from eatnas_tf.train.config import TrainConfig  # noqa: E402

NETS = {
    # One layer per block, expansion 3 (benchmarks/trainer_overhead.py's tiny net).
    "small": TINY,
    # The previous demo's winner (1.87M MAdds).
    "demo_winner": "sep_k5_w0.5_d1_skip,mb6_k3_w2.0_d1,mb3_k3_w2.0_d1,mb6_k5_w1.0_d1,"
                   "sep_k5_w2.0_d1,sep_k3_w0.5_d4_skip,sep_k3_w1.0_d3_skip",
    # MobileNetV2's block layout in this space.
    "mobilenet_v2": MOBILENET_V2_TEXT,
}
MODES = (("keras_bn", False), ("fused_bn", True))
CONFIG = TrainConfig(learning_rate=0.05, momentum=0.9, lr_schedule="constant",
                     weight_decay=3e-4, epochs=1)


# -- the bound ------------------------------------------------------------------------------

def peak_flops(n: int = 1024, reps: int = 20) -> float:
    """FLOP/s of a float32 n×n matmul chain (best of 3), on all of TF's threads."""
    a = tf.random.normal((n, n))

    @tf.function
    def chain(x):
        for _ in range(reps):
            x = tf.matmul(x, a) * 1e-3
        return x

    chain(a).numpy()
    best = min(_timed(lambda: chain(a).numpy()) for _ in range(3))
    return 2.0 * n ** 3 * reps / best


def bandwidth(mb: int = 256) -> float:
    """Bytes/s of an elementwise op on `mb` MiB (read + write, best of 3)."""
    x = tf.ones((mb * 2 ** 20 // 4,))
    f = tf.function(lambda v: v * 1.5 + 1.0)
    f(x).numpy()
    best = min(_timed(lambda: f(x).numpy()) for _ in range(3))
    return 2.0 * mb * 2 ** 20 / best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# -- the op-type breakdown ------------------------------------------------------------------

class _Profile(keras.callbacks.Callback):
    """Starts the TF profiler before step `start` and stops it after `start + steps`."""

    def __init__(self, logdir: str, start: int, steps: int):
        super().__init__()
        self.logdir, self.start, self.stop = logdir, start, start + steps
        self.t0 = self.wall = None

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.start:
            tf.profiler.experimental.start(self.logdir)
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.stop - 1:
            self.wall = time.perf_counter() - self.t0
            tf.profiler.experimental.stop()


def op_times(logdir: str) -> dict:
    """{op type: summed kernel seconds} over the executor threads of the host plane."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    if not paths:
        raise RuntimeError(f"the TF profiler wrote no xplane file under {logdir}")
    space = xplane_pb2.XSpace()
    with open(max(paths, key=os.path.getmtime), "rb") as f:
        space.ParseFromString(f.read())
    out = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for ev in line.events:
                name = plane.event_metadata[ev.metadata_id].name
                # "scope/op:OpType" is a kernel; executor wrappers ("...Process") nest them.
                if ":" not in name or "Process" in name:
                    continue
                out[name.rsplit(":", 1)[1]] += ev.duration_ps * 1e-12
    return dict(out)


def profile_steps(arch, macro, fused: bool, data, steps: int) -> dict:
    """Op-type seconds per step and wall seconds per step of `steps` steady steps."""
    keras.utils.set_random_seed(0)
    model = build_model(arch, macro, fused_bn=fused)
    model.compile(optimizer=keras.optimizers.SGD(CONFIG.learning_rate, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)
    with tempfile.TemporaryDirectory() as logdir:
        cb = _Profile(logdir, start=3, steps=steps)
        model.fit(data.train.take(3 + steps), epochs=1, verbose=0, callbacks=[cb],
                  shuffle=False)
        ops = op_times(logdir)
    del model
    keras.backend.clear_session()
    return {"step_wall_s": cb.wall / steps,
            "op_s_per_step": {k: v / steps for k, v in sorted(ops.items(),
                                                              key=lambda kv: -kv[1])}}


# Op types Keras' own BatchNormalization runs as (training: moments, normalise, moving
# averages; the gradient: their gradients). The optimizer and the loss use a few of them too
# (the fused run's remainder of this group).
KERAS_BN_OPS = {"Mul", "Sum", "SquaredDifference", "Tile", "Mean", "Sub", "AddN", "AddV2",
                "Rsqrt", "BroadcastTo", "RealDiv", "Square", "Neg", "Reshape", "Maximum"}


def op_groups(ops: dict) -> dict:
    """Seconds per group: convolutions (forward and both gradients), batch norm (the fused
    kernels, or Keras' elementwise ops above), activations (ReLU6 and its gradient), other."""
    out = {"conv": 0.0, "batch_norm": 0.0, "activation": 0.0, "other": 0.0}
    for k, v in ops.items():
        if "Conv" in k:
            out["conv"] += v
        elif "BatchNorm" in k or k in KERAS_BN_OPS:
            out["batch_norm"] += v
        elif "Relu" in k:
            out["activation"] += v
        else:
            out["other"] += v
    return out


# -- main -----------------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train_examples", type=int, default=6400)
    p.add_argument("--profile_steps", type=int, default=10)
    p.add_argument("--nets", default=",".join(NETS))
    p.add_argument("--top", type=int, default=6, help="op types listed per net and mode")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "results", "trainer_profile.json"))
    p.add_argument("--print_only", action="store_true",
                   help="print the tables of an existing --out file and exit")
    args = p.parse_args()
    if args.print_only:
        with open(args.out) as f:
            print_tables(json.load(f), args.top)
        return
    sp = space_lib.get_space("fashion_mnist")
    data = D.load_data(D.DataConfig("fashion_mnist", val_fraction=0.05,
                                    max_train_examples=args.train_examples))
    peak, bw = peak_flops(), bandwidth()
    print(f"machine: {os.cpu_count()} cores, peak {peak / 1e9:.1f} GFLOP/s (float32 matmul), "
          f"bandwidth {bw / 1e9:.1f} GB/s (elementwise); load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    out = {"cores": os.cpu_count(), "peak_flops": peak, "bandwidth_bytes_s": bw,
           "train_examples": data.num_train, "batch_size": data.config.batch_size,
           "tensorflow": tf.__version__, "keras": keras.__version__, "nets": {}}
    for net in args.nets.split(","):
        arch = codec.from_text(NETS[net], **sp.arch_defaults())
        c = cost_lib.count(arch, sp.macro)
        bound = 1.0 / max(6.0 * c.madds / peak, 3.0 * c.bytes_moved / bw)
        row = {"madds": c.madds, "params": c.params, "bytes_moved": c.bytes_moved,
               "bound_images_per_s": bound, "modes": {}}
        for mode, fused in MODES:
            # Twice: a search candidate is the first run of its model in the process; the
            # second identical run shows how much faster the same steps can go.
            def build(arch=arch, fused=fused):
                return build_model(arch, sp.macro, fused_bn=fused)

            rec, again = [T.train(build, data, CONFIG.replace(fused_bn=fused),
                                  return_weights=False).record for _ in range(2)]
            steady = rec["train_s"] - rec["first_step_s"]
            prof = profile_steps(arch, sp.macro, fused, data, args.profile_steps)
            row["modes"][mode] = {
                "phases_s": {"build": rec["build_s"], "tracing": rec["tracing_s"],
                             "train_steady": steady, "eval": rec["eval_s"],
                             "clear": rec["clear_s"]},
                "wall_s": rec["wall_s"], "val_acc": rec["val_acc"],
                "images_per_s_steady": rec["images_per_s_steady"],
                "images_per_s_steady_second_run": again["images_per_s_steady"],
                "efficiency": rec["images_per_s_steady"] / bound, **prof}
            print(f"{net} {mode}: {rec['wall_s']:.1f} s, {rec['images_per_s_steady']:.0f} img/s "
                  f"steady ({again['images_per_s_steady']:.0f} in a second run), val_acc "
                  f"{rec['val_acc']:.3f}", flush=True)
        out["nets"][net] = row
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print_tables(out, args.top)


def print_tables(out: dict, top: int) -> None:
    print("\n| net | MAdds | bound img/s | BN | steady img/s (2nd run) | of bound | build | "
          "tracing | train | eval | clear | candidate |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")
    for net, row in out["nets"].items():
        for mode, m in row["modes"].items():
            ph = m["phases_s"]
            print(f"| {net} | {row['madds'] / 1e6:.2f}M | {row['bound_images_per_s']:,.0f} | "
                  f"{mode} | {m['images_per_s_steady']:,.0f} "
                  f"({m.get('images_per_s_steady_second_run') or 0:,.0f}) | "
                  f"{100 * m['efficiency']:.1f}% | "
                  + " | ".join(f"{ph[k]:.2f}" for k in ("build", "tracing", "train_steady",
                                                         "eval", "clear"))
                  + f" | {m['wall_s']:.1f} s |")
    print("\n| net | BN | step wall ms | summed op ms | conv | batch norm | ReLU6 | other |"
          "\n|---|---|---|---|---|---|---|---|")
    for net, row in out["nets"].items():
        for mode, m in row["modes"].items():
            g = op_groups(m["op_s_per_step"])
            total = sum(g.values())
            print(f"| {net} | {mode} | {1e3 * m['step_wall_s']:.1f} | {1e3 * total:.1f} | "
                  + " | ".join(f"{1e3 * g[k]:.1f} ({100 * g[k] / total:.0f}%)"
                               for k in ("conv", "batch_norm", "activation", "other")) + " |")
    print("\nop time per steady step (ms, summed over both executor threads; share of the "
          "summed op time):")
    for net, row in out["nets"].items():
        for mode, m in row["modes"].items():
            ops = m["op_s_per_step"]
            total = sum(ops.values())
            listed = ", ".join(f"{k} {1e3 * v:.1f} ({100 * v / total:.0f}%)"
                               for k, v in list(ops.items())[:top])
            print(f"- {net} {mode}: step wall {1e3 * m['step_wall_s']:.1f} ms, ops "
                  f"{1e3 * total:.1f} ms: {listed}")


if __name__ == "__main__":
    main()
