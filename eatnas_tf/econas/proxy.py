"""EcoNAS reduced settings ("proxies"): `(c, r, s, e)` named as the paper names them.

A proxy `c{C}r{R}s{S}e{E}` (EcoNAS §3.1, Table 1) reduces

  c  the channels: level C in 0..4 divides the network's channels by about sqrt(2)^C
     (c4 = channels / 4);
  r  the input resolution: level R in 0..4 divides the image side by about sqrt(2)^R
     (r4 = side / 4);
  s  the training samples: level S in 0..3 keeps 1, 1/2, 1/4, 1/8 of them (s0 = all);
  e  the training epochs: E itself (e60 = 60 epochs). A name without `e` (the paper's
     Table 5: "c4r2s0") keeps the epochs of the training config it is applied to.

    >>> p = Proxy.parse("c4r4s0e60")
    >>> p.c, p.r, p.s, p.e, str(p)
    (4, 4, 0, 60, 'c4r4s0e60')
    >>> Proxy.parse("$c_4r_4s_0e_{60}$") == p    # LaTeX as printed in the paper
    True

Values (Table 1). The paper's rule: level x maps a base value v0 to v0 / sqrt(2)^x, taken
as it is when it is an integer, otherwise rounded to the nearest multiple of 4. This
reproduces nine of Table 1's ten c/r entries for CIFAR-10 (c0 = 36 channels, r0 = 32);
the table itself has c4 = 8 where the rule gives 9, so `PAPER_TABLE1` holds the printed
values and `reduce_value` the rule. Our bases are smaller (stem 16 on Fashion-MNIST, side
28 or 8) than the paper's ever get, so below 8 the rule rounds to the nearest integer
instead of a multiple of 4 (otherwise c3 and c4 of a 16-channel stem would both be 4).

Channels in our search space (`arch.spec`). The paper's c is "the number of channels in
the initial convolutional cell"; everything after it scales with it. Our equivalent is the
stem: in the `relative` channel mode every block's channels are `int(previous × width)`
starting from the stem, so reducing the stem reduces every block by the same factor (up to
`int` truncation) and the widths — the searched part — stay as they are. The 1×1 head
conv (1280 / 256 / 128 channels) is reduced by the same level. The `mbv2` channel mode
has fixed per-block bases that an `ArchSpec` cannot scale, so a c > 0 proxy refuses it
(ValueError). A reduction that leaves a block with 0 channels is refused too: callers
draw architectures that survive every proxy they use (`reducible`).

Cost (EcoNAS Fig. 8's x axis, inverted): MAdds of the reduced model at the reduced
resolution × training samples × epochs, i.e. the forward multiply-adds of one training
run; `speedup` is a reference setting's cost over a proxy's.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Dict, Optional, Tuple

from eatnas_tf.arch import cost as cost_lib
from eatnas_tf.arch.spec import ArchSpec, InvalidArchitectureError
from eatnas_tf.data.datasets import DataConfig
from eatnas_tf.train.config import TrainConfig

MAX_LEVEL = {"c": 4, "r": 4, "s": 3}
SAMPLE_RATIOS = (1.0, 0.5, 0.25, 0.125)  # Table 1, row s
# Table 1 (CIFAR-10): c = channels of the initial cell, r = image side; e = epochs tried.
PAPER_TABLE1 = {"c": (36, 24, 18, 12, 8), "r": (32, 24, 16, 12, 8), "s": SAMPLE_RATIOS,
                "e": (30, 60, 90, 120)}
# Every concrete setting named in the paper's tables and text (Tables 4, 5, A1; §3, §4.1,
# A4, A5.1). Table 5's names have no e: they keep the method's own epochs.
PAPER_NAMES = (
    "c0r0s0e600", "c0r0s0e30", "c0r0s0e20", "c1r0s0e25", "c4r4s0e35", "c3r2s1e60",
    "c4r4s0e60", "c2r0s0", "c4r2s0", "c0r0s0", "c2r2s0", "c4r4s0",
    "c1r0s0e30", "c2r0s0e30", "c3r0s0e30", "c4r0s0e30",
)

_NAME = re.compile(r"^c(\d+)r(\d+)s(\d+)(?:e(\d+))?$")
_FORM = "cCrRsS[eE], e.g. c4r4s0e60 (C, R in 0..4, S in 0..3, E >= 1 epochs)"


def _normalise(name: str) -> str:
    # Accept the paper's LaTeX ($c_4r_4s_0e_{60}$), spaces and capitals,
    # and its tuple form "(c_0, r_0, s_0, e_{600})" (§3.1).
    return re.sub(r"[\s$_{}\\(),]", "", name).lower()


@dataclasses.dataclass(frozen=True)
class Proxy:
    """A reduced setting: levels c, r, s (0 = not reduced) and epochs e (None: keep)."""

    c: int = 0
    r: int = 0
    s: int = 0
    e: Optional[int] = None

    def __post_init__(self):
        for f, hi in MAX_LEVEL.items():
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
                raise ValueError(f"proxy {f}: received {v!r}; allowed values: 0..{hi} "
                                 "(EcoNAS Table 1)")
        if self.e is not None and (isinstance(self.e, bool) or not isinstance(self.e, int)
                                   or self.e < 1):
            raise ValueError(f"proxy e: received {self.e!r}; allowed values: epochs >= 1")

    # -- names ---------------------------------------------------------------------------
    @classmethod
    def parse(cls, name: str) -> "Proxy":
        """`c4r4s0e60`, `c4r2s0` (epochs kept) or the LaTeX `$c_4r_4s_0e_{60}$`.

        Raises:
          ValueError: one line naming the bad part and the allowed form.
        """
        if isinstance(name, Proxy):
            return name
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"proxy: received {name!r}; allowed form: {_FORM}")
        m = _NAME.match(_normalise(name))
        if not m:
            raise ValueError(f"proxy: received {name!r}; allowed form: {_FORM}")
        c, r, s, e = m.groups()
        for f, v in (("c", c), ("r", r), ("s", s)):
            if int(v) > MAX_LEVEL[f]:
                raise ValueError(f"proxy {f}: received {f}{v} in {name!r}; allowed values: "
                                 f"{f}0..{f}{MAX_LEVEL[f]} (EcoNAS Table 1)")
        if e is not None and int(e) < 1:
            raise ValueError(f"proxy e: received e{e} in {name!r}; allowed values: epochs >= 1")
        return cls(int(c), int(r), int(s), int(e) if e is not None else None)

    @property
    def name(self) -> str:
        return f"c{self.c}r{self.r}s{self.s}" + (f"e{self.e}" if self.e is not None else "")

    def __str__(self) -> str:
        return self.name

    def with_epochs(self, e: Optional[int]) -> "Proxy":
        return dataclasses.replace(self, e=e)

    # -- factors -------------------------------------------------------------------------
    @property
    def sample_ratio(self) -> float:
        return SAMPLE_RATIOS[self.s]

    @property
    def nominal_speedup(self) -> float:
        """The paper's "around 2^(c+r+s)" FLOPs reduction at equal epochs."""
        return 2.0 ** (self.c + self.r + self.s)

    def channels(self, base: int) -> int:
        return reduce_value(base, self.c)

    def resolution(self, base: int) -> int:
        return reduce_value(base, self.r)


