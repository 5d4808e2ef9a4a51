"""The user's own data (issue 15.1-2): folder:, tfrecord:, tfds: sources, bad data, the stored
split, streaming, and the smoke search on a folder equal to the built-in digits search."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import flags
from PIL import Image

from eatnas_tf.data import datasets as D
from eatnas_tf.data import idx, images, sources, user
from eatnas_tf.train import flags as train_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_fmnist = pytest.mark.skipif(not idx.available(), reason="dataset-fashion-mnist not installed")


@pytest.fixture(autouse=True)
def _fresh_sources():
    user.load_source.cache_clear()
    yield
    user.load_source.cache_clear()


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(buf, format="PNG")
    return buf.getvalue()


def _rows(x, y):
    """Sorted (label, pixel bytes) pairs: compares example sets independent of order."""
    return sorted((int(lab), a.tobytes()) for a, lab in zip(x, y))


def _all_parts(cfg):
    xs, ys = [], []
    for part in ("train", "val", "test"):
        x, y = D.load_arrays(cfg, part)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _one_line_value_error(fn, match):
    with pytest.raises(ValueError, match=match) as e:
        fn()
    assert "\n" not in str(e.value)
    return str(e.value)


# -- parsing ----------------------------------------------------------------------------------
def test_parse_dataset_forms_and_one_line_errors():
    assert sources.parse_dataset("digits") == sources.DatasetSpec("builtin", name="digits")
    f = sources.parse_dataset("folder:~/pics")
    assert f.kind == "folder" and f.location == os.path.expanduser("~/pics")
    assert sources.parse_dataset("tfrecord:/d/*.tfrecord").location == "/d/*.tfrecord"
    t = sources.parse_dataset("tfds:imagenette/160px:1.0.0")
    assert (t.kind, t.name, t.config, t.version) == ("tfds", "imagenette", "160px", "1.0.0")
    assert t.tfds_name == "imagenette/160px:1.0.0"
    assert sources.parse_dataset("tfds:cifar10").tfds_name == "cifar10"
    for bad in ("svhn", "folder:", "tfds:Bad Name", "zip:/x", "tfds:a:b"):
        msg = _one_line_value_error(lambda b=bad: sources.parse_dataset(b), "dataset: received")
        assert "folder:DIR" in msg and "tfds:NAME[/CONFIG][:VERSION]" in msg
    with pytest.raises(ValueError, match="source"):
        D.DataConfig("folder:/x", source="tfds")
    cfg = D.DataConfig("folder:/x", split_file="/tmp/s.json")
    hash(cfg)
    import dataclasses

    assert dataclasses.asdict(cfg)["split_file"] == "/tmp/s.json"


def test_dataset_flag_takes_every_form_and_rejects_others():
    fv = flags.FlagValues()
    train_flags.define_data_flags(fv)
    fv(["prog", "--dataset=folder:/some/dir"])
    assert train_flags.data_config_from_flags(fv).dataset == "folder:/some/dir"
    fv2 = flags.FlagValues()
    train_flags.define_data_flags(fv2)
    with pytest.raises(flags.IllegalFlagValueError, match="allowed values"):
        fv2(["prog", "--dataset=svhn"])


def test_default_size_rule():
    assert images.default_size([28] * 5) == 32
    assert images.default_size([8, 8, 9]) == 8
    assert images.default_size([3]) == 8
    assert images.default_size([500, 480, 1000]) == 224
    assert images.default_size([60, 61, 100]) == 64


# -- folder: Fashion-MNIST as PNG files ---------------------------------------------------------
@pytest.fixture(scope="module")
def fmnist_folder(tmp_path_factory):
    """2,000 Fashion-MNIST training images (200 per class, seeded) as DIR/<class>/<index>.png."""
    x, y = idx.load_split("train")
    rng = np.random.RandomState(0)
    sel = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), 200, replace=False)
                                  for c in range(10)]))
    root = tmp_path_factory.mktemp("fmnist_png")
    for i in sel:
        d = root / D.FASHION_MNIST_CLASSES[y[i]].replace("/", "_")
        d.mkdir(exist_ok=True)
        Image.fromarray(x[i, ..., 0]).save(d / f"{i:05d}.png")
    return str(root), sel, x, y


@needs_fmnist
def test_png_folder_loads_the_idx_pixels_and_labels(fmnist_folder):
    root, sel, x, y = fmnist_folder
    cfg = D.DataConfig(f"folder:{root}", image_size=28, split="final")
    data = D.load_data(cfg)
    names = tuple(sorted(n.replace("/", "_") for n in D.FASHION_MNIST_CLASSES))
    assert data.class_names == names and data.num_classes == 10
    assert data.image_shape == (28, 28, 1) and data.bad_files == {"count": 0, "first": []}
    assert data.num_train + data.num_val + data.num_test == 2000
    assert (data.num_test, data.num_val) == (400, 320)   # stratified: 40 + 32 per class
    # Folder labels are indices into the sorted folder names: map them back to IDX labels.
    folder_names = [n.replace("/", "_") for n in D.FASHION_MNIST_CLASSES]
    to_idx = np.array([folder_names.index(n) for n in names])
    xa, ya = _all_parts(cfg)
    assert _rows(xa, to_idx[ya]) == _rows(x[sel], y[sel])
    # Example by example, through the ids (class/<IDX index>.png).
    src = user.source_of(cfg)
    order = np.array([int(i.split("/")[-1][:5]) for i in src.ids])
    np.testing.assert_array_equal(src.images, x[order])
    np.testing.assert_array_equal(to_idx[src.labels], y[order])
    # Each class lands in every part.
    _, yt = D.load_arrays(cfg, "test")
    assert np.bincount(yt, minlength=10).tolist() == [40] * 10
    # The default size rule: 28 -> 32.
    assert D.DataConfig(f"folder:{root}").size == 32


# -- tfrecord: the TFDS / TFX convention -----------------------------------------------------------
def _example(img: np.ndarray, label: int, text=None) -> bytes:
    f = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[_png(img)])),
         "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
         "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"png"]))}
    if text is not None:
        f["image/class/text"] = tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[text.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString()


def _digits():
    raw = D._raw_arrays("digits", "sklearn", None)
    return raw.x_train[:300], raw.y_train[:300]


@pytest.mark.parametrize("with_text,gzip", [(True, False), (False, False), (True, True)])
def test_tfrecords_in_the_tfds_tfx_convention_load(tmp_path, with_text, gzip):
    x, y = _digits()
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    opts = tf.io.TFRecordOptions(compression_type="GZIP" if gzip else "")
    ext = ".gz" if gzip else ""
    for shard in range(3):
        with tf.io.TFRecordWriter(str(tmp_path / f"data-train.tfrecord-{shard:05d}-of-00003{ext}"),
                                  opts) as w:
            for i in range(shard, len(y), 3):
                w.write(_example(x[i], int(y[i]), words[y[i]] if with_text else None))
    cfg = D.DataConfig(f"tfrecord:{tmp_path}/data-train.tfrecord-*", split="final", batch_size=32)
    data = D.load_data(cfg)
    assert data.class_names == (tuple(words) if with_text else tuple(str(i) for i in range(10)))
    assert data.image_shape == (8, 8, 1) and data.num_train + data.num_val + data.num_test == 300
    assert _rows(*_all_parts(cfg)) == _rows(x, y)
    xb, yb = next(iter(data.train))
    assert xb.shape == (32, 8, 8, 1) and yb.dtype == tf.int64


def test_tfds_dataset_by_name_through_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=40):
        cfg = D.DataConfig("tfds:cifar10", data_dir=str(tmp_path), split="final", batch_size=16)
        data = D.load_data(cfg)
        assert data.image_shape == (32, 32, 3) and data.num_classes == 10
        assert len(data.class_names) == 10
        assert data.num_test == 40 and data.num_train + data.num_val == 40  # tfds's own test split
        x, y = next(iter(data.train))
        assert x.shape == (16, 32, 32, 3)
        assert next(iter(data.test))[0].shape[1:] == (32, 32, 3)


def test_tfds_missing_dataset_is_one_line_naming_where_tfds_looked(tmp_path):
    cfg = D.DataConfig("tfds:cifar10", data_dir=str(tmp_path))
    msg = _one_line_value_error(lambda: D.load_data(cfg),
                                "not prepared in")
    assert str(tmp_path) in msg
    _one_line_value_error(lambda: D.load_data(D.DataConfig("tfds:no_such_dataset_zz")),
                          "no_such_dataset_zz")


# -- an RGB JPEG folder with bad files -------------------------------------------------------------
@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Crops (48×64 and 64×48) of scikit-learn's two sample photos, 12 per class, as JPEG, plus
    a corrupt JPEG, a zero-byte PNG and a text file."""
    from sklearn.datasets import load_sample_images

    root = tmp_path_factory.mktemp("photos")
    rng = np.random.RandomState(0)
    for name, photo in zip(("china", "flower"), load_sample_images().images):
        d = root / name
        d.mkdir()
        for k in range(12):
            h, w = (48, 64) if k % 2 else (64, 48)
            y0, x0 = rng.randint(0, photo.shape[0] - h), rng.randint(0, photo.shape[1] - w)
            Image.fromarray(photo[y0:y0 + h, x0:x0 + w]).save(d / f"crop{k:02d}.jpg", quality=90)
    good = (root / "china" / "crop00.jpg").read_bytes()
    (root / "china" / "broken.jpg").write_bytes(good[:40] + b"\x00garbage" * 20)
    (root / "flower" / "empty.png").write_bytes(b"")
    (root / "flower" / "notes.txt").write_text("not an image\n")
    return str(root)


