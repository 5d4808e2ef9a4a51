"""EPNAS on the paper's own layer-by-layer space (Table 2, `--epnas_space=table2`):
codec round trips and one-line errors, exact params against Keras, the actions (scale,
insert with D_L, remove: an insert changes exactly one layer), the policy's heads, the
(layer, op) dictionary, and a CIFAR-sized search end to end on tfds mock data."""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from eatnas_tf.arch import codec as arch_codec
from eatnas_tf.arch import cost as arch_cost
from eatnas_tf.arch import space as space_lib
from eatnas_tf.arch.cost import MacroSpec
from eatnas_tf.arch.spec import InvalidArchitectureError
from eatnas_tf.epnas import config as epnas_config
from eatnas_tf.epnas import constraints as C
from eatnas_tf.epnas import flags as epnas_flags
from eatnas_tf.epnas.table2 import actions as A
from eatnas_tf.epnas.table2 import codec as K
from eatnas_tf.epnas.table2 import space as S
from eatnas_tf.epnas.table2.cost import count

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR = MacroSpec(32, 3, 10)
PAPER = S.Table2Space(CIFAR)                         # Table 2 as written, MAX_LAYERS 24
SMALL = S.Table2Space(CIFAR, max_layers=8, init_layers=4, channels=(16, 32))


def _random_archs(space, n, seed=0):
    rng = random.Random(seed)
    return [space.sample(rng, rng.randint(1, space.max_layers)) for _ in range(n)]


# -- encoding ------------------------------------------------------------------------------
def test_text_and_json_round_trip_and_dispatch():
    archs = _random_archs(PAPER, 300)
    for a in archs:
        text = K.to_text(a)
        assert K.from_text(text) == a and K.from_json(K.to_json(a)) == a
        assert K.from_dict(json.loads(json.dumps(K.to_dict(a)))) == a
        # the project's codec hands Table 2 forms to this one
        assert arch_codec.parse_arch(text) == a and arch_codec.parse_arch(K.to_json(a)) == a
        assert arch_codec.to_text(a) == text and arch_codec.canonical_hash(a) == K.canonical_hash(a)
        assert PAPER.contains(a)
    assert len({K.canonical_hash(a) for a in archs}) == len(set(archs))
    a = archs[0]
    assert K.canonical_hash(K.from_text(K.to_text(a))) == K.canonical_hash(a)
    # hand-written example, and EAT block text still goes to the block codec
    t = "conv_k3_c64_relu_src0,maxpool_k2_src1,sepconv_k5_c32_swish_src2_skip1,add_src3_skip0"
    b = K.from_text(t)
    assert [layer.op for layer in b.layers] == ["conv", "maxpool", "sepconv", "add"]
    assert b.layers[2].src2 == 1 and b.layers[3].src2 == 0 and K.to_text(b) == t
    # an EAT block token with a Table 2 op name is still the block codec's error
    with pytest.raises(InvalidArchitectureError, match="op: received 'conv'; allowed values: sep"):
        arch_codec.parse_arch("conv_k3_w1.0_d1," * 6 + "sep_k3_w1.0_d1")
    eat = space_lib.get_space("digits").sample(random.Random(0))
    assert arch_codec.parse_arch(arch_codec.to_text(eat),
                                 **space_lib.get_space("digits").arch_defaults()) == eat


@pytest.mark.parametrize("bad, match", [
    ("conv_k4_c64_relu_src0", "filter width: received 4; allowed values: 1, 3, 5, 7"),
    ("conv_k3_c48_relu_src0", "channels: received 48; allowed values: 16, 32, 64, 96, 128, 256"),
    ("conv_k3_c64_tanh_src0", "activation: received 'tanh'; allowed values: relu, crelu"),
    ("maxpool_k5_src0", "pooling width: received 5; allowed values: 2, 3"),
    ("conv_k3_c64_relu_src1", "layer 1 src1: received 1; allowed values: 0 to 0"),
    ("conv_k3_c64_relu_src0,add_src1", "add src2: received -1"),
    ("conv_k3_c64_relu_src0,conv_k3_c64_relu_src1_skip2", "layer 2 src2: received 2"),
    ("conv_k3_c64_relu_src0,conv_k3_c64_relu", "layer 2 src1"),
    ("conv_k3_c64_relu_src0_extra", "unexpected 'extra'"),
    ("conv_k3_c64_relu_src0,", "empty token"),
    ('{"space": "table2", "layers": [{"op": "conv", "src1": 0, "kernel": 3, "channels": 16, '
     '"act": "relu", "stride": 2}]}', "field: received 'stride'"),
    ('{"space": "table2", "layers": []}', "layers: received 0 layers"),
    ('{"layers": [', "malformed JSON"),
])
def test_bad_encodings_are_one_line_errors(bad, match):
    with pytest.raises(InvalidArchitectureError, match=match) as e:
        arch_codec.parse_arch(bad)
    assert "\n" not in str(e.value)


