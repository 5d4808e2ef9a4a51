"""Parameter sharing (paper §3.4: width slices, depth Eq. 4/5, op/kernel check) and the
per-candidate weight files. Tiny untrained models on the digits macro (8×8 grey); the
parent's weights are replaced by random values so that copied and fresh values differ."""

import json
import os
import re

import keras
import numpy as np
import pytest

from eatnas_tf.arch.space import get_space
from eatnas_tf.arch.spec import ArchSpec, BlockSpec
from eatnas_tf.model import layer_weights, sharing, weights_io
from eatnas_tf.model.builder import build_model

MACRO = get_space("digits").macro


def blk(op="sep", kernel=3, skip=False, width=1.0, depth=1):
    return BlockSpec(op, kernel, skip, width, depth)


def arch(blocks=None, mode="relative", **changes):
    """A small 7-block arch; `changes` = {block index (0-based): BlockSpec}."""
    bs = list(blocks or [blk("mb3", 3, False, 1.0, 1)] * 7)
    for i, b in changes.items():
        bs[int(i[1:])] = b
    return ArchSpec(tuple(bs), stem=8, head=16, channel_mode=mode)


def build(a):
    keras.backend.clear_session()
    return build_model(a, MACRO)


def snapshot(model):
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers
            if layer.get_weights()}


def random_parent(a, seed=0):
    """Builds `a` and gives every tensor distinct random values (BN variances > 0)."""
    model = build(a)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            new = [rng.normal(0.0, 0.5, w.shape).astype(w.dtype) for w in ws]
            if layer.name.endswith("_bn"):
                new[3] = np.abs(new[3]) + 0.5
            layer.set_weights(new)
    return model, snapshot(model)


def assert_overlap(after, before, parent):
    """The leading overlap equals the parent's values, the remainder the child's init."""
    sl = tuple(slice(0, min(c, p)) for c, p in zip(after.shape, parent.shape))
    np.testing.assert_array_equal(after[sl], parent[sl])
    mask = np.ones(after.shape, bool)
    mask[sl] = False
    np.testing.assert_array_equal(after[mask], before[mask])
    assert not np.array_equal(after[sl], before[sl])


def assert_fresh(child, before, prefix):
    names = [n for n in before if n.startswith(prefix)]
    assert names
    for n in names:
        for a, b in zip(child[n], before[n]):
            np.testing.assert_array_equal(a, b)


def inherit(child_arch, parent_weights, parent_arch):
    model = build(child_arch)
    before = snapshot(model)
    report = sharing.inherit(model, child_arch, parent_weights, parent_arch)
    return model, before, snapshot(model), report


