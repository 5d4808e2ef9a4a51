"""TFLite metadata with MediaPipe's own writer, run in the MediaPipe venv (`make mediapipe`).

A standalone script: it imports only MediaPipe and the standard library (no TensorFlow, no
eatnas_tf), because MediaPipe 0.10.21 (the last release whose `metadata_writers` import)
pins numpy < 2 and protobuf 4 while TensorFlow 2.21 needs protobuf >= 6.31, so the two
cannot share a venv. `export/metadata.py` calls it in a subprocess; it can also be run by
hand:

    .venv-mediapipe/bin/python export/mediapipe_metadata_tool.py write < request.json
    .venv-mediapipe/bin/python export/mediapipe_metadata_tool.py read MODEL.tflite
    .venv-mediapipe/bin/python export/mediapipe_metadata_tool.py classify MODEL.tflite IMG...
    .venv-mediapipe/bin/python export/mediapipe_metadata_tool.py decode OUT.raw IMG...

  write     stdin: {"files": [{"path", "name", "description", "input_name",
            "input_description", "norm_mean", "norm_std", "color_space",
            "output_description", "labels"}]}. Each file is rewritten in place (a temp file
            renamed over it) with the metadata of `metadata_writers.image_classifier`: general
            info, image input (normalization, colour space), classification output with the
            labels as the associated `labels.txt` (TENSOR_AXIS_LABELS). Prints, per file, the
            metadata read back with `MetadataDisplayer`.
  read      prints {"metadata": <the displayer's JSON>, "associated_files": [...],
            "labels": [...]} of a file ({"metadata": null} when it has none).
  classify  MediaPipe Tasks `ImageClassifier` (running mode IMAGE, `model_asset_path`, all
            categories) on each image file (`mp.Image.create_from_file`): prints
            {"results": [{"file", "index", "name", "score", "scores"}]} with `scores` in
            class-index order.
  decode    writes the pixels MediaPipe decodes from each image file (`mp.Image`), raw uint8
            HWC one after another, to OUT.raw; prints {"shapes": [[H, W, C], ...]}.

Errors: one line on stderr, exit 2 (bad request) or 1 (MediaPipe failed).
"""

import json
import os
import sys
import tempfile

LABELS_FILE = "labels.txt"


def _fail(msg, code=1):
    print(f"error: {' '.join(str(msg).split())}", file=sys.stderr)
    sys.exit(code)


def _read_back(buf):
    """The displayer's view of a model buffer (None without metadata)."""
    from mediapipe.tasks.python.metadata import metadata

    try:
        displayer = metadata.MetadataDisplayer.with_model_buffer(buf)
    except ValueError:  # "The model does not have metadata."
        return {"metadata": None, "associated_files": [], "labels": []}
    files = list(displayer.get_packed_associated_file_list())
    labels = []
    if LABELS_FILE in files:
        labels = displayer.get_associated_file_buffer(LABELS_FILE).decode("utf-8").splitlines()
    return {"metadata": json.loads(displayer.get_metadata_json()), "associated_files": files,
            "labels": labels}


def _write_one(req):
    from mediapipe.tasks.python.metadata.metadata_writers import (
        image_classifier,
        metadata_writer,
    )

    path = req["path"]
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    color = getattr(metadata_writer.MetadataWriter.color_space_types,
                    req.get("color_space", "RGB"))
    # What image_classifier.MetadataWriter.create does, with our names and descriptions
    # instead of its fixed "ImageClassifier" ones.
    w = metadata_writer.MetadataWriter.create(buf)
    w.add_general_info(req["name"], req.get("description"))
    w.add_image_input([float(v) for v in req["norm_mean"]], [float(v) for v in req["norm_std"]],
                      color_space_type=color, name=req.get("input_name", "image"),
                      description=req.get("input_description", ""))
    w.add_classification_output(metadata_writer.Labels().add(list(req["labels"])),
                                description=req.get("output_description",
                                                    "Scores of the classes."))
    out, _ = image_classifier.MetadataWriter(w).populate()
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".md-", suffix=".tflite", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(out)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    back = _read_back(bytes(out))
    back.update(path=path, size_before=len(buf), size_after=len(out))
    return back


def cmd_write(_args):
    try:
        request = json.load(sys.stdin)
        files = request["files"]
    except (ValueError, KeyError, TypeError) as e:
        _fail(f"write: bad request on stdin ({e})", 2)
    results = []
    for req in files:
        try:
            results.append(_write_one(req))
        except Exception as e:  # MediaPipe raises ValueError, RuntimeError, flatbuffer errors
            _fail(f"write {req.get('path')}: {type(e).__name__}: {e}")
    return {"files": results}


def cmd_read(args):
    if len(args) != 1:
        _fail("read: usage: read MODEL.tflite", 2)
    with open(args[0], "rb") as f:
        return _read_back(f.read())


def cmd_classify(args):
    if len(args) < 2:
        _fail("classify: usage: classify MODEL.tflite IMAGE...", 2)
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=args[0]),
        running_mode=vision.RunningMode.IMAGE, max_results=-1)
    results = []
    try:
        with vision.ImageClassifier.create_from_options(options) as classifier:
            for path in args[1:]:
                cats = classifier.classify(mp.Image.create_from_file(path)) \
                    .classifications[0].categories
                scores = [0.0] * len(cats)
                for c in cats:
                    scores[c.index] = float(c.score)
                top = cats[0]
                results.append({"file": path, "index": int(top.index), "name": top.category_name,
                                "score": float(top.score), "scores": scores})
    except Exception as e:
        _fail(f"classify {args[0]}: {type(e).__name__}: {e}")
    return {"results": results}


def cmd_decode(args):
    if len(args) < 2:
        _fail("decode: usage: decode OUT.raw IMAGE...", 2)
    import mediapipe as mp

    shapes = []
    with open(args[0], "wb") as f:
        for path in args[1:]:
            try:
                view = mp.Image.create_from_file(path).numpy_view()
            except Exception as e:
                _fail(f"decode {path}: {type(e).__name__}: {e}")
            shapes.append(list(view.shape))
            f.write(view.tobytes())
    return {"out": args[0], "shapes": shapes, "dtype": "uint8"}


COMMANDS = {"write": cmd_write, "read": cmd_read, "classify": cmd_classify,
            "decode": cmd_decode}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        _fail(f"usage: {os.path.basename(argv[0])} {{{'|'.join(COMMANDS)}}} ...", 2)
    out = COMMANDS[argv[1]](argv[2:])
    import mediapipe

    out["mediapipe_version"] = mediapipe.__version__
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
