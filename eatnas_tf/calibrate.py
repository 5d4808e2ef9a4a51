"""EcoNAS proxy calibration command (EcoNAS §3; `eatnas_tf.econas.calibration`).

    python -m eatnas_tf.calibrate --run_dir=DIR --flagfile=flags/econas_calibrate_fmnist.cfg
    python -m eatnas_tf.calibrate --run_dir=DIR --space=digits --dataset=digits \
        --num_archs=6 --reference=c0r0s0e4 --proxies=c0r0s0e1,c2r0s0e2 --min_rho=0.6

Trains a fixed, seeded sample of `--num_archs` architectures of `--space` under the
`--reference` setting and under every `--proxies` setting (EcoNAS names: c4r4s0e60; the
data and training flags describe the unreduced setting c0r0s0), stores each
(setting, architecture) result once in DIR/results.jsonl (a rerun resumes), and writes
DIR/calibration.md, DIR/calibration.json and DIR/calibration.png (rank correlation vs
proxy cost). It recommends the cheapest proxy whose `--rank_metric` reaches `--min_rho`.
"""

from absl import flags

from eatnas_tf import cli

cli.quiet_import_tensorflow()  # before the library: keeps usage errors one line

from eatnas_tf.arch import space as space_lib
from eatnas_tf.train import flags as train_flags

FLAGS = flags.FLAGS

flags.DEFINE_string("run_dir", None, "Calibration directory (created, or resumed).")
flags.DEFINE_enum("space", "fashion_mnist", list(space_lib.SPACES), "Search space sampled.")
flags.DEFINE_integer("num_archs", 12, "Architectures in the fixed sample.")
flags.DEFINE_integer("seed", 0, "Seed of the architecture sample and of their initialisation.")
flags.DEFINE_string("reference", "c0r0s0e6", "Reference setting (EcoNAS name; the paper's "
                    "is full training, c0r0s0e600 on CIFAR-10).")
flags.DEFINE_list("proxies", ["c0r0s0e1", "c2r0s0e2", "c4r2s0e2", "c2r2s1e3"],
                  "Proxy settings to calibrate (EcoNAS names).")
flags.DEFINE_float("min_rho", 0.6, "Recommend the cheapest proxy whose rank correlation "
                   "is at least this.")
flags.DEFINE_enum("rank_metric", "spearman", ["spearman", "tolerant_spearman", "kendall"],
                  "Correlation the recommendation uses.")
flags.DEFINE_float("tolerance", 0.0015, "b of the tolerant Spearman coefficient (EcoNAS A2: "
                   "0.15% accuracy).")
flags.DEFINE_integer("verbose", 0, "Trainer verbosity (0, 1, 2).")
flags.DEFINE_bool("allow_flag_change", False, "Resume a directory started with other settings.")
flags.DEFINE_integer("stop_after", None, "Stop after N new trainings (resume later).")
flags.DEFINE_bool("report_only", False, "Train nothing: write the table and plot of the "
                  "results stored so far (e.g. while another process is calibrating).")
train_flags.define_data_flags()
train_flags.define_train_flags()


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}; pass everything as --flags")
    from eatnas_tf.econas import calibration
    from eatnas_tf.econas.proxy import Proxy
    from eatnas_tf.search.run_dir import RunDirError

    if not FLAGS.run_dir:
        raise cli.UsageError("run_dir: required; allowed values: a directory path")
    if FLAGS.num_archs < 3:
        raise cli.UsageError(f"num_archs: received {FLAGS.num_archs}; allowed values: >= 3")
    try:
        reference = Proxy.parse(FLAGS.reference)
        proxies = [Proxy.parse(p) for p in FLAGS.proxies]
    except ValueError as e:
        raise cli.UsageError(str(e)) from None
    if not proxies:
        raise cli.UsageError("proxies: received none; allowed values: one or more EcoNAS names")
    space = space_lib.get_space(FLAGS.space)
    data = train_flags.data_config_from_flags(FLAGS, split="search", seed=FLAGS.seed)
    train = train_flags.train_config_from_flags(FLAGS, seed=FLAGS.seed)
    try:
        archs = calibration.sample_archs(space, FLAGS.num_archs, FLAGS.seed,
                                         [reference] + proxies)
        table = calibration.calibrate(
            FLAGS.run_dir, space, archs, reference.name, [p.name for p in proxies], data,
            train, min_rho=FLAGS.min_rho, rank_metric=FLAGS.rank_metric,
            tolerance=FLAGS.tolerance, seed=FLAGS.seed, verbose=FLAGS.verbose,
            allow_change=FLAGS.allow_flag_change, max_new=FLAGS.stop_after,
            train_missing=not FLAGS.report_only)
    except (RunDirError, ValueError) as e:
        raise cli.UsageError(str(e).splitlines()[0]) from None
    if not table:
        print(f"stopped after {FLAGS.stop_after} new trainings; rerun to resume", flush=True)


if __name__ == "__main__":
    cli.run(main)
