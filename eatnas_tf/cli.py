"""Shared plumbing of the absl binaries: one-line errors, exit code 2, no traceback.

Library code raises `InvalidArchitectureError`, `UsageError` or `ValueError`; a binary
wraps its `main` with `run(main)` so a user sees `error: <field>: <why>; allowed ...` on
stderr and exit status 2 for bad input, never a traceback.
"""

from __future__ import annotations

import os
import sys
import tempfile

from absl import app, flags

from eatnas_tf.arch.spec import InvalidArchitectureError


class UsageError(ValueError):
    """Bad flag value or run directory; the message is the one line shown to the user."""


USER_ERRORS = (InvalidArchitectureError, UsageError, flags.Error)
EXIT_USAGE = 2


def quiet_import_tensorflow() -> None:
    """Imports TensorFlow with its C++ start-up chatter (CUDA stub probes, absl pre-init
    warnings) kept off stderr, so that a usage error stays one line. Binaries call it before
    importing library modules; the chatter is replayed if the import fails."""
    if "keras" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # CPU machines: no cuInit error lines
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        ok = False
        try:
            import keras  # noqa: F401 - initialises the devices (cuInit probe)
            import tensorflow  # noqa: F401

            ok = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if not ok:
                tmp.seek(0)
                sys.stderr.write(tmp.read().decode(errors="replace"))


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e).splitlines()[0])


def run(main) -> None:
    """`absl.app.run` with flag errors and user errors as one stderr line and exit 2."""

    def wrapped(argv):
        try:
            return main(argv)
        except USER_ERRORS as e:
            fail(str(e).splitlines()[0] if str(e) else type(e).__name__)

    app.run(wrapped, flags_parser=_parse_flags)
