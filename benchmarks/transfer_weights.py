"""Do the basic model's weights help across tasks? (elastic transfer, stage 2 seeding)

Reads a finished demo / transfer run: its stage-2 initial population (offspring of the basic
model, which inherited the basic model's retrained weights) and retrains each offspring
for the same epoch from scratch with the same seed and data. Prints both mean accuracies.

    python benchmarks/transfer_weights.py --run_dir=runs/demo [--stage=stage2]
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from eatnas_tf.data.datasets import DataConfig  # noqa: E402
from eatnas_tf.search.evaluate import EvalRequest, evaluate  # noqa: E402
from eatnas_tf.search.run_dir import RunDir  # noqa: E402
from eatnas_tf.train.config import TrainConfig  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run_dir", default="runs/demo")
    ap.add_argument("--stage", default="stage2")
    ap.add_argument("--out", default="benchmarks/results/transfer_weights.json")
    a = ap.parse_args()
    run = RunDir(a.run_dir)
    with open(run.file("config.json")) as f:
        cfg = json.load(f)
    seeded = [r for r in run.candidates() if r.get("stage") == a.stage
              and r.get("origin") == "offspring" and r.get("status") == "ok"]
    if not seeded:
        sys.exit(f"error: {a.run_dir} has no ok offspring records in stage {a.stage}")
    data = DataConfig("fashion_mnist", val_fraction=cfg["val_fraction"],
                      batch_size=cfg["batch_size"], seed=cfg["seed"],
                      max_train_examples=cfg["stage2_train_examples"])
    train = TrainConfig(epochs=1, batch_size=cfg["batch_size"], learning_rate=cfg["learning_rate"])
    rows = []
    for r in seeded:
        scratch = evaluate(EvalRequest(r["arch"], "fashion_mnist", data, train,
                                       seed=r["seed"])).record
        rows.append({"arch": r["arch"], "transferred": r["val_acc"], "scratch": scratch["val_acc"],
                     "inherited_fraction": (r.get("inherit") or {}).get("fraction")})
        print(f"c{r['id']:05d}: with basic weights {r['val_acc']:.4f}  scratch "
              f"{scratch['val_acc']:.4f}", flush=True)
    t = statistics.mean(x["transferred"] for x in rows)
    s = statistics.mean(x["scratch"] for x in rows)
    print(f"stage-2 initial population, 1 epoch: with the basic model's weights {t:.4f}, "
          f"from scratch {s:.4f} ({100 * (t - s):+.1f} pt, {len(rows)} offspring)")
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"mean_transferred": t, "mean_scratch": s, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