def test_space_validation_names_the_broken_field():
    a = K.from_text("conv_k7_c256_relu_src0")
    assert SMALL.violations(a) == ["layer 1 channels: 256 not in [16, 32]"]
    with pytest.raises(InvalidArchitectureError, match="space table2: layer 1 channels"):
        SMALL.validate(a)
    with pytest.raises(InvalidArchitectureError, match="table2 channels: received"):
        S.Table2Space(CIFAR, channels=(16, 48))


# -- cost ----------------------------------------------------------------------------------
def test_params_equal_count_params_and_madds_by_hand():
    import keras

    from eatnas_tf.model.builder import build_model

    # hand-checked: conv 3·3·3·16 + 4·16 = 496; pool 0; sepconv 5·5·16 + 16·32 + 4·32 = 1040
    # + adapter of the skip (node 1: 16 ch at 32², target 32 ch at 16²) 16·32 + 4·32 = 640;
    # head 32·10 + 10 = 330.
    a = K.from_text("conv_k3_c16_relu_src0,maxpool_k2_src1,sepconv_k5_c32_swish_src2_skip1")
    c = count(a, CIFAR)
    assert c.params == 496 + 1040 + 640 + 330
    assert c.madds == (32 * 32 * 9 * 3 * 16 + 16 * 16 * (25 * 16 + 16 * 32)
                       + 16 * 16 * 16 * 32 + 32 * 10)
    assert arch_cost.count(a, CIFAR) == c  # the project's counter dispatches here
    archs = [a, K.from_text("conv_k1_c32_crelu_src0,avgpool_k3_src1_skip0,add_src2_skip1,"
                            "conv_k7_c16_elu_src0,sepconv_k3_c64_selu_src3_skip2")]
    archs += _random_archs(PAPER, 6, seed=3) + _random_archs(SMALL, 4, seed=4)
    for arch in archs:
        for macro in (CIFAR, MacroSpec(28, 1, 7)):
            model = build_model(arch, macro)  # the project's builder dispatches here
            assert model.count_params() == count(arch, macro).params, K.to_text(arch)
            assert model.output_shape == (None, macro.num_classes)
            names = [layer.name for layer in model.layers]
            assert len(names) == len(set(names))
        keras.backend.clear_session()
    # dead layers are neither built nor counted
    dead = K.from_text("conv_k3_c16_relu_src0,conv_k3_c32_relu_src0")
    assert dead.live() == {2}
    assert count(dead, CIFAR).params == 3 * 3 * 3 * 32 + 4 * 32 + 32 * 10 + 10


def test_madds_match_tensorflows_profiler():
    import keras

    from eatnas_tf.model.builder import build_model
    from eatnas_tf.model.profile import profiler_madds

    archs = [K.from_text("conv_k1_c32_crelu_src0,avgpool_k3_src1_skip0,add_src2_skip1,"
                         "maxpool_k2_src3,sepconv_k7_c64_selu_src4_skip1")]
    archs += _random_archs(PAPER, 4, seed=8)
    for arch in archs:
        analytic = count(arch, CIFAR).madds
        assert abs(profiler_madds(build_model(arch, CIFAR)) - analytic) <= 0.01 * analytic, \
            K.to_text(arch)
        keras.backend.clear_session()


def test_builder_names_are_deterministic():
    from eatnas_tf.epnas.table2.builder import build_model

    a = K.from_text("conv_k3_c16_crelu_src0,maxpool_k2_src1,conv_k3_c32_relu_src2_skip0")
    names = {layer.name for layer in build_model(a, CIFAR).layers}
    assert {"t2_l01_conv", "t2_l01_bn", "t2_l01_crelu", "t2_l02_maxpool", "t2_l03_conv",
            "t2_l03_adapt_skip", "t2_l03_adapt_skip_bn", "t2_l03_merge",
            "logits"} <= names
    assert names == {layer.name for layer in build_model(a, CIFAR).layers}


# -- actions -------------------------------------------------------------------------------
def _fields(arch):
    return sorted(map(repr, S.arch_fields(arch.layers)))


