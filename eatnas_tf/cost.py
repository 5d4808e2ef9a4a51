"""Prints the analytic cost of an architecture as one JSON object.

    python -m eatnas_tf.cost --arch=ARCH [--space=imagenet] [--image_size=N] [--num_classes=N]
        [--latency_table=FILE]

ARCH is the text form, a JSON string or a path to a JSON/text file. Image size, classes
and strides default to the space's (224/1000 for imagenet, 32/10 for cifar10).
"""

import json

from absl import flags

from eatnas_tf import cli
from eatnas_tf.arch import codec
from eatnas_tf.arch import space as space_lib

_ARCH = flags.DEFINE_string("arch", None, "Architecture: text form, JSON or a file path.",
                            required=True)
_SPACE = flags.DEFINE_enum("space", "cifar10", list(space_lib.SPACES),
                           "Search space: strides, stem/head, channel mode and defaults.")
_CHANNEL_MODE = flags.DEFINE_enum("channel_mode", None, ["relative", "mbv2"],
                                  "How widths give channels (default: the space's): relative "
                                  "= N_out / N_in (paper), mbv2 = MobileNetV2 bases x width.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Input size (default: the space's).",
                                   lower_bound=1)
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None, "Classes (default: the space's).",
                                    lower_bound=1)
_IN_CHANNELS = flags.DEFINE_integer("in_channels", None, "Image channels (default: the space's).",
                                    lower_bound=1)
_STRICT = flags.DEFINE_bool("strict", False, "Exit 2 if the arch breaks a space constraint.")
_LATENCY_TABLE = flags.DEFINE_string(
    "latency_table", None, "Latency table (python -m eatnas_tf.latency_table): adds the "
    "predicted latency_ms; layers missing from it are measured on this host and added.")


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}; pass everything as --flags")
    space = space_lib.get_space(_SPACE.value, _CHANNEL_MODE.value)
    arch = codec.parse_arch(_ARCH.value, **space.arch_defaults())
    overrides = {k: v for k, v in (("image_size", _IMAGE_SIZE.value),
                                   ("num_classes", _NUM_CLASSES.value),
                                   ("in_channels", _IN_CHANNELS.value)) if v is not None}
    macro = space.macro.with_(**overrides)
    if not hasattr(arch, "blocks"):  # EPNAS' Table 2 layer list: no blocks, no EAT space
        print(json.dumps(_layer_list_cost(arch, macro)))
        return
    violations = space.violations(arch)
    if _STRICT.value and violations:
        raise space_lib.ConstraintViolation(f"space {space.name}: {violations[0]}")
    out = {"arch": codec.to_text(arch), "hash": codec.canonical_hash(arch), "space": space.name,
           "image_size": macro.image_size, "num_classes": macro.num_classes}
    out.update(space_lib.cost_lib.count(arch, macro).as_dict())
    out["channels"] = list(arch.block_channels())
    out["total_expansion"] = arch.total_expansion
    out["in_space"] = not violations
    out["violations"] = violations
    if _LATENCY_TABLE.value:
        from eatnas_tf.latency import predictor as latency_predictor  # noqa: PLC0415

        try:
            pred = latency_predictor.load_predictor(_LATENCY_TABLE.value)
            out["latency_ms"] = round(pred.predict_ms(arch, macro), 4)
        except ValueError as e:
            raise cli.UsageError(str(e)) from None
        if pred.table.measured:
            pred.table.save()
        out["latency_table"] = {"format": pred.table.fmt, "threads": pred.table.threads,
                                "device": pred.table.device.get("cpu", ""),
                                "measured_now": pred.table.measured,
                                "fitted": bool(pred.table.fit)}
    print(json.dumps(out))


def _layer_list_cost(arch, macro) -> dict:
    """Cost of an EPNAS Table 2 layer list (`--epnas_space=table2`): params and MAdds; the
    EAT space's block constraints do not apply to it."""
    out = {"arch": codec.to_text(arch), "hash": codec.canonical_hash(arch),
           "space": "epnas_table2", "image_size": macro.image_size,
           "num_classes": macro.num_classes}
    out.update(space_lib.cost_lib.count(arch, macro).as_dict())
    return out


if __name__ == "__main__":
    cli.run(main)
