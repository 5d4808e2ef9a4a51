"""`--dataset` forms: the built-in names and the user's own data.

    fashion_mnist | mnist | cifar10 | imagenet2012 | digits   built-in (datasets.py)
    folder:DIR                  one sub-folder per class (folder.py)
    tfrecord:GLOB               tf.Example records, TFDS / TF-Slim / TFX convention (tfrecord.py)
    tfds:NAME[/CONFIG][:VERSION]  a TFDS image-classification dataset already prepared in
                                `data_dir`; nothing is downloaded (tfds_source.py)

`parse_dataset(spec)` turns the string into a `DatasetSpec` or raises ValueError with one
line listing the allowed forms. `DataConfig` stays keyed by the string (hashable).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Optional

BUILTIN = ("cifar10", "imagenet2012", "fashion_mnist", "mnist", "digits")
KINDS = ("builtin", "folder", "tfrecord", "tfds")
FORMS = BUILTIN + ("folder:DIR", "tfrecord:GLOB", "tfds:NAME[/CONFIG][:VERSION]")
_TFDS = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)(?:/(?P<config>[A-Za-z0-9_.+-]+))?"
                   r"(?::(?P<version>[0-9]+\.[0-9*]+\.[0-9*]+))?$")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A parsed `--dataset` value.

    Attributes:
      kind: one of `KINDS`.
      location: the folder (absolute, `~` expanded) or the glob; None for builtin / tfds.
      name: the built-in or tfds name; None for folder / tfrecord.
      config: the tfds builder config, or None.
      version: the tfds version, or None.
    """

    kind: str
    location: Optional[str] = None
    name: Optional[str] = None
    config: Optional[str] = None
    version: Optional[str] = None

    @property
    def user(self) -> bool:
        """True for the user's own data (folder, tfrecord, tfds:)."""
        return self.kind != "builtin"

    @property
    def tfds_name(self) -> str:
        """`name[/config][:version]` as `tfds.builder` takes it."""
        s = self.name + (f"/{self.config}" if self.config else "")
        return s + (f":{self.version}" if self.version else "")


def _bad(spec, why: str = "") -> ValueError:
    extra = f" ({why})" if why else ""
    return ValueError(f"dataset: received {spec!r}{extra}; allowed values: {', '.join(FORMS)}")


def parse_dataset(spec: str) -> DatasetSpec:
    """The `DatasetSpec` of a `--dataset` value (see the module docstring).

    Raises:
      ValueError: one line naming the value and the allowed forms.
    """
    if not isinstance(spec, str):
        raise _bad(spec)
    if spec in BUILTIN:
        return DatasetSpec("builtin", name=spec)
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in KINDS[1:]:
        raise _bad(spec)
    rest = rest.strip()
    if not rest:
        what = {"folder": "directory", "tfrecord": "glob", "tfds": "name"}[kind]
        raise _bad(spec, f"{kind}: needs a {what}")
    if kind == "folder":
        return DatasetSpec("folder", location=os.path.abspath(os.path.expanduser(rest)))
    if kind == "tfrecord":
        return DatasetSpec("tfrecord", location=os.path.expanduser(rest))
    m = _TFDS.match(rest)
    if not m:
        raise _bad(spec, "tfds: NAME is lower_case, CONFIG after '/', VERSION like 3.0.2 after ':'")
    return DatasetSpec("tfds", name=m["name"], config=m["config"], version=m["version"])