def test_every_insert_changes_exactly_one_layer_and_remove_inverts_it():
    asp = A.Table2ActionSpace(PAPER)
    rng = random.Random(1)
    checked = 0
    for arch in _random_archs(PAPER, 40, seed=5):
        if arch.num_layers >= PAPER.max_layers:
            continue
        n = arch.num_layers
        assert sum(asp.place_mask(arch, 1)) == n + A.PLACE_EXTRA  # D_L: L + 5 values
        assert sum(asp.place_mask(arch, 2)) == n
        for v in range(n + A.PLACE_EXTRA):
            pos = asp.position(arch, v)
            assert pos == min(v, n)
            new = PAPER.random_layer(rng, pos + 1)
            new = S.Layer(new.op, pos, min(new.src2, pos), new.kernel, new.channels, new.act)
            child = A.insert_layer(arch, pos, new)
            assert PAPER.contains(child) and child.num_layers == n + 1
            # exactly one layer more; every other layer keeps op, width, channels, act
            before, after = _fields(arch), _fields(child)
            after.remove(repr(S.arch_fields([new])[0]))
            assert before == after
            # the others read the same nodes (renumbered); removing it restores the parent
            assert A.remove_layer(child, pos + 1) == arch
            if pos < n and arch.layers[pos].src1 == pos:
                assert child.layers[pos + 1].src1 == pos + 1  # the chain goes through it
            checked += 1
    assert checked > 200


def test_remove_keeps_encodings_valid():
    for arch in _random_archs(PAPER, 40, seed=6):
        if arch.num_layers < 2:
            continue
        for j in range(1, arch.num_layers + 1):
            child = A.remove_layer(arch, j)
            assert PAPER.contains(child) and child.num_layers == arch.num_layers - 1
            kept = list(arch.layers[:j - 1]) + list(arch.layers[j:])
            assert S.arch_fields(child.layers) == S.arch_fields(kept)
            K.from_text(K.to_text(child))


def test_scale_moves_a_part_and_masks_no_ops():
    asp = A.Table2ActionSpace(PAPER)
    a = K.from_text(",".join(["conv_k7_c256_relu_src0"] + ["conv_k7_c256_relu_src%d" % i
                                                          for i in range(1, 8)]))
    for part in range(A.SCALE_PARTS):
        mask = asp.scale_mask(a, part)
        assert mask == [True, True, False, True, False]  # width+ and channels+ at the top
    b = asp.apply_scale(a, 1, A.SCALE_ACTIONS.index("channels-"))
    assert [layer.channels for layer in b.layers] == [256, 256, 128, 128, 256, 256, 256, 256]
    assert asp.apply_scale(a, 0, A.SCALE_ACTIONS.index("width-")).layers[0].kernel == 5
    one = K.from_text("maxpool_k2_src0")
    assert asp.parts(one)[:3] == [range(0, 0)] * 3
    assert asp.scale_mask(one, 0) == [True] + [False] * 4


def test_policy_samples_valid_actions_and_logp_matches():
    from eatnas_tf.epnas.table2.policy import Table2Policy

    asp = A.Table2ActionSpace(SMALL)
    pol = Table2Policy(asp, seed=3)
    rng = random.Random(0)
    decisions, kinds = [], set()
    arch = SMALL.sample(random.Random(2))
    for _ in range(30):
        action, d, child = pol.sample(arch, rng)
        assert asp.apply(arch, action) == child and SMALL.contains(child)
        if action.kind == 1:  # the insert adds exactly one layer to the scaled network
            scaled = arch
            for f, o in enumerate(action.scale):
                scaled = asp.apply_scale(scaled, f, o)
            assert child.num_layers == scaled.num_layers + 1
            assert A.remove_layer(child, asp.position(scaled, action.place) + 1) == scaled
        kinds.add(action.kind)
        decisions.append(d)
        arch = child
    assert kinds == {0, 1, 2}
    np.testing.assert_allclose(pol.log_probs(decisions), [d.logp for d in decisions], atol=1e-4)
    # REINFORCE moves log π of a rewarded decision up
    before = pol.log_probs(decisions[:1])[0]
    for _ in range(3):
        pol.update(decisions[:1], [1.0], 1)
    assert pol.log_probs(decisions[:1])[0] > before
    st = pol.state_dict()
    again = Table2Policy(asp, seed=3)
    again.load_state_dict(st)
    assert again.fingerprint() == pol.fingerprint()


