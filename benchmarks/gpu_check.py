"""GPU readiness in one script: does the trainer use a GPU well, and does a search run on it?

On one GPU in ≤ 8 minutes (no network needed; starts without a GPU too):
  1. the project's trainer on one fixed candidate, plain (default strategy) and under
     `MirroredStrategy`, vs a bare `model.fit` of the same model on the same batches:
     steady images/s (first step excluded) of each, and the trainer's share of the bare rate;
  2. GPU utilisation and memory while each runs (`nvidia-smi` sampled every 0.5 s, when
     present);
  3. a short EAT-NAS search with the paper's CIFAR-10 candidate settings (§4.1: batch 128,
     1 epoch, SGD 0.0256 constant, momentum 0.9, weight decay 3e-4, crop + flip) on
     synthetic CIFAR-shaped data (32×32×3, 10 classes, class-coloured noise written as PNGs
     to a `folder:` dataset), printing every candidate's time.
Writes one JSON (devices, versions, every number).

    python benchmarks/gpu_check.py --out=docs/results/gpu/gpu_check.json      # on a GPU
    python benchmarks/gpu_check.py --small --out=/tmp/gpu_check.json          # CPU, < 60 s

`--small` shrinks everything (200 images of 8×8, the small `digits` space, 2 steps per
epoch, no time budget) so the default test suite runs it on CPU.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The paper's CIFAR-10 candidate training (EAT-NAS §4.1; flags/train_cifar10_search.inc.cfg).
PAPER_CANDIDATE = dict(epochs=1, batch_size=128, learning_rate=0.0256, lr_schedule="constant",
                       momentum=0.9, weight_decay=3e-4)


class GpuSampler:
    """`nvidia-smi` utilisation / memory sampled in a thread while a phase runs."""

    QUERY = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used,memory.total",
             "--format=csv,noheader,nounits"]

    def __init__(self, interval_s: float = 0.5):
        self.available = shutil.which("nvidia-smi") is not None
        self.interval_s = interval_s
        self.samples = []
        self._stop = threading.Event()
        self._thread = None

    def _query(self):
        try:
            out = subprocess.run(self.QUERY, capture_output=True, text=True, timeout=5).stdout
            first = out.strip().splitlines()[0]
            util, used, total = (float(v) for v in first.split(","))
            return util, used, total
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            return None

    def _loop(self):
        while not self._stop.is_set():
            s = self._query()
            if s is not None:
                self.samples.append(s)
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self.samples = []
        if self.available:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._thread = None

    def summary(self):
        if not self.samples:
            return {"nvidia_smi": self.available, "samples": 0}
        util = [s[0] for s in self.samples]
        return {"nvidia_smi": True, "samples": len(util),
                "util_mean_pct": round(sum(util) / len(util), 1), "util_max_pct": max(util),
                "mem_used_max_mib": max(s[1] for s in self.samples),
                "mem_total_mib": self.samples[0][2]}


def synthetic_folder(root: str, n: int, size: int, classes: int = 10, seed: int = 0) -> str:
    """`n` PNGs of `size`×`size`×3 in one folder per class: a class colour plus noise
    (learnable, so accuracies move), the layout of a `folder:` dataset."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, size=(classes, 3))
    for c in range(classes):
        os.makedirs(os.path.join(root, f"class{c}"), exist_ok=True)
    for i in range(n):
        c = i % classes
        img = colours[c] + rng.normal(0, 50, size=(size, size, 3))
        Image.fromarray(np.clip(img, 0, 255).astype("uint8")).save(
            os.path.join(root, f"class{c}", f"{i:06d}.png"))
    return root


