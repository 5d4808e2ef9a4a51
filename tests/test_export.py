"""Tests of `export/` (issue 9): SavedModel round trip, tf.Example signature, TFLite
variants in LiteRT, fp32 parity, graph MAdds, latency report, versioning and failures;
app-ready inputs (issue 15.6): every TFLite file takes raw uint8 RGB pixels (int8/QAT with
scale 1, zero point 0; a grey model converts inside), float32 out, and the SavedModel's
`serving_default` takes encoded image files.

One tiny architecture of the `fashion_mnist` space is trained briefly on a Fashion-MNIST
subset and exported once with every format (module fixture); the cheaper tests re-export
SavedModel-only (`formats=()`). Skipped when the IDX files are absent.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from eatnas_tf.data import idx

pytestmark = pytest.mark.skipif(not idx.available(), reason="Fashion-MNIST IDX files absent")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ("sep_k3_w1.0_d1,mb3_k3_w1.0_d1,mb3_k3_w1.5_d1,mb3_k3_w1.0_d1,mb3_k3_w1.5_d1,"
        "mb3_k3_w1.0_d1,mb3_k3_w1.0_d1")
TFLITE_FILES = ("model_fp32.tflite", "model_fp16.tflite", "model_int8.tflite",
                "model_qat_int8.tflite")


def _train_subset(dataset, n, seed=0):
    from eatnas_tf.data.datasets import load_arrays
    from export.plan import data_config

    x, y = load_arrays(data_config(dataset), "train")
    sel = np.sort(np.random.RandomState(seed).choice(len(y), size=min(n, len(y)), replace=False))
    return x[sel], y[sel]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A briefly trained tiny model saved as a run dir's winner artifact."""
    import keras

    from eatnas_tf.arch import codec
    from eatnas_tf.arch.space import get_space
    from eatnas_tf.model import artifact
    from eatnas_tf.model.builder import build_model
    from export.plan import data_config, data_facts
    from export.saved_model import preprocess

    space = get_space("fashion_mnist")
    arch = codec.from_text(TINY, **space.arch_defaults())
    assert space.violations(arch) == []
    keras.utils.set_random_seed(0)
    model = build_model(arch, space.macro)
    facts = data_facts(data_config("fashion_mnist"))
    mean, std = list(facts.mean), list(facts.std)
    x, y = _train_subset("fashion_mnist", 5000)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(preprocess(x, mean, std), y, batch_size=128, epochs=2, verbose=0)
    run_dir = tmp_path_factory.mktemp("run")
    artifact.save(str(run_dir / "winner"), model, arch, space.macro, space="fashion_mnist",
                  dataset="fashion_mnist", mean=mean, std=std, metrics={"test_acc": 0.7})
    return {"model": model, "arch": arch, "macro": space.macro, "mean": mean, "std": std,
            "run_dir": str(run_dir), "winner": str(run_dir / "winner")}


def _config(**kw):
    from export import export_lib, tflite

    base = dict(eval_samples=500, representative_samples=100,
                qat=tflite.QATConfig(epochs=1, max_samples=512), latency_threads=(1, 2),
                latency_warmup=2, latency_runs=5)
    base.update(kw)
    return export_lib.ExportConfig(**base)


@pytest.fixture(scope="module")
def full_export(trained, tmp_path_factory):
    """Every format exported once."""
    from export import export_lib

    out = str(tmp_path_factory.mktemp("export"))
    report = export_lib.export_artifact(trained["winner"], out, config=_config())
    return {"report": report, "export_dir": out, "path": report["path"]}


@pytest.fixture(scope="module")
def heldout():
    from eatnas_tf.data.datasets import load_arrays
    from export.plan import data_config

    return load_arrays(data_config("fashion_mnist"), "test", 256)


def _keras_logits(trained, images):
    from export.saved_model import preprocess

    return np.asarray(trained["model"](preprocess(images, trained["mean"], trained["std"]),
                                       training=False))


