"""EPNAS Table 2 ("Layer-by-layer search"): a network as a list of layers.

Table 2 of the paper, the grammar of one layer:

    Layer type            conv2d, dep-sep-conv2d, MaxPool2d, AvgPool2d, add
    Filter width          1, 3, 5, 7
    Pooling width         2, 3
    Channel size          16, 32, 64, 96, 128, 256
    Nonlinear activation  relu, crelu, elu, selu, swish
    Src1 Layer            i for i in range(MAX_LAYERS)
    Src2 Layer            i for i in range(MAX_LAYERS)      (-1: no skip, §3.3)

Nodes and layers. Node 0 is the input image; layer i (1-based) computes node i from
`src1` (its input, any earlier node) and, when `src2 >= 0`, adds node `src2` to its output
(the skip connection of Fig. 3; "Src2 can be -1 to avoid a skip connection"). The network's
output is node L (the last layer), followed by global average pooling and the dense
logits. Layers no path reaches from the output are dead: they are not built and cost
nothing (`live`).

What the paper leaves open, and what this module chooses (docs/fidelity.md):
  * conv / sepconv: stride 1, "same" padding, no bias, then BN, then the activation;
    `channels` is the layer's *output* width, so under crelu (which concatenates relu(x)
    and relu(-x)) the convolution has channels / 2 filters.
  * max / avg pool: `kernel` is the pooling width, stride 2 ("same"): the pools are where
    the network downsamples (no activation, channels kept).
  * add: node src1 + node src2 (src2 required), no weights of its own.
  * merges (add, and every skip) bring both inputs to the deeper input's resolution and
    the main input's channels: an input of another shape goes through a 1×1 conv (stride
    2^k, no bias) + BN, the "adapter". Sizes stay exact: ceil(ceil(n/2)/2) = ceil(n/4).
  * there is no stem: Table 2 lists none, and node 0 (the image) is a valid Src1 / Src2.

    >>> arch = LayerArch((Layer("conv", 0, kernel=3, channels=16, act="relu"),
    ...                   Layer("maxpool", 1, kernel=2),
    ...                   Layer("sepconv", 2, 1, kernel=5, channels=32, act="swish")))
    >>> arch.to_text()
    'conv_k3_c16_relu_src0,maxpool_k2_src1,sepconv_k5_c32_swish_src2_skip1'
"""

from __future__ import annotations

import dataclasses
import random
from typing import Dict, List, Optional, Sequence, Set, Tuple

from eatnas_tf.arch.spec import InvalidArchitectureError

OPS = ("conv", "sepconv", "maxpool", "avgpool", "add")
CONV_OPS = ("conv", "sepconv")
POOL_OPS = ("maxpool", "avgpool")
KERNELS = (1, 3, 5, 7)                     # "Filter width"
POOL_WIDTHS = (2, 3)                       # "Pooling width"
CHANNELS = (16, 32, 64, 96, 128, 256)      # "Channel size"
ACTIVATIONS = ("relu", "crelu", "elu", "selu", "swish")
POOL_STRIDE = 2
#: The grammar's largest network; a `Table2Space` has its own `max_layers` (<= this).
GRAMMAR_MAX_LAYERS = 64
#: The default MAX_LAYERS of a space (the paper gives no number; ENAS' macro space of
#: the same kind has 12 or 24 layers).
MAX_LAYERS = 24


def _allowed(values) -> str:
    return ", ".join(str(v) for v in values)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclasses.dataclass(frozen=True)
