"""The TFLite converters as a table: one entry per format, `name -> Converter`.

Every entry turns (plan, Keras model, export data) into the file's bytes plus facts for
the report (the QAT entry's fine-tuning history); the conversions themselves are in
`tflite.py`. Every file takes the app's raw uint8 RGB pixels (`ServingSpec.app_shape`)
and returns float32 logits. A new format is one function and one row:

    CONVERTERS["fp32"].convert(plan, model, data)   # Converted(blob=b"TFL3...", facts={})
    CONVERTERS["fp32"].filename                      # "model_fp32.tflite"
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict

from export import tflite as tflite_lib
from export.plan import ExportData, ExportPlan


@dataclasses.dataclass(frozen=True)
class Converted:
    """One converted file: its bytes and what the report should say about making it."""

    blob: bytes
    facts: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Converter:
    """A format: its file name and the function making it."""

    name: str
    filename: str
    convert: Callable[[ExportPlan, Any, ExportData], Converted]


def _fp32(plan: ExportPlan, model, data: ExportData) -> Converted:
    return Converted(tflite_lib.convert_float(model, data.spec))


def _fp16(plan: ExportPlan, model, data: ExportData) -> Converted:
    return Converted(tflite_lib.convert_float(model, data.spec, fp16=True))


def _int8(plan: ExportPlan, model, data: ExportData) -> Converted:
    return Converted(tflite_lib.convert_int8(model, data.spec, data.x_rep, plan.config.int8_io),
                     {"representative_samples": int(len(data.x_rep))})


def _qat(plan: ExportPlan, model, data: ExportData) -> Converted:
    qat_model = tflite_lib.build_qat_model(model, plan.arch, plan.macro, image_size=plan.size)
    hist = tflite_lib.finetune_qat(qat_model, data.x_qat, data.y_qat, data.spec, plan.config.qat)
    return Converted(tflite_lib.convert_qat(qat_model, data.spec, plan.config.int8_io,
                                            representative=data.x_rep),
                     {"qat_history": hist, "qat_samples": int(len(data.y_qat)),
                      "representative_samples": int(len(data.x_rep))})


CONVERTERS: Dict[str, Converter] = {
    "fp32": Converter("fp32", tflite_lib.FILENAMES["fp32"], _fp32),
    "fp16": Converter("fp16", tflite_lib.FILENAMES["fp16"], _fp16),
    "int8": Converter("int8", tflite_lib.FILENAMES["int8"], _int8),
    "qat": Converter("qat", tflite_lib.FILENAMES["qat"], _qat),
}
assert tuple(CONVERTERS) == tflite_lib.FORMATS
