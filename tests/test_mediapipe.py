"""TFLite metadata written with MediaPipe's `metadata_writers`, and the exported files run
through MediaPipe Tasks `ImageClassifier`, the API phone apps use (issue 15 point 6).

MediaPipe lives in its own venv (`make mediapipe`, part of `make setup`; see
export/metadata.py for why): the tests that need it are skipped without it, the others
(the lock, the tool's imports, the export without the venv) always run.

End to end: a tiny model trained on an RGB JPEG folder (`DIR/train`, `DIR/test`: 240
held-out files), exported; MediaPipe's ImageClassifier on each held-out FILE must give the
label names and the Keras model's top-1 on the data layer's decoded pixels of that file.
"""

import ast
import dataclasses
import json
import os
import sys

import numpy as np
import pytest
from lockfiles import lock_pins as _lock  # tests/lockfiles.py

from eatnas_tf.data.sample_folder import CLASSES
from export import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MP_PYTHON, MP_MISSING = metadata.tool_python()
needs_mediapipe = pytest.mark.skipif(MP_PYTHON is None,
                                     reason=f"{MP_MISSING}; `make mediapipe` makes it")
N_TRAIN, N_TEST = 80, 60          # per class: 320 training, 240 held-out files
SIZE = 32
SMALL = ("sep_k3_w1.0_d1,mb3_k3_w1.0_d1,mb3_k3_w1.0_d1,mb3_k3_w1.0_d1,mb3_k3_w1.0_d1,"
         "mb3_k3_w1.0_d1,mb3_k3_w1.0_d1")


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12"])
def test_mediapipe_lock_is_its_own_venv(python):
    """requirements-mediapipe.lock pins mediapipe 0.10.21 for each Python it has wheels
    for; its protobuf (< 5) cannot live beside TensorFlow 2.21's (>= 6.31): a second venv."""
    mp, main = _lock("requirements-mediapipe.lock", python), _lock("requirements.lock", python)
    assert mp["mediapipe"] == "0.10.21"
    assert int(mp["protobuf"].split(".")[0]) < 5 and int(mp["numpy"].split(".")[0]) < 2
    assert int(main["protobuf"].split(".")[0]) >= 6
    assert "tensorflow" not in mp


def _imports(path):
    tree = ast.parse(open(path).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_tool_imports_only_mediapipe_and_stdlib_and_main_never_mediapipe():
    tool = _imports(metadata.TOOL)
    assert "mediapipe" in tool
    assert tool - {"mediapipe"} <= set(sys.stdlib_module_names), tool
    assert "mediapipe" not in _imports(metadata.__file__)
    assert "mediapipe" not in _imports(os.path.join(ROOT, "export", "export_lib.py"))


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    """A 4-class TFLite file taking raw uint8 RGB [1, 32, 32, 3] (the exports' convention),
    and a few JPEG files."""
    import tensorflow as tf
    from PIL import Image

    d = tmp_path_factory.mktemp("tiny")

    class M(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.random.stateless_normal([3, 4], seed=(1, 2)))

        @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.uint8)])
        def f(self, x):
            return {"logits": tf.matmul(tf.reduce_mean(tf.cast(x, tf.float32) / 255.0, [1, 2]),
                                        self.w)}

    m = M()
    blob = tf.lite.TFLiteConverter.from_concrete_functions([m.f.get_concrete_function()],
                                                           m).convert()
    files = []
    for i in range(3):
        p = str(d / f"im{i}.jpg")
        Image.fromarray(np.random.RandomState(i).randint(0, 255, (40, 50, 3), np.uint8)).save(p)
        files.append(p)
    return {"blob": blob, "dir": d, "files": files}


def _copy(tiny, name):
    p = str(tiny["dir"] / name)
    with open(p, "wb") as f:
        f.write(tiny["blob"])
    return p


def _describe(path):
    return metadata.describe(path, class_names=CLASSES, mean=(0.5, 0.4, 0.3),
                             std=(0.25, 0.2, 0.2), fmt="fp32", dataset="folder:/data/photos",
                             space="auto", arch="sep_k3_w1.0_d1")