def test_rgb_jpeg_folder_skips_and_names_every_bad_file(photo_folder, capfd):
    cfg = D.DataConfig(f"folder:{photo_folder}", batch_size=8, augment=("crop", "flip"))
    data = D.load_data(cfg)
    err = capfd.readouterr().err
    warning = [ln for ln in err.splitlines() if ln.startswith("warning: dataset")]
    assert len(warning) == 1 and "skipped 3 bad file(s)" in warning[0]
    for name in ("china/broken.jpg", "flower/empty.png", "flower/notes.txt"):
        assert name in warning[0]
        assert any(name in b for b in data.bad_files["first"])
    assert data.bad_files["count"] == 3
    assert data.class_names == ("china", "flower")
    assert data.image_shape == (48, 48, 3)  # median short side 48
    assert data.num_train + data.num_val == 24 - 2 * 2  # round(12 * 0.2) = 2 test images per class
    x, y = next(iter(data.train))
    assert x.shape == (8, 48, 48, 3) and np.isfinite(x.numpy()).all()
    assert len(list(data.val)) >= 1
    assert data.describe()["bad_files"]["count"] == 3


def test_grey_folder_has_one_channel_and_mixed_folder_three(tmp_path):
    x, y = _digits()
    for i in range(40):
        d = tmp_path / "g" / str(y[i] % 2)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i, ..., 0]).save(d / f"{i}.png")
    assert D.load_data(D.DataConfig(f"folder:{tmp_path}/g")).image_shape == (8, 8, 1)
    Image.fromarray(np.stack([x[0, ..., 0], x[1, ..., 0], x[2, ..., 0]], -1)).save(
        tmp_path / "g" / "0" / "rgb.bmp")
    user.load_source.cache_clear()
    assert D.load_data(D.DataConfig(f"folder:{tmp_path}/g")).image_shape == (8, 8, 3)