def test_dictionary_is_keyed_by_layer_and_op_and_feeds_the_child():
    import keras

    from eatnas_tf.epnas.table2.sharing import Table2SharingDict, tensor_shapes
    from eatnas_tf.model import sharing
    from eatnas_tf.model.builder import build_model

    a = K.from_text("conv_k3_c16_relu_src0,maxpool_k2_src1,conv_k5_c32_elu_src2_skip0")
    d = Table2SharingDict(CIFAR)
    assert [g.key for g in d.groups(a)] == [("l1", "conv"), ("l3", "conv"), ("head", "dense")]
    model = build_model(a, CIFAR)
    weights = {layer.name: layer.get_weights() for layer in model.layers if layer.get_weights()}
    for name, shapes in tensor_shapes(a, 3, 10).items():
        assert [w.shape for w in weights[name]] == list(shapes)
    assert d.add(a, 0, 0.5) == 3
    # the child: a wider kernel and more channels at layer 1 (spliced / padded), a
    # sepconv inserted at layer 2 (its key is new), the old layer 3 now layer 4
    child = K.from_text("conv_k5_c32_relu_src0,sepconv_k3_c16_relu_src1,maxpool_k2_src2,"
                        "conv_k5_c32_elu_src3_skip0")
    got, summary = d.materialize(child, lambda cid: weights)
    assert summary["donors"] == [0] and summary["groups"] == 2  # l1 conv (adapted) + head
    assert got["t2_l01_conv"][0].shape == (5, 5, 3, 16)
    np.testing.assert_array_equal(got["t2_l01_conv"][0][1:4, 1:4], weights["t2_l01_conv"][0])
    cm = build_model(child, CIFAR)
    rep = sharing.inherit(cm, child, got)
    assert rep.sliced > 0 and rep.layers["t2_l01_conv"] == "sliced"
    assert "t2_l02_sepconv" not in rep.layers or rep.layers["t2_l02_sepconv"] == "fresh"
    keras.backend.clear_session()


def test_flags_reach_the_config_and_bad_values_are_one_line():
    fv = flags.FlagValues()
    epnas_flags.define_flags(fv)
    fv(["prog", "--epnas_space=table2", "--epnas_max_layers=10", "--epnas_init_layers=3",
        "--epnas_channels=16,64"])
    cfg = epnas_flags.from_flags(fv)
    assert (cfg.space, cfg.max_layers, cfg.init_layers, cfg.channels) == ("table2", 10, 3,
                                                                         (16, 64))
    assert cfg.describe()["space"] == "table2"
    assert "space" not in epnas_config.EpnasConfig().describe()  # block runs: as before
    for kw, match in (({"mode": "block"}, "allowed values: layer"),
                      ({"channels": (16, 20)}, "channels: received"),
                      ({"init_layers": 30}, "init_layers: received 30"),
                      ({"space": "table3"}, "epnas_space: received 'table3'")):
        with pytest.raises(ValueError, match=match) as e:
            epnas_config.EpnasConfig(**{"space": "table2", **kw})
        assert "\n" not in str(e.value)
    fv2 = flags.FlagValues()
    epnas_flags.define_flags(fv2)
    fv2(["prog", "--epnas_channels=16,x"])
    with pytest.raises(ValueError, match="epnas_channels: received '16,x'"):
        epnas_flags.from_flags(fv2)


# -- the search end to end -----------------------------------------------------------------
def _mock_cifar(n):
    import tensorflow_datasets as tfds

    return tfds.testing.mock_data(num_examples=n)


def _clear_data_caches():
    from eatnas_tf.data import datasets as D
    from eatnas_tf.search import evaluate

    D._raw_arrays.cache_clear()
    evaluate.cached_data.cache_clear()


