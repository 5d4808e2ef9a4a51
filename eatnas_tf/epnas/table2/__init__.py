"""EPNAS' own layer-by-layer search space (Zhou et al., Table 2, §3.2, §3.3, §3.4).

`--strategy=epnas --epnas_space=table2` searches lists of layers instead of the EAT-NAS
7-block encoding (`--epnas_space=eat_blocks`, the default):

    space.py     `Layer`, `LayerArch`, `Table2Space` (grammar, validation, sampling, shapes)
    codec.py     text / JSON forms, canonical hash, one-line errors
    cost.py      analytic params (= Keras `count_params()`), Mult-Adds, bytes moved
    builder.py   the Keras 3 (or tf_keras) functional model, deterministic layer names
    actions.py   scale (F parts), insert with the place distribution D_L (L + 5 values),
                 remove, and the policy's layer tokens
    policy.py    the LSTM controller with this space's action heads
    sharing.py   the parameter dictionary keyed by (layer number, op type)

The rest of the system (runner, evaluation, records) sees a `LayerArch` through the same
few calls as an `ArchSpec`: `arch.codec.to_text / canonical_hash / parse_arch`,
`arch.cost.count`, `model.builder.build_model` and `train.hparams.arch_hparams` dispatch to
the methods of `LayerArch` when they receive one.
"""