class Layer:
    """One Table 2 layer.

    Attributes:
      op: "conv", "sepconv", "maxpool", "avgpool" or "add".
      src1: the input node (0: the image, i: layer i's output), < this layer's number.
      src2: the skip input node added to the output, or -1 for none (add: required).
      kernel: conv / sepconv filter width (1, 3, 5, 7); pools: pooling width (2, 3);
        add: None.
      channels: conv / sepconv output channels; None for pools and add (they keep their
        main input's).
      act: conv / sepconv activation; None for pools and add.
    """

    op: str
    src1: int
    src2: int = -1
    kernel: Optional[int] = None
    channels: Optional[int] = None
    act: Optional[str] = None

    def __post_init__(self):
        if self.op not in OPS:
            raise InvalidArchitectureError(
                f"op: received {self.op!r}; allowed values: {_allowed(OPS)}")
        for f in ("src1", "src2"):
            if not _is_int(getattr(self, f)):
                raise InvalidArchitectureError(
                    f"{f}: received {getattr(self, f)!r}; allowed values: an integer node index")
        conv, pool = self.op in CONV_OPS, self.op in POOL_OPS
        widths = KERNELS if conv else POOL_WIDTHS if pool else (None,)
        if not (self.kernel in widths and (self.kernel is None or _is_int(self.kernel))):
            what = "filter width" if conv else "pooling width" if pool else "kernel"
            raise InvalidArchitectureError(
                f"{self.op} {what}: received {self.kernel!r}; allowed values: "
                f"{_allowed(widths) if conv or pool else 'none'}")
        if conv:
            if not (_is_int(self.channels) and self.channels in CHANNELS):
                raise InvalidArchitectureError(f"{self.op} channels: received {self.channels!r}; "
                                               f"allowed values: {_allowed(CHANNELS)}")
            if self.act not in ACTIVATIONS:
                raise InvalidArchitectureError(f"{self.op} activation: received {self.act!r}; "
                                               f"allowed values: {_allowed(ACTIVATIONS)}")
        else:
            for f in ("channels", "act"):
                if getattr(self, f) is not None:
                    raise InvalidArchitectureError(
                        f"{self.op} {f}: received {getattr(self, f)!r}; allowed values: none "
                        f"({self.op} keeps its input's)")
        if self.op == "add" and self.src2 < 0:
            raise InvalidArchitectureError(
                "add src2: received -1; allowed values: a node index >= 0 (add sums two inputs)")

    @property
    def has_weights(self) -> bool:
        return self.op in CONV_OPS

    @property
    def filters(self) -> Optional[int]:
        """Filters of the convolution (channels / 2 under crelu, see the module docstring)."""
        if self.channels is None:
            return None
        return self.channels // 2 if self.act == "crelu" else self.channels


@dataclasses.dataclass(frozen=True)
class Shape:
    """A node's tensor: `level` stride-2 reductions of the input, `channels` deep."""

    level: int
    channels: int


@dataclasses.dataclass(frozen=True)
class LayerShapes:
    """Layer i's tensors: its main input, the op's output, the merge target and whether
    the main path / the skip need an adapter (1×1 conv + BN) at the merge."""

    main_in: Shape
    op_out: Shape
    out: Shape
    skip_in: Optional[Shape] = None
    adapt_main: bool = False
    adapt_skip: bool = False


