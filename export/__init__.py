"""TFX-style export of a searched model: versioned SavedModel, TFLite fp32/fp16/int8/QAT,
LiteRT latency and a Mult-Adds check (docs/design.md §4).

    python -m export --run_dir=DIR [--pareto]
    python -m export --model=M.keras --arch=ARCH --space=fashion_mnist \
        --dataset=fashion_mnist --export_dir=OUT

Modules, in the order an export runs: `plan` (ExportConfig, ExportPlan, the data read
from the one data layer `eatnas_tf.data.datasets`), `converters` (the table of TFLite
formats, built on `tflite` and `saved_model`), `checks` (parity, accuracy, graph MAdds via
`graph_cost`, latency via `eatnas_tf.measure.latency`, blessing), `publish` (versioned
directories) and `report` (JSON / Markdown); `run_source` reads a search run directory;
`export_lib` puts them together (`export_run`, `export_artifact`, `export_keras_file`,
`export_candidate`, `export_model`).
"""