# -- layout and report ------------------------------------------------------------------------
def test_version_dir_layout_and_report(full_export):
    path, report = full_export["path"], full_export["report"]
    names = set(os.listdir(path))
    assert {"saved_model.pb", "variables", "export_report.json", "export_report.md",
            "BLESSED", *TFLITE_FILES} <= names
    assert os.path.basename(path) == report["version"] and report["version"].isdigit()
    # Nothing else under EXPORT_DIR: no temp dir left behind.
    assert os.listdir(full_export["export_dir"]) == [report["version"]]
    on_disk = json.load(open(os.path.join(path, "export_report.json")))
    assert on_disk["version"] == report["version"]
    for fmt in ("fp32", "fp16", "int8", "qat"):
        f = on_disk["formats"][fmt]
        assert f["size_bytes"] == os.path.getsize(os.path.join(path, f["file"]))
        assert set(f["latency"]) == {"1", "2"}
        for lat in f["latency"].values():
            assert 0 < lat["median_ms"] <= lat["p90_ms"]
            assert lat["runs"] == 5 and lat["warmup"] == 2
    assert on_disk["params"] == on_disk["params_keras"] == 48770
    md = open(os.path.join(path, "export_report.md")).read()
    assert "| fp32 (`model_fp32.tflite`)" in md and "2-thr median / p90 ms" in md


def test_saved_model_round_trip_equals_keras(trained, full_export, heldout):
    import tensorflow as tf

    x, _ = heldout
    loaded = tf.saved_model.load(full_export["path"])
    assert set(loaded.signatures) == {"serving_default", "serving_images", "serving_tf_example"}
    out = loaded.signatures["serving_images"](images=tf.constant(x))
    ref = _keras_logits(trained, x)
    np.testing.assert_allclose(out["logits"].numpy(), ref, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(out["classes"].numpy(), ref.argmax(-1))
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)
    assert full_export["report"]["checks"]["saved_model_parity"]


def test_serving_default_takes_png_and_jpeg_bytes(full_export, heldout):
    """`serving_default` (`image_bytes`, what TF Serving REST clients send as b64) decodes
    and resizes with the data layer's own `images.decode`: PNG bytes give exactly the
    uint8 signature's logits, JPEG bytes those of the decoded JPEG pixels, and a larger
    colour file what the data layer makes of it."""
    import tensorflow as tf

    from eatnas_tf.data import images

    x, y = heldout
    x = x[:64]
    loaded = tf.saved_model.load(full_export["path"])
    by_bytes = loaded.signatures["serving_default"]
    by_pixels = loaded.signatures["serving_images"]
    ref = by_pixels(images=tf.constant(x))["logits"].numpy()
    png = tf.constant([tf.io.encode_png(im).numpy() for im in x])
    np.testing.assert_array_equal(by_bytes(image_bytes=png)["logits"].numpy(), ref)
    jpeg = [tf.io.encode_jpeg(im, quality=90).numpy() for im in x]
    got = by_bytes(image_bytes=tf.constant(jpeg))["logits"].numpy()
    decoded = np.stack([images.decode(tf.constant(j), x.shape[1], 1).numpy() for j in jpeg])
    want = by_pixels(images=tf.constant(decoded))["logits"].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert (got.argmax(-1) == ref.argmax(-1)).mean() >= 0.9  # lossy, but the same images
    # A 56×56 RGB PNG: converted to grey and resized by the data layer's decoder.
    big = np.repeat(np.repeat(np.repeat(x[:8], 2, 1), 2, 2), 3, 3)
    big[..., 0] = np.minimum(big[..., 0].astype(int) + 40, 255)  # some colour
    files = [tf.io.encode_png(im).numpy() for im in big]
    got = by_bytes(image_bytes=tf.constant(files))["logits"].numpy()
    pix = np.stack([images.decode(tf.constant(f), 28, 1).numpy() for f in files])
    np.testing.assert_array_equal(got, by_pixels(images=tf.constant(pix))["logits"].numpy())
    sm = full_export["report"]["saved_model"]
    assert sm["image_bytes_max_abs_diff"] == 0.0
    assert sm["image_bytes_accuracy"] == sm["accuracy"]
    assert full_export["report"]["checks"]["image_bytes_signature"]


