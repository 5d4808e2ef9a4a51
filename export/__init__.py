"""TFX-style export of a searched model: versioned SavedModel, TFLite fp32/fp16/int8/QAT,
LiteRT latency and a Mult-Adds check (DESIGN.md §4).

    python -m export --run_dir=DIR [--pareto]
    python -m export --model=M.keras --arch=ARCH --space=fashion_mnist \
        --dataset=fashion_mnist --export_dir=OUT

Modules: `export_lib` (orchestration, `export_run` / `export_artifact` /
`export_keras_file`), `saved_model` (serving signatures), `tflite` (conversion + QAT),
`graph_cost` (MAdds from the converted graph), `report`
(JSON / Markdown), `data` (held-out and representative arrays). LiteRT timing lives
below both this package and `eatnas_tf.epnas`, in `eatnas_tf.measure.latency`.
"""