def test_identical_arch_copies_everything_and_reproduces_outputs():
    a = arch(b1=blk("mb6", 5, True, 2.0, 2), b2=blk("sep", 3, True, 1.0, 3))
    parent, pw = random_parent(a)
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 1)).astype("float32")
    y_parent = np.asarray(parent(x, training=False))
    child, before, after, report = inherit(a, pw, a)
    assert set(report.layers.values()) == {"copied"}
    assert report.sliced == report.fresh == 0
    assert report.copied == sum(len(ws) for ws in pw.values())
    assert report.params_inherited == report.params_total == child.count_params()
    assert report.fraction == 1.0
    np.testing.assert_allclose(np.asarray(child(x, training=False)), y_parent,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pw_, cw_", [(1.0, 2.0), (2.0, 0.5)], ids=["up", "down"])
def test_width_copies_overlap_and_keeps_rest_fresh(pw_, cw_):
    p_arch = arch(b1=blk("mb3", 3, False, pw_, 2))
    c_arch = arch(b1=blk("mb3", 3, False, cw_, 2))
    _, pw = random_parent(p_arch)
    _, before, after, report = inherit(c_arch, pw, p_arch)
    # Block 2's channels change: its convs, BN vectors and the next block's inputs slice.
    for name in ("block2_layer1_project", "block2_layer2_expand", "block2_layer2_dw",
                 "block2_layer2_project", "block3_layer1_expand", "block3_layer1_dw"):
        assert report.layers[name] == "sliced", name
        assert_overlap(after[name][0], before[name][0], pw[name][0])
    for name in ("block2_layer1_project_bn", "block2_layer2_dw_bn"):
        assert report.layers[name] == "sliced"
        for a, b, p in zip(after[name], before[name], pw[name]):
            assert_overlap(a, b, p)
    # Unchanged shapes (stem, block 1, block 2's expand from block 1's channels) copy whole.
    for name in ("stem_conv", "block1_layer1_project", "block2_layer1_expand",
                 "block2_layer1_expand_bn", "block2_layer1_dw"):
        assert report.layers[name] == "copied", name
        for a, p in zip(after[name], pw[name]):
            np.testing.assert_array_equal(a, p)
    # The slice axes are the ones the widths change: (1, 1, c_in, c_out) of a 1×1 conv.
    k_p, k_c = pw["block2_layer2_expand"][0], after["block2_layer2_expand"][0]
    c_min, e_min = min(k_p.shape[2], k_c.shape[2]), min(k_p.shape[3], k_c.shape[3])
    np.testing.assert_array_equal(k_c[:, :, :c_min, :e_min], k_p[:, :, :c_min, :e_min])
    assert report.fresh == 0


def test_depth_up_copies_existing_layers_and_keeps_new_ones_fresh():
    p_arch = arch(b2=blk("mb3", 3, True, 1.0, 1))
    c_arch = arch(b2=blk("mb3", 3, True, 1.0, 3))
    _, pw = random_parent(p_arch)
    _, before, after, report = inherit(c_arch, pw, p_arch)
    for name in [n for n in after if n.startswith("block3_layer1_")]:
        assert report.layers[name] == "copied"
        for a, p in zip(after[name], pw[name]):
            np.testing.assert_array_equal(a, p)
    for prefix in ("block3_layer2_", "block3_layer3_"):
        assert_fresh(after, before, prefix)
        assert {s for n, s in report.layers.items() if n.startswith(prefix)} == {"fresh"}
    new_tensors = sum(len(ws) for n, ws in after.items() if n.startswith(("block3_layer2_",
                                                                          "block3_layer3_")))
    assert report.fresh == new_tensors and report.sliced == 0


def test_depth_down_copies_first_layers():
    p_arch = arch(b2=blk("sep", 5, False, 1.0, 4))
    c_arch = arch(b2=blk("sep", 5, False, 1.0, 2))
    _, pw = random_parent(p_arch)
    _, _, after, report = inherit(c_arch, pw, p_arch)
    assert not any(n.startswith(("block3_layer3_", "block3_layer4_")) for n in after)
    for name in [n for n in after if n.startswith("block3_")]:
        assert report.layers[name] == "copied"
        for a, p in zip(after[name], pw[name]):
            np.testing.assert_array_equal(a, p)
    assert set(report.layers.values()) == {"copied"}


@pytest.mark.parametrize("p_blk, c_blk, status", [
    (blk("mb3", 3, False, 1.0, 2), blk("mb6", 3, False, 1.0, 2), "skipped_op_mismatch"),
    (blk("mb3", 3, False, 1.0, 2), blk("mb3", 5, False, 1.0, 2), "skipped_kernel_mismatch"),
], ids=["op", "kernel"])
def test_op_or_kernel_mismatch_leaves_block_fresh(p_blk, c_blk, status):
    p_arch, c_arch = arch(b3=p_blk), arch(b3=c_blk)
    _, pw = random_parent(p_arch)
    _, before, after, report = inherit(c_arch, pw, p_arch)
    assert_fresh(after, before, "block4_")
    assert {s for n, s in report.layers.items() if n.startswith("block4_")} == {status}
    # Everything else has the same shapes as in the parent.
    assert {s for n, s in report.layers.items() if not n.startswith("block4_")} == {"copied"}


def test_kernel_mismatch_without_parent_arch_shares_by_shape_only():
    p_arch = arch(b3=blk("mb3", 3, False, 1.0, 1))
    c_arch = arch(b3=blk("mb3", 5, False, 1.0, 1))
    _, pw = random_parent(p_arch)
    _, before, after, report = inherit(c_arch, pw, None)
    assert report.layers["block4_layer1_dw"] == "skipped_shape_mismatch"  # 5×5 vs 3×3
    np.testing.assert_array_equal(after["block4_layer1_dw"][0], before["block4_layer1_dw"][0])
    # Its BN (one vector per channel) and the 1×1 convs match in shape: shared.
    assert report.layers["block4_layer1_dw_bn"] == "copied"
    assert report.layers["block4_layer1_expand"] == "copied"
    np.testing.assert_array_equal(after["block4_layer1_expand"][0],
                                  pw["block4_layer1_expand"][0])


def test_only_block4_width_changes():
    # mbv2 channels (base × width): only block 4's channels change, so only block 4's
    # output side and block 5's first layer (its input) slice; the rest copies whole.
    blocks = [blk("sep", 3, False, 0.5, 1)] * 7
    p_arch = arch(blocks, mode="mbv2", b3=blk("mb3", 3, False, 0.5, 2))
    c_arch = arch(blocks, mode="mbv2", b3=blk("mb3", 3, False, 1.0, 2))
    _, pw = random_parent(p_arch)
    _, before, after, report = inherit(c_arch, pw, p_arch)
    changed = {n for n in after if [w.shape for w in after[n]] != [w.shape for w in pw[n]]}
    assert changed == {
        "block4_layer1_project", "block4_layer1_project_bn",
        "block4_layer2_expand", "block4_layer2_expand_bn", "block4_layer2_dw",
        "block4_layer2_dw_bn", "block4_layer2_project", "block4_layer2_project_bn",
        "block5_layer1_dw", "block5_layer1_dw_bn", "block5_layer1_project"}
    for n, s in report.layers.items():
        assert s == ("sliced" if n in changed else "copied"), n
    sliced = sum(1 for n in changed for a, p in zip(after[n], pw[n]) if a.shape != p.shape)
    assert report.sliced == sliced
    assert report.copied == sum(len(ws) for ws in after.values()) - sliced
    assert report.fresh == 0
    expected = sum(int(np.prod([min(c, p) for c, p in zip(a.shape, q.shape)]))
                   for n in after for a, q in zip(after[n], pw[n]))
    assert report.params_inherited == expected < report.params_total
    # Block 4 layer 1's expand / dw read block 3's unchanged channels: copied whole.
    np.testing.assert_array_equal(after["block4_layer1_dw"][0], pw["block4_layer1_dw"][0])


def test_report_counts_summary_and_json():
    p_arch = arch(b1=blk("mb3", 3, False, 1.0, 1), b4=blk("mb3", 3, False, 1.0, 1))
    c_arch = arch(b1=blk("mb3", 3, False, 2.0, 1), b4=blk("mb3", 3, False, 1.0, 2))
    _, pw = random_parent(p_arch)
    child, _, after, report = inherit(c_arch, pw, p_arch)
    n_tensors = sum(len(ws) for ws in after.values())
    assert report.copied + report.sliced + report.fresh == n_tensors
    assert report.copied > 0 and report.sliced > 0 and report.fresh > 0
    assert report.params_total == child.count_params()
    assert 0 < report.params_inherited < report.params_total
    assert set(report.layers) == set(after)
    assert re.fullmatch(r"copied \d+ / sliced \d+ / fresh \d+ tensors \(\d+% of params "
                        r"inherited\)", report.summary())
    assert f"copied {report.copied} / sliced {report.sliced} / fresh {report.fresh}" \
        in report.summary()
    d = json.loads(json.dumps(report.as_dict()))
    assert d["copied"] == report.copied and d["layers"] == report.layers
    assert d["fraction"] == pytest.approx(report.fraction)


def test_weights_io_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    weights = {
        "block1_layer1_project_bn": [rng.normal(size=(8,)).astype("float32") + i
                                     for i in range(4)],
        "logits": [rng.normal(size=(16, 10)).astype("float32"), np.zeros(10, "float32")],
        "odd/name": [np.arange(12, dtype="int64").reshape(3, 4),
                     np.ones((2, 2), "float16")],
        "stem_conv": [rng.normal(size=(3, 3, 1, 8)).astype("float64")],
    }
    path = str(tmp_path / "sub" / "cand_0001.npz")
    assert weights_io.save(path, weights) == path
    assert os.listdir(tmp_path / "sub") == ["cand_0001.npz"]  # no temp file left
    back = weights_io.load(path)
    assert list(back) == list(weights)  # layer order survives too
    for name, ws in weights.items():
        assert len(back[name]) == len(ws)
        for a, b in zip(back[name], ws):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)


