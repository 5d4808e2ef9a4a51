"""The offspring architecture generator (EAT-NAS paper §3.5, Algorithm 3).

The transformation perturbs every block "homogeneously and slightly": in each of the 7
blocks one of the five fields (op, kernel, skip, width, depth) is picked at random and
replaced by a different value allowed by the space. The same function mutates the best
model of a tournament (Alg. 1, line 10) and seeds the large task's population from the
basic model (elastic transfer).

A transformed architecture that breaks a space constraint (layer count, total expansion,
minimum channels) is redrawn, so every child is valid before anything is built.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable, Iterable, List, Optional

from eatnas_tf.arch import codec
from eatnas_tf.arch.space import ConstraintViolation, SearchSpace
from eatnas_tf.arch.spec import BLOCK_FIELDS, ArchSpec, BlockSpec, InvalidArchitectureError

FIELDS = BLOCK_FIELDS


def transform_block(block: BlockSpec, space: SearchSpace, rng: random.Random) -> BlockSpec:
    """One field of `block`, chosen uniformly, set to another value allowed by `space`."""
    values = space.field_values()
    fields = [f for f in FIELDS if any(v != getattr(block, f) for v in values[f])]
    if not fields:
        return block
    field = rng.choice(fields)
    choices = [v for v in values[field] if v != getattr(block, field)]
    return dataclasses.replace(block, **{field: rng.choice(choices)})


def transform(arch: ArchSpec, space: SearchSpace, rng: random.Random,
              max_tries: int = 1000) -> ArchSpec:
    """Algorithm 3: every block changes exactly one field; the result lies in `space`.

    `arch` itself may come from another space (elastic transfer): its blocks are carried
    over and the result takes this space's stem, head and channel mode.
    """
    for _ in range(max_tries):
        try:
            child = space.make(transform_block(b, space, rng) for b in arch.blocks)
        except InvalidArchitectureError:
            continue
        if space.contains(child):
            return child
    raise ConstraintViolation(
        f"space {space.name}: no valid offspring of {codec.to_text(arch)} in {max_tries} draws")


def offspring(basic: ArchSpec, space: SearchSpace, n: int, rng: random.Random,
              seen: Optional[Iterable[str]] = None, max_tries: int = 100) -> List[ArchSpec]:
    """`n` distinct offspring of `basic` (elastic transfer's initial population), none of
    them equal to an architecture whose canonical hash is in `seen`."""
    hashes = set(seen or ())
    out: List[ArchSpec] = []
    for _ in range(n):
        child = novel(lambda: transform(basic, space, rng), hashes, max_tries)
        hashes.add(codec.canonical_hash(child))
        out.append(child)
    return out


def novel(draw: Callable[[], ArchSpec], seen, max_tries: int = 100) -> ArchSpec:
    """The first of up to `max_tries` draws whose hash is not in `seen` (else the last
    draw: the caller reuses the earlier result instead of training it twice)."""
    child = draw()
    for _ in range(max_tries - 1):
        if codec.canonical_hash(child) not in seen:
            return child
        child = draw()
    return child
