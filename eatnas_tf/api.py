"""The pipeline from Python (a notebook), on the same code path as `python -m eatnas_tf.run`:

    from eatnas_tf import api
    result = api.run(dataset="folder:/data/photos", run_dir="runs/photos", time_budget="20m")
    result.arch, result.test_accuracy, result.files

Any flag of the command can be given as a keyword (`stage2_candidates=20`,
`target_madds=50e6`, `export=False`, ...); the flags are parsed into the same frozen
`PipelineConfig` the command builds, so a run started here resumes from the command line
and the other way round.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional

from absl import flags


@dataclasses.dataclass(frozen=True)
class Result:
    """The winner of a pipeline run.

    Attributes:
      arch: its architecture (text form); params, madds: its cost.
      test_accuracy, val_accuracy: after the final retraining.
      run_dir: the run directory; report: report.json as a dict.
      files: exported files (SavedModel directory, TFLite files, labels) when exported.
    """

    arch: str
    params: int
    madds: int
    test_accuracy: Optional[float]
    val_accuracy: Optional[float]
    run_dir: str
    report: Dict[str, Any]
    files: List[str]


def _argv(kwargs: Dict[str, Any]) -> List[str]:
    out = ["eatnas_tf.api"]
    for k, v in kwargs.items():
        if v is None:
            continue
        if isinstance(v, bool):
            out.append(f"--{k}" if v else f"--no{k}")
        elif isinstance(v, (list, tuple)):
            out.append(f"--{k}={','.join(str(x) for x in v)}")
        else:
            out.append(f"--{k}={v}")
    return out


def _exported_files(report: Dict[str, Any]) -> List[str]:
    exp = report.get("export") or {}
    root = exp.get("path")
    if not root or not os.path.isdir(root):
        return []
    return sorted(os.path.join(root, n) for n in os.listdir(root))


def run(*, dataset: str, run_dir: str, time_budget: Optional[str] = None,
        **options: Any) -> Result:
    """Runs (or resumes) the pipeline; see the module docstring.

    Raises:
      ValueError: bad options or bad data, with the one line the command would print.
    """
    from eatnas_tf import cli  # imports TensorFlow
    from eatnas_tf.search import eat_pipeline
    from eatnas_tf.search import flags as search_flags

    fv = flags.FlagValues()  # the command's flags, parsed afresh for this call
    search_flags.define_pipeline_flags(fv)
    argv = _argv({"dataset": dataset, "run_dir": run_dir, "time_budget": time_budget,
                  **options})
    try:
        fv(argv)
        cfg = search_flags.pipeline_config_from_flags(fv)
    except (flags.Error, cli.UsageError) as e:
        raise ValueError(str(e).splitlines()[0]) from None
    def exporter(path, opts):  # like the command's: the export package, when it runs
        from export import export_lib  # the [export] extra

        return export_lib.export_run_once(path, opts.qat_epochs, opts.qat_samples)

    report = eat_pipeline.run(cfg, run_dir, allow_change=bool(options.get("allow_flag_change")),
                              verbose=int(options.get("verbose") or 0), exporter=exporter)
    w = report["winner"]
    return Result(arch=w["arch"], params=w["params"], madds=w["madds"],
                  test_accuracy=w.get("test_accuracy"), val_accuracy=w.get("val_acc"),
                  run_dir=run_dir, report=report, files=_exported_files(report))