def reduce_value(v0: int, level: int) -> int:
    """Table 1's rule: v0 / sqrt(2)^level, kept when an integer, else the nearest multiple
    of 4 (the nearest integer below 8; see the module docstring)."""
    if level == 0:
        return int(v0)
    t = v0 / math.sqrt(2.0) ** level
    if abs(t - round(t)) < 1e-9:
        return max(1, int(round(t)))
    if t >= 8:
        return int(4 * math.floor(t / 4 + 0.5))
    return max(1, int(math.floor(t + 0.5)))


def paper_value(factor: str, level: int) -> float:
    """Table 1's printed value for CIFAR-10 (c: channels, r: side, s: ratio, e: epochs)."""
    return PAPER_TABLE1[factor][level]


# -- applying a proxy ---------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Reduced:
    """What a proxy turns (arch, data, train) into, plus its cost figures."""

    proxy: Proxy
    arch: ArchSpec
    data: DataConfig
    train: TrainConfig

    def describe(self) -> Dict[str, Any]:
        return {"proxy": self.proxy.name, "stem": self.arch.stem, "head": self.arch.head,
                "image_size": self.data.size, "sample_fraction": self.data.sample_fraction,
                "max_train_examples": self.data.max_train_examples,
                "epochs": self.train.epochs}


