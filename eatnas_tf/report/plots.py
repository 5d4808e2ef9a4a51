"""Figures of the search report: population quality over time, accuracy vs cost, the winner.

Everything is drawn with Matplotlib's object API on the Agg canvas (no pyplot, no global
backend switch), so importing or calling this module works on headless machines and does
not disturb a caller that uses pyplot itself. Matplotlib is imported on first use, which
keeps `import eatnas_tf.report.search_report` cheap for the search runner.

Every function writes one PNG atomically (`store.atomic`: temp file in the same directory,
then `os.replace`), so a reader never sees a half-written image, and returns its path.

  * `quality_over_time`: the paper's Fig. 4 — population mean accuracy (± std) and
    population quality (Eq. 3) against evaluated candidates, one line per stage.
  * `pareto_scatter`: validation accuracy vs MAdds of every successful candidate, with
    each stage's Pareto front, the resource target and the winner.
  * `draw_arch`: an architecture block by block, as the paper's Fig. 3.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from eatnas_tf.arch import cost as cost_lib
from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.report import pareto as pareto_lib
from eatnas_tf.report.pareto import finite_float as _num
from eatnas_tf.store import atomic

DPI = 120
# Colour-blind-friendly (seaborn "deep") colours; kernels shade them (3 light → 7 full).
OP_COLOURS = {"sep": "#4C72B0", "mb3": "#55A868", "mb6": "#C44E52"}
OP_NAMES = {"sep": "SepConv", "mb3": "MBConv3", "mb6": "MBConv6"}
KERNEL_TINT = {3: 0.45, 5: 0.2, 7: 0.0}  # share of white mixed into the op colour
FIXED_COLOUR = "#B8B8B8"  # stem, head, classifier
INPUT_COLOUR = "#F2F2F2"
STAGE_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860",
                 "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD")
COST_LABELS = {"madds": "Mult-Adds", "params": "parameters",
               "latency_ms": "predicted latency (ms)"}


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _figure(width: float, height: float):
    """A pyplot-free figure on the Agg canvas with constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str) -> str:
    """Writes `fig` to `path` as PNG atomically (`store.atomic.temp_path`); returns `path`."""
    with atomic.temp_path(path) as tmp, open(tmp, "xb") as f:
        fig.savefig(f, format="png", dpi=DPI, facecolor="white")
    return path


def human(n: Optional[float], digits: int = 3) -> str:
    """1234567 → "1.23M": compact counts for labels and tables."""
    if n is None:
        return "–"
    n = float(n)
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}g}{suffix}"
    return f"{n:.{digits}g}"


def _stage_colours(stages: Sequence[str]) -> Dict[str, str]:
    return {s: STAGE_COLOURS[i % len(STAGE_COLOURS)] for i, s in enumerate(stages)}


def _ordered_stages(rows: Sequence[Mapping[str, Any]], default: str = "search") -> List[str]:
    seen: List[str] = []
    for r in rows:
        s = str(r.get("stage") or default)
        if s not in seen:
            seen.append(s)
    return seen


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes,
            color="#777777", fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])


def _percent_axis(ax, axis: str = "y") -> None:
    from matplotlib.ticker import PercentFormatter

    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(1.0))


