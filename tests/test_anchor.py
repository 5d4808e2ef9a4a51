"""The hand-designed anchor (eatnas_tf/report/anchor.py): MobileNetV2 adapted to the input
with our BN momentum, the recipe read from a run's config.json, the anchors on the Pareto
figure."""

import json
import os

import pytest

from eatnas_tf.report import anchor, plots


def test_mobilenetv2_padded_grey_input_and_our_bn_momentum():
    import keras

    m = anchor.build_mobilenetv2(0.35, (28, 28, 1), 10)
    try:
        assert tuple(m.inputs[0].shape[1:]) == (28, 28, 1)
        assert tuple(m.outputs[0].shape[1:]) == (10,)
        assert m.get_layer("pad_to_min").output.shape[1:3] == (32, 32)
        bns = [la for la in m.layers if isinstance(la, keras.layers.BatchNormalization)]
        assert len(bns) == 52 and {b.momentum for b in bns} == {anchor.BN_MOMENTUM}
        assert m.layers[-1].name == "logits"
        # 1-channel stem, 10-class head: Keras' 0.35 backbone (410k) + 1280 × 10 + 10
        assert m.count_params() == 422_730
    finally:
        del m
        keras.backend.clear_session()


def test_recipe_from_run_and_reduced(tmp_path):
    # config.json as RunDir writes it for `eatnas_tf.run` (format 2: the experiment under
    # "config"; eat_pipeline.describe gives {"pipeline", "plan"}).
    cfg = {"format": 2, "changes": [], "config": {"pipeline": {}, "plan": {"retrain": {
        "data": {"dataset": "digits", "split": "final", "val_fraction": 0.05},
        "train": {"epochs": 3, "learning_rate": 0.1, "lr_schedule": "cosine"}}}}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    data, train = anchor.recipe_from_run(str(tmp_path))
    assert (data.dataset, data.split, train.epochs, train.lr_schedule) == \
        ("digits", "final", 3, "cosine")
    d2, t2 = anchor.reduced(data, train, epochs=1, train_examples=500)
    assert (t2.epochs, d2.max_train_examples, t2.learning_rate) == (1, 500, 0.1)
    with pytest.raises(ValueError, match="no final retraining recipe"):
        anchor.recipe_from_run(str(tmp_path / "missing"))


def test_anchors_on_the_pareto_figure(tmp_path):
    rows = [{"name": "EAT-NAS winner", "madds": 1.8e6, "params": 5e4, "val_acc": 0.91,
             "test_acc": 0.90, "latency_ms": {"1": 0.04, "2": 0.1}, "images_per_s": 1400},
            {"name": "MobileNetV2 α=0.35", "madds": 1.1e6, "params": 4e5, "val_acc": 0.87,
             "test_acc": 0.86, "latency_ms": {"1": 0.05, "2": 0.1}, "images_per_s": 900}]
    pts = anchor.pareto_anchors(rows)
    assert [p["winner"] for p in pts] == [True, False]
    cands = [{"id": 0, "stage": "stage2", "status": "ok", "val_acc": 0.7, "madds": 2e6}]
    path = plots.pareto_scatter(cands, str(tmp_path / "p.png"), anchors=pts)
    assert os.path.getsize(path) > 10_000
    table = anchor.markdown_table(rows)
    assert "| EAT-NAS winner | 0.9000 | 50,000 | 1,800,000 | 0.040 | 0.100 | 1400 |" in table
