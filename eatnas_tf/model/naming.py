"""The one source of layer names (STYLE.md: names keyed by position in the architecture).

Names never use a flat global index: inserting a layer in block 2 must not rename the
layers of block 5, or weight inheritance by name would break. Blocks and layers count
from 1, as the paper's "blocks 1-7".
"""

STEM_CONV, STEM_BN, STEM_ACT = "stem_conv", "stem_bn", "stem_relu"
HEAD_CONV, HEAD_BN, HEAD_ACT, HEAD_POOL = "head_conv", "head_bn", "head_relu", "head_pool"
HEAD_DROPOUT, LOGITS = "head_dropout", "logits"
AUX_PREFIX, AUX_LOGITS = "aux", "aux_logits"

# Parts of one layer, in order. `sep` has dw + project; `mbN` has all three convs.
EXPAND, DW, PROJECT, SHORTCUT, ADD = "expand", "dw", "project", "shortcut", "add"


def layer_prefix(block: int, layer: int) -> str:
    """`block3_layer2`: block and layer are 1-based positions."""
    return f"block{block}_layer{layer}"


def layer_name(block: int, layer: int, part: str, suffix: str = "") -> str:
    """`block3_layer2_expand`, `block3_layer2_expand_bn`, `block3_layer2_dw_relu`, ..."""
    name = f"{layer_prefix(block, layer)}_{part}"
    return f"{name}_{suffix}" if suffix else name


def parse_layer_name(name: str):
    """(block, layer, rest) for a block layer name, else None (stem, head, aux)."""
    if not name.startswith("block"):
        return None
    try:
        head, rest = name.split("_", 1)
        block = int(head[len("block"):])
        lay, rest = rest.split("_", 1)
        layer = int(lay[len("layer"):])
    except ValueError:
        return None
    return block, layer, rest
