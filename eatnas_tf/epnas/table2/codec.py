"""Text and JSON forms of a Table 2 layer list, and its canonical hash.

Text form: one token per layer, joined by commas, fields joined by `_`:

    conv_k3_c64_relu_src0            conv2d, filter width 3, 64 channels, relu, input node 0
    sepconv_k5_c32_swish_src2_skip1  dep-sep-conv2d reading node 2, plus node 1 (Src2)
    maxpool_k2_src1                  MaxPool2d, pooling width 2 (stride 2)
    avgpool_k3_src3_skip0            AvgPool2d, plus node 0
    add_src4_skip2                   node 4 + node 2

`_skipN` is left out when Src2 is -1. The op names differ from the EAT block ops (`sep`,
`mb3`, `mb6`), so `arch.codec.parse_arch` tells the two encodings apart by the first
token (`looks_like`).

JSON form: `{"space": "table2", "layers": [{"op": "conv", "src1": 0, "src2": -1,
"kernel": 3, "channels": 64, "act": "relu"}, ...]}` (absent fields are null / left out).

Bad input raises `InvalidArchitectureError` with one line naming the layer, the field,
the value received and the allowed values.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Dict

from eatnas_tf.arch.spec import InvalidArchitectureError
from eatnas_tf.epnas.table2.space import CONV_OPS, OPS, POOL_OPS, Layer, LayerArch

_TOKEN_HELP = ("OP[_kK][_cC_ACT]_srcN[_skipM], e.g. conv_k3_c64_relu_src0, "
               "maxpool_k2_src1, add_src2_skip0")


def layer_to_text(layer: Layer) -> str:
    parts = [layer.op]
    if layer.kernel is not None:
        parts.append(f"k{layer.kernel}")
    if layer.op in CONV_OPS:
        parts += [f"c{layer.channels}", layer.act]
    parts.append(f"src{layer.src1}")
    if layer.src2 >= 0:
        parts.append(f"skip{layer.src2}")
    return "_".join(parts)


def to_text(arch: LayerArch) -> str:
    return ",".join(layer_to_text(layer) for layer in arch.layers)


def _int(text: str, prefix: str, where: str) -> int:
    body = text[len(prefix):]
    if not body.lstrip("-").isdigit():
        raise InvalidArchitectureError(
            f"{where}{prefix}: received {text!r}; allowed values: {prefix}<integer>")
    return int(body)


def layer_from_text(token: str, index: int) -> Layer:
    where = f"layer {index + 1} "
    parts = token.strip().split("_")
    op = parts[0]
    if op not in OPS:
        raise InvalidArchitectureError(
            f"{where}op: received {op!r}; allowed values: {', '.join(OPS)}")
    kw: Dict[str, Any] = {"op": op, "src2": -1}
    rest = parts[1:]
    if op in CONV_OPS or op in POOL_OPS:
        if not rest or not rest[0].startswith("k"):
            raise InvalidArchitectureError(
                f"{where}{op}: received {token!r}; allowed values: {_TOKEN_HELP}")
        kw["kernel"] = _int(rest.pop(0), "k", where)
    if op in CONV_OPS:
        if len(rest) < 2 or not rest[0].startswith("c"):
            raise InvalidArchitectureError(
                f"{where}{op}: received {token!r}; allowed values: {_TOKEN_HELP}")
        kw["channels"] = _int(rest.pop(0), "c", where)
        kw["act"] = rest.pop(0)
    if not rest or not rest[0].startswith("src"):
        raise InvalidArchitectureError(
            f"{where}src1: received {token!r}; allowed values: {_TOKEN_HELP}")
    kw["src1"] = _int(rest.pop(0), "src", where)
    if rest and rest[0].startswith("skip"):
        kw["src2"] = _int(rest.pop(0), "skip", where)
    if rest:
        raise InvalidArchitectureError(
            f"{where}: unexpected {'_'.join(rest)!r} in {token!r}; allowed values: {_TOKEN_HELP}")
    try:
        return Layer(**kw)
    except InvalidArchitectureError as e:
        raise InvalidArchitectureError(f"{where}{e}") from None


def from_text(text: str) -> LayerArch:
    tokens = [t for t in text.strip().split(",")]
    if not tokens or any(not t.strip() for t in tokens):
        raise InvalidArchitectureError(
            f"layers: received an empty token in {text!r}; allowed values: comma-separated "
            f"{_TOKEN_HELP}")
    return LayerArch(tuple(layer_from_text(t, i) for i, t in enumerate(tokens)))


_FIELDS = ("op", "src1", "src2", "kernel", "channels", "act")


def to_dict(arch: LayerArch) -> Dict[str, Any]:
    return {"space": "table2",
            "layers": [{f: getattr(layer, f) for f in _FIELDS} for layer in arch.layers]}


def from_dict(d: Any) -> LayerArch:
    if not isinstance(d, dict) or not isinstance(d.get("layers"), list):
        raise InvalidArchitectureError(
            "table2 JSON: received no 'layers' list; allowed values: "
            '{"space": "table2", "layers": [{"op": ..., "src1": ...}, ...]}')
    if d.get("space", "table2") != "table2":
        raise InvalidArchitectureError(
            f"table2 JSON space: received {d.get('space')!r}; allowed values: table2")
    layers = []
    for i, item in enumerate(d["layers"]):
        if not isinstance(item, dict):
            raise InvalidArchitectureError(
                f"layer {i + 1}: received {type(item).__name__}; allowed values: an object")
        unknown = sorted(set(item) - set(_FIELDS))
        if unknown:
            raise InvalidArchitectureError(
                f"layer {i + 1} field: received {unknown[0]!r}; allowed values: "
                f"{', '.join(_FIELDS)}")
        if "op" not in item or "src1" not in item:
            raise InvalidArchitectureError(
                f"layer {i + 1}: missing 'op' or 'src1'; allowed values: {', '.join(_FIELDS)}")
        kw = {f: item[f] for f in _FIELDS if f in item}
        kw.setdefault("src2", -1)
        if kw["src2"] is None:
            kw["src2"] = -1
        try:
            layers.append(Layer(**kw))
        except InvalidArchitectureError as e:
            raise InvalidArchitectureError(f"layer {i + 1} {e}") from None
    return LayerArch(tuple(layers))


def to_json(arch: LayerArch) -> str:
    return json.dumps(to_dict(arch), sort_keys=True)


def from_json(text: str) -> LayerArch:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArchitectureError(
            f"table2 JSON: received invalid JSON ({e.msg} at line {e.lineno} column "
            f"{e.colno}); allowed values: a JSON object") from None
    return from_dict(d)


def canonical_hash(arch: LayerArch) -> str:
    """Stable 16-hex-digit id (never equal to an `ArchSpec`'s: the payload names the space)."""
    payload = json.dumps(to_dict(arch), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def looks_like(text: str) -> bool:
    """True for a Table 2 text form or JSON (`arch.codec.parse_arch` dispatches on it): the
    first token names a Table 2 op and has a `_srcN` field (an EAT block token with a
    wrong op, `conv_k3_w1.0_d1`, stays the block codec's error)."""
    v = text.strip()
    if v.startswith("{"):
        try:
            d = json.loads(v)
        except json.JSONDecodeError:
            return False
        return isinstance(d, dict) and ("layers" in d or d.get("space") == "table2")
    first = v.split(",", 1)[0].strip()
    return first.split("_", 1)[0] in OPS and re.search(r"_src-?\d", first) is not None


def parse(value: str) -> LayerArch:
    """Text form, JSON, or a path to a file holding either."""
    v = value.strip()
    if not v:
        raise InvalidArchitectureError(
            "arch: received an empty value; allowed values: a Table 2 text form, JSON or file")
    if not looks_like(v) and os.path.isfile(v):
        try:
            with open(v) as f:
                v = f.read().strip()
        except OSError as e:
            raise InvalidArchitectureError(
                f"arch: cannot read file {value!r} ({e.strerror}); allowed values: a readable "
                "file") from None
    return from_json(v) if v.startswith("{") else from_text(v)
