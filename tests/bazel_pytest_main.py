"""Runs test files under pytest for Bazel's py_test (the `main` of every //tests target).

    bazel test //tests:all                                       # every test target
    bazel test //tests:test_cost --test_arg=-m --test_arg=slow   # the slow tests instead

Arguments: the test file(s) (from the target's `args`), then any --test_arg values, which
come last and so override the defaults below. The defaults repeat pyproject.toml's pytest
settings (Bazel's runfiles tree holds no pyproject.toml): slow tests deselected, the cache
plugin off (the runfiles tree is read-only), DeprecationWarnings ignored.

Sharding: with `shard_count = N` on a target, Bazel runs N copies, and each one runs every
N-th of the selected tests (so each copy has its own timeout).
"""

import os
import sys

import pytest

_DEFAULTS = [
    "-q",
    "-p", "no:cacheprovider",
    "-m", "not slow",
    "-o", "markers=slow: long tests (minutes); deselected by default, run with -m slow",
    "-W", "ignore::DeprecationWarning",
]


class _Shard:
    """Keeps every `total`-th selected test, starting at `index` (Bazel's test sharding)."""

    def __init__(self, index: int, total: int):
        self.index, self.total = index, total

    @pytest.hookimpl(trylast=True)  # after -m/-k deselection, so shards stay balanced
    def pytest_collection_modifyitems(self, config, items):
        keep = [item for i, item in enumerate(items) if i % self.total == self.index]
        drop = [item for i, item in enumerate(items) if i % self.total != self.index]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep


def main(argv: list[str]) -> int:
    extra, plugins = [], []
    # Bazel gives each test a private writable temp dir; keep pytest's tmp_path there.
    tmp = os.environ.get("TEST_TMPDIR")
    if tmp:
        extra += ["--basetemp", os.path.join(tmp, "pytest")]
    # Bazel reads test cases from this JUnit XML file.
    xml = os.environ.get("XML_OUTPUT_FILE")
    if xml:
        extra += ["--junitxml", xml]
    total = int(os.environ.get("TEST_TOTAL_SHARDS", "1"))
    if total > 1:
        status = os.environ.get("TEST_SHARD_STATUS_FILE")
        if status:  # tells Bazel that this runner shards
            open(status, "a").close()
        plugins.append(_Shard(int(os.environ.get("TEST_SHARD_INDEX", "0")), total))
    code = int(pytest.main([*_DEFAULTS, *extra, *argv], plugins=plugins))
    if total > 1 and code == pytest.ExitCode.NO_TESTS_COLLECTED:
        return 0  # more shards than tests: an empty shard is not a failure
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