# -- every bad-data case: one line, nothing written ------------------------------------------------
def _make_folder(root, counts, ext="png"):
    x, _ = _digits()
    k = 0
    for c, n in counts.items():
        d = root / c
        d.mkdir(parents=True, exist_ok=True)
        for _ in range(n):
            Image.fromarray(x[k, ..., 0]).save(d / f"{k}.{ext}")
            k += 1
    return root


def test_every_bad_data_case_is_one_line_value_error_and_writes_nothing(tmp_path):
    split = tmp_path / "run" / "data_split.json"

    def load(spec):
        user.load_source.cache_clear()
        return D.load_data(D.DataConfig(spec, split_file=str(split)))

    _one_line_value_error(lambda: load(f"folder:{tmp_path}/nope"), "no such directory")
    one = _make_folder(tmp_path / "one", {"a": 5})
    _one_line_value_error(lambda: load(f"folder:{one}"), "found 1 class folder")
    empty = _make_folder(tmp_path / "empty", {"a": 5, "b": 5})
    (empty / "c").mkdir()
    _one_line_value_error(lambda: load(f"folder:{empty}"), "class folder 'c' is empty")
    few = _make_folder(tmp_path / "few", {"a": 5, "b": 2})
    _one_line_value_error(lambda: load(f"folder:{few}"), "class 'b' has 2 usable image.*at least 3")
    allbad = _make_folder(tmp_path / "allbad", {"a": 5})
    (allbad / "b").mkdir()
    (allbad / "b" / "x.jpg").write_bytes(b"not a jpeg")
    _one_line_value_error(lambda: load(f"folder:{allbad}"), "class 'b' has no readable images")
    _one_line_value_error(lambda: load(f"tfrecord:{tmp_path}/*.tfrecord"), "matches no files")
    with tf.io.TFRecordWriter(str(tmp_path / "nolabel.tfrecord")) as w:
        f = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))}
        w.write(tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString())
    _one_line_value_error(lambda: load(f"tfrecord:{tmp_path}/nolabel.tfrecord"),
                          "has no single image/class/label")
    (tmp_path / "junk.tfrecord").write_bytes(b"\x01\x02 this is not a tfrecord file at all")
    _one_line_value_error(lambda: load(f"tfrecord:{tmp_path}/junk.tfrecord"), "is not readable as")
    assert not split.exists() and not split.parent.exists()