def devices():
    import tensorflow as tf

    out = {"tensorflow": tf.__version__, "python": platform.python_version(),
           "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
           "cpus": os.cpu_count()}
    try:
        import keras

        out["keras"] = keras.__version__
    except ImportError:
        pass
    if shutil.which("nvidia-smi"):
        try:
            out["nvidia_smi_L"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True,
                                                 text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def bare_fit(build, data, cfg, steps):
    """A plain Keras `compile` + `fit` of the same model on the same batches (no trainer):
    steady images/s after the first step."""
    import keras

    times = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter())

    keras.utils.set_random_seed(cfg.seed)
    model = build()
    model.compile(optimizer=keras.optimizers.SGD(cfg.learning_rate, momentum=cfg.momentum),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    ds = data.epoch_dataset(0, 1).take(steps)
    t0 = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0, callbacks=[Timer()])
    total = time.perf_counter() - t0
    batch = data.config.batch_size
    steady = (len(times) - 1) * batch / (times[-1] - times[0]) if len(times) > 1 else None
    del model
    keras.backend.clear_session()
    return {"images_per_s_steady": steady, "train_s": total, "first_step_s": times[0] - t0,
            "steps": len(times)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="CPU-sized run for the test suite")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results", "gpu",
                                                  "gpu_check.json"))
    ap.add_argument("--images", type=int, default=None, help="synthetic images (train + val)")
    ap.add_argument("--candidates", type=int, default=None, help="EAT search candidates")
    ap.add_argument("--budget_s", type=float, default=None,
                    help="stop proposing search candidates after this total time")
    ap.add_argument("--space", default=None)
    ap.add_argument("--work_dir", default=None, help="data + search run dir (default: temp)")
    a = ap.parse_args()
    small = a.small
    images = a.images or (200 if small else 12000)
    size = 8 if small else 32
    space_name = a.space or ("digits" if small else "cifar10")
    candidates = a.candidates or (3 if small else 12)
    budget_s = a.budget_s or (None if small else 450.0)
    if images < 40 or candidates < 1:
        sys.exit("error: images >= 40 and candidates >= 1 required")
    t_start = time.monotonic()
    work = a.work_dir or tempfile.mkdtemp(prefix="gpu_check_")
    print(f"gpu_check: {'small (CPU) ' if small else ''}{images} synthetic {size}x{size}x3 "
          f"images, space {space_name}, {candidates} candidates, work dir {work}", flush=True)

    import tensorflow as tf

    from eatnas_tf.arch import space as space_lib
    from eatnas_tf.data.datasets import DataConfig
    from eatnas_tf.model.builder import build_model
    from eatnas_tf.search.evaluate import cached_data, macro_for
    from eatnas_tf.search.experiment import Stage
    from eatnas_tf.search.run_dir import RunDir
    from eatnas_tf.search.runner import run_stage
    from eatnas_tf.search.strategy import SearchConfig
    from eatnas_tf.train import trainer
    from eatnas_tf.train.config import TrainConfig

    info = devices()
    print(f"devices: GPUs {info['gpus'] or 'none'}; TensorFlow {info['tensorflow']}", flush=True)
    t0 = time.perf_counter()
    folder = synthetic_folder(os.path.join(work, "data"), images, size)
    data_s = time.perf_counter() - t0
    steps_cap = 2 if small else None
    data_cfg = DataConfig(f"folder:{folder}", batch_size=PAPER_CANDIDATE["batch_size"]
                          if not small else 32, val_fraction=0.2, test_fraction=0.1,
                          augment=("crop", "flip"), split_file=os.path.join(work, "split.json"))
    train_cfg = TrainConfig(**{k: v for k, v in PAPER_CANDIDATE.items()},
                            steps_per_epoch=steps_cap).replace(
        batch_size=data_cfg.batch_size)
    space = space_lib.get_space(space_name)
    data = cached_data(data_cfg)
    macro = macro_for(space, data)
    import random

    rng = random.Random(0)
    # --small: the shallowest of 30 draws (tracing time grows with the layers); else one draw
    arch = min((space.sample(rng) for _ in range(30 if small else 1)),
               key=lambda x: x.num_layers)

    def build():
        return build_model(arch, macro)

    steps = min(data.steps_per_epoch, steps_cap or data.steps_per_epoch)
    results = {"devices": info, "small": small, "images": images, "image_size": size,
               "space": space_name, "data_s": data_s, "candidate_settings": PAPER_CANDIDATE,
               "num_train": data.num_train, "steps_per_epoch": steps}
    sampler = GpuSampler()
    gpus = tf.config.list_logical_devices("GPU")
    mirrored_devices = [d.name for d in gpus] or ["/cpu:0"]
    phases = {}
    for name, strategy in (("trainer_plain", tf.distribute.get_strategy()),
                           ("trainer_mirrored", tf.distribute.MirroredStrategy(mirrored_devices))):
        with sampler:
            r = trainer.train(build, data, train_cfg, strategy=strategy, return_weights=False)
        rec = r.record
        phases[name] = {"images_per_s": rec["images_per_s"],
                        "images_per_s_steady": rec["images_per_s_steady"],
                        "first_step_s": rec["first_step_s"], "train_s": rec["train_s"],
                        "wall_s": rec["wall_s"], "val_acc": rec["val_acc"],
                        "num_replicas": rec["num_replicas"], "params": rec["params"],
                        "gpu": sampler.summary()}
        print(f"{name}: {rec['images_per_s_steady'] or 0:.0f} img/s steady, first step "
              f"{rec['first_step_s']:.1f} s, val_acc {rec['val_acc']:.3f}, "
              f"GPU {sampler.summary()}", flush=True)
    with sampler:
        bare = bare_fit(build, data, train_cfg, steps)
    bare["gpu"] = sampler.summary()
    phases["bare_fit"] = bare
    print(f"bare model.fit: {bare['images_per_s_steady'] or 0:.0f} img/s steady", flush=True)
    for name in ("trainer_plain", "trainer_mirrored"):
        b, t = bare["images_per_s_steady"], phases[name]["images_per_s_steady"]
        phases[name]["vs_bare_fit"] = (t / b) if b and t else None
    results["trainer"] = phases
    results["arch"] = str(arch)

    # A short EAT search, the paper's candidate settings, every candidate's time.
    run = RunDir(os.path.join(work, "search"))
    pop = max(2, min(4, candidates - 1))
    stage = Stage("gpu_check", "eat", space, data_cfg, train_cfg,
                  SearchConfig(population=pop, sample=2, max_candidates=candidates), seed=0)
    deadline = t_start + budget_s if budget_s else None
    with sampler:
        t0 = time.perf_counter()
        res = run_stage(run, stage, progress=lambda line: print(line, flush=True),
                        deadline=deadline, tensorboard=False)
        search_s = time.perf_counter() - t0
    results["search"] = {
        "wall_s": search_s, "candidates": len(res.records), "gpu": sampler.summary(),
        "population": pop, "budget_s": budget_s,
        "per_candidate": [{"id": r.id, "wall_s": r.wall_s, "train_s": r.train_s,
                           "val_acc": r.val_acc, "params": r.params, "madds": r.madds,
                           "images_per_s": r.images_per_s, "ok": r.ok} for r in res.records]}
    results["wall_s"] = time.monotonic() - t_start
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=2, default=str)
    print("per-candidate seconds: " + ", ".join(f"c{r.id}: {r.wall_s:.1f}" for r in res.records))
    print(f"gpu_check done in {results['wall_s']:.0f} s -> {a.out}")
    if not a.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
