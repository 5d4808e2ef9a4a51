"""Architecture encodings (docs/design.md §2): specs, codecs, search spaces, cost model."""

from eatnas_tf.arch.spec import (  # noqa: F401
    CHANNEL_MODES,
    DEPTHS,
    KERNELS,
    NUM_BLOCKS,
    OPS,
    SHORTCUTS,
    WIDTHS,
    ArchSpec,
    BlockSpec,
    InvalidArchitectureError,
)