@dataclasses.dataclass(frozen=True)
class LayerArch:
    """A Table 2 network: 1 to `GRAMMAR_MAX_LAYERS` layers, every source an earlier node.

    Quacks like an `ArchSpec` where the rest of the system needs it (`to_text`,
    `canonical_hash`, `cost`, `build`, `hparams`, `num_layers`).
    """

    layers: Tuple[Layer, ...]

    def __post_init__(self):
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not 1 <= len(layers) <= GRAMMAR_MAX_LAYERS:
            raise InvalidArchitectureError(
                f"layers: received {len(layers)} layers; allowed values: 1 to "
                f"{GRAMMAR_MAX_LAYERS}")
        for i, layer in enumerate(layers, start=1):
            if not isinstance(layer, Layer):
                raise InvalidArchitectureError(
                    f"layer {i}: received {type(layer).__name__}; allowed values: Layer")
            if not 0 <= layer.src1 < i:
                raise InvalidArchitectureError(
                    f"layer {i} src1: received {layer.src1}; allowed values: 0 to {i - 1}")
            if not -1 <= layer.src2 < i:
                raise InvalidArchitectureError(
                    f"layer {i} src2: received {layer.src2}; allowed values: -1 to {i - 1}")

    # -- structure ------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def live(self) -> Set[int]:
        """Layer numbers (1-based) on a path to the output (node L)."""
        seen: Set[int] = set()
        todo = [len(self.layers)]
        while todo:
            n = todo.pop()
            if n == 0 or n in seen:
                continue
            seen.add(n)
            layer = self.layers[n - 1]
            todo.append(layer.src1)
            if layer.src2 >= 0:
                todo.append(layer.src2)
        return seen

    def shapes(self, in_channels: int) -> Dict[int, LayerShapes]:
        """Every layer's tensors (dead layers included: they are well defined too)."""
        node = {0: Shape(0, in_channels)}
        out: Dict[int, LayerShapes] = {}
        for i, layer in enumerate(self.layers, start=1):
            main = node[layer.src1]
            if layer.op in CONV_OPS:
                op_out = Shape(main.level, layer.channels)
            elif layer.op in POOL_OPS:
                op_out = Shape(main.level + 1, main.channels)
            else:
                op_out = main
            skip = node[layer.src2] if layer.src2 >= 0 else None
            if skip is None:
                ls = LayerShapes(main, op_out, op_out)
            else:
                target = Shape(max(op_out.level, skip.level), op_out.channels)
                ls = LayerShapes(main, op_out, target, skip, adapt_main=op_out != target,
                                 adapt_skip=skip != target)
            out[i] = ls
            node[i] = ls.out
        return out

    # -- what the rest of the system calls ------------------------------------------------
    def to_text(self) -> str:
        from eatnas_tf.epnas.table2 import codec

        return codec.to_text(self)

    def canonical_hash(self) -> str:
        from eatnas_tf.epnas.table2 import codec

        return codec.canonical_hash(self)

    def cost(self, macro):
        from eatnas_tf.epnas.table2 import cost

        return cost.count(self, macro)

    def build(self, macro, **kwargs):
        from eatnas_tf.epnas.table2 import builder

        return builder.build_model(self, macro, **kwargs)

    def hparams(self) -> Dict[str, object]:
        """Flat fields for TensorBoard's HParams table."""
        ops = [layer.op for layer in self.layers]
        return {"arch": self.to_text(), "space": "table2", "layers": len(self.layers),
                "live_layers": len(self.live()),
                **{f"n_{op}": ops.count(op) for op in OPS},
                "skips": sum(layer.src2 >= 0 for layer in self.layers if layer.op != "add")}

    def replace_layer(self, index: int, layer: Layer) -> "LayerArch":
        """A copy with layer `index` (0-based) replaced."""
        layers = list(self.layers)
        layers[index] = layer
        return LayerArch(tuple(layers))