def reduce_arch(proxy: Proxy, arch: ArchSpec) -> ArchSpec:
    """The architecture with its channels reduced by level c (see the module docstring).

    Raises:
      ValueError: `mbv2` channel mode with c > 0, or a block reduced to 0 channels.
    """
    if proxy.c == 0:
        return arch
    if arch.channel_mode != "relative":
        raise ValueError(f"proxy c{proxy.c}: channel_mode {arch.channel_mode!r} has fixed "
                         "per-block channels; allowed values: channel_mode 'relative' (or c0)")
    try:
        return dataclasses.replace(arch, stem=proxy.channels(arch.stem),
                                   head=proxy.channels(arch.head))
    except InvalidArchitectureError as e:
        raise ValueError(f"proxy c{proxy.c}: stem {arch.stem} -> {proxy.channels(arch.stem)} "
                         f"leaves {e}") from None


def reduce_data(proxy: Proxy, data: DataConfig) -> DataConfig:
    """Resolution level r of the config's image side; sample level s of its training part
    (also of `max_train_examples`, which caps the part after sampling); cutout scaled with
    the resolution (EcoNAS A5.2, item 3).

    With r > 0 the training images are padded and cropped at full size, then resized
    (`DataConfig.crop_then_resize`; A5.2 item 3 "The images are resized to reduced
    resolution after padding and random cropping"); the cutout, applied after the resize,
    has the reduced length."""
    kw: Dict[str, Any] = {}
    if proxy.r:
        size = proxy.resolution(data.size)
        kw["image_size"] = size
        kw["cutout_length"] = max(1, int(round(data.cutout_length * size / data.size)))
        kw["crop_then_resize"] = True
    if proxy.s:
        kw["sample_fraction"] = data.sample_fraction * proxy.sample_ratio
        if data.max_train_examples is not None:
            kw["max_train_examples"] = max(1, int(math.floor(
                data.max_train_examples * proxy.sample_ratio)))
    return dataclasses.replace(data, **kw) if kw else data


def reduce_train(proxy: Proxy, train: TrainConfig) -> TrainConfig:
    """Epochs e (the LR schedule then runs its whole course in the reduced epochs, as in
    EcoNAS A5.2, item 1, because the trainer's schedules are set by `epochs`)."""
    if proxy.e is None or proxy.e == train.epochs:
        return train
    warm = min(train.warmup_epochs, max(proxy.e - 1, 0)) if train.warmup_epochs else 0.0
    return train.replace(epochs=proxy.e, warmup_epochs=warm)


def apply(proxy, arch: ArchSpec, data: DataConfig, train: TrainConfig) -> Reduced:
    """The reduced (arch, data, train) of `proxy` (a `Proxy` or its name)."""
    proxy = Proxy.parse(proxy)
    return Reduced(proxy, reduce_arch(proxy, arch), reduce_data(proxy, data),
                   reduce_train(proxy, train))


def reducible(arch: ArchSpec, proxies) -> bool:
    """True when every proxy in `proxies` can reduce `arch`."""
    try:
        for p in proxies:
            reduce_arch(Proxy.parse(p), arch)
    except ValueError:
        return False
    return True


def training_cost(madds: int, samples: int, epochs: int) -> float:
    """EcoNAS' proxy cost: MAdds × training samples × epochs (forward multiply-adds)."""
    return float(madds) * float(samples) * float(epochs)


def cost(proxy, arch: ArchSpec, macro: cost_lib.MacroSpec, num_train: int,
         epochs: int) -> Tuple[float, int, int]:
    """(cost, madds, samples) of training `arch` under `proxy` without building anything.

    `macro` is the reference macro (full image size), `num_train` the reference training
    samples and `epochs` the reference epochs (used when the proxy has no e).
    """
    proxy = Proxy.parse(proxy)
    reduced = reduce_arch(proxy, arch)
    size = proxy.resolution(macro.image_size)
    madds = cost_lib.count(reduced, macro.with_(image_size=size)).madds
    samples = max(1, int(math.floor(num_train * proxy.sample_ratio)))
    e = proxy.e if proxy.e is not None else epochs
    return training_cost(madds, samples, e), madds, samples
