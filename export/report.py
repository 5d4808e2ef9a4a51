"""The export report: `export_report.json`, a Markdown table, and the run's "## Export".

`export_report.json` (one per version directory) holds, per format, accuracy on held-out
data, the drop against the Keras model, file size, parity, the input convention (dtype,
shape, quantization), MAdds read from the graph and LiteRT latency at each thread count
(docs/design.md §4), and the SavedModel's accuracy through its image-bytes signature.
`to_markdown` renders the same numbers for people; `update_run_report` puts them under an
"## Export" heading of the run's `report.md`, replacing an older one, so re-exporting is
idempotent.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from eatnas_tf.report import sections
from eatnas_tf.store import atomic
from export import latency_report

SECTION = "## Export"


def write_json(path: str, obj: Any) -> None:
    """Writes JSON atomically (temp file + rename), keys in report order."""
    atomic.write_json(path, obj, indent=2, sort_keys=False)


def _fmt(v, spec: str = "", none: str = "–") -> str:
    if v is None:
        return none
    return format(v, spec) if spec else str(v)


def _pct(v) -> str:
    return _fmt(None if v is None else 100.0 * v, ".2f")


def _kb(n) -> str:
    return _fmt(None if n is None else n / 1024.0, ",.1f")


def input_text(desc: Dict[str, Any]) -> str:
    """A TFLite file's input for the table, e.g. "raw uint8 N×28×28×3 (scale 1, zp 0)"."""
    if not desc:
        return "–"
    shape = "×".join("N" if int(v) < 0 else str(v) for v in desc.get("shape", []))
    kind = {"raw_uint8": "raw uint8", "uint8_quantized": "quantized uint8",
            "float32": "float32 pixels"}.get(desc.get("kind"), str(desc.get("kind")))
    text = f"{kind} {shape}".strip()
    if desc.get("scale") is not None:
        text += f" (scale {desc['scale']:g}, zp {desc.get('zero_point')})"
    return text


def format_table(report: Dict[str, Any]) -> str:
    """One Markdown table: a row per format (Keras, SavedModel, then the TFLite files)."""
    threads = report.get("latency_threads", [])
    head = (["format", "input", "acc %", "drop pts", "max |Δlogit|", "size KiB", "× fp32",
             "graph MAdds"] + [f"{t}-thr median / p90 ms" for t in threads])
    rows: List[List[str]] = [head, ["---"] * len(head)]
    keras_acc = report.get("keras", {}).get("accuracy")
    rows.append(["keras", "normalised float", _pct(keras_acc), "0.00", "0", "–", "–",
                 _fmt(report.get("madds"), ",")] + ["–"] * len(threads))
    sm = report.get("saved_model", {})
    rows.append(["saved_model (`serving_images`)", "raw uint8", _pct(sm.get("accuracy")),
                 _fmt(sm.get("accuracy_drop_pts"), ".2f"),
                 _fmt(sm.get("max_abs_logit_diff"), ".2e"),
                 _kb(sm.get("size_bytes")), "–", "–"] + ["–"] * len(threads))
    if sm.get("image_bytes_accuracy") is not None:
        bacc = sm["image_bytes_accuracy"]
        rows.append(["saved_model (`serving_default`)",
                     f"{sm.get('image_bytes_format', 'image').upper()} bytes", _pct(bacc),
                     _fmt(None if keras_acc is None else 100.0 * (keras_acc - bacc), ".2f"),
                     _fmt(sm.get("image_bytes_max_abs_diff"), ".2e") + " vs uint8", "–", "–",
                     "–"] + ["–"] * len(threads))
    for name, f in report.get("formats", {}).items():
        lat = f.get("latency", {})
        cells = []
        for t in threads:
            lt = lat.get(str(t))
            cells.append(f"{lt['median_ms']:.3f} / {lt['p90_ms']:.3f}" if lt else "–")
        rows.append([f"{name} (`{f.get('file')}`)", input_text(f.get("input", {})),
                     _pct(f.get("accuracy")), _fmt(f.get("accuracy_drop_pts"), ".2f"),
                     _fmt(f.get("max_abs_logit_diff"), ".2e"), _kb(f.get("size_bytes")),
                     _fmt(f.get("size_ratio_vs_fp32"), ".3f"),
                     _fmt(f.get("graph_madds", {}).get("madds"), ",")] + cells)
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def _inputs_line(report: Dict[str, Any]) -> str:
    raw = (report.get("checks") or {}).get("tflite_inputs_raw_rgb")
    grey = (report.get("macro") or {}).get("in_channels") == 1
    if raw is None:
        tfl = "no `.tflite` files"
    elif raw:
        tfl = ("every `.tflite` takes raw uint8 RGB pixels [N, H, W, 3] (normalisation"
               + (" and grey conversion" if grey else "") + " inside) and returns float32 "
               "logits")
    else:
        tfl = "**not every `.tflite` takes raw uint8 RGB pixels** (see the input column)"
    return (tfl + "; the SavedModel's `serving_default` takes encoded image files "
            "(`image_bytes`, string [N]: JPEG, PNG, BMP, GIF), `serving_images` uint8 "
            "pixels, `serving_tf_example` serialized tf.Example")