def test_check_data_validates_without_writing(tmp_path, photo_folder):
    split = tmp_path / "run" / "data_split.json"
    one = _make_folder(tmp_path / "one", {"a": 3})
    _one_line_value_error(lambda: D.check_data(D.DataConfig(f"folder:{one}",
                                                            split_file=str(split))),
                          "found 1 class folder")
    few = _make_folder(tmp_path / "few", {"a": 5, "b": 2})
    _one_line_value_error(lambda: D.check_data(D.DataConfig(f"folder:{few}",
                                                            split_file=str(split))),
                          "class 'b' has 2 usable")
    info = D.check_data(D.DataConfig(f"folder:{photo_folder}", split_file=str(split)))
    assert info["num_examples"] == 24 and info["bad_files"]["count"] == 3
    assert info["class_names"] == ["china", "flower"] and info["image_shape"] == [48, 48, 3]
    assert not split.parent.exists()
    assert D.check_data(D.DataConfig("digits"))["class_names"][0] == "0"


# -- the stored split ------------------------------------------------------------------------------
def test_stored_split_is_reused_and_checked(photo_folder, tmp_path, capfd):
    split = str(tmp_path / "data_split.json")
    cfg = D.DataConfig(f"folder:{photo_folder}", split_file=split, split="final")
    a = [D.load_arrays(cfg, p) for p in ("train", "val", "test")]
    stored = json.load(open(split))
    assert stored["rule"] == "stratified" and stored["num_examples"] == 24
    assert sorted(stored["train"] + stored["val"] + stored["test"]) == sorted(
        user.source_of(cfg).ids)
    # Another seed and other fractions do not change a stored cut.
    cfg2 = D.DataConfig(f"folder:{photo_folder}", split_file=split, split="final", split_seed=7,
                        test_fraction=0.5)
    user.load_source.cache_clear()
    b = [D.load_arrays(cfg2, p) for p in ("train", "val", "test")]
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    fresh = D.load_arrays(D.DataConfig(f"folder:{photo_folder}", split="final", split_seed=7),
                          "test")
    assert not np.array_equal(fresh[0], a[2][0])  # without the file, seed 7 cuts differently
    # Data that no longer matches the stored file list: one line.
    user.load_source.cache_clear()
    other = D.DataConfig(f"folder:{photo_folder}/../photos_other", split_file=split)
    os.makedirs(os.path.join(photo_folder, "..", "photos_other"), exist_ok=True)
    import shutil

    shutil.copytree(photo_folder, os.path.join(photo_folder, "..", "photos_other"),
                    dirs_exist_ok=True)
    os.remove(os.path.join(photo_folder, "..", "photos_other", "china", "crop03.jpg"))
    _one_line_value_error(lambda: D.load_data(other), "was cut from other data.*china/crop03.jpg")


