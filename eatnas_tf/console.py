"""Console scripts (`pip install .` puts them on PATH): each runs its binary module as
`__main__`, exactly as `python -m MODULE` does, so flags, output and exit codes are the same.

    eatnas-search         python -m eatnas_tf.search
    eatnas-transfer       python -m eatnas_tf.transfer
    eatnas-retrain        python -m eatnas_tf.retrain
    eatnas-export         python -m export
    eatnas-cost           python -m eatnas_tf.cost
    eatnas-calibrate      python -m eatnas_tf.calibrate
    eatnas-demo           python -m eatnas_tf.demo
    eatnas-run            python -m eatnas_tf.run
    eatnas-latency-table  python -m eatnas_tf.latency_table

One addition, so that an installed wheel works outside the checkout: the flagfiles of
`flags/` ship inside the package (`eatnas_tf/flagfiles/`, a symlink to `../flags` in the
checkout, copies in the wheel). A `--flagfile=flags/NAME.cfg` (or `--flagfile=NAME.cfg`)
that does not exist relative to the working directory is read from there; its nested
`--flagfile=flags/...` includes resolve by the same rule, and its lines are put in place of
the argument, as absl itself does. A flagfile that exists where it is named is left to absl
untouched, so in the checkout nothing changes.
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import sys
from typing import List, Optional, Sequence

FLAGFILE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flagfiles")
_CHECKOUT_PREFIX = "flags"


def packaged_flagfile(path: str) -> Optional[str]:
    """The packaged copy standing in for `path` (`flags/NAME` or `NAME`), or None."""
    if os.path.isabs(path) or os.path.exists(path):
        return None
    parts = os.path.normpath(path).split(os.sep)
    if len(parts) == 2 and parts[0] == _CHECKOUT_PREFIX:
        parts = parts[1:]
    if len(parts) != 1 or parts[0] in (os.curdir, os.pardir):
        return None
    candidate = os.path.join(FLAGFILE_DIR, parts[0])
    return candidate if os.path.isfile(candidate) else None


def _is_directive(arg: str) -> bool:
    return arg.startswith(("--flagfile=", "-flagfile=")) or arg in ("--flagfile", "-flagfile")


def _lines(path: str, stack: List[str]) -> List[str]:
    """The flag lines of a packaged flagfile, nested includes expanded (absl's rules: blank
    lines and lines starting with # or // skipped, each other line one argument)."""
    if path in stack:  # absl warns and skips a circular include; so do we
        print(f"Warning: Hit circular flagfile dependency. Ignoring flagfile: {path}",
              file=sys.stderr)
        return []
    stack.append(path)
    out: List[str] = []
    with open(path) as f:
        for line in f:
            if line.isspace() or line.startswith(("#", "//")):
                continue
            if _is_directive(line) and "=" in line:
                name = os.path.expanduser(line.strip().split("=", 1)[1])
                packaged = packaged_flagfile(name)
                if packaged:
                    out.extend(_lines(packaged, stack))
                else:
                    out.append(f"--flagfile={name}")  # there, or absl's own error
            else:
                out.append(line.strip())
    stack.pop()
    return out


def resolve_flagfiles(argv: Sequence[str]) -> List[str]:
    """argv with each `--flagfile` that is missing here but packaged replaced by its lines."""
    out = [argv[0]] if argv else []
    rest = list(argv[1:])
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            out.append(arg)
            out.extend(rest)
            break
        if _is_directive(arg):
            if "=" in arg:
                name = arg.split("=", 1)[1]
            elif rest:
                name = rest.pop(0)
            else:
                out.append(arg)  # absl's "--flagfile with no argument"
                continue
            packaged = packaged_flagfile(os.path.expanduser(name))
            if packaged:
                out.extend(_lines(packaged, []))
            else:
                out.append(f"--flagfile={name}")
        else:
            out.append(arg)
    return out


def run_module(module: str, script: str) -> None:
    """Runs `module` as `__main__` with this process's argv (flagfiles resolved)."""
    if importlib.util.find_spec(module) is None:
        print(f"error: {script}: module {module} is not in this install of eatnas_tf",
              file=sys.stderr)
        sys.exit(2)
    sys.argv = resolve_flagfiles(sys.argv)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _entry(module: str, script: str):
    def main() -> None:
        run_module(module, script)

    main.__name__ = script.replace("-", "_")
    main.__doc__ = f"`{script}`: `python -m {module}`."
    return main


# Console script -> module (pyproject.toml [project.scripts] points at these functions).
SCRIPTS = {
    "eatnas-run": "eatnas_tf.run",
    "eatnas-search": "eatnas_tf.search",
    "eatnas-transfer": "eatnas_tf.transfer",
    "eatnas-retrain": "eatnas_tf.retrain",
    "eatnas-export": "export",
    "eatnas-cost": "eatnas_tf.cost",
    "eatnas-calibrate": "eatnas_tf.calibrate",
    "eatnas-demo": "eatnas_tf.demo",
    "eatnas-latency-table": "eatnas_tf.latency_table",
}

run = _entry("eatnas_tf.run", "eatnas-run")
search = _entry("eatnas_tf.search", "eatnas-search")
transfer = _entry("eatnas_tf.transfer", "eatnas-transfer")
retrain = _entry("eatnas_tf.retrain", "eatnas-retrain")
export = _entry("export", "eatnas-export")
cost = _entry("eatnas_tf.cost", "eatnas-cost")
calibrate = _entry("eatnas_tf.calibrate", "eatnas-calibrate")
demo = _entry("eatnas_tf.demo", "eatnas-demo")
latency_table = _entry("eatnas_tf.latency_table", "eatnas-latency-table")
