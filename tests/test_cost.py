"""Analytic cost model vs Keras `count_params()` and TensorFlow's profiler; the cost CLI."""

import json
import os
import random
import subprocess
import sys

import keras
import pytest

from eatnas_tf.arch import codec, registry
from eatnas_tf.arch import cost as cost_lib
from eatnas_tf.arch import space as space_lib
from eatnas_tf.model.builder import build_model
from eatnas_tf.model.profile import profiler_madds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACES = ("cifar10", "imagenet", "fashion_mnist", "fashion_mnist_14", "digits")


def _samples(name, n, seed=0):
    s = space_lib.get_space(name)
    rng = random.Random(seed)
    return s, [s.sample(rng) for _ in range(n)]


def test_mobilenet_v2_golden():
    c = cost_lib.count(registry.MOBILENET_V2, registry.IMAGENET_MACRO)
    assert (c.params, c.madds, c.layers) == (3538984, 300774272, 17)
    m = build_model(registry.MOBILENET_V2, registry.IMAGENET_MACRO)
    ref = keras.applications.MobileNetV2(weights=None)
    assert m.count_params() == ref.count_params() == 3538984
    assert profiler_madds(m) == 300774272
    keras.backend.clear_session()


def _check_params(name, n, seed):
    s, archs = _samples(name, n, seed)
    for a in archs:
        m = build_model(a, s.macro)
        assert m.count_params() == s.cost(a).params, codec.to_text(a)
        keras.backend.clear_session()


@pytest.mark.parametrize("name", SPACES)
def test_params_equal_count_params(name):
    """Analytic params == Keras count_params() (15 per space here, 50 in the slow test)."""
    _check_params(name, 15, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", SPACES)
def test_params_equal_count_params_50(name):
    """≥ 50 random encodings per space: analytic params == Keras count_params()."""
    _check_params(name, 50, seed=3)


def _check_madds(name, n, seed):
    s, archs = _samples(name, n, seed)
    for a in archs:
        m = build_model(a, s.macro)
        analytic = s.cost(a).madds
        assert abs(profiler_madds(m) - analytic) <= 0.01 * analytic, codec.to_text(a)
        keras.backend.clear_session()


@pytest.mark.parametrize("name", SPACES)
def test_madds_match_profiler(name):
    """Analytic MAdds within 1% of the TF profiler (5 per space here, 50 in the slow test)."""
    _check_madds(name, 5, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", SPACES)
def test_madds_match_profiler_50(name):
    _check_madds(name, 50, seed=2)


def test_projection_shortcut_and_aux_head():
    s, archs = _samples("cifar10", 10, seed=3)
    for a in archs:
        p = a.__class__(blocks=a.blocks, stem=a.stem, head=a.head, channel_mode=a.channel_mode,
                        shortcut="projection")
        m = build_model(p, s.macro)
        assert m.count_params() == s.cost(p).params
        assert profiler_madds(m) == s.cost(p).madds
        keras.backend.clear_session()
    m = build_model(archs[0], s.macro, aux_head=True)
    assert [tuple(o.shape) for o in m.outputs] == [(None, 10), (None, 10)]
    assert "aux_logits" in [layer.name for layer in m.layers]


def test_any_input_size_and_classes():
    s = space_lib.get_space("cifar10")
    a = s.sample(random.Random(4))
    macro = s.macro.with_(image_size=48, num_classes=7, in_channels=1)
    m = build_model(a, macro)
    assert tuple(m.output_shape) == (None, 7)
    assert m.count_params() == cost_lib.count(a, macro).params
    keras.backend.clear_session()


def test_layer_names_deterministic_and_positional():
    s = space_lib.get_space("fashion_mnist")
    a = s.sample(random.Random(5))
    names1 = [layer.name for layer in build_model(a, s.macro).layers]
    keras.backend.clear_session()
    names2 = [layer.name for layer in build_model(a, s.macro).layers]
    assert names1 == names2
    assert "block1_layer1_dw" in names1 and "stem_conv" in names1 and "logits" in names1
    # deepening block 2 leaves the names of block 5 unchanged
    deeper = a.with_block(1, a.blocks[1].__class__(a.blocks[1].op, a.blocks[1].kernel,
                                                      a.blocks[1].skip, a.blocks[1].width, 4))
    names3 = [layer.name for layer in build_model(deeper, s.macro).layers]
    assert {n for n in names1 if n.startswith("block5")} == {
        n for n in names3 if n.startswith("block5")
    }
    keras.backend.clear_session()


def test_tf_keras_build_matches():
    from eatnas_tf.model.builder_tfkeras import build_tf_keras_model, copy_weights

    s = space_lib.get_space("fashion_mnist")
    a = s.sample(random.Random(6))
    k3 = build_model(a, s.macro, aux_head=True)
    k2 = build_tf_keras_model(a, s.macro, aux_head=True)
    w3 = {layer.name: [w.shape for w in layer.get_weights()] for layer in k3.layers}
    w2 = {layer.name: [w.shape for w in layer.get_weights()] for layer in k2.layers}
    assert w3 == w2
    assert copy_weights(k3, k2) == sum(1 for v in w3.values() if v)
    keras.backend.clear_session()


# -- the command --------------------------------------------------------------------------
def _cost_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "eatnas_tf.cost", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


def test_cli_mobilenet_v2():
    r = _cost_cli(f"--arch={registry.MOBILENET_V2_TEXT}", "--space=imagenet")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["params"], out["madds"], out["layers"]) == (3538984, 300774272, 17)
    assert out["in_space"] and len(out["blocks"]) == 9


def test_cli_overrides(tmp_path):
    p = tmp_path / "mbv2.json"
    p.write_text(codec.to_json(registry.MOBILENET_V2))
    r = _cost_cli(f"--arch={p}", "--space=imagenet", "--image_size=160", "--num_classes=10")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    expected = cost_lib.count(registry.MOBILENET_V2,
                              registry.IMAGENET_MACRO.with_(image_size=160, num_classes=10))
    assert out["madds"] == expected.madds and out["image_size"] == 160


MBV2 = registry.MOBILENET_V2_TEXT


@pytest.mark.parametrize("arch,field", [
    (MBV2.replace("sep_", "conv_", 1), "op"),
    (MBV2.replace("_k3_", "_k4_", 1), "kernel"),
    (MBV2.replace("_w1.0_", "_w0.7_", 1), "width"),
    (",".join(MBV2.split(",")[:6]), "blocks"),
    ('{"blocks": [', "malformed JSON"),
    ("/missing/arch.json", "cannot read file"),
])
def test_cli_bad_arch_one_line(arch, field):
    r = _cost_cli(f"--arch={arch}", "--space=imagenet")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "allowed" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_cli_bad_flag_value():
    r = _cost_cli(f"--arch={MBV2}", "--space=mars")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "cifar10" in r.stderr
