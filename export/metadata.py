"""TFLite metadata for every exported `.tflite` file, written with MediaPipe's own writer.

An Android / iOS app (MediaPipe Tasks `ImageClassifier`, the TFLite Support library, Android
Studio's ML model binding) reads a model's name and description, its input (colour space,
normalization) and its label names from the TFLite metadata inside the file. `write`
embeds them with MediaPipe's `metadata_writers` (the `image_classifier` writer's steps:
general info, image input, classification output with `labels.txt` as the associated
TENSOR_AXIS_LABELS file); the export also keeps `labels.txt` beside the files.

Why a subprocess: mediapipe 0.10.21, the last release whose `metadata_writers` import
(1.2.2's fail: a compiled module is missing), pins numpy < 2 and protobuf < 5, and
TensorFlow 2.21 needs protobuf >= 6.31, so MediaPipe lives in its own venv
(`.venv-mediapipe`, made by `make mediapipe` / `make setup` from
requirements-mediapipe.lock) and runs `mediapipe_metadata_tool.py`, a standalone script
that imports only MediaPipe and the standard library. This module never imports MediaPipe.

The interpreter: `$EATNAS_MEDIAPIPE_PYTHON` when set (empty: none), else
`<checkout>/.venv-mediapipe/bin/python` once `make` has finished it (`.installed`). Without
one the export still succeeds, warns once per process and records `{"written": false,
"reason", "how"}` for each file.

Normalization in the metadata: the exported files take raw uint8 pixels with the whitening
inside the graph, so their metadata says mean 0, std 1 (the identity). MediaPipe ignores
the normalization of a uint8 input (measured: the same scores with mean 100, std 5) and
applies it only to float inputs, where it is the whitening in pixel units (255 · mean,
255 · std).

    md = describe("model_fp32.tflite", class_names=("cat", "dog"), mean=(.5,), std=(.25,),
                  fmt="fp32", dataset="folder:/data/pets", space="auto", arch="...")
    write("model_fp32.tflite", md)   # {"written": True, "labels_match": True, ...}
    read("model_fp32.tflite")        # {"metadata": {...}, "labels": ["cat", "dog"], ...}
    classify("model_fp32.tflite", ["a.jpg"])   # MediaPipe ImageClassifier results
    mediapipe_pixels(["a.jpg"])      # the pixels MediaPipe decodes from the files
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mediapipe_metadata_tool.py")
ENV_PYTHON = "EATNAS_MEDIAPIPE_PYTHON"
VENV_DIR = ".venv-mediapipe"
HOW = ("run `make mediapipe` in the checkout (a venv .venv-mediapipe from "
       "requirements-mediapipe.lock; part of `make setup`), or set EATNAS_MEDIAPIPE_PYTHON "
       "to a Python 3.10-3.12 with mediapipe==0.10.21, then export again")
WRITER = "mediapipe metadata_writers.image_classifier"
LABELS_FILE = "labels.txt"
TIMEOUT_S = 600
CLASSIFY_CHUNK = 500  # files per ImageClassifier subprocess (argv length)
FORMAT_TEXT = {"fp32": "float32 weights and compute",
               "fp16": "float16 weights, float32 compute",
               "int8": "full-integer post-training quantization (int8)",
               "qat": "quantization-aware training, full-integer (int8)"}

_warned: set = set()


class MetadataToolError(RuntimeError):
    """The MediaPipe tool failed (the message is its one-line error)."""


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """What one file's metadata says.

    Attributes:
      name, description: the model's general info.
      input_description: the input tensor's description (dtype, shape, pixel convention).
      output_description: the output tensor's description.
      labels: class names in label order (the associated `labels.txt`).
      norm_mean, norm_std: the input normalization in pixel units (identity for uint8 input).
      color_space: "RGB" or "GRAYSCALE" (the input's depth).
      input: the input tensor as LiteRT reads it: dtype, shape, quantization.
      image_classifier_ready: MediaPipe's ImageClassifier can take the input (depth 3 or 4,
        uint8 or float32); `image_classifier_note` says why not.
    """

    name: str
    description: str
    input_description: str
    output_description: str
    labels: Tuple[str, ...]
    norm_mean: Tuple[float, ...]
    norm_std: Tuple[float, ...]
    color_space: str
    input: Dict[str, Any]
    image_classifier_ready: bool
    image_classifier_note: str = ""

    def request(self, path: str) -> Dict[str, Any]:
        """The tool's `write` request for `path`."""
        return {"path": path, "name": self.name, "description": self.description,
                "input_name": "image", "input_description": self.input_description,
                "output_description": self.output_description, "labels": list(self.labels),
                "norm_mean": list(self.norm_mean), "norm_std": list(self.norm_std),
                "color_space": self.color_space}