def test_tf_example_signature_parses_and_predicts(full_export, heldout):
    import tensorflow as tf

    from export import saved_model

    x, y = heldout
    loaded = tf.saved_model.load(full_export["path"])
    examples = tf.constant([saved_model.make_example(im) for im in x[:32]])
    out = loaded.signatures["serving_tf_example"](examples=examples)
    ref = loaded.signatures["serving_images"](images=tf.constant(x[:32]))
    np.testing.assert_allclose(out["logits"].numpy(), ref["logits"].numpy(), atol=1e-5)
    assert (out["classes"].numpy() == y[:32]).mean() > 0.5


# -- TFLite -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fname", TFLITE_FILES)
def test_every_tflite_variant_classifies_heldout_batch(full_export, heldout, fname):
    from ai_edge_litert.interpreter import Interpreter

    from export import tflite

    x, y = heldout
    path = os.path.join(full_export["path"], fname)
    it = Interpreter(model_path=path, num_threads=1)  # loads in LiteRT
    it.allocate_tensors()
    spec = _spec(full_export["report"])
    acc = (tflite.predict(path, x, spec).argmax(-1) == y).mean()
    assert acc > 0.6, (fname, acc)


def _spec(report):
    from export import saved_model

    p = report["preprocessing"]
    return saved_model.ServingSpec(mean=p["mean"], std=p["std"], image_size=p["image_size"],
                                   raw_size=p["raw_size"], channels=1, num_classes=10)


