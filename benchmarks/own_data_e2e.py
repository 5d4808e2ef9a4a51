"""Your own data, end to end (issue 15): an RGB JPEG folder → `python -m eatnas_tf.run
--time_budget=B` → the exported fp32 and int8 `.tflite` files run through MediaPipe Tasks'
`ImageClassifier` (the API phone apps use) on every held-out image FILE, compared with the
exported SavedModel's `serving_default` on the same files' bytes (the Keras model's logits
to ~1e-5: the export checks that parity) and with the labels.

The folder: `eatnas_tf.data.sample_folder` (32×32 JPEG crops of scikit-learn's two sample
photos, 4 classes, `WORK/photos/{train,test}/<class>/`; nothing downloaded).

    python benchmarks/own_data_e2e.py --budget=5m --out=benchmarks/results/own_data_e2e.json

Needs the MediaPipe venv (`make mediapipe`, part of `make setup`).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

def _load():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/own_data_e2e")
    ap.add_argument("--budget", default="5m")
    ap.add_argument("--train_per_class", type=int, default=150)
    ap.add_argument("--test_per_class", type=int, default=60)
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                                  "own_data_e2e.json"))
    args = ap.parse_args()

    from eatnas_tf.data.sample_folder import CLASSES, write_photo_folder
    from export import metadata, saved_model

    folder = os.path.join(args.work, "photos")
    run_dir = os.path.join(args.work, "run")
    if not os.path.isdir(folder):
        write_photo_folder(folder, {"train": args.train_per_class,
                                    "test": args.test_per_class})
    load_before = _load()
    cmd = [sys.executable, "-m", "eatnas_tf.run", f"--dataset=folder:{folder}",
           f"--run_dir={run_dir}", f"--time_budget={args.budget}", "--seed=0"]
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    wall = time.time() - t0
    if p.returncode != 0:
        print(p.stderr[-3000:])
        return 1
    report = json.load(open(os.path.join(run_dir, "report.json")))
    budget = json.load(open(os.path.join(run_dir, "budget.json")))
    version = sorted(d for d in glob.glob(os.path.join(run_dir, "export", "*"))
                     if os.path.isdir(d) and os.path.basename(d).isdigit())[-1]
    files = sorted(glob.glob(os.path.join(folder, "test", "*", "*.jpg")))
    labels = [CLASSES.index(os.path.basename(os.path.dirname(f))) for f in files]
    raw = np.array([open(f, "rb").read() for f in files], dtype=object)
    sm = saved_model.predict_logits(version, raw)
    sm_top = sm.argmax(-1)
    out = {"command": " ".join(cmd[1:]), "budget": args.budget, "wall_s": round(wall, 1),
           "budget_spent_s": {k: round(v, 1) for k, v in budget.get("spent", {}).items()},
           "winner": {k: report["winner"].get(k) for k in
                      ("arch", "params", "madds", "test_accuracy")},
           "heldout_files": len(files),
           "savedmodel_accuracy_on_files": round(float((sm_top == labels).mean()), 4),
           "load_before": load_before, "formats": {}}
    for fmt in ("fp32", "int8"):
        path = os.path.join(version, f"model_{fmt}.tflite")
        res = metadata.classify(path, files)
        idx = np.array([r["index"] for r in res])
        names_ok = all(r["name"] == CLASSES[r["index"]] for r in res)
        out["formats"][fmt] = {
            "image_classifier_top1_equals_savedmodel": int((idx == sm_top).sum()),
            "agreement": round(float((idx == sm_top).mean()), 4),
            "accuracy": round(float((idx == labels).mean()), 4),
            "label_names_match": names_ok}
    out["load_after"] = _load()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
