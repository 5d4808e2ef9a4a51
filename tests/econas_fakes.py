"""A stand-in for the runner in EcoNAS strategy tests: no training, accuracies from the
architecture hash (growing with epochs), optional failures."""

from eatnas_tf.arch import codec
from eatnas_tf.record import CandidateRecord


def drive(strategy, fail_ids=()):
    """Plays the runner until the strategy finishes; returns the records it observed."""
    out = []
    while not strategy.finished():
        p = strategy.propose()
        if p is None:
            break
        h = codec.canonical_hash(p.arch)
        cid = len(out)
        acc = 0.3 + 0.5 * (int(h, 16) % 997) / 997 + 0.01 * (p.epochs or 0)
        ok = cid not in fail_ids
        rec = CandidateRecord(id=cid, arch=codec.to_text(p.arch), hash=h, origin=p.origin,
                              status="ok" if ok else "failed", val_acc=acc if ok else None,
                              score=acc if ok else None, epochs=p.epochs,
                              continue_from=p.continue_from,
                              resumed_from_epoch=(p.info.get("from_epochs") or 0),
                              info=dict(p.info))
        out.append(rec)
        strategy.observe(rec)
    return out