def _run_tflite(path, x):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path)
    d = it.get_input_details()[0]
    it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(d["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def test_fp32_parity_and_raw_input(trained, full_export, heldout):
    """The grey model's fp32 file takes RGB: on the channel-repeated held-out images it
    gives Keras' logits on the grey ones (same top-1 everywhere)."""
    x, _ = heldout
    path = os.path.join(full_export["path"], "model_fp32.tflite")
    got = _run_tflite(path, np.ascontiguousarray(np.repeat(x, 3, axis=-1)))
    ref = _keras_logits(trained, x)
    assert np.abs(got - ref).max() <= 1e-4
    np.testing.assert_array_equal(got.argmax(-1), ref.argmax(-1))
    r = full_export["report"]
    assert r["formats"]["fp32"]["max_abs_logit_diff"] <= 1e-4 and r["checks"]["fp32_parity"]


def test_grey_model_turns_colour_into_luma_inside(trained, full_export):
    """A colour picture sent to a grey model's fp32 file is seen as its luma (the weights
    of `tf.image.rgb_to_grayscale`, normalised to sum 1)."""
    from export.saved_model import GREY_WEIGHTS

    assert sum(GREY_WEIGHTS) == pytest.approx(1.0, abs=1e-7)
    rgb = np.random.RandomState(0).randint(0, 256, size=(16, 28, 28, 3)).astype(np.uint8)
    luma = (rgb.astype(np.float64) * np.asarray(GREY_WEIGHTS)).sum(-1, keepdims=True)
    mean, std = np.asarray(trained["mean"]), np.asarray(trained["std"])
    ref = np.asarray(trained["model"](((luma / 255.0 - mean) / std).astype(np.float32),
                                      training=False))
    got = _run_tflite(os.path.join(full_export["path"], "model_fp32.tflite"), rgb)
    assert np.abs(got - ref).max() <= 1e-3


def test_int8_grey_model_on_colour_images_and_float_io(trained, full_export, heldout,
                                                       tmp_path):
    """The int8 file's in-graph grey conversion is calibrated on grey images but keeps
    ranges that cover colour ones: on tinted held-out images it agrees with Keras on their
    luma. `int8_io=False` makes a float32-pixel input (normalisation still inside)."""
    from export import saved_model, tflite

    x, _ = heldout
    rng = np.random.RandomState(0)
    tint = rng.uniform(0.5, 1.0, size=(len(x), 1, 1, 3))
    col = np.clip(np.repeat(x, 3, -1) * tint, 0, 255).astype(np.uint8)
    luma = (col.astype(np.float64) * np.asarray(saved_model.GREY_WEIGHTS)).sum(-1, keepdims=True)
    mean, std = np.asarray(trained["mean"]), np.asarray(trained["std"])
    ref = np.asarray(trained["model"](((luma / 255.0 - mean) / std).astype(np.float32),
                                      training=False)).argmax(-1)
    spec = _spec(full_export["report"])
    got = tflite.predict(os.path.join(full_export["path"], "model_int8.tflite"), col)
    assert (got.argmax(-1) == ref).mean() >= 0.9
    path = tmp_path / "f.tflite"
    path.write_bytes(tflite.convert_int8(trained["model"], spec, x[:50], int8_io=False))
    desc = tflite.describe_input(str(path))
    assert desc["kind"] == "float32" and not desc["raw_pixels"] and desc["shape"][1:] == [28, 28, 3]
    assert (tflite.predict(str(path), col).argmax(-1) == ref).mean() >= 0.9


@pytest.mark.parametrize("fname", TFLITE_FILES)
def test_every_tflite_input_is_raw_uint8_rgb_and_output_float32(full_export, fname):
    """What MediaPipe's ImageClassifier takes: depth 3, uint8 pixels as they are (int8 and
    QAT: scale 1, zero point 0), float32 scores out."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=os.path.join(full_export["path"], fname))
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    assert d["dtype"] == np.uint8 and list(d["shape_signature"][1:]) == [28, 28, 3]
    assert o["dtype"] == np.float32 and list(o["shape"][1:]) == [10]
    scale, zero = d["quantization"]
    if "int8" in fname:
        assert (scale, zero) == (1.0, 0)
    else:
        assert (scale, zero) == (0.0, 0)
    fmt = {v: k for k, v in zip(("fp32", "fp16", "int8", "qat"), TFLITE_FILES)}[fname]
    desc = full_export["report"]["formats"][fmt]["input"]
    assert desc["kind"] == "raw_uint8" and desc["raw_pixels"] and desc["shape"][1:] == [28, 28, 3]
    assert desc["output_dtype"] == "float32"
    checks = full_export["report"]["checks"]
    assert checks["tflite_inputs_raw_rgb"] and checks["tflite_outputs_float32"]


def test_calibration_pixels_span_0_to_255_and_input_conventions():
    from export import saved_model, tflite

    spec = saved_model.ServingSpec(mean=(0.5,), std=(0.25,), image_size=4, raw_size=(4, 4),
                                   channels=1, num_classes=2)
    assert spec.app_shape == (4, 4, 3)
    grey = np.full((3, 4, 4, 1), 100, np.uint8)
    x = tflite.calibration_pixels(grey, spec)
    assert x.dtype == np.float32 and x.shape == (3, 4, 4, 3)
    assert x.min() == 0.0 and x.max() == 255.0 and (grey == 100).all()
    assert tflite.calibration_pixels(None, spec).shape[1:] == (4, 4, 3)
    raw = {"dtype": np.uint8, "quantization": (1.0, 0), "shape": np.array([1, 4, 4, 3])}
    assert tflite.input_kind(raw) == "raw_uint8"
    np.testing.assert_array_equal(tflite._model_input(grey, raw), np.repeat(grey, 3, -1))
    # Honest fallback: a uint8 input with other parameters is quantized with them.
    other = dict(raw, quantization=(2.0, 10))
    assert tflite.input_kind(other) == "uint8_quantized"
    assert (tflite._model_input(grey, other) == 60).all()
    flt = {"dtype": np.float32, "quantization": (0.0, 0), "shape": np.array([1, 4, 4, 3])}
    assert tflite.input_kind(flt) == "float32" and tflite._model_input(grey, flt).max() == 100.0


def test_graph_madds_agree_with_cost_model(full_export):

    r = full_export["report"]
    assert r["madds"] == 1488056
    for fmt, f in r["formats"].items():
        assert f["graph_madds"]["madds"] == r["madds"], fmt
        assert f["madds_check"]["agree"]
        assert f["graph_madds"]["op_counts"]["DEPTHWISE_CONV_2D"] == 7


def test_quantized_accuracy_and_size_reported(full_export):
    f = full_export["report"]["formats"]
    assert f["int8"]["size_bytes"] < f["fp32"]["size_bytes"] * 0.6
    for fmt in ("int8", "qat"):
        assert abs(f[fmt]["accuracy_drop_pts"]) < 10, fmt
    assert f["fp32"]["size_ratio_vs_fp32"] == 1.0


# -- versions and failures --------------------------------------------------------------------
def test_existing_version_is_never_overwritten(trained, tmp_path, monkeypatch):
    from export import export_lib, publish

    monkeypatch.setattr(publish, "_now", lambda: 1700000000.0)
    out = tmp_path / "exp"
    (out / "1700000000").mkdir(parents=True)
    (out / "1700000000" / "sentinel").write_text("keep")
    (out / "1700000001").write_text("a file also takes the name")
    r = export_lib.export_artifact(trained["winner"], str(out), config=_config(formats=()))
    assert r["version"] == "1700000002"
    assert (out / "1700000000" / "sentinel").read_text() == "keep"
    assert (out / "1700000001").read_text() == "a file also takes the name"
    assert sorted(os.listdir(out)) == ["1700000000", "1700000001", "1700000002"]
    assert (out / "1700000002" / "BLESSED").exists()
    assert publish.list_versions(str(out)) == [1700000000, 1700000002]
    assert publish.next_version(str(out)) == 1700000003
    # Publishing never replaces a version that appeared meanwhile.
    tmp = out / ".tmp-export-x"
    tmp.mkdir()
    with pytest.raises(export_lib.ExportError, match="appeared during the export"):
        publish.publish(str(tmp), str(out), 1700000002)


def test_unconvertible_model_leaves_no_partial_version(trained, tmp_path, monkeypatch):
    from export import export_lib, tflite

    class Rejecting:
        def convert(self):
            raise RuntimeError("'tf.Unsupported' op is neither a custom op nor a flex op\nmore")

    monkeypatch.setattr(tflite, "_from_saved_model", lambda path, endpoint: Rejecting())
    out = tmp_path / "exp"
    out.mkdir()
    (out / "123").mkdir()
    with pytest.raises(export_lib.ExportError) as e:
        export_lib.export_artifact(trained["winner"], str(out), config=_config(formats=("fp32",)))
    assert str(e.value) == ("TFLite fp32 conversion failed: 'tf.Unsupported' op is neither a "
                            "custom op nor a flex op")
    assert os.listdir(out) == ["123"]


def test_bad_output_dir_is_a_clear_error(trained, tmp_path):
    from export import export_lib

    f = tmp_path / "a_file"
    f.write_text("x")
    with pytest.raises(export_lib.ExportError, match="export_dir: .* not a directory"):
        export_lib.export_artifact(trained["winner"], str(f), config=_config(formats=()))
    with pytest.raises(export_lib.ExportError, match="export_dir: cannot create"):
        export_lib.export_artifact(trained["winner"], str(f / "sub"), config=_config(formats=()))
    assert f.read_text() == "x"


def test_unreadable_model_dir_is_a_clear_error(tmp_path):
    from export import export_lib

    bad = tmp_path / "winner"
    bad.mkdir()
    (bad / "model.keras").write_text("not a zip")
    (bad / "meta.json").write_text("{}")
    with pytest.raises(export_lib.ExportError, match="model_dir: cannot load"):
        export_lib.export_artifact(str(bad), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# -- run dir and command ----------------------------------------------------------------------
def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "export", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_bad_input_one_line_exit_2(tmp_path, trained):
    r = _cli(f"--run_dir={tmp_path / 'missing'}")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: run_dir:")
    assert "Traceback" not in r.stderr
    f = tmp_path / "file"
    f.write_text("x")
    r = _cli(f"--run_dir={trained['run_dir']}", f"--export_dir={f / 'sub'}", "--formats=")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: export_dir: cannot create")


def test_cli_run_dir_with_pareto_and_report_section(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained["run_dir"], run)
    json.dump({"winner": {"arch": TINY, "params": 48770, "madds": 1488056, "test_accuracy": 0.7},
               "pareto": [{"arch": TINY, "model_dir": "winner", "val_acc": 0.7, "madds": 1488056},
                          {"arch": TINY, "model_dir": None, "val_acc": 0.6, "madds": 1}]},
              open(run / "report.json", "w"))
    (run / "report.md").write_text("# Run\n\n## Export\n\nstale\n\n## Later\n\nkept\n")
    args = (f"--run_dir={run}", "--pareto", "--formats=fp32", "--eval_samples=200",
            "--latency_runs=3", "--latency_warmup=1", "--threads=1")
    r = _cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    versions = [n for n in os.listdir(run / "export") if n.isdigit()]
    assert len(versions) == 1
    rep = json.load(open(run / "export" / versions[0] / "export_report.json"))
    assert rep["checks"]["madds_match_claim"] and rep["checks"]["fp32_parity"]
    assert rep["claim"]["test_accuracy"] == 0.7
    pareto_versions = os.listdir(run / "export" / "pareto" / "00")
    assert len(pareto_versions) == 1 and pareto_versions[0].isdigit()
    assert not (run / "export" / "pareto" / "01").exists()  # no model_dir: not exported
    assert "Pareto front" in open(run / "export" / versions[0] / "export_report.md").read()
    md = (run / "report.md").read_text()
    assert "\nstale\n" not in md, md
    assert md.splitlines().count("## Export") == 1 and md.endswith("## Later\n\nkept\n")
    assert f"### Export {versions[0]}" in md


# -- pieces -----------------------------------------------------------------------------------
def test_update_run_report_is_idempotent(tmp_path):
    from export import report

    p = tmp_path / "report.md"
    p.write_text("# Run\n\nbody\n")
    report.update_run_report(str(p), "table v1")
    once = p.read_text()
    report.update_run_report(str(p), "table v1")
    assert p.read_text() == once == "# Run\n\nbody\n\n## Export\n\ntable v1\n"
    report.update_run_report(str(p), "table v2")
    assert p.read_text() == "# Run\n\nbody\n\n## Export\n\ntable v2\n"


def test_data_config_from_a_stored_dict_tolerates_unknown_and_missing_keys():
    from eatnas_tf.data.datasets import DataConfig
    from export import export_lib
    from export.plan import data_config

    stored = {"dataset": "digits", "batch_size": 64, "augment": ["flip"], "split": "search",
              "a_field_from_a_newer_version": 1}
    cfg = data_config(stored)
    assert cfg == DataConfig("digits", batch_size=64, augment=("flip",), split="final")
    assert data_config("cifar10").dataset == "cifar10"
    with pytest.raises(export_lib.ExportError, match="data: the run records no dataset"):
        data_config({"batch_size": 3})
    with pytest.raises(export_lib.ExportError, match="^data: .*val_fraction"):
        data_config({"dataset": "digits", "val_fraction": 2.0})


def test_export_keras_file_computes_mean_std(trained, tmp_path):
    from export import export_lib

    path = tmp_path / "m.keras"
    trained["model"].save(str(path))
    r = export_lib.export_keras_file(str(path), TINY, space="fashion_mnist",
                                     dataset="fashion_mnist", export_dir=str(tmp_path / "out"),
                                     config=_config(formats=(), bless_threshold=0.999))
    assert r["preprocessing"]["mean"] == pytest.approx(trained["mean"])
    assert r["checks"]["saved_model_parity"] and r["source"]["kind"] == "keras_file"
    assert os.path.exists(os.path.join(r["path"], "NOT_BLESSED"))
    assert not r["blessing"]["blessed"] and "threshold" in r["blessing"]["reasons"][0]
    with pytest.raises(Exception, match="space fashion_mnist"):
        export_lib.export_keras_file(str(path), TINY.replace("_d1", "_d4"), space="fashion_mnist",
                                     dataset="fashion_mnist", export_dir=str(tmp_path / "x"))


@pytest.mark.slow
def test_cli_standalone_model_all_formats(trained, tmp_path):
    path = tmp_path / "m.keras"
    trained["model"].save(str(path))
    r = _cli(f"--model={path}", f"--arch={TINY}", "--space=fashion_mnist",
             "--dataset=fashion_mnist", f"--export_dir={tmp_path / 'out'}", "--eval_samples=500",
             "--qat_epochs=1", "--qat_samples=1000", "--latency_runs=5")
    assert r.returncode == 0, r.stderr[-2000:]
    (version,) = os.listdir(tmp_path / "out")
    names = set(os.listdir(tmp_path / "out" / version))
    assert set(TFLITE_FILES) <= names and "BLESSED" in names
    assert f"exported: {tmp_path / 'out' / version}" in r.stdout


# -- runs without retraining, any dataset (issue 15.6) ------------------------------------------
SMALL = ("sep_k3_w1.0_d1,mb3_k3_w1.0_d1,mb3_k3_w1.0_d1,mb3_k3_w1.0_d1,mb3_k3_w1.0_d1,"
         "mb3_k3_w1.0_d1,mb3_k3_w1.0_d1")


def _search_run(run, dataset, *, space="digits", macro=None, train=False, source="auto"):
    """A search run dir as the search writes it when it retrains nothing: config.json
    (format 2, the stage's data and space), report.json, candidates.jsonl and the weights
    of two candidates (c00001 scores best). Returns the best candidate's model."""
    import dataclasses

    import keras

    from eatnas_tf.arch import codec
    from eatnas_tf.arch.space import get_space
    from eatnas_tf.data.datasets import DataConfig, load_data
    from eatnas_tf.model import layer_weights, weights_io
    from eatnas_tf.model.builder import build_model

    sp = get_space(space)
    sp_dict = dataclasses.asdict(sp)
    if macro is not None:
        sp_dict["macro"].update(macro)
    data = DataConfig(dataset, source=source, batch_size=64)
    bundle = load_data(data)
    m = sp.macro.with_(**{k: (tuple(v) if k == "block_strides" else v)
                          for k, v in sp_dict["macro"].items()})
    arch = codec.from_text(SMALL, **sp.arch_defaults())
    os.makedirs(run / "weights")
    models = {}
    for cid in (0, 1):
        keras.utils.set_random_seed(cid)
        model = build_model(arch, m)
        if train and cid == 1:
            model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            model.fit(bundle.train, epochs=3, verbose=0)
        weights_io.save(str(run / "weights" / f"{cid:05d}.npz"), layer_weights.get(model))
        models[cid] = model
    stage = {"data": {**dataclasses.asdict(data), "augment": [], "a_newer_field": 1},
             "space": sp_dict, "name": "search"}
    json.dump({"format": 2, "changes": [], "config": {"stage": stage, "retrain": None}},
              open(run / "config.json", "w"))
    with open(run / "candidates.jsonl", "w") as f:
        for cid, score in ((0, 0.1), (1, 0.5)):
            f.write(json.dumps({"id": cid, "arch": SMALL, "status": "ok", "stage": "search",
                                "score": score, "val_acc": score, "params": 1,
                                "madds": 2}) + "\n")
    json.dump({"space": space, "winner": None, "topk": [], "pareto": [],
               "stages": [{"name": "search", "dataset": dataset}]}, open(run / "report.json", "w"))
    return models[1], bundle


def test_run_without_retraining_exports_best_candidate_weights(tmp_path):
    """`python -m export --run_dir` after a search that retrained nothing (the smoke
    search: no winner/): the top candidate's stored weights, said in the reports."""
    from export import export_lib
    from export.saved_model import preprocess

    run = tmp_path / "run"
    run.mkdir()
    model, bundle = _search_run(run, "digits", train=True)
    (run / "report.md").write_text("# Run\n")
    out = export_lib.export_run(str(run), config=_config(formats=("fp32",), eval_samples=None))
    r = out["winner"]
    assert r["weights"] == "search candidate c00001, not retrained"
    assert r["source"]["kind"] == "search_candidate" and r["source"]["candidate"] == 1
    assert r["dataset"] == "digits" and r["data"]["split"] == "final"
    assert r["eval"]["samples"] == 359  # digits' test split
    assert r["preprocessing"]["mean"] == pytest.approx(bundle.mean)
    # The exported model is candidate 1's weights, unchanged.
    from eatnas_tf.data.datasets import load_arrays
    from export.plan import data_config

    x, y = load_arrays(data_config(r["data"]), "test")
    ref = np.asarray(model(preprocess(x, bundle.mean, bundle.std), training=False))
    assert r["keras"]["accuracy"] == pytest.approx(float((ref.argmax(-1) == y).mean()))
    assert r["keras"]["accuracy"] > 0.5 and r["checks"]["fp32_parity"]
    assert "- weights: search candidate c00001, not retrained" in open(
        os.path.join(r["path"], "export_report.md")).read()
    assert "not retrained" in (run / "report.md").read_text()
    labels = open(os.path.join(r["path"], "labels.txt")).read().splitlines()
    assert labels == [str(i) for i in range(10)]
    # Without weights files there is nothing to export: one line.
    for f in os.listdir(run / "weights"):
        os.unlink(run / "weights" / f)
    with pytest.raises(export_lib.ExportError, match="no winner/ model artifact and no stored"):
        export_lib.export_run(str(run), config=_config(formats=()))


def test_export_run_on_cifar10_through_tfds_mock_data(tmp_path):
    """A run whose stored data config is cifar10 (tfds, mocked): exported and checked on
    the cifar10 test split, 3 channels at 32×32, one label a class in labels.txt."""
    import tensorflow_datasets as tfds

    from eatnas_tf.data import datasets
    from export import export_lib

    datasets._raw_arrays.cache_clear()
    try:
        with tfds.testing.mock_data(num_examples=120):
            run = tmp_path / "run"
            run.mkdir()
            _search_run(run, "cifar10", source="tfds",
                        macro={"image_size": 32, "in_channels": 3, "stem_stride": 2})
            r = export_lib.export_run(str(run), config=_config(formats=("fp32", "int8"),
                                                               eval_samples=64))["winner"]
    finally:
        datasets._raw_arrays.cache_clear()
    assert r["dataset"] == "cifar10" and r["macro"]["in_channels"] == 3
    assert r["preprocessing"]["raw_size"] == [32, 32] and r["eval"]["samples"] == 64
    assert r["checks"]["fp32_parity"] and r["checks"]["madds_agree"]
    for fmt in ("fp32", "int8"):  # an RGB model stays RGB, raw pixels
        inp = r["formats"][fmt]["input"]
        assert inp["shape"][1:] == [32, 32, 3] and inp["kind"] == "raw_uint8", inp
    assert (r["formats"]["int8"]["input"]["scale"],
            r["formats"]["int8"]["input"]["zero_point"]) == (1.0, 0)
    # The names the data layer has for it (mock data carries no label file: "0".."9").
    labels = open(os.path.join(r["path"], "labels.txt")).read().splitlines()
    assert labels == r["labels"]["class_names"] and len(labels) == 10


def test_markdown_report_names_metadata_and_predicted_latency():
    """export_report.md says which files carry TFLite metadata (and how to get it when
    not) and shows the latency table's prediction next to the measured latency."""
    from export import report

    rep = {"version": 1, "formats": {
        "fp32": {"metadata": {"written": True}},
        "int8": {"metadata": {"written": False, "reason": "no .venv-mediapipe",
                              "how": "make mediapipe"}}},
        "latency_prediction": {"rows": [{"format": "fp32", "threads": 1, "predicted_ms": 0.1,
                                         "measured_ms": 0.11, "error_pct": -9.1,
                                         "device": "host"}]}}
    md = report.to_markdown(rep)
    assert "MediaPipe `metadata_writers`): fp32; **not written** for int8" in md
    assert "make mediapipe" in md
    assert "| fp32 | 1 | 0.100 | 0.110 | -9.1 | host |" in md