# -- the interpreter -------------------------------------------------------------------------
def tool_python() -> Tuple[Optional[str], str]:
    """(the MediaPipe venv's Python or None, why none)."""
    env = os.environ.get(ENV_PYTHON)
    if env is not None:
        if not env:
            return None, f"{ENV_PYTHON} is empty"
        if not os.access(env, os.X_OK):
            return None, f"{ENV_PYTHON}={env} is not an executable"
        return env, ""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    venv = os.path.join(root, VENV_DIR)
    py = os.path.join(venv, "bin", "python")
    if not os.access(py, os.X_OK):
        return None, f"the MediaPipe venv {venv} is missing"
    if not os.path.exists(os.path.join(venv, ".installed")):  # make's marker: pip finished
        return None, f"the MediaPipe venv {venv} is incomplete (no .installed)"
    return py, ""


def _warn_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        print(f"warning: TFLite metadata not written ({reason}); to add it: {HOW}",
              file=sys.stderr, flush=True)


def _run_tool(python: str, args: Sequence[str], stdin: Optional[str] = None) -> Dict[str, Any]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ INFO lines
    p = subprocess.run([python, TOOL, *args], input=stdin, capture_output=True, text=True,
                       env=env, timeout=TIMEOUT_S)
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        err = next((ln for ln in reversed(lines) if ln.startswith("error: ")),
                   lines[-1] if lines else f"exit {p.returncode}")
        raise MetadataToolError(err.removeprefix("error: "))
    return json.loads(p.stdout.strip().splitlines()[-1])


# -- what the metadata says ------------------------------------------------------------------
def _input_details(path: str) -> Dict[str, Any]:
    from ai_edge_litert.interpreter import Interpreter

    d = Interpreter(model_path=path).get_input_details()[0]
    import numpy as np

    scale, zero = d["quantization"]
    return {"dtype": np.dtype(d["dtype"]).name,
            "shape": [int(v) for v in d["shape_signature"]],
            "scale": float(scale), "zero_point": int(zero)}


def _dataset_name(dataset: str) -> str:
    kind, _, rest = dataset.partition(":")
    if kind == "folder" and rest:
        return os.path.basename(os.path.normpath(rest)) or rest
    if kind in ("tfds", "tfrecord") and rest:
        return rest
    return dataset