# -- streaming -----------------------------------------------------------------------------
def test_streamed_folder_gives_the_same_batches_as_in_memory(photo_folder):
    kw = dict(batch_size=4, split="final", val_fraction=0.25)
    mem = D.load_data(D.DataConfig(f"folder:{photo_folder}", **kw))
    stream = D.load_data(D.DataConfig(f"folder:{photo_folder}", memory_cap_mb=0.01, **kw))
    assert not mem.streamed and stream.streamed
    assert user.source_of(stream.config).images is None  # never loaded whole
    np.testing.assert_allclose(mem.mean, stream.mean, rtol=1e-12)
    for dm, ds in ((mem.train_noaug, stream.train_noaug), (mem.val, stream.val),
                   (mem.test, stream.test)):
        bm, bs = list(dm), list(ds)
        assert len(bm) == len(bs) > 0
        for (xm, ym), (xs, ys) in zip(bm, bs):
            np.testing.assert_allclose(xm.numpy(), xs.numpy(), atol=1e-5)
            np.testing.assert_array_equal(ym.numpy(), ys.numpy())
    for p in ("train", "test"):
        assert _rows(*D.load_arrays(mem.config, p)) == _rows(*D.load_arrays(stream.config, p))
    assert stream.bad_files["count"] == 3


def test_streamed_tfrecords_give_the_same_images_as_in_memory(tmp_path):
    x, y = _digits()
    with tf.io.TFRecordWriter(str(tmp_path / "d.tfrecord")) as w:
        for i in range(len(y)):
            w.write(_example(x[i], int(y[i])))
    kw = dict(batch_size=16, split="final")
    mem = D.load_data(D.DataConfig(f"tfrecord:{tmp_path}/d.tfrecord", **kw))
    stream = D.load_data(D.DataConfig(f"tfrecord:{tmp_path}/d.tfrecord", memory_cap_mb=0.001, **kw))
    assert stream.streamed and (mem.num_train, mem.num_val) == (stream.num_train, stream.num_val)

    def rows(ds):
        return sorted((int(lab), np.round(a, 4).tobytes()) for xb, yb in ds
                      for a, lab in zip(xb.numpy(), yb.numpy()))

    assert rows(mem.train_noaug) == rows(stream.train_noaug)
    assert rows(mem.test) == rows(stream.test)


# -- must show: the smoke search on a folder writes the built-in search's candidates ---------------
_TIMING = ("wall_s", "train_s", "tracing_s", "images_per_s")


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in _TIMING}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


@pytest.mark.slow  # two smoke searches: about 4 min on 2 idle cores, 10+ min when shared
def test_smoke_search_on_a_png_folder_writes_the_builtin_candidates(tmp_path):
    """sklearn digits written as DIR/{train,test}/<label>/<index>.png (index = position in the
    built-in train / test split): the folder gives the built-in arrays in the same order (the
    order rule of folder.py, the given-split rule of splits.py), so the two searches agree in
    every field but wall-clock times (and run-dir paths, e.g. parent_weights)."""
    raw = D._raw_arrays("digits", "sklearn", None)
    root = tmp_path / "digits_png"
    for part, xs, ys in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        for i, (a, lab) in enumerate(zip(xs, ys)):
            d = root / part / str(lab)
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(a[..., 0]).save(d / f"{i:05d}.png")
    out = {}
    for name, dataset in (("builtin", "digits"), ("folder", f"folder:{root}")):
        run_dir = tmp_path / name
        r = subprocess.run([sys.executable, "-m", "eatnas_tf.search", f"--run_dir={run_dir}",
                            "--flagfile=flags/smoke.cfg", "--deterministic_ops",
                            f"--dataset={dataset}"], cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        with open(run_dir / "candidates.jsonl") as f:  # paths inside the run dir differ
            out[name] = [_strip(json.loads(line.replace(str(run_dir), "RUN_DIR")))
                         for line in f if line.strip()]
    assert len(out["builtin"]) == 8 and all(r["status"] == "ok" for r in out["builtin"])
    assert out["folder"] == out["builtin"]
