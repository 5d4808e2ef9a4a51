"""The lock files (requirements*.lock) read for one Python version, markers evaluated:
shared by the install and the MediaPipe tests."""

import os
import re

from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def marker_env(python):
    return {"python_version": python, "python_full_version": python + ".0",
            "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "os_name": "posix", "extra": ""}


def lock_pins(name, python):
    """{normalized name: version} of a lock file for one Python (markers evaluated)."""
    pins = {}
    with open(os.path.join(ROOT, name)) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("-r "):
                pins.update(lock_pins(line[3:].strip(), python))
                continue
            req = Requirement(line)
            if req.marker and not req.marker.evaluate(marker_env(python)):
                continue
            (op, version), = [(s.operator, s.version) for s in req.specifier]
            assert op == "==", line
            assert norm(req.name) not in pins, f"{name}: {req.name} pinned twice for {python}"
            pins[norm(req.name)] = version
    return pins