def _fmt_floats(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def describe(path: str, *, class_names: Sequence[str], mean: Sequence[float],
             std: Sequence[float], fmt: str, dataset: str, space: str = "",
             arch: str = "") -> ModelMetadata:
    """The metadata of one exported file: texts from the export's facts, the input
    convention and normalization from the file's input tensor.

    Args:
      path: the .tflite file.
      class_names: label names in label order.
      mean, std: the model's per-channel whitening in [0, 1] units.
      fmt: its format (`tflite.FORMATS`), for the description.
      dataset, space, arch: the data spec, search space and architecture (the description).
    """
    inp = _input_details(path)
    shape = inp["shape"]
    h, w, c = shape[1:4] if len(shape) == 4 else (0, 0, 0)
    colour = "GRAYSCALE" if c == 1 else "RGB"
    dims = f"[1, {h}, {w}, {c}]"
    whitening = f"mean={_fmt_floats(mean)}, std={_fmt_floats(std)}"
    px_mean = tuple(255.0 * float(m) for m in mean)
    px_std = tuple(255.0 * float(s) for s in std)
    if inp["dtype"] == "uint8":
        norm_mean, norm_std = (0.0,), (1.0,)
        input_text = (f"{colour} image, uint8 {dims}, raw pixel values 0-255 (resize to "
                      f"{h}x{w}; MediaPipe does). The normalisation (x / 255 - mean) / std, "
                      f"{whitening}, is inside the model.")
    elif inp["dtype"] == "float32":
        norm_mean, norm_std = px_mean, px_std
        input_text = (f"{colour} image, float32 {dims}, normalised: (pixel - mean) / std with "
                      f"the metadata's normalization (pixel units; {whitening} in [0, 1] "
                      "units).")
    else:
        norm_mean, norm_std = px_mean, px_std
        input_text = (f"{colour} image, {inp['dtype']} {dims}, normalised then quantized: "
                      f"q = round(((pixel / 255 - mean) / std) / {inp['scale']:.6g}) + "
                      f"{inp['zero_point']}, {whitening}.")
    notes = []
    if c not in (3, 4):
        notes.append(f"its input depth is {c}; ImageClassifier needs 3 or 4")
    if inp["dtype"] not in ("uint8", "float32"):
        notes.append(f"its input is {inp['dtype']}; ImageClassifier feeds uint8 or float32")
    names = [str(n) for n in class_names]
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    desc = (f"Image classifier of {len(names)} classes ({shown}) on {dataset}, found by "
            "EAT-NAS (eatnas_tf)"
            + (f" in the search space {space}" if space else "")
            + (f": {arch}" if arch else "")
            + f". Format {fmt}: {FORMAT_TEXT.get(fmt, fmt)}.")
    return ModelMetadata(
        name=f"eatnas_tf {_dataset_name(dataset)} classifier ({fmt})", description=desc,
        input_description=input_text,
        output_description=("One logit per class, in the order of labels.txt: unnormalised "
                            "scores (softmax gives probabilities); the largest is the "
                            "prediction."),
        labels=tuple(names), norm_mean=norm_mean, norm_std=norm_std, color_space=colour,
        input=inp, image_classifier_ready=not notes,
        image_classifier_note="; ".join(notes))


# -- writing, reading, classifying -----------------------------------------------------------
def write(path: str, md: ModelMetadata, python: Optional[str] = None) -> Dict[str, Any]:
    """Embeds `md` into the file at `path` (rewritten in place); returns the report's facts,
    read back from the written file. Never raises for a missing venv or a failing writer:
    the facts then say `"written": false` with the reason and how to get the metadata."""
    reason = ""
    if python is None:
        python, reason = tool_python()
    base = {"writer": WRITER, "labels_file": LABELS_FILE,
            "image_classifier_ready": md.image_classifier_ready}
    if md.image_classifier_note:
        base["image_classifier_note"] = md.image_classifier_note
    if python is None:
        _warn_once(reason)
        return {"written": False, "reason": reason, "how": HOW, **base}
    try:
        out = _run_tool(python, ["write"], json.dumps({"files": [md.request(path)]}))
    except (MetadataToolError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        reason = f"MediaPipe's metadata writer failed: {' '.join(str(e).split())}"
        print(f"warning: {os.path.basename(path)}: TFLite metadata not written ({reason})",
              file=sys.stderr, flush=True)
        return {"written": False, "reason": reason, "how": HOW, **base}
    f, = out["files"]
    meta = f["metadata"] or {}
    inp, = meta["subgraph_metadata"][0]["input_tensor_metadata"]
    return {
        "written": True, **base, "mediapipe_version": out.get("mediapipe_version"),
        "name": meta.get("name"), "description": meta.get("description"),
        "input_description": inp.get("description"),
        "normalization": {"mean": list(md.norm_mean), "std": list(md.norm_std)},
        "color_space": md.color_space, "input": md.input,
        "associated_files": f["associated_files"], "labels_count": len(f["labels"]),
        "labels_match": f["labels"] == list(md.labels),
        "metadata_bytes": int(f["size_after"]) - int(f["size_before"]),
    }


def _python_or_raise(python: Optional[str]) -> str:
    if python is not None:
        return python
    python, reason = tool_python()
    if python is None:
        raise MetadataToolError(f"{reason}; {HOW}")
    return python


def read(path: str, python: Optional[str] = None) -> Dict[str, Any]:
    """The metadata of `path` as MediaPipe's `MetadataDisplayer` reads it: {"metadata": JSON
    or None, "associated_files", "labels"}.

    Raises:
      MetadataToolError: no MediaPipe venv, or the tool failed.
    """
    return _run_tool(_python_or_raise(python), ["read", path])


def classify(model: str, files: Sequence[str],
             python: Optional[str] = None) -> List[Dict[str, Any]]:
    """MediaPipe Tasks `ImageClassifier` (IMAGE mode, from `model_asset_path`) on each image
    file: [{"file", "index", "name", "score", "scores" (class-index order)}].

    Raises:
      MetadataToolError: no MediaPipe venv, or MediaPipe refused the model or a file.
    """
    python = _python_or_raise(python)
    results: List[Dict[str, Any]] = []
    for i in range(0, len(files), CLASSIFY_CHUNK):
        results += _run_tool(python, ["classify", model, *files[i:i + CLASSIFY_CHUNK]])["results"]
    return results


def mediapipe_pixels(files: Sequence[str], python: Optional[str] = None) -> List[Any]:
    """The uint8 HWC pixels MediaPipe decodes from each image file (`mp.Image`), as numpy
    arrays: what its ImageClassifier sees before resizing (its JPEG decoder is not
    TensorFlow's).

    Raises:
      MetadataToolError: no MediaPipe venv, or MediaPipe could not decode a file.
    """
    import tempfile

    import numpy as np

    python = _python_or_raise(python)
    out: List[Any] = []
    with tempfile.TemporaryDirectory(prefix="eatnas_mp_") as d:
        raw = os.path.join(d, "pixels.raw")
        for i in range(0, len(files), CLASSIFY_CHUNK):
            shapes = _run_tool(python, ["decode", raw, *files[i:i + CLASSIFY_CHUNK]])["shapes"]
            buf = np.fromfile(raw, np.uint8)
            at = 0
            for shape in shapes:
                n = int(np.prod(shape))
                out.append(buf[at:at + n].reshape(shape))
                at += n
    return out


def for_export(path: str, plan, data, fmt: str) -> Dict[str, Any]:
    """The export's hook (`export_lib`): the metadata of one file it wrote, from the plan
    (dataset, space, arch) and the export data (class names, whitening)."""
    from eatnas_tf.arch import codec

    md = describe(path, class_names=data.class_names, mean=data.spec.mean, std=data.spec.std,
                  fmt=fmt, dataset=plan.data.dataset, space=plan.space,
                  arch=codec.to_text(plan.arch))
    return write(path, md)