def size_at(image_size: int, level: int) -> int:
    """Spatial size after `level` stride-2 reductions ("same" padding)."""
    s = image_size
    for _ in range(level):
        s = -(-s // POOL_STRIDE)
    return s


@dataclasses.dataclass(frozen=True)
class Table2Space:
    """The values a search may use (subsets of Table 2's) and the macro it builds under.

    Attributes:
      macro: input size, channels and classes (`arch.cost.MacroSpec`; strides unused).
      max_layers: MAX_LAYERS (Src1 / Src2 range; the insert action stops there).
      init_layers: layers of a randomly generated initial network (the paper starts "from
        a randomly generated architecture").
      ops, kernels, pool_widths, channels, activations: allowed values.
      name: for messages and reports.
    """

    macro: object
    max_layers: int = MAX_LAYERS
    init_layers: int = 8
    ops: Tuple[str, ...] = OPS
    kernels: Tuple[int, ...] = KERNELS
    pool_widths: Tuple[int, ...] = POOL_WIDTHS
    channels: Tuple[int, ...] = CHANNELS
    activations: Tuple[str, ...] = ACTIVATIONS
    name: str = "table2"

    def __post_init__(self):
        for f, grammar in (("ops", OPS), ("kernels", KERNELS), ("pool_widths", POOL_WIDTHS),
                           ("channels", CHANNELS), ("activations", ACTIVATIONS)):
            vals = tuple(getattr(self, f))
            object.__setattr__(self, f, vals)
            bad = [v for v in vals if v not in grammar]
            if bad or not vals:
                raise InvalidArchitectureError(
                    f"table2 {f}: received {list(vals)}; allowed values: a non-empty subset "
                    f"of {_allowed(grammar)}")
        if not (_is_int(self.max_layers) and 1 <= self.max_layers <= GRAMMAR_MAX_LAYERS):
            raise InvalidArchitectureError(f"table2 max_layers: received {self.max_layers!r}; "
                                           f"allowed values: 1 to {GRAMMAR_MAX_LAYERS}")
        if not (_is_int(self.init_layers) and 1 <= self.init_layers <= self.max_layers):
            raise InvalidArchitectureError(f"table2 init_layers: received {self.init_layers!r}; "
                                           f"allowed values: 1 to max_layers ({self.max_layers})")
        if not any(op != "add" for op in self.ops):
            raise InvalidArchitectureError("table2 ops: received only add; allowed values: at "
                                           "least one of conv, sepconv, maxpool, avgpool")

    # -- validation -----------------------------------------------------------------------
    def violations(self, arch: LayerArch) -> List[str]:
        out = []
        if not isinstance(arch, LayerArch):
            return [f"arch: received {type(arch).__name__}; allowed values: a Table 2 layer list"]
        if arch.num_layers > self.max_layers:
            out.append(f"layers: {arch.num_layers} > max_layers {self.max_layers}")
        for i, layer in enumerate(arch.layers, start=1):
            checks = (("op", layer.op, self.ops),
                      ("kernel", layer.kernel, self.kernels if layer.op in CONV_OPS
                       else self.pool_widths if layer.op in POOL_OPS else (None,)),
                      ("channels", layer.channels,
                       self.channels if layer.op in CONV_OPS else (None,)),
                      ("act", layer.act, self.activations if layer.op in CONV_OPS else (None,)))
            for f, v, allowed in checks:
                if v not in allowed:
                    out.append(f"layer {i} {f}: {v!r} not in {list(allowed)}")
        return out

    def contains(self, arch) -> bool:
        return not self.violations(arch)

    def validate(self, arch: LayerArch) -> LayerArch:
        v = self.violations(arch)
        if v:
            raise InvalidArchitectureError(f"space {self.name}: {v[0]}")
        return arch

    # -- cost -----------------------------------------------------------------------------
    def cost(self, arch: LayerArch):
        return arch.cost(self.macro)

    # -- sampling -------------------------------------------------------------------------
    def random_layer(self, rng: random.Random, index: int, op: Optional[str] = None) -> Layer:
        """A random layer number `index` (1-based): src1 the previous node with
        probability 3/4, else any earlier one ("randomly wired", [48]); a skip with
        probability 1/2."""
        op = op or rng.choice(self.ops)
        src1 = index - 1 if rng.random() < 0.75 else rng.randrange(index)
        src2 = rng.randrange(index) if (op == "add" or rng.random() < 0.5) else -1
        if op in CONV_OPS:
            return Layer(op, src1, src2, rng.choice(self.kernels), rng.choice(self.channels),
                         rng.choice(self.activations))
        if op in POOL_OPS:
            return Layer(op, src1, src2, rng.choice(self.pool_widths))
        return Layer(op, src1, src2)

    def sample(self, rng: random.Random, num_layers: Optional[int] = None) -> LayerArch:
        """A random network of `num_layers` (default `init_layers`) layers; the first one
        is a convolution where the space has one (an image straight into add is legal
        but useless)."""
        n = num_layers or self.init_layers
        convs = [op for op in self.ops if op in CONV_OPS]
        layers = [self.random_layer(rng, 1, rng.choice(convs) if convs else None)]
        for i in range(2, n + 1):
            layers.append(self.random_layer(rng, i))
        return LayerArch(tuple(layers))


def arch_fields(layers: Sequence[Layer]) -> List[Tuple]:
    """(op, kernel, channels, act) of each layer: what an action may change."""
    return [(layer.op, layer.kernel, layer.channels, layer.act) for layer in layers]
