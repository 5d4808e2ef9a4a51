"""One-line error messages for records, logs and CLI output (no third-party imports).

A failed candidate's `reason`, a worker's crash and a skipped export format are shown as a
single line: the exception type and its message with all whitespace (tracebacks from
TensorFlow span many lines) collapsed, cut to `limit` characters.
"""

from __future__ import annotations


def one_line(e: BaseException, limit: int = 300) -> str:
    """`"<ExceptionType>: <message on one line>"`, at most `limit` characters."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:limit]
