#!/bin/sh
# Python interpreter for Bazel's Python targets: the workspace's own venv (.venv, made by
# `make setup`), whose site-packages hold the third-party dependencies. Bazel runs this file
# through a runfiles symlink; resolving it leads back to the source tree, so the workspace
# may be cloned anywhere (and .venv may itself be a symlink).
self=$(readlink -f "$0") || exit 1
root=${self%/third_party/bazel/python/venv_python.sh}
py="$root/.venv/bin/python"
if [ ! -x "$py" ]; then
    echo "error: $py not found: run 'make setup' in $root first" >&2
    exit 1
fi
exec "$py" "$@"
