"""The one codec for architecture encodings (docs/design.md §2), every form a lossless round trip.

Forms:
  * text: one token per block, `OP_kK_wW_dD[_skip]`, joined by commas
    (`mb6_k3_w1.0_d2_skip,...`); carries the blocks only, stem/head/modes come from
    defaults (usually the search space).
  * JSON: `{"stem": 32, "head": 1280, "channel_mode": "mbv2", "shortcut": "identity",
    "blocks": [{"op": "mb6", "kernel": 3, "skip": true, "width": 1.0, "depth": 2}, ...]}`.
  * EAT code: the official EAT-NAS code per block `[op 0..2, kernel 0..2, skip 0..1,
    layers-1 0..3, width]` (op 0 sep / 1 mb3 / 2 mb6; kernel 0 → 3, 1 → 5, 2 → 7).
  * MnasNet block strings: `r2_k3_s22_e6_i16_o24[_noskip]` (TPU `mnasnet_models.py`).

`parse_arch` accepts any of text, a JSON string or a path to a JSON/text file, which is
what every command's `--arch` takes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Dict, List, Mapping, Sequence

from eatnas_tf.arch.spec import (
    BLOCK_FIELDS,
    DEPTHS,
    KERNELS,
    MBV2_BASE_CHANNELS,
    NUM_BLOCKS,
    OPS,
    WIDTHS,
    ArchSpec,
    BlockSpec,
    InvalidArchitectureError,
)

_DEFAULTS = {"stem": 32, "head": 1280, "channel_mode": "relative", "shortcut": "identity"}


# ---------------------------------------------------------------------------------------
# text form
# ---------------------------------------------------------------------------------------
def block_to_text(b: BlockSpec) -> str:
    return f"{b.op}_k{b.kernel}_w{b.width:.1f}_d{b.depth}" + ("_skip" if b.skip else "")


def block_from_text(token: str, index: int = 0) -> BlockSpec:
    where = f"block {index + 1} ({token!r}): "
    parts = token.strip().split("_")
    if not parts or not parts[0]:
        raise InvalidArchitectureError(f"{where}op: received ''; allowed values: {', '.join(OPS)}")
    op = parts[0]
    fields: Dict[str, Any] = {"skip": False}
    for p in parts[1:]:
        if p == "skip":
            fields["skip"] = True
        elif p[:1] == "k":
            fields["kernel"] = _num(p[1:], int, "kernel", KERNELS, where)
        elif p[:1] == "w":
            fields["width"] = _num(p[1:], float, "width", WIDTHS, where)
        elif p[:1] == "d":
            fields["depth"] = _num(p[1:], int, "depth", DEPTHS, where)
        else:
            raise InvalidArchitectureError(
                f"{where}field {p!r} unknown; allowed fields: kK, wW, dD, skip "
                "(e.g. mb6_k3_w1.0_d2_skip)")
    for name, allowed in (("kernel", KERNELS), ("width", WIDTHS), ("depth", DEPTHS)):
        if name not in fields:
            raise InvalidArchitectureError(
                f"{where}{name}: missing; allowed values: {', '.join(map(str, allowed))}")
    try:
        return BlockSpec(op=op, **fields)
    except InvalidArchitectureError as e:
        raise InvalidArchitectureError(where + str(e)) from None


def _num(text, kind, field, allowed, where):
    try:
        return kind(text)
    except ValueError:
        raise InvalidArchitectureError(
            f"{where}{field}: received {text!r}; allowed values: "
            f"{', '.join(map(str, allowed))}") from None


def to_text(arch: ArchSpec) -> str:
    if not isinstance(arch, ArchSpec):  # another encoding (EPNAS Table 2 layer lists)
        return arch.to_text()
    return ",".join(block_to_text(b) for b in arch.blocks)


def from_text(text: str, **defaults) -> ArchSpec:
    tokens = [t for t in text.strip().split(",")]
    if len(tokens) != NUM_BLOCKS:
        raise InvalidArchitectureError(
            f"blocks: received {len(tokens)} blocks; allowed values: exactly {NUM_BLOCKS} "
            "comma-separated tokens OP_kK_wW_dD[_skip]")
    blocks = tuple(block_from_text(t, i) for i, t in enumerate(tokens))
    return ArchSpec(blocks=blocks, **_merge(defaults))


def _merge(defaults: Mapping[str, Any]) -> Dict[str, Any]:
    out = dict(_DEFAULTS)
    out.update({k: v for k, v in defaults.items() if v is not None})
    unknown = set(out) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown ArchSpec defaults: {sorted(unknown)}")
    return out


# ---------------------------------------------------------------------------------------
# JSON form
# ---------------------------------------------------------------------------------------
def to_dict(arch: ArchSpec) -> Dict[str, Any]:
    return {
        "stem": arch.stem,
        "head": arch.head,
        "channel_mode": arch.channel_mode,
        "shortcut": arch.shortcut,
        "blocks": [
            {"op": b.op, "kernel": b.kernel, "skip": b.skip, "width": b.width, "depth": b.depth}
            for b in arch.blocks
        ],
    }


def from_dict(d: Mapping[str, Any], **defaults) -> ArchSpec:
    if not isinstance(d, Mapping):
        raise InvalidArchitectureError(
            f"arch: received JSON {type(d).__name__}; allowed values: an object with 'blocks'")
    unknown = set(d) - {"stem", "head", "channel_mode", "shortcut", "blocks"}
    if unknown:
        raise InvalidArchitectureError(
            f"arch: unknown key(s) {sorted(unknown)}; allowed keys: stem, head, channel_mode, "
            "shortcut, blocks")
    if "blocks" not in d:
        raise InvalidArchitectureError("blocks: missing; allowed values: a list of 7 blocks")
    kw = _merge(defaults)
    kw.update({k: d[k] for k in ("stem", "head", "channel_mode", "shortcut") if k in d})
    raw = d["blocks"]
    if isinstance(raw, str):
        return from_text(raw, **kw)
    if not isinstance(raw, list):
        raise InvalidArchitectureError(
            f"blocks: received {type(raw).__name__}; allowed values: a list of 7 blocks")
    _check_block_count(len(raw))
    blocks = []
    for i, rb in enumerate(raw):
        where = f"block {i + 1}: "
        if isinstance(rb, str):
            blocks.append(block_from_text(rb, i))
            continue
        if not isinstance(rb, Mapping):
            raise InvalidArchitectureError(f"{where}received {rb!r}; allowed values: an object")
        missing = set(BLOCK_FIELDS) - set(rb)
        extra = set(rb) - set(BLOCK_FIELDS)
        if missing or extra:
            raise InvalidArchitectureError(
                f"{where}keys {sorted(rb)}; allowed keys: {', '.join(BLOCK_FIELDS)}")
        try:
            blocks.append(BlockSpec(**rb))
        except InvalidArchitectureError as e:
            raise InvalidArchitectureError(where + str(e)) from None
    return ArchSpec(blocks=tuple(blocks), **kw)


def _check_block_count(n: int) -> None:
    if n != NUM_BLOCKS:
        raise InvalidArchitectureError(
            f"blocks: received {n} blocks; allowed values: exactly {NUM_BLOCKS}")


def to_json(arch: ArchSpec, **kwargs) -> str:
    return json.dumps(to_dict(arch), **kwargs)


def from_json(text: str, **defaults) -> ArchSpec:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArchitectureError(f"arch: malformed JSON ({e.msg} at line {e.lineno} "
                                       f"column {e.colno}); allowed values: text form, JSON "
                                       "object or a path to a JSON file") from None
    return from_dict(d, **defaults)


# ---------------------------------------------------------------------------------------
# official EAT-NAS 5-int code
# ---------------------------------------------------------------------------------------
def to_eat_code(arch: ArchSpec) -> List[list]:
    return [[OPS.index(b.op), KERNELS.index(b.kernel), int(b.skip), b.depth - 1, b.width]
            for b in arch.blocks]


def from_eat_code(code: Sequence[Sequence[Any]], **defaults) -> ArchSpec:
    _check_block_count(len(code))
    blocks = []
    for i, c in enumerate(code):
        where = f"block {i + 1} ({list(c)!r}): "
        if len(c) != 5:
            raise InvalidArchitectureError(
                f"{where}code: received {len(c)} ints; allowed values: [op 0..2, kernel 0..2, "
                "skip 0..1, layers-1 0..3, width]")
        op, k, s, d, w = c
        for name, v, n in (("op", op, 3), ("kernel", k, 3), ("skip", s, 2), ("layers", d, 4)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
                raise InvalidArchitectureError(
                    f"{where}{name}: received {v!r}; allowed values: 0..{n - 1}")
        try:
            blocks.append(BlockSpec(OPS[op], KERNELS[k], bool(s), w, d + 1))
        except InvalidArchitectureError as e:
            raise InvalidArchitectureError(where + str(e)) from None
    return ArchSpec(blocks=tuple(blocks), **_merge(defaults))


# ---------------------------------------------------------------------------------------
# MnasNet block strings
# ---------------------------------------------------------------------------------------
_MNAS_RE = re.compile(r"^r(\d+)_k(\d+)_s(\d)(\d)_e(\d+)_i(\d+)_o(\d+)(_noskip)?$")
_EXP_TO_OP = {1: "sep", 3: "mb3", 6: "mb6"}


def to_mnasnet(arch: ArchSpec, block_strides: Sequence[int]) -> List[str]:
    """MnasNet `BlockArgs` strings; strides come from the search space, not the arch.

    Raises InvalidArchitectureError when a width cannot be recovered from the channel
    counts (only with 1-channel blocks, where int(1 × 1.0) == int(1 × 1.5)).
    """
    chans = arch.block_channels()
    out = []
    prev = arch.stem
    for i, (b, c, s) in enumerate(zip(arch.blocks, chans, block_strides)):
        base = MBV2_BASE_CHANNELS[i] if arch.channel_mode == "mbv2" else prev
        if sum(int(base * w) == c for w in WIDTHS) != 1:
            raise InvalidArchitectureError(
                f"block {i + 1} width: {b.width} is not recoverable from {c} channels; "
                "allowed values: blocks of 2 channels or more for MnasNet strings")
        tok = f"r{b.depth}_k{b.kernel}_s{s}{s}_e{b.expansion}_i{prev}_o{c}"
        out.append(tok + ("" if b.skip else "_noskip"))
        prev = c
    return out


def from_mnasnet(strings: Sequence[str], **defaults) -> ArchSpec:
    """Inverse of `to_mnasnet`; widths are recovered from the channel counts."""
    kw = _merge(defaults)
    _check_block_count(len(strings))
    blocks = []
    prev = kw["stem"]
    for i, s in enumerate(strings):
        where = f"block {i + 1} ({s!r}): "
        m = _MNAS_RE.match(s)
        if not m:
            raise InvalidArchitectureError(
                f"{where}malformed; allowed form: rR_kK_sSS_eE_iI_oO[_noskip]")
        r, k, _, _, e, i_ch, o_ch, noskip = m.groups()
        e, i_ch, o_ch = int(e), int(i_ch), int(o_ch)
        if e not in _EXP_TO_OP:
            raise InvalidArchitectureError(
                f"{where}expansion: received {e}; allowed values: 1, 3, 6"
            )
        if i_ch != prev:
            raise InvalidArchitectureError(
                f"{where}input filters: received {i_ch}; expected {prev} (previous output)")
        base = MBV2_BASE_CHANNELS[i] if kw["channel_mode"] == "mbv2" else prev
        widths = [w for w in WIDTHS if int(base * w) == o_ch]
        if not widths:
            raise InvalidArchitectureError(
                f"{where}output filters: received {o_ch}; allowed values: "
                f"{', '.join(str(int(base * w)) for w in WIDTHS)}")
        try:
            blocks.append(BlockSpec(_EXP_TO_OP[e], int(k), noskip is None, widths[0], int(r)))
        except InvalidArchitectureError as ex:
            raise InvalidArchitectureError(where + str(ex)) from None
        prev = o_ch
    return ArchSpec(blocks=tuple(blocks), **kw)


# ---------------------------------------------------------------------------------------
# canonical hash and the one entry point for --arch
# ---------------------------------------------------------------------------------------
def canonical_hash(arch: ArchSpec) -> str:
    """Stable 16-hex-digit id: equal specs hash equal across runs and machines."""
    if not isinstance(arch, ArchSpec):  # another encoding (EPNAS Table 2 layer lists)
        return arch.canonical_hash()
    payload = json.dumps(to_dict(arch), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def parse_arch(value: str, **defaults) -> ArchSpec:
    """Text form, JSON string, or path to a file holding either.

    Raises:
      InvalidArchitectureError: with one line naming the bad field and the allowed values.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidArchitectureError(
            "arch: received an empty value; allowed values: text form, JSON or a file path")
    v = value.strip()
    # EPNAS Table 2 layer lists (their ops are not block ops), imported here only: the
    # EAT encoding does not depend on them (a bazel target below `epnas` has no such module).
    try:
        from eatnas_tf.epnas.table2 import codec as table2_codec
    except ImportError:
        table2_codec = None
    if table2_codec is not None and table2_codec.looks_like(v):
        return table2_codec.parse(v)
    if v.startswith("{") or v.startswith("["):
        return from_json(v, **defaults)
    looks_like_path = (os.sep in v or v.endswith(".json") or v.endswith(".txt")) and "," not in v
    if looks_like_path or os.path.isfile(v):
        try:
            with open(v) as f:
                content = f.read()
        except OSError as e:
            raise InvalidArchitectureError(
                f"arch: cannot read file {v!r} ({e.strerror}); allowed values: text form, JSON "
                "or a readable file path") from None
        content = content.strip()
        if content.startswith("{"):
            return from_json(content, **defaults)
        return from_text(content, **defaults)
    return from_text(v, **defaults)