def _metadata_lines(report: Dict[str, Any]) -> List[str]:
    """Which `.tflite` files carry TFLite metadata (MediaPipe's writer), and if not, how."""
    facts = {f: (e.get("metadata") or {}) for f, e in (report.get("formats") or {}).items()
             if isinstance(e, dict) and e.get("metadata")}
    if not facts:
        return []
    done = [f for f, m in facts.items() if m.get("written")]
    missing = {f: m for f, m in facts.items() if not m.get("written")}
    line = ("TFLite metadata (name, description, input, labels; MediaPipe `metadata_writers`): "
            + (", ".join(done) if done else "none"))
    if missing:
        first = next(iter(missing.values()))
        line += (f"; **not written** for {', '.join(missing)}: {first.get('reason', '')}"
                 + (f" ({first['how']})" if first.get("how") else ""))
    return [line, ""]


def to_markdown(report: Dict[str, Any], pareto: Optional[Sequence[Dict[str, Any]]] = None,
                heading: str = "#") -> str:
    """The human-readable report of one export (and, optionally, the Pareto members')."""
    b = report.get("blessing", {})
    lines = [
        f"{heading} Export {report.get('version')}",
        "",
        f"- arch: `{report.get('arch')}` (space `{report.get('space')}`, dataset "
        f"`{report.get('dataset')}`)",
        f"- weights: {report.get('weights', 'retrained')}",
        f"- params: {_fmt(report.get('params'), ',')} · analytic MAdds: "
        f"{_fmt(report.get('madds'), ',')}",
        f"- held-out data: {report.get('eval', {}).get('split')} split, "
        f"{report.get('eval', {}).get('samples')} images",
        f"- blessing: **{'BLESSED' if b.get('blessed') else 'NOT_BLESSED'}** "
        f"(accuracy {_pct(b.get('value'))}% vs threshold {_pct(b.get('threshold'))}%"
        + (f"; {'; '.join(b['reasons'])}" if b.get("reasons") else "") + ")",
        f"- version dir: `{report.get('path')}`",
        f"- inputs: {_inputs_line(report)}",
        "",
        format_table(report),
        "",
    ]
    lines += _metadata_lines(report) + latency_report.markdown(report)
    checks = report.get("checks", {})
    if checks:
        lines.append("Checks: " + ", ".join(
            f"{k} {'✓' if v else '✗'}" for k, v in checks.items() if v is not None))
        lines.append("")
    if pareto:
        lines += [f"{heading}# Pareto front", "", pareto_table(pareto), ""]
    return "\n".join(lines)


def pareto_table(members: Sequence[Dict[str, Any]]) -> str:
    """A row per exported Pareto member: search claim vs what the export measured."""
    fmts = ("fp32", "int8")
    head = (["arch", "val acc % (search)", "test acc % (keras)", "MAdds (search)",
             "MAdds (fp32 graph)", "params"]
            + [f"{f} 1-thr ms" for f in fmts] + [f"{f} KiB" for f in fmts] + ["version dir"])
    rows = [head, ["---"] * len(head)]
    for m in members:
        r = m.get("report") or {}
        f = r.get("formats", {})
        rows.append([
            f"`{m.get('arch')}`", _pct(m.get("val_acc")), _pct(r.get("keras", {}).get("accuracy")),
            _fmt(m.get("madds"), ","),
            _fmt(f.get("fp32", {}).get("graph_madds", {}).get("madds"), ","),
            _fmt(r.get("params"), ",")]
            + [_fmt(f.get(x, {}).get("latency", {}).get("1", {}).get("median_ms"), ".3f")
               for x in fmts]
            + [_kb(f.get(x, {}).get("size_bytes")) for x in fmts]
            + [f"`{r.get('path', m.get('error', '–'))}`"])
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def write_markdown(path: str, text: str) -> None:
    atomic.write_text(path, text)


def update_run_report(report_md: str, section_body: str) -> None:
    """Replaces (or appends) the "## Export" section of `report_md` with `section_body`
    (`eatnas_tf.report.sections.replace_section`)."""
    sections.replace_section(report_md, SECTION, section_body)
