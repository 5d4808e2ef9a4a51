"""Shared plumbing of the absl binaries: one-line errors, exit code 2, no traceback.

Library code raises `InvalidArchitectureError`, `UsageError` or `ValueError`; a binary
wraps its `main` with `run(main)` so a user sees `error: <field>: <why>; allowed ...` on
stderr and exit status 2 for bad input, never a traceback.
"""

from __future__ import annotations

import sys

from absl import app, flags

from eatnas_tf.arch.spec import InvalidArchitectureError


class UsageError(ValueError):
    """Bad flag value or run directory; the message is the one line shown to the user."""


USER_ERRORS = (InvalidArchitectureError, UsageError, flags.Error)
EXIT_USAGE = 2


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
