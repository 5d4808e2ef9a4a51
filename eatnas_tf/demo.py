"""The offline demo (README's main job): `eatnas_tf.run` on Fashion-MNIST with
`flags/demo.cfg`, sized for 2 CPU cores:

    python -m eatnas_tf.demo --run_dir=runs/demo --flagfile=flags/demo.cfg

  1. stage 1: evolution on the small task (Fashion-MNIST at 14×14, a subset), 1 epoch per
     candidate, children inheriting their parent's weights;
  2. the basic model: top-k of the best-quality population retrained, best on validation;
  3. stage 2: elastic transfer to full-resolution Fashion-MNIST (28×28);
  4. the winner: top-k of stage 2 retrained on the training set, tested on the 10k test
     images; 5. export; 6. report (DIR/report.md, with the wall time of every phase).

The demo's settings live in one place, `flags/demo.cfg` (read first; flags given on the
command line override it). Each phase resumes where it stopped when the command runs again.
"""

import os
import sys

from absl import flags

from eatnas_tf import cli
from eatnas_tf import run as run_cmd

DEMO_FLAGFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flagfiles",
                             "demo.cfg")
flags.FLAGS.set_default("run_dir", "runs/demo")


def argv_with_demo_flags(argv):
    """`argv` with `--flagfile=<flags/demo.cfg>` first, so the command line overrides it."""
    return argv[:1] + [f"--flagfile={DEMO_FLAGFILE}"] + argv[1:]


if __name__ == "__main__":
    sys.argv = argv_with_demo_flags(sys.argv)
    cli.run(run_cmd.main)
