"""Architecture encodings (docs/design.md §2): specs, codecs, search spaces, cost model."""

from eatnas_tf.arch.spec import (  # noqa: F401
    ArchSpec,
    BlockSpec,
    InvalidArchitectureError,
    OPS,
    KERNELS,
    WIDTHS,
    DEPTHS,
    CHANNEL_MODES,
    SHORTCUTS,
    NUM_BLOCKS,
)