def test_without_the_venv_the_file_is_kept_warned_once_and_reported(tiny_tflite, monkeypatch,
                                                                    capsys):
    monkeypatch.setenv(metadata.ENV_PYTHON, "")
    monkeypatch.setattr(metadata, "_warned", set())
    path = _copy(tiny_tflite, "nometa.tflite")
    md = _describe(path)
    facts = [metadata.write(path, md) for _ in range(2)]
    assert facts[0] == facts[1]
    assert facts[0]["written"] is False and "make mediapipe" in facts[0]["how"]
    assert facts[0]["reason"] == f"{metadata.ENV_PYTHON} is empty"
    err = capsys.readouterr().err
    assert err.count("warning: TFLite metadata not written") == 1, err
    with open(path, "rb") as f:
        assert f.read() == tiny_tflite["blob"]
    with pytest.raises(metadata.MetadataToolError, match="make mediapipe"):
        metadata.read(path)


def test_describe_uint8_input_identity_normalization(tiny_tflite):
    md = _describe(_copy(tiny_tflite, "describe.tflite"))
    assert md.input == {"dtype": "uint8", "shape": [-1, SIZE, SIZE, 3], "scale": 0.0,
                        "zero_point": 0}
    assert (md.norm_mean, md.norm_std, md.color_space) == ((0.0,), (1.0,), "RGB")
    assert md.image_classifier_ready and md.labels == CLASSES
    assert md.name == "eatnas_tf photos classifier (fp32)"
    assert "inside the model" in md.input_description and "[1, 32, 32, 3]" in \
        md.input_description