def test_table2_search_end_to_end_on_cifar_sized_mock_data(tmp_path):
    from eatnas_tf.data.datasets import DataConfig
    from eatnas_tf.record import CandidateRecord
    from eatnas_tf.search import runner
    from eatnas_tf.search.experiment import Stage
    from eatnas_tf.search.run_dir import RunDir
    from eatnas_tf.search.strategy import SearchConfig
    from eatnas_tf.train.config import TrainConfig

    opt = epnas_config.EpnasConfig(
        space="table2", max_layers=6, init_layers=3, channels=(16, 32),
        constraints=(C.parse_constraint("params::3e4"),), branches=2, steps=2, episodes=1,
        policy_lr=0.01, predict=True, predict_lr=0.05, predict_epochs=1)
    stage = Stage(
        name="search", strategy="epnas", space=space_lib.get_space("cifar10"), options=opt,
        data=DataConfig("cifar10", source="tfds", split="search", val_fraction=0.25,
                        batch_size=16, max_train_examples=32),
        train=TrainConfig(epochs=1, learning_rate=0.05, steps_per_epoch=2,
                          bn_recalibration_batches=1),
        config=SearchConfig(population=2, sample=1, max_candidates=50, topk=2), seed=0)
    run = RunDir(str(tmp_path / "run"))
    _clear_data_caches()
    try:
        with _mock_cifar(48):
            res = runner.run_stage(run, stage, progress=None, tensorboard=True)
            recs = [CandidateRecord.from_json(r) for r in run.candidates()]
            again = runner.run_stage(run, stage, progress=None, tensorboard=False)
    finally:
        _clear_data_caches()
    assert len(recs) == 4 and all(r.ok for r in recs), [r.error for r in recs]
    assert [(r.info["step"], r.info["branch"]) for r in recs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    asp = res.strategy.aspace
    for r in recs:
        arch = arch_codec.parse_arch(r.arch)
        assert isinstance(arch, S.LayerArch) and opt.table2_space(CIFAR).contains(arch)
        assert r.params == count(arch, CIFAR).params and r.hash == K.canonical_hash(arch)
        parent = arch_codec.parse_arch(r.info["from"])
        if r.info["action"].split()[1].startswith("insert"):
            assert arch.num_layers == parent.num_layers + 1
        assert abs(arch.num_layers - parent.num_layers) <= 1
    # step 1 continues step 0's networks and draws weights from the (layer, op) dictionary
    assert [recs[2].info["from"], recs[3].info["from"]] == [recs[0].arch, recs[1].arch]
    assert any(r.info.get("dictionary", {}).get("donors") for r in recs[2:])
    assert res.strategy._policy.updates == 1 and isinstance(asp, A.Table2ActionSpace)
    assert again.evaluated == 0
    assert again.strategy._policy.fingerprint() == res.strategy._policy.fingerprint()
    assert os.path.isdir(os.path.join(run.path, "tb"))


_MOCK_RUN = """
import runpy, sys
import tensorflow_datasets as tfds
mod = sys.argv[1]
sys.argv = [mod] + sys.argv[2:]
with tfds.testing.mock_data(num_examples=40):
    runpy.run_module(mod, run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("epnas_space", [
    "table2", pytest.param("eat_blocks", marks=pytest.mark.slow)])  # blocks: ~3 min here
def test_cifar_smoke_flagfile_runs_the_search_command_in_both_spaces(tmp_path, epnas_space):
    """The CIFAR-sized smoke of both spaces: the Table 2 flagfile as written, and the same
    settings on the EAT block space (`--space=cifar10`'s blocks) with one flag changed."""
    from eatnas_tf.arch.spec import ArchSpec

    run_dir = str(tmp_path / epnas_space)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run(
        [sys.executable, "-c", _MOCK_RUN, "eatnas_tf.search", f"--run_dir={run_dir}",
         "--flagfile=flags/epnas_table2_smoke.cfg", f"--epnas_space={epnas_space}",
         "--data_source=tfds", "--max_candidates=4", "--epnas_episodes=1",
         "--max_train_examples=32", "--steps_per_epoch=1", "--batch_size=16", "--verbose=0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    recs = [json.loads(line) for line in open(os.path.join(run_dir, "candidates.jsonl"))]
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs)
    kind = S.LayerArch if epnas_space == "table2" else ArchSpec
    defaults = space_lib.get_space("cifar10").arch_defaults()
    assert all(isinstance(arch_codec.parse_arch(r["arch"], **defaults), kind) for r in recs)
    report = json.load(open(os.path.join(run_dir, "report.json")))
    assert report["topk"]


def test_cost_command_on_a_layer_list():
    """`python -m eatnas_tf.cost` prints a Table 2 network's params and MAdds (the EAT
    space's block constraints do not apply to it)."""
    text = "conv_k3_c64_relu_src0,maxpool_k2_src1,sepconv_k5_c32_swish_src2_skip1,add_src3_skip0"
    p = subprocess.run([sys.executable, "-m", "eatnas_tf.cost", "--space=cifar10",
                        f"--arch={text}"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    ref = count(K.parse(text), MacroSpec(image_size=32, in_channels=3, num_classes=10))
    assert out["space"] == "epnas_table2" and out["arch"] == text
    assert (out["params"], out["madds"]) == (ref.params, ref.madds)
