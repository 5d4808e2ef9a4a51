"""eatnas_tf: Elastic Architecture Transfer NAS (and EcoNAS / EPNAS) on TensorFlow.

Packages: `arch` (encodings, spaces, cost), `model` (Keras builders, weight sharing),
`data`, `train`, `search`, `report`. Top-level modules `cost`, `search`, `demo`, ... are
thin absl binaries.
"""

__version__ = "0.1.0"
