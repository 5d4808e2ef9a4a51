"""RunDir.check_config: the whole experiment config is compared on resume (issue 14 item 1)."""

import json
import os

import pytest

from eatnas_tf.search.run_dir import RunDir, RunDirError, config_diff

CONFIG = {"seed": 0, "parallel": 1,
          "stage": {"train": {"label_smoothing": 0.0, "epochs": 1, "lr_end": 0.0},
                    "data": {"cutout_length": 16, "dataset": "digits"},
                    "search": {"population": 8, "strides": [1, 2]},
                    "options": {}}}


def _with(cfg, dotted, value):
    """A deep copy of `cfg` with `dotted` set to `value` (or removed for `...`)."""
    out = json.loads(json.dumps(cfg))
    *path, last = dotted.split(".")
    d = out
    for k in path:
        d = d[k]
    if value is ...:
        del d[last]
    else:
        d[last] = value
    return out


def _stored(run):
    with open(run.file("config.json")) as f:
        return json.load(f)


def test_config_diff_by_dotted_key():
    new = _with(_with(CONFIG, "stage.search.strides", [1, 1]), "stage.train.lr_end", ...)
    new["stage"]["train"]["warmup_epochs"] = 2
    new["stage"]["options"] = {"mode": "block"}
    new["retrain"] = {"epochs": 1}
    diff = config_diff(CONFIG, new)
    assert list(diff) == ["retrain", "stage.options.mode", "stage.search.strides",
                          "stage.train.lr_end", "stage.train.warmup_epochs"]
    assert diff["stage.search.strides"] == ([1, 2], [1, 1])  # lists compared whole
    assert diff["stage.train.lr_end"][0] == 0.0 and diff["stage.train.warmup_epochs"][1] == 2
    assert diff["retrain"][1] == {"epochs": 1}
    assert config_diff(CONFIG, json.loads(json.dumps(CONFIG))) == {}
    assert config_diff({"a": None}, {"a": {"b": 1}}) == {"a": (None, {"b": 1})}


def test_first_start_writes_format_2_and_same_config_writes_nothing(tmp_path):
    run = RunDir(str(tmp_path / "run"))
    run.check_config(CONFIG)
    assert _stored(run) == {"format": 2, "config": CONFIG, "changes": []}
    before = os.stat(run.file("config.json")).st_mtime_ns
    os.utime(run.file("config.json"), ns=(1, 1))
    RunDir(run.path).check_config(json.loads(json.dumps(CONFIG)))
    assert os.stat(run.file("config.json")).st_mtime_ns == 1 != before
    assert sorted(os.listdir(run.path)) == ["config.json"]


@pytest.mark.parametrize("key,value,shown", [
    ("stage.train.label_smoothing", 0.1, "stage.train.label_smoothing 0.0 -> 0.1"),
    ("stage.data.cutout_length", 8, "stage.data.cutout_length 16 -> 8"),
    ("stage.search.strides", [2, 2], "stage.search.strides [1, 2] -> [2, 2]"),
    ("stage.options.mode", "block", 'stage.options.mode (absent) -> "block"'),
    ("stage.train.lr_end", ..., "stage.train.lr_end 0.0 -> (absent)"),
])
def test_a_changed_nested_key_is_refused_with_one_line(tmp_path, key, value, shown):
    run = RunDir(str(tmp_path / "run"))
    run.check_config(CONFIG)
    with pytest.raises(RunDirError) as e:
        RunDir(run.path).check_config(_with(CONFIG, key, value))
    msg = str(e.value)
    assert "\n" not in msg and shown in msg
    assert msg.startswith(f"{run.path} was started with other settings: ")
    assert msg.endswith("; resume with the same flags, use another --run_dir, or pass "
                        "--allow_flag_change")
    assert _stored(run)["config"] == CONFIG  # nothing written


def test_every_differing_key_is_named_up_to_six(tmp_path):
    run = RunDir(str(tmp_path))
    run.check_config(CONFIG)
    two = _with(_with(CONFIG, "stage.train.label_smoothing", 0.1), "stage.data.cutout_length", 8)
    with pytest.raises(RunDirError, match=r"settings: stage\.data\.cutout_length 16 -> 8, "
                                          r"stage\.train\.label_smoothing 0\.0 -> 0\.1; resume"):
        run.check_config(two)
    many = _with(CONFIG, "stage.options", {f"k{i}": i for i in range(9)})
    with pytest.raises(RunDirError, match=r"stage\.options\.k5 \(absent\) -> 5 and 3 more; "
                                          r"resume") as e:
        run.check_config(many)
    assert "stage.options.k6" not in str(e.value)


def test_allow_change_records_the_change(tmp_path):
    run = RunDir(str(tmp_path))
    run.check_config(CONFIG)
    new = _with(CONFIG, "stage.train.label_smoothing", 0.1)
    run.check_config(new, allow_change=True)
    stored = _stored(run)
    assert stored["format"] == 2 and stored["config"] == new
    (change,) = stored["changes"]
    assert change["changed"] == {"stage.train.label_smoothing": [0.0, 0.1]}
    assert change["time"].endswith("+00:00")
    run.check_config(new)  # the new settings are now the run's
    newer = _with(new, "stage.train.epochs", ...)
    run.check_config(newer, allow_change=True)
    assert [c["changed"] for c in _stored(run)["changes"]] == [
        {"stage.train.label_smoothing": [0.0, 0.1]}, {"stage.train.epochs": [1, None]}]


def test_legacy_config_is_kept_and_not_compared(tmp_path, capsys):
    run = RunDir(str(tmp_path))
    legacy = {"seed": 3, "population": 16, "label_smoothing": 0.0}
    with open(run.file("config.json"), "w") as f:
        json.dump(legacy, f)
    run.check_config(CONFIG)  # other settings, but nothing to compare them with
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: ") and "could not be checked" in err
    with open(run.file("config.legacy.json")) as f:
        assert json.load(f) == legacy
    assert _stored(run) == {"format": 2, "config": CONFIG, "changes": []}
    with pytest.raises(RunDirError, match="stage.train.epochs 1 -> 2"):  # compared from now on
        run.check_config(_with(CONFIG, "stage.train.epochs", 2))


def test_unreadable_or_newer_config_is_one_line(tmp_path):
    run = RunDir(str(tmp_path))
    with open(run.file("config.json"), "w") as f:
        f.write('{"format": 2, "conf')
    with pytest.raises(RunDirError, match="unreadable"):
        run.check_config(CONFIG)
    with open(run.file("config.json"), "w") as f:
        json.dump({"format": 3, "config": {}}, f)
    with pytest.raises(RunDirError, match="format 3"):
        run.check_config(CONFIG)