def test_weights_io_model_round_trip_then_inherit(tmp_path):
    a = arch()
    _, pw = random_parent(a)
    path = str(tmp_path / "parent.npz")
    weights_io.save(path, pw)
    _, _, after, report = inherit(a, weights_io.load(path), a)
    assert report.fraction == 1.0
    for n in pw:
        for x, y in zip(after[n], pw[n]):
            np.testing.assert_array_equal(x, y)


def test_weights_io_corrupt_and_truncated_files(tmp_path):
    good = str(tmp_path / "good.npz")
    weights_io.save(good, {"logits": [np.ones((64, 10), "float32"), np.ones(10, "float32")]})
    truncated = str(tmp_path / "truncated.npz")
    with open(good, "rb") as f:
        data = f.read()
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 2])
    garbage = str(tmp_path / "garbage.npz")
    with open(garbage, "wb") as f:
        f.write(b"this is not a zip file at all")
    for path in (truncated, garbage):
        with pytest.raises(ValueError, match=re.escape(path)):
            weights_io.load(path)
    with pytest.raises(FileNotFoundError):
        weights_io.load(str(tmp_path / "missing.npz"))


def test_layer_weights_get_and_assign_by_name():
    """get copies every weighted layer (the same set a recursive walk finds: the builder's
    models are flat); assign sets the names both models have, strict refuses a missing one."""
    a = arch()
    model, want = random_parent(a, seed=4)
    got = layer_weights.get(model)
    flat = {layer.name for layer in model._flatten_layers(include_self=False) if layer.weights}
    assert set(got) == set(want) == flat
    for name, ws in want.items():
        assert len(got[name]) == len(ws)
        for g, w in zip(got[name], ws):
            np.testing.assert_array_equal(g, w)
    got["stem_conv"][0][...] = 123.0  # a copy, not a view of the variable
    assert not np.any(model.get_layer("stem_conv").get_weights()[0] == 123.0)

    other = build(a)
    partial = {k: want[k] for k in list(want)[:3]}
    partial["no_such_layer"] = [np.zeros(1)]
    assert layer_weights.assign(other, partial) == list(want)[:3]
    for name in list(want)[:3]:
        np.testing.assert_array_equal(other.get_layer(name).get_weights()[0], want[name][0])
    with pytest.raises(ValueError, match="no_such_layer"):
        layer_weights.assign(other, partial, strict=True)
    assert layer_weights.assign(other, want, strict=True) == list(want)
