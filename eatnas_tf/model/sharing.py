"""EAT-NAS parameter sharing (paper §3.4, Algorithm 2, Eq. 4/5), layer by layer by name.

A child inherits from its parent wherever the architecture allows, with Keras
`get_weights` / `set_weights` on layers matched by their deterministic names
(`model.naming`):

  * a block layer (`block{b}_layer{l}_*`, its BN and its projection shortcut) is shared
    only when the parent's block b has the same op and kernel size ("If the operation and
    the kernel size of the layer consist with that of the shared model, then we apply
    parameters sharing on this layer");
  * width (Algorithm 2): the overlapping slice of every tensor is copied — conv kernels
    (h, w, c_in, c_out) as `[:, :, :min c_in, :min c_out]`, depthwise kernels
    (k, k, c, 1), BN gamma/beta/moving mean/moving variance as `[:min c]`, dense kernel and
    bias likewise; the rest keeps the child's random initialisation. A layer whose tensor
    count, rank or spatial kernel size differs stays fresh;
  * depth: names are positional, so a deeper child copies the parent's layers that exist
    and keeps the new ones random (Eq. 4); a shallower child copies the first layers (Eq. 5);
  * stem, head, logits and aux layers are always shared by name (sliced where widths
    differ, e.g. a different number of classes after transfer).

    report = inherit(child_model, child_arch, parent_weights, parent_arch)
    report.summary()  # 'copied 52 / sliced 9 / fresh 6 tensors (88% of params inherited)'
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from eatnas_tf.arch.spec import ArchSpec
from eatnas_tf.model import naming

# Per-layer statuses of `InheritReport.layers`.
COPIED = "copied"                          # every tensor taken whole
SLICED = "sliced"                          # at least one tensor taken in part
FRESH = "fresh"                            # the parent has no layer of that name
OP_MISMATCH = "skipped_op_mismatch"        # block op differs (paper §3.4)
KERNEL_MISMATCH = "skipped_kernel_mismatch"  # block kernel size differs (paper §3.4)
SHAPE_MISMATCH = "skipped_shape_mismatch"  # tensor count, rank or spatial size differs


@dataclasses.dataclass
class InheritReport:
    """How much of the child came from the parent.

    `copied` / `sliced` / `fresh` count tensors (a BN layer has 4): taken whole, taken in
    part, not taken. `params_inherited` counts scalar values taken from the parent,
    `params_total` all scalar values of the child's weighted layers. `layers` maps each
    weighted layer to one of the statuses above.
    """

    copied: int = 0
    sliced: int = 0
    fresh: int = 0
    params_inherited: int = 0
    params_total: int = 0
    layers: Dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Share of the child's scalar weights that came from the parent."""
        return self.params_inherited / self.params_total if self.params_total else 0.0

    def summary(self) -> str:
        return (f"copied {self.copied} / sliced {self.sliced} / fresh {self.fresh} tensors "
                f"({100 * self.fraction:.0f}% of params inherited)")

    def as_dict(self) -> Dict[str, Any]:
        """JSON-able form (run records)."""
        d = dataclasses.asdict(self)
        d["fraction"] = self.fraction
        return d


def _block_check(name: str, child: Optional[ArchSpec],
                 parent: Optional[ArchSpec]) -> Optional[str]:
    """None when the layer may be shared, else the skip status (paper §3.4: same op and
    kernel size). Non-block layers and unknown architectures always pass."""
    parsed = naming.parse_layer_name(name)
    if parsed is None or child is None or parent is None:
        return None
    b = parsed[0] - 1
    if not (0 <= b < len(child.blocks) and 0 <= b < len(parent.blocks)):
        return SHAPE_MISMATCH
    cb, pb = child.blocks[b], parent.blocks[b]
    if cb.op != pb.op:
        return OP_MISMATCH
    if cb.kernel != pb.kernel:
        return KERNEL_MISMATCH
    return None


def _overlap(child: np.ndarray, parent: np.ndarray) -> Optional[Tuple[slice, ...]]:
    """The leading slice both tensors share (Algorithm 2), or None when they cannot be
    aligned: different rank, or a convolution's spatial size (h, w) differs."""
    if child.ndim != parent.ndim:
        return None
    if child.ndim == 4 and child.shape[:2] != parent.shape[:2]:
        return None
    return tuple(slice(0, min(c, p)) for c, p in zip(child.shape, parent.shape))


def inherit(child_model, child_arch: Optional[ArchSpec],
            parent_weights: Mapping[str, List[np.ndarray]],
            parent_arch: Optional[ArchSpec] = None) -> InheritReport:
    """Copies the parent's weights into `child_model` in place (see the module docstring).

    Args:
      child_model: the freshly built (randomly initialised) child, Keras 3 or tf_keras.
      child_arch: the child's encoding (None: no op/kernel check).
      parent_weights: `{layer name: layer.get_weights()}` of the trained parent (the
        trainer's `TrainResult.weights`, or `weights_io.load`).
      parent_arch: the parent's encoding (None: no op/kernel check, e.g. a transfer from
        a model whose architecture is unknown; shapes still decide).

    Returns:
      An `InheritReport`.
    """
    report = InheritReport()
    for layer in child_model.layers:
        current = layer.get_weights()
        if not current:
            continue
        report.params_total += sum(int(w.size) for w in current)
        src = parent_weights.get(layer.name)
        status = FRESH if src is None else _block_check(layer.name, child_arch, parent_arch)
        slices = None
        if status is None:
            src = [np.asarray(p) for p in src]
            if len(src) == len(current):
                slices = [_overlap(c, p) for c, p in zip(current, src)]
            if slices is None or any(s is None for s in slices):
                status = SHAPE_MISMATCH
        if status is not None:
            report.fresh += len(current)
            report.layers[layer.name] = status
            continue
        new, whole = [], True
        for c, p, sl in zip(current, src, slices):
            if c.shape == p.shape:
                new.append(p.astype(c.dtype, copy=True))
                report.copied += 1
                report.params_inherited += int(c.size)
                continue
            out = np.array(c, copy=True)
            out[sl] = p[sl]
            new.append(out)
            whole = False
            report.sliced += 1
            report.params_inherited += int(np.prod([s.stop for s in sl]))
        layer.set_weights(new)
        report.layers[layer.name] = COPIED if whole else SLICED
    return report
