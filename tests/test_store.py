"""store.atomic, store.jsonl, errors.one_line and model.layer_weights."""

import dataclasses
import enum
import json
import os

import numpy as np
import pytest

from eatnas_tf import errors
from eatnas_tf.store import atomic
from eatnas_tf.store.jsonl import JsonlStore


def _names(d):
    return sorted(os.listdir(d))


# -- atomic ----------------------------------------------------------------------------------
def test_atomic_writes_leave_only_the_file(tmp_path):
    d = tmp_path / "a" / "b"  # parents are created
    atomic.write_json(str(d / "x.json"), {"b": 1, "a": (1, 2)})
    atomic.write_text(str(d / "x.md"), "héllo\n")
    atomic.write_bytes(str(d / "x.bin"), b"\x00\x01")
    assert _names(d) == ["x.bin", "x.json", "x.md"]
    assert (d / "x.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}'
    assert atomic.read_json(str(d / "x.json")) == {"a": [1, 2], "b": 1}
    assert (d / "x.md").read_text(encoding="utf-8") == "héllo\n"
    assert (d / "x.bin").read_bytes() == b"\x00\x01"
    atomic.write_json(str(d / "x.json"), [1], indent=None)  # replaces
    assert (d / "x.json").read_text() == "[1]"


def test_write_json_that_does_not_serialise_keeps_the_old_file(tmp_path):
    p = str(tmp_path / "s.json")
    atomic.write_json(p, {"ok": 1})
    with pytest.raises(TypeError, match="object"):
        atomic.write_json(p, {"bad": object()})
    assert atomic.read_json(p) == {"ok": 1}
    assert _names(tmp_path) == ["s.json"]


def test_temp_path_replaces_on_success_and_keeps_old_file_on_error(tmp_path):
    p = str(tmp_path / "w.npz")
    with atomic.temp_path(p, suffix=".npz") as tmp:
        assert tmp.endswith(".npz") and os.path.dirname(tmp) == str(tmp_path)
        np.savez(tmp, a=np.arange(3))
    assert np.load(p)["a"].tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError, match="boom"):
        with atomic.temp_path(p, suffix=".npz") as tmp:
            np.savez(tmp, a=np.zeros(5))
            raise RuntimeError("boom")
    assert np.load(p)["a"].tolist() == [0, 1, 2]  # old file intact
    assert _names(tmp_path) == ["w.npz"]  # temp file removed


def test_publish_dir_never_overwrites(tmp_path):
    src = tmp_path / ".tmp_model"
    src.mkdir()
    (src / "f.txt").write_text("1")
    final = str(tmp_path / "model")
    atomic.publish_dir(str(src), final)
    assert (tmp_path / "model" / "f.txt").read_text() == "1" and not src.exists()
    other = tmp_path / ".tmp_other"
    other.mkdir()  # empty: a plain os.rename would replace an empty target too
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileExistsError):
        atomic.publish_dir(str(other), final)
    with pytest.raises(FileExistsError):
        atomic.publish_dir(str(other), str(tmp_path / "empty"))
    assert (tmp_path / "model" / "f.txt").read_text() == "1" and other.exists()


class _Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class _Point:
    x: int
    y: tuple


def test_to_plain():
    obj = {"f": np.float32(0.5), "i": np.int64(3), "b": np.bool_(True), "a": np.arange(3),
           "m": np.ones((2, 2), np.float32), "z": np.array(7), "s": {2}, "t": (1, 2),
           "e": _Color.RED, "d": _Point(1, (2, 3))}
    back = json.loads(json.dumps(obj, default=atomic.to_plain))
    assert back == {"f": 0.5, "i": 3, "b": True, "a": [0, 1, 2], "m": [[1.0, 1.0], [1.0, 1.0]],
                    "z": 7, "s": [2], "t": [1, 2], "e": "red", "d": {"x": 1, "y": [2, 3]}}
    with pytest.raises(TypeError, match="object"):
        atomic.to_plain(object())


# -- jsonl -----------------------------------------------------------------------------------
def test_jsonl_append_read_and_reopen(tmp_path):
    p = str(tmp_path / "sub" / "c.jsonl")
    s = JsonlStore(p)
    assert s.read() == [] and len(s) == 0
    got = s.append({"b": np.float32(0.25), "a": (1,)})
    assert got == {"a": [1], "b": 0.25}
    s.append({"id": 2})
    assert len(s) == 2
    with open(p) as f:
        assert f.read() == '{"a": [1], "b": 0.25}\n{"id": 2}\n'  # sort_keys, one line each
    assert JsonlStore(p).read() == [{"a": [1], "b": 0.25}, {"id": 2}]
    s.read().append("not stored")  # read() returns a copy
    assert len(s) == 2


def test_jsonl_partial_last_line_is_cut_and_appending_goes_on(tmp_path, capsys):
    p = tmp_path / "c.jsonl"
    p.write_text('{"id": 0}\n{"id": 1}\n{"id": 2, "val')  # kill -9 mid-write
    s = JsonlStore(str(p), noun="candidates", hint="it will be evaluated again")
    assert s.read() == [{"id": 0}, {"id": 1}]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "partial" in err and "after 2 candidates" in err
    assert "evaluated again" in err
    assert p.read_text() == '{"id": 0}\n{"id": 1}\n'  # truncated to the good prefix
    s.append({"id": 2})
    assert JsonlStore(str(p)).read() == [{"id": 0}, {"id": 1}, {"id": 2}]
    assert capsys.readouterr().err == ""


def test_jsonl_append_first_cuts_a_partial_line(tmp_path, capsys):
    p = tmp_path / "c.jsonl"
    p.write_text('{"id": 0}\n{"i')
    JsonlStore(str(p)).append({"id": 1})  # without a read first
    assert p.read_text() == '{"id": 0}\n{"id": 1}\n'
    assert "partial" in capsys.readouterr().err


def test_jsonl_line_without_newline_is_partial(tmp_path, capsys):
    p = tmp_path / "c.jsonl"
    p.write_text('{"id": 0}\n{"id": 1}')  # parses, but the newline never made it
    assert JsonlStore(str(p)).read() == [{"id": 0}]
    assert p.read_text() == '{"id": 0}\n'


# -- errors ----------------------------------------------------------------------------------
def test_one_line():
    e = ValueError("bad\n   shape\t(3,)\n\n")
    assert errors.one_line(e) == "ValueError: bad shape (3,)"
    long = errors.one_line(RuntimeError("x" * 1000))
    assert len(long) == 300 and long.startswith("RuntimeError: xxx")
    assert errors.one_line(RuntimeError("abc"), limit=10) == "RuntimeErr"
    assert errors.one_line(KeyError()) == "KeyError: "