# ---------------------------------------------------------------------------------------
# population quality over time (paper Fig. 4)
# ---------------------------------------------------------------------------------------
def quality_over_time(history: Sequence[Mapping[str, Any]], path: str,
                      title: Optional[str] = None) -> str:
    """Population mean accuracy ± std (top) and population quality Eq. 3 (bottom).

    Args:
      history: one dict per search step, `{"step", "candidates", "stage", "mean_acc",
        "std_acc", "quality", "best_acc"}`; rows without `stage` belong to "search", rows
        without `candidates` are placed at their `step`. Each stage is its own line, its x
        the candidates evaluated in that stage (as the paper compares EAT with a search
        from scratch over equal search epochs).
      path: the PNG to write.
      title: figure title; default "Population accuracy and quality".

    Each stage's best-quality point (the population the paper keeps and retrains) is
    marked with a star in both panels.
    """
    fig = _figure(8.0, 6.2)
    ax_acc, ax_q = fig.subplots(2, 1, sharex=True)
    fig.suptitle(title or "Population accuracy and quality", fontsize=13)
    rows = [r for r in history if _num(r.get("mean_acc")) is not None]
    if not rows:
        _empty(ax_acc, "no search history")
        _empty(ax_q, "no search history")
        return _save(fig, path)
    stages = _ordered_stages(rows)
    colours = _stage_colours(stages)
    for stage in stages:
        pts = []
        for r in rows:
            if str(r.get("stage") or "search") != stage:
                continue
            x = _num(r.get("candidates"))
            x = _num(r.get("step")) if x is None else x
            if x is None:
                continue
            pts.append((x, _num(r.get("mean_acc")), _num(r.get("std_acc")) or 0.0,
                        _num(r.get("quality")), _num(r.get("best_acc"))))
        if not pts:
            continue
        pts.sort(key=lambda p: p[0])
        c = colours[stage]
        xs = [p[0] for p in pts]
        mean = [p[1] for p in pts]
        lo = [p[1] - p[2] for p in pts]
        hi = [p[1] + p[2] for p in pts]
        marker = "o" if len(pts) <= 40 else None
        ax_acc.fill_between(xs, lo, hi, color=c, alpha=0.18, linewidth=0)
        ax_acc.plot(xs, mean, color=c, lw=1.8, marker=marker, ms=3, label=f"{stage}: mean ± std")
        best = [(p[0], p[4]) for p in pts if p[4] is not None]
        if best:
            ax_acc.plot([b[0] for b in best], [b[1] for b in best], color=c, lw=1.0, ls=":",
                        label=f"{stage}: best in population")
        qpts = [(p[0], p[3], p[1]) for p in pts if p[3] is not None]
        if not qpts:
            continue
        bx, bq, bacc = max(qpts, key=lambda q: q[1])  # first maximum: earliest best
        ax_q.plot([q[0] for q in qpts], [q[1] for q in qpts], color=c, lw=1.8, marker=marker,
                  ms=3, label=f"{stage} (best Q {bq:.4f} at {bx:g})")
        for ax, y in ((ax_q, bq), (ax_acc, bacc)):
            ax.plot([bx], [y], marker="*", ms=15, color=c, markeredgecolor="black",
                    markeredgewidth=0.8, zorder=5, linestyle="none")
    ax_acc.set_ylabel("population val accuracy")
    _percent_axis(ax_acc)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(fontsize=8, loc="lower right", ncol=max(1, len(stages)))
    ax_q.set_ylabel("population quality Q (Eq. 3)")
    ax_q.set_xlabel("candidates evaluated")
    ax_q.grid(alpha=0.3)
    ax_q.plot([], [], marker="*", ms=12, color="#999999", markeredgecolor="black",
              linestyle="none", label="best quality")
    ax_q.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