@needs_mediapipe
def test_metadata_written_read_back_and_classified(tiny_tflite):
    path = _copy(tiny_tflite, "meta.tflite")
    md = _describe(path)
    facts = metadata.write(path, md)
    assert facts["written"] and facts["labels_match"], facts
    assert facts["mediapipe_version"] == "0.10.21" and facts["associated_files"] == ["labels.txt"]
    back = metadata.read(path)
    meta = back["metadata"]
    assert (meta["name"], meta["description"]) == (md.name, md.description)
    inp, = meta["subgraph_metadata"][0]["input_tensor_metadata"]
    out, = meta["subgraph_metadata"][0]["output_tensor_metadata"]
    assert inp["description"] == md.input_description
    assert inp["content"]["content_properties"]["color_space"] == "RGB"
    assert inp["process_units"][0]["options"] == {"mean": [0.0], "std": [1.0]}
    assert out["associated_files"][0]["name"] == "labels.txt"
    assert out["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
    assert back["labels"] == list(CLASSES)
    res = metadata.classify(path, tiny_tflite["files"])
    assert [r["name"] for r in res] == [CLASSES[r["index"]] for r in res]
    # MediaPipe ignores the normalization of a uint8 input (it is inside the graph): a
    # file whose metadata says mean 100, std 5 scores the same.
    other = _copy(tiny_tflite, "meta_norm.tflite")
    metadata.write(other, dataclasses.replace(md, norm_mean=(100.0,), norm_std=(5.0,)))
    res2 = metadata.classify(other, tiny_tflite["files"])
    assert [r["scores"] for r in res2] == [r["scores"] for r in res]
    # A MediaPipe failure is one line in the facts, never an exception.
    again = metadata.write(path, md)  # already has a labels.txt packed
    assert again["written"] is False and "already been packed" in again["reason"]


# -- end to end: RGB JPEG folder -> export -> ImageClassifier on held-out files ---------------
def _rgb_folder(root):
    """DIR/train/<class>/NNNN.jpg and DIR/test/<class>/NNNN.jpg: 32x32 JPEG crops of
    scikit-learn's two sample photos (`eatnas_tf.data.sample_folder`)."""
    from eatnas_tf.data.sample_folder import write_photo_folder

    return write_photo_folder(str(root), {"train": N_TRAIN, "test": N_TEST}, size=SIZE)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The tiny model trained 5 epochs on the folder's training part, exported as fp32 and
    int8 (fp16 and QAT files go through the same metadata step; left out for time)."""
    import keras
    from PIL import Image

    from eatnas_tf.arch import codec
    from eatnas_tf.arch.space import get_space
    from eatnas_tf.data.datasets import DataConfig, load_arrays, load_data
    from eatnas_tf.model.builder import build_model
    from export import export_lib
    from export.plan import data_config
    from export.saved_model import preprocess

    root = tmp_path_factory.mktemp("rgb")
    expected = _rgb_folder(root / "photos")
    spec = f"folder:{root / 'photos'}"
    cfg = DataConfig(spec, batch_size=16, split_file=str(root / "split.json"))
    bundle = load_data(cfg)
    sp = get_space("cifar10")
    macro = sp.macro.with_(image_size=SIZE, in_channels=3, num_classes=len(CLASSES),
                           stem_stride=2)
    arch = codec.from_text(SMALL, **sp.arch_defaults())
    keras.utils.set_random_seed(0)
    model = build_model(arch, macro)
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(bundle.train, epochs=5, verbose=0)
    config = export_lib.ExportConfig(formats=("fp32", "int8"), representative_samples=100,
                                     latency_threads=(1,), latency_warmup=1, latency_runs=2)
    report = export_lib.export_model(
        model, arch, macro, mean=bundle.mean, std=bundle.std,
        dataset=dataclasses.asdict(cfg), space="cifar10", export_dir=str(root / "export"),
        config=config)
    x_test, y_test = load_arrays(data_config(dataclasses.asdict(cfg)), "test")
    assert list(y_test) == [lab for _, lab in expected["test"]]
    keras_logits = np.asarray(model(preprocess(x_test, bundle.mean, bundle.std),
                                    training=False))
    # The same held-out images as lossless PNG files of the data layer's decoded pixels.
    png = []
    (root / "png").mkdir()
    for i, im in enumerate(x_test):
        png.append(str(root / "png" / f"{i:05d}.png"))
        Image.fromarray(im).save(png[-1])
    files = {"jpeg": [p for p, _ in expected["test"]], "png": png}

    def keras_on(x):
        return np.asarray(model(preprocess(np.stack([im[..., :3] for im in x]), bundle.mean,
                                           bundle.std),
                                training=False))

    mp_pixels = ({k: metadata.mediapipe_pixels(v) for k, v in files.items()}
                 if MP_PYTHON else None)
    return {"report": report, "files": files, "y": y_test, "x": x_test, "keras": keras_logits,
            "keras_on": keras_on, "mp_pixels": mp_pixels, "spec": cfg}


def test_the_model_is_trained(exported):
    """Not a constant predictor: agreement on a constant would hide a label-order bug."""
    k_top = exported["keras"].argmax(-1)
    assert float((k_top == exported["y"]).mean()) >= 0.5
    assert len(set(k_top.tolist())) == len(CLASSES)


@needs_mediapipe
@pytest.mark.parametrize("fmt", ["fp32", "int8"])
def test_every_exported_file_carries_metadata(exported, fmt):
    r = exported["report"]
    entry = r["formats"][fmt]
    md = entry["metadata"]
    assert md["written"] and md["labels_match"] and md["labels_count"] == len(CLASSES), md
    path = os.path.join(r["path"], entry["file"])
    back = metadata.read(path)
    assert back["labels"] == list(CLASSES) == r["labels"]["class_names"]
    assert back["metadata"]["name"] == f"eatnas_tf photos classifier ({fmt})"
    assert "EAT-NAS" in back["metadata"]["description"]
    inp, = back["metadata"]["subgraph_metadata"][0]["input_tensor_metadata"]
    assert inp["description"] == md["input_description"]
    with open(os.path.join(r["path"], "labels.txt")) as f:
        assert f.read().splitlines() == list(CLASSES)
    assert entry["size_bytes"] == os.path.getsize(path)  # the checks ran on this file
    with open(os.path.join(r["path"], "export_report.json")) as f:
        assert json.load(f)["formats"][fmt]["metadata"]["written"] is True


@needs_mediapipe
@pytest.mark.parametrize("kind", ["jpeg", "png"])
@pytest.mark.parametrize("fmt", ["fp32", "int8"])
def test_image_classifier_on_heldout_files_matches_keras(exported, fmt, kind):
    """ImageClassifier (IMAGE mode, model_asset_path) on each of the 240 held-out files:
    label names from the metadata, and the Keras model's top-1 on the data layer's decoded
    pixels of the same file.

    jpeg: the held-out JPEG files themselves. MediaPipe's JPEG decoder is not TensorFlow's
      (`decode_image` uses libjpeg's fast integer IDCT; pixels differ by up to ~6 levels),
      which moves this tiny model's logits by up to ~1 and flips a few near-ties; so the
      comparison that must hold is on the pixels MediaPipe decodes (`mediapipe_pixels`).
    png: the data layer's decoded pixels of the same files, lossless: MediaPipe decodes
      exactly those pixels.

    On MediaPipe's pixels, for both: ImageClassifier's scores are LiteRT's on the file
    (1e-4) and its top-1 is Keras's on >= 99% of the files for fp32 (measured: all), >= 95%
    for int8 (post-training quantization moves the logits; measured 97-98%). Against Keras
    on TensorFlow's pixels of the JPEG files >= 95% (fp32: all but 4 of 240, each explained
    by the decoding).
    """
    from export import tflite as tflite_lib

    r = exported["report"]
    entry = r["formats"][fmt]
    if not entry["metadata"]["image_classifier_ready"]:
        pytest.skip(f"{fmt}: {entry['metadata']['image_classifier_note']} (the raw uint8 "
                    "input of every TFLite file is another change)")
    path = os.path.join(r["path"], entry["file"])
    files = exported["files"][kind]
    assert len(files) >= 200
    res = metadata.classify(path, files)
    assert [x["file"] for x in res] == files
    assert all(x["name"] == CLASSES[x["index"]] for x in res)
    scores = np.array([x["scores"] for x in res])
    mp_top = scores.argmax(-1)
    assert all(x["index"] == t for x, t in zip(res, mp_top))
    keras = exported["keras"]
    k_top = keras.argmax(-1)
    agree = float((mp_top == k_top).mean())
    pixels = np.stack([im[..., :3] for im in exported["mp_pixels"][kind]])
    k_mp_top = exported["keras_on"](pixels).argmax(-1)
    agree_mp = float((mp_top == k_mp_top).mean())
    lite = tflite_lib.predict(path, pixels, _spec(r))  # the file in LiteRT on the same pixels
    off = np.flatnonzero(mp_top != k_top)
    print(f"\n{fmt} {kind}: ImageClassifier vs Keras top-1 {agree_mp:.4f} on MediaPipe's "
          f"decoded pixels of {len(files)} files, {agree:.4f} on TensorFlow's ({len(off)} "
          f"differ); vs LiteRT on the same pixels: top-1 "
          f"{float((mp_top == lite.argmax(-1)).mean()):.4f}, max |score - logit| "
          f"{float(np.abs(scores - lite).max()):.2e}")
    assert (mp_top == lite.argmax(-1)).all()
    assert float(np.abs(scores - lite).max()) <= 1e-4
    assert agree_mp >= (0.99 if fmt == "fp32" else 0.95)
    assert agree >= 0.95
    if kind == "png":
        assert (pixels == exported["x"]).all()
    elif fmt == "fp32":
        assert (mp_top[off] == k_mp_top[off]).all()  # every flip: the decoder's doing


def _spec(report):
    from export.saved_model import ServingSpec

    pre = report["preprocessing"]
    return ServingSpec(mean=pre["mean"], std=pre["std"], image_size=pre["image_size"],
                       raw_size=pre["raw_size"], channels=report["macro"]["in_channels"],
                       num_classes=report["macro"]["num_classes"])
