"""Export benchmark (issue 9): LiteRT latency, file sizes and quantized accuracy.

Two nets, every TFLite format (fp32, fp16, full-integer int8, QAT int8), LiteRT at 1 and 2
threads, batch 1, 5 warm-up + 30 timed runs, median and p90:

  demo        a demo-sized `fashion_mnist`-space winner (~180k params, ~5.5M MAdds),
              briefly trained on Fashion-MNIST and exported with `export_lib.export_model`
              (full checks: accuracy on the 10k test images, drops vs Keras, parity,
              graph MAdds vs the cost model).
  mobilenet   MobileNetV2 1.0/224 (docs/design.md §2 reference, 300,774,272 MAdds), untrained:
              latency, sizes and graph MAdds only (random weights have no accuracy); int8
              calibrated on random images, QAT fake-quant ranges set by a few steps on
              random data.

docs/design.md §5 measured, on this x86 CPU, MobileNetV2 fp32 23.7 / 12.3 ms and int8 28.7 /
14.7 ms (1 / 2 threads): int8 is slower here; report what is measured.

    .venv/bin/python benchmarks/export_latency.py [--skip_mobilenet] [--out=runs/bench_export.json]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

DEMO_ARCH = ("sep_k3_w1.0_d1,mb3_k3_w1.5_d1,mb6_k3_w1.5_d2_skip,mb3_k5_w1.0_d2_skip,"
             "mb6_k3_w1.5_d2_skip,mb3_k3_w1.0_d1,mb3_k3_w1.0_d1")

_OUT = flags.DEFINE_string("out", "runs/bench_export_latency.json", "Where to write the JSON.")
_TRAIN = flags.DEFINE_integer("demo_train_samples", 20000, "Training images for the demo net.")
_EPOCHS = flags.DEFINE_integer("demo_epochs", 2, "Training epochs for the demo net.")
_QAT_EPOCHS = flags.DEFINE_integer("qat_epochs", 1, "QAT fine-tuning epochs (demo net).")
_QAT_SAMPLES = flags.DEFINE_integer("qat_samples", 10000, "QAT fine-tuning images (demo net).")
_THREADS = flags.DEFINE_list("threads", ["1", "2"], "LiteRT thread counts.")
_WARMUP = flags.DEFINE_integer("warmup", 5, "Untimed runs.")
_RUNS = flags.DEFINE_integer("runs", 30, "Timed runs.")
_SKIP_MNV2 = flags.DEFINE_bool("skip_mobilenet", False, "Only the demo net.")
_SKIP_DEMO = flags.DEFINE_bool("skip_demo", False, "Only MobileNetV2.")

FORMATS = ("fp32", "fp16", "int8", "qat")


def demo(threads):
    """Trains the demo net briefly and exports it with every check; returns the report."""
    import keras
    import numpy as np

    from eatnas_tf.arch import codec
    from eatnas_tf.arch.space import get_space
    from eatnas_tf.data.datasets import DataConfig, load_arrays, load_data
    from export import export_lib, tflite
    from export.saved_model import preprocess

    space = get_space("fashion_mnist")
    arch = space.validate(codec.from_text(DEMO_ARCH, **space.arch_defaults()))
    keras.utils.set_random_seed(0)
    from eatnas_tf.model.builder import build_model

    model = build_model(arch, space.macro)
    cfg = DataConfig("fashion_mnist", split="final", val_fraction=0.0)
    bundle = load_data(cfg)
    mean, std = bundle.mean, bundle.std
    x, y = load_arrays(cfg, "train")
    sel = np.sort(np.random.RandomState(0).choice(len(y), size=min(_TRAIN.value, len(y)),
                                                  replace=False))
    x, y = x[sel], y[sel]
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    t = time.perf_counter()
    model.fit(preprocess(x, mean, std), y, batch_size=128, epochs=_EPOCHS.value, verbose=0)
    train_s = time.perf_counter() - t
    config = export_lib.ExportConfig(
        qat=tflite.QATConfig(epochs=_QAT_EPOCHS.value, max_samples=_QAT_SAMPLES.value),
        latency_threads=threads, latency_warmup=_WARMUP.value, latency_runs=_RUNS.value)
    with tempfile.TemporaryDirectory() as d:
        report = export_lib.export_model(model, arch, space.macro, mean=mean, std=std,
                                         dataset="fashion_mnist", space="fashion_mnist",
                                         export_dir=d, config=config)
    report["train_s"] = round(train_s, 1)
    return report


def mobilenet(threads):
    """Converts untrained MobileNetV2 1.0/224 to every format and times it."""
    import keras
    import numpy as np

    from eatnas_tf.arch import registry
    from eatnas_tf.arch.cost import count
    from eatnas_tf.measure import latency
    from eatnas_tf.model.builder import build_model
    from export import graph_cost, saved_model, tflite

    keras.utils.set_random_seed(0)
    macro = registry.IMAGENET_MACRO
    arch = registry.MOBILENET_V2
    model = build_model(arch, macro)
    spec = saved_model.ServingSpec(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                                   image_size=224, raw_size=(224, 224), channels=3,
                                   num_classes=1000)
    rng = np.random.default_rng(0)
    rep = rng.integers(0, 256, size=(16, 224, 224, 3), dtype=np.uint8)
    out = {"params": int(model.count_params()), "madds": count(arch, macro).madds, "formats": {}}
    with tempfile.TemporaryDirectory() as d:
        for fmt in FORMATS:
            t = time.perf_counter()
            if fmt in ("fp32", "fp16"):
                blob = tflite.convert_float(model, spec, fp16=fmt == "fp16")
            elif fmt == "int8":
                blob = tflite.convert_int8(model, spec, rep)
            else:
                q = tflite.build_qat_model(model, arch, macro)
                labels = rng.integers(0, 1000, size=len(rep))
                tflite.finetune_qat(q, rep, labels, spec,
                                    tflite.QATConfig(epochs=1, batch_size=8, learning_rate=0.0))
                blob = tflite.convert_qat(q, spec)
            path = os.path.join(d, tflite.FILENAMES[fmt])
            with open(path, "wb") as f:
                f.write(blob)
            conv_s = time.perf_counter() - t
            out["formats"][fmt] = {
                "size_bytes": len(blob), "convert_s": round(conv_s, 1),
                "graph_madds": graph_cost.tflite_madds(path)["madds"]}
        # Round-robin timing: the machine is shared, so every format sees the same load.
        lat = latency.measure_interleaved(
            {fmt: os.path.join(d, tflite.FILENAMES[fmt]) for fmt in FORMATS}, threads,
            _WARMUP.value, _RUNS.value)
        for fmt in FORMATS:
            out["formats"][fmt]["latency"] = lat[fmt]
    fp32 = out["formats"]["fp32"]["size_bytes"]
    for f in out["formats"].values():
        f["size_ratio_vs_fp32"] = round(f["size_bytes"] / fp32, 4)
    return out


def _table(name, formats, threads, acc=None):
    head = f"{'format':6} {'size KiB':>10} {'×fp32':>6} {'graph MAdds':>13}"
    head += "".join(f" {f'{t}-thr med/p90 ms':>20}" for t in threads)
    if acc:
        head += f" {'acc %':>7} {'drop pts':>8}"
    lines = [f"== {name}", head]
    for fmt, f in formats.items():
        gm = f["graph_madds"]["madds"] if isinstance(f["graph_madds"], dict) else f["graph_madds"]
        row = f"{fmt:6} {f['size_bytes'] / 1024:10.1f} {f['size_ratio_vs_fp32']:6.3f} {gm:13,}"
        for t in threads:
            lat_t = f["latency"][str(t)]
            row += f" {lat_t['median_ms']:9.3f} / {lat_t['p90_ms']:7.3f}"
        if acc:
            row += f" {100 * f['accuracy']:7.2f} {f['accuracy_drop_pts']:8.2f}"
        lines.append(row)
    return "\n".join(lines)


def main(argv):
    del argv
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    threads = tuple(int(t) for t in _THREADS.value)
    results = {"threads": list(threads), "warmup": _WARMUP.value, "runs": _RUNS.value}
    if not _SKIP_DEMO.value:
        r = demo(threads)
        results["demo"] = {k: r[k] for k in ("arch", "params", "madds", "keras", "saved_model",
                                             "formats", "checks", "timing_s", "train_s")}
        print(_table(f"demo net {r['arch']} — {r['params']:,} params, {r['madds']:,} MAdds, "
                     f"Keras test acc {100 * r['keras']['accuracy']:.2f}%", r["formats"], threads,
                     acc=True))
        print("checks:", json.dumps(r["checks"]))
    if not _SKIP_MNV2.value:
        m = mobilenet(threads)
        results["mobilenet_v2"] = m
        print(_table(f"MobileNetV2 1.0/224 (untrained) — {m['params']:,} params, "
                     f"{m['madds']:,} MAdds", m["formats"], threads))
        for fmt in ("int8", "qat"):
            f, b = m["formats"][fmt], m["formats"]["fp32"]
            print(
                f"{fmt} vs fp32 speed-up: "
                + ", ".join(
                    f"{t} thr "
                    f"{b['latency'][str(t)]['median_ms'] / f['latency'][str(t)]['median_ms']:.2f}×"
                    for t in threads
                )
            )
    if _OUT.value:
        os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
        with open(_OUT.value, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    app.run(main)