# ---------------------------------------------------------------------------------------
# accuracy vs cost
# ---------------------------------------------------------------------------------------
def _cost_axis(ax, lo: float, hi: float) -> bool:
    """Human tick labels on the cost axis; log scale when it spans more than 10×."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fmt = FuncFormatter(lambda v, _pos: human(v))
    log = lo > 0 and hi / lo > 10
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(fmt)
    return log


def pareto_scatter(candidates: Sequence[Mapping[str, Any]], path: str, cost_key: str = "madds",
                   target: Optional[float] = None, acc_key: str = "val_acc",
                   title: Optional[str] = None,
                   anchors: Optional[Sequence[Mapping[str, Any]]] = None) -> str:
    """Validation accuracy vs cost of every successful candidate, coloured by stage.

    Args:
      candidates: candidate records (candidates.jsonl rows). Only `status == "ok"` rows
        with an accuracy and a cost are drawn; rows marked `duplicate_of` (a re-use of an
        earlier evaluation) are skipped. A row with `"winner": True` is highlighted.
      path: the PNG to write.
      cost_key: the cost on the x axis ("madds", "params" or "latency_ms"); log scale when its range
        is wider than 10×.
      target: the resource target of Eq. 1, drawn as a vertical line.
      acc_key: the accuracy on the y axis.
      title: figure title.
      anchors: retrained reference points (`report.anchor.pareto_anchors`: `label`,
        `cost_key`, `acc_key`, `winner`), e.g. MobileNetV2 α 0.35 / 0.5 and the retrained
        winner, drawn as labelled diamonds (the winner's as a square).

    Each stage gets its own Pareto front (a step line through the non-dominated points):
    stages train on different data, so their accuracies are not comparable.
    """
    fig = _figure(8.0, 5.2)
    ax = fig.subplots()
    label = COST_LABELS.get(cost_key, cost_key)
    ax.set_title(title or f"Validation accuracy vs {label}", fontsize=13)
    ok = [c for c in candidates
          if c.get("status", "ok") == "ok" and c.get("duplicate_of") is None
          and _num(c.get(acc_key)) is not None and _num(c.get(cost_key)) is not None]
    if not ok:
        _empty(ax, "no successful candidates")
        return _save(fig, path)
    stages = _ordered_stages(ok)
    colours = _stage_colours(stages)
    for stage in stages:
        rows = [c for c in ok if str(c.get("stage") or "search") == stage]
        pts = [{"acc": _num(c[acc_key]), "cost": _num(c[cost_key])} for c in rows]
        col = colours[stage]
        ax.scatter([p["cost"] for p in pts], [p["acc"] for p in pts], s=22, color=col,
                   alpha=0.55, edgecolors="none", label=f"{stage} ({len(pts)})")
        front = [pts[i] for i in pareto_lib.pareto_front(pts, "acc", "cost", keep_ties=False)]
        if front:
            fx, fy = [p["cost"] for p in front], [p["acc"] for p in front]
            ax.step(fx, fy, where="post", color=col, lw=1.6, alpha=0.9)
            ax.scatter(fx, fy, s=46, facecolors="none", edgecolors=col, linewidths=1.4,
                       label=f"{stage} Pareto front")
    xs = [_num(c[cost_key]) for c in ok]
    anchor_pts = [(a, _num(a.get(cost_key)), _num(a.get(acc_key))) for a in anchors or ()]
    anchor_pts = [(a, x, y) for a, x, y in anchor_pts if x is not None and y is not None]
    xs += [x for _, x, _ in anchor_pts]
    lo, hi = min(xs), max(xs)
    if _num(target) is not None and target > 0:
        ax.axvline(target, color="#444444", ls="--", lw=1.2,
                   label=f"target {human(target)} {label}")
        lo, hi = min(lo, target), max(hi, target)
    log = _cost_axis(ax, lo, hi)
    mid = math.sqrt(lo * hi) if log else (lo + hi) / 2
    for w in (c for c in candidates if c.get("winner")):
        wx, wy = _num(w.get(cost_key)), _num(w.get(acc_key))
        if wx is None or wy is None:
            continue
        ax.scatter([wx], [wy], marker="*", s=320, color="#F2C14E", edgecolors="black",
                   linewidths=1.0, zorder=6, label="winner")
        right = wx > mid  # label towards the middle, away from the frame
        ax.annotate(f"winner #{w.get('id', '')}".rstrip(" #"), (wx, wy),
                    xytext=(-12 if right else 12, 8), textcoords="offset points",
                    ha="right" if right else "left", fontsize=9, fontweight="bold")
    anchor_colours = ("#30638E", "#7A9E7E", "#8E5572", "#EDAE49")
    for i, (a, ax_x, ax_y) in enumerate(anchor_pts):
        win = bool(a.get("winner"))
        ax.scatter([ax_x], [ax_y], marker="s" if win else "D", s=90,
                   color="#D1495B" if win else anchor_colours[i % len(anchor_colours)],
                   edgecolors="black", linewidths=0.8, zorder=7,
                   label=f"{a.get('label', '')} (retrained)")
        # alternate the label above / below so close points stay readable
        ax.annotate(str(a.get("label", "")), (ax_x, ax_y),
                    xytext=(8, -14) if i % 2 == 0 else (8, 10),
                    textcoords="offset points", fontsize=8)
    ax.margins(y=0.08)
    ax.set_xlabel(label + (" (log scale)" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel("validation accuracy")
    _percent_axis(ax)
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


# ---------------------------------------------------------------------------------------
# architecture drawing (paper Fig. 3)
# ---------------------------------------------------------------------------------------
def _tint(hex_colour: str, white: float) -> Tuple[float, float, float]:
    r, g, b = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return tuple(c + (1 - c) * white for c in (r, g, b))


def _text_colour(rgb) -> str:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(rgb)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


def _arch_items(arch: ArchSpec, macro: cost_lib.MacroSpec, per_layer: bool) -> List[Dict[str, Any]]:
    """The boxes to draw: input, stem, blocks (or layers), head, classifier."""
    c = cost_lib.count(arch, macro)
    s_in = macro.image_size
    items = [{"lines": ["input"], "shape": f"{s_in}×{s_in}×{macro.in_channels}",
              "colour": INPUT_COLOUR, "channels": macro.in_channels, "skip": None}]
    stem = c.blocks[0]
    items.append({"lines": ["conv 3×3", f"s{macro.stem_stride}" if macro.stem_stride > 1 else ""],
                  "shape": f"{stem['size']}×{stem['size']}×{stem['channels']}",
                  "colour": FIXED_COLOUR, "channels": stem["channels"], "skip": None})
    size, cin = stem["size"], stem["channels"]
    for bi, (b, stride) in enumerate(zip(arch.blocks, macro.block_strides)):
        info = c.blocks[bi + 1]
        cout = info["channels"]
        colour = _tint(OP_COLOURS[b.op], KERNEL_TINT.get(b.kernel, 0.0))
        if per_layer:
            for li in range(b.depth):
                s = stride if li == 0 else 1
                c_in = cin if li == 0 else cout
                size = -(-size // s)
                identity = s == 1 and c_in == cout
                skip = None
                if b.skip and identity:
                    skip = "identity"
                elif b.skip and arch.shortcut == "projection":
                    skip = "projection"
                items.append({"lines": [OP_NAMES[b.op], f"{b.kernel}×{b.kernel}",
                                        "s2" if s == 2 else ""],
                              "shape": f"{size}×{size}×{cout}", "colour": colour,
                              "channels": cout, "skip": skip, "block": bi + 1})
        else:
            size = info["size"]
            # In block mode a skip arc means "shortcuts inside this block" (layers 2..N
            # always match; the first one only when shapes do, or via projection).
            first_identity = stride == 1 and cin == cout
            skip = None
            if b.skip and (first_identity or b.depth > 1):
                skip = "identity"
            elif b.skip and arch.shortcut == "projection":
                skip = "projection"
            extra = [f"×{b.depth}"] if b.depth > 1 else []
            if stride == 2:
                extra.append("s2")
            items.append({"lines": [OP_NAMES[b.op], f"{b.kernel}×{b.kernel}", " ".join(extra)],
                          "shape": f"{size}×{size}×{cout}", "colour": colour,
                          "channels": cout, "skip": skip, "block": bi + 1})
        cin = cout
    head = c.blocks[-1]
    items.append({"lines": ["conv 1×1"], "shape": f"{size}×{size}×{head['channels']}",
                  "colour": FIXED_COLOUR, "channels": head["channels"], "skip": None})
    items.append({"lines": ["pool", "FC"], "shape": f"{macro.num_classes}",
                  "colour": FIXED_COLOUR, "channels": macro.num_classes, "skip": None})
    return items


def draw_arch(arch: ArchSpec, macro: cost_lib.MacroSpec, path: str, title: Optional[str] = None,
              per_layer: bool = False) -> str:
    """Draws `arch` as a row of boxes, stem to classifier, like the paper's Fig. 3.

    Args:
      arch: the architecture.
      macro: its input size, classes and strides (`SearchSpace.macro`), which give the
        feature-map sizes printed under the boxes.
      path: the PNG to write.
      title: first title line; a second line always gives layers, params and MAdds.
      per_layer: one box per layer (as Fig. 3) instead of one per block with "×depth".

    Box colour is the op (kernel 3 light, 7 dark), box height grows with the channel
    count (log scale), the label under a box is the output shape H×W×C, and an arc over a
    box marks its shortcut (solid: identity, dashed: 1×1 projection).
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

    items = _arch_items(arch, macro, per_layer)
    n = len(items)
    pitch = 0.62 if per_layer else 1.0  # inches per box
    fig = _figure(max(7.0, n * pitch + 0.6), 3.7)
    ax = fig.subplots()
    ax.set_axis_off()
    chans = [max(it["channels"], 1) for it in items]
    lo, hi = math.log(min(chans)), math.log(max(chans))
    width = 0.74
    fs = 7 if per_layer else 8.5
    for i, it in enumerate(items):
        frac = (math.log(max(it["channels"], 1)) - lo) / (hi - lo) if hi > lo else 0.5
        h = 1.1 + 1.3 * frac
        box = FancyBboxPatch((i - width / 2, -h / 2), width, h,
                             boxstyle="round,pad=0,rounding_size=0.08",
                             facecolor=it["colour"], edgecolor="#333333", linewidth=0.9)
        ax.add_patch(box)
        text = "\n".join(line for line in it["lines"] if line)
        ax.text(i, 0, text, ha="center", va="center", fontsize=fs,
                color=_text_colour(it["colour"]), rotation=90 if per_layer else 0,
                fontweight="bold" if it.get("block") else "normal", linespacing=1.25)
        ax.text(i, -1.35, it["shape"], ha="center", va="top", fontsize=fs - 0.5,
                rotation=90 if per_layer else 0, color="#222222")
        if i + 1 < n:
            ax.add_patch(FancyArrowPatch((i + width / 2, 0), (i + 1 - width / 2, 0),
                                         arrowstyle="-|>", mutation_scale=8, lw=0.9,
                                         color="#555555", shrinkA=0, shrinkB=0))
        if it["skip"]:
            ax.add_patch(
                FancyArrowPatch(
                    (i - width / 2 + 0.06, h / 2),
                    (i + width / 2 - 0.06, h / 2),
                    connectionstyle="arc3,rad=-0.55",
                    arrowstyle="-|>",
                    mutation_scale=7,
                    lw=1.1,
                    color="#222222",
                    linestyle="-" if it["skip"] == "identity" else "--",
                )
            )
    # Block labels over the boxes; per layer, a bracket spans the block's layers.
    spans: Dict[int, List[int]] = {}
    for i, it in enumerate(items):
        if it.get("block"):
            spans.setdefault(it["block"], []).append(i)
    for block, idx in spans.items():
        a, b = idx[0], idx[-1]
        if per_layer:
            ax.plot([a - width / 2, b + width / 2], [1.55, 1.55], color="#888888", lw=1.0)
        ax.text((a + b) / 2, 1.6, f"block {block}" if per_layer and b > a else f"B{block}",
                ha="center", va="bottom", fontsize=7.5, color="#555555")
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(-2.6 if per_layer else -1.8, 1.9)
    c = cost_lib.count(arch, macro)
    sub = f"{arch.num_layers} layers · {human(c.params)} params · {human(c.madds)} MAdds"
    fig.suptitle(f"{title}\n{sub}" if title else sub, fontsize=11)
    handles = [Patch(facecolor=OP_COLOURS[op], edgecolor="#333333", label=OP_NAMES[op])
               for op in OP_COLOURS]
    handles += [Patch(facecolor=_tint("#777777", KERNEL_TINT[k]), edgecolor="#333333",
                      label=f"kernel {k}×{k}") for k in sorted(KERNEL_TINT)]
    handles.append(Line2D([], [], color="#222222", lw=1.1, label="identity shortcut"))
    if arch.shortcut == "projection":
        handles.append(
            Line2D([], [], color="#222222", lw=1.1, ls="--", label="projection shortcut")
        )
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8,
               frameon=False, handlelength=1.4, columnspacing=1.2)
    return _save(fig, path)
