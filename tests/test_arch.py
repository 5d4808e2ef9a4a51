"""Encodings, codec round trips, canonical hash and search-space constraints."""

import dataclasses
import json
import random

import pytest

from eatnas_tf.arch import codec, registry
from eatnas_tf.arch import space as space_lib
from eatnas_tf.arch.spec import ArchSpec, BlockSpec, InvalidArchitectureError

MBV2 = registry.MOBILENET_V2_TEXT


def _random_arch(rng: random.Random) -> ArchSpec:
    """Any grammatical arch (not only in-space ones) to stress the codec."""
    while True:
        blocks = [BlockSpec(rng.choice(("sep", "mb3", "mb6")), rng.choice((3, 5, 7)),
                            rng.random() < 0.5, rng.choice((0.5, 1.0, 1.5, 2.0)),
                            rng.choice((1, 2, 3, 4))) for _ in range(7)]
        try:
            return ArchSpec(blocks=tuple(blocks), stem=rng.choice((16, 24, 32)),
                            head=rng.choice((256, 1280)),
                            channel_mode=rng.choice(("relative", "mbv2")),
                            shortcut=rng.choice(("identity", "projection")))
        except InvalidArchitectureError:
            continue


def _defaults(a: ArchSpec):
    return dict(stem=a.stem, head=a.head, channel_mode=a.channel_mode, shortcut=a.shortcut)


class TestRoundTrips:
    ARCHS = [_random_arch(random.Random(i)) for i in range(3000)]

    def test_text(self):
        for a in self.ARCHS:
            assert codec.from_text(codec.to_text(a), **_defaults(a)) == a

    def test_json(self):
        for a in self.ARCHS:
            assert codec.from_json(codec.to_json(a)) == a

    def test_eat_code(self):
        for a in self.ARCHS:
            code = codec.to_eat_code(a)
            assert all(len(c) == 5 for c in code)
            assert codec.from_eat_code(json.loads(json.dumps(code)), **_defaults(a)) == a

    def test_mnasnet(self):
        strides = (1, 2, 2, 2, 1, 2, 1)
        checked = 0
        for a in self.ARCHS:
            try:
                s = codec.to_mnasnet(a, strides)
            except InvalidArchitectureError as e:  # widths ambiguous from 1-channel blocks
                assert "not recoverable" in str(e) and min((a.stem,) + a.block_channels()) == 1
                continue
            assert codec.from_mnasnet(s, **_defaults(a)) == a
            checked += 1
        assert checked > 2500

    def test_hash_is_canonical(self):
        hashes = {codec.canonical_hash(a) for a in self.ARCHS}
        assert len(hashes) == len(set(self.ARCHS))
        a = self.ARCHS[0]
        b = dataclasses.replace(a, blocks=tuple(dataclasses.replace(x) for x in a.blocks))
        assert codec.canonical_hash(a) == codec.canonical_hash(b) and hash(a) == hash(b)

    def test_parse_arch_accepts_all_forms(self, tmp_path):
        a = registry.MOBILENET_V2
        d = _defaults(a)
        assert codec.parse_arch(MBV2, **d) == a
        assert codec.parse_arch(codec.to_json(a)) == a
        p = tmp_path / "a.json"
        p.write_text(codec.to_json(a))
        assert codec.parse_arch(str(p)) == a
        p2 = tmp_path / "a.txt"
        p2.write_text(MBV2 + "\n")
        assert codec.parse_arch(str(p2), **d) == a


class TestGolden:
    def test_mobilenet_v2_forms(self):
        a = registry.MOBILENET_V2
        assert codec.to_text(a) == MBV2
        assert a.block_channels() == (16, 24, 32, 64, 96, 160, 320)
        assert a.num_layers == 17 and a.total_expansion == 10.0
        assert codec.to_eat_code(a)[1] == [2, 0, 1, 1, 1.0]
        assert codec.to_mnasnet(a, registry.IMAGENET_MACRO.block_strides)[:2] == [
            "r1_k3_s11_e1_i32_o16_noskip", "r2_k3_s22_e6_i16_o24"]

    def test_relative_channels_truncate(self):
        a = codec.from_text("sep_k3_w1.5_d1," + ",".join(["mb3_k3_w1.5_d1"] * 6), stem=32)
        # 32*1.5=48, 72, 108, 162, 243, int(364.5)=364, int(546)=546
        assert a.block_channels() == (48, 72, 108, 162, 243, 364, 546)


class TestValidation:
    @pytest.mark.parametrize("text,field", [
        (MBV2.replace("sep_", "mb4_", 1), "op"),
        (MBV2.replace("_k3_", "_k4_", 1), "kernel"),
        (MBV2.replace("_w1.0_", "_w0.7_", 1), "width"),
        (MBV2.replace("_d1,", "_d5,", 1), "depth"),
        (MBV2.replace("_d1,", "_dX,", 1), "depth"),
        (",".join(MBV2.split(",")[:6]), "blocks"),
        (MBV2 + ",sep_k3_w1.0_d1", "blocks"),
        (MBV2.replace("_skip", "_skp", 1), "field"),
    ])
    def test_bad_text_names_field(self, text, field):
        with pytest.raises(InvalidArchitectureError, match=field) as e:
            codec.from_text(text)
        assert "allowed" in str(e.value) and "\n" not in str(e.value)

    @pytest.mark.parametrize("raw,field", [
        ('{"blocks": [1, 2', "JSON"),
        ('{"blocks": []}', "blocks"),
        ('{"stem": -1, "blocks": "%s"}' % MBV2, "stem"),
        ('{"channel_mode": "abs", "blocks": "%s"}' % MBV2, "channel_mode"),
        ('{"foo": 1, "blocks": "%s"}' % MBV2, "unknown key"),
        ('[1, 2]', "arch"),
    ])
    def test_bad_json(self, raw, field):
        with pytest.raises(InvalidArchitectureError, match=field):
            codec.parse_arch(raw)

    def test_missing_file(self):
        with pytest.raises(InvalidArchitectureError, match="cannot read file"):
            codec.parse_arch("/no/such/arch.json")

    def test_bool_is_not_int(self):
        with pytest.raises(InvalidArchitectureError, match="kernel"):
            BlockSpec("sep", True, False, 1.0, 1)
        with pytest.raises(InvalidArchitectureError, match="skip"):
            BlockSpec("sep", 3, 1, 1.0, 1)

    def test_frozen(self):
        b = BlockSpec("sep", 3, False, 1.0, 1)
        with pytest.raises(dataclasses.FrozenInstanceError):
            b.op = "mb3"

    def test_eat_code_errors(self):
        code = codec.to_eat_code(registry.MOBILENET_V2)
        code[2][0] = 3
        with pytest.raises(InvalidArchitectureError, match="op"):
            codec.from_eat_code(code)

    def test_mnasnet_errors(self):
        s = codec.to_mnasnet(registry.MOBILENET_V2, registry.IMAGENET_MACRO.block_strides)
        s[1] = s[1].replace("o24", "o25")
        with pytest.raises(InvalidArchitectureError, match="output filters"):
            codec.from_mnasnet(s, channel_mode="mbv2")


class TestSpaces:
    @pytest.mark.parametrize("name", sorted(space_lib.SPACES))
    def test_samples_are_valid_and_seeded(self, name):
        s = space_lib.get_space(name)
        a1 = [s.sample(random.Random(7)) for _ in range(3)]
        assert a1[0] == a1[1] == a1[2]
        rng = random.Random(1)
        archs = [s.sample(rng) for _ in range(100)]
        assert all(s.violations(a) == [] for a in archs)
        assert len(set(archs)) > 90

    def test_paper_spaces(self):
        c = space_lib.get_space("cifar10")
        assert c.macro.image_size == 32 and c.macro.stem_stride == 1
        assert c.macro.block_strides == (1, 1, 2, 1, 2, 1, 1)
        assert c.total_expansion == (4, 10) and c.target == 3.0e6 and c.cost_metric == "params"
        assert c.channel_mode == "relative" and c.stem == 32
        i = space_lib.get_space("imagenet")
        assert i.macro.image_size == 224 and i.macro.stem_stride == 2
        assert i.macro.block_strides == (1, 2, 2, 2, 1, 2, 1)
        assert i.layers == (16, 18) and i.total_expansion == (8, 16)
        assert i.target == 500e6 and i.cost_metric == "madds" and i.channel_mode == "mbv2"
        assert i.contains(registry.MOBILENET_V2)

    def test_violation_named(self):
        i = space_lib.get_space("imagenet")
        shallow = codec.from_text(MBV2.replace("_d4_", "_d1_"), **i.arch_defaults())
        assert i.violations(shallow) == ["layers: 14 outside [16, 18]"]
        with pytest.raises(space_lib.ConstraintViolation, match="layers: 14 outside"):
            i.validate(shallow)
        c = space_lib.get_space("cifar10")
        wide = codec.from_text(",".join(["mb3_k3_w2.0_d1"] * 7), **c.arch_defaults())
        assert any(v.startswith("total_expansion: 128") for v in c.violations(wide))
        assert "channel_mode" in c.violations(registry.MOBILENET_V2)[0]

    def test_small_spaces_final_map(self):
        for name in ("fashion_mnist", "fashion_mnist_14", "digits"):
            s = space_lib.get_space(name)
            a = s.sample(random.Random(0))
            assert s.cost(a).final_size >= 2

    def test_unknown_space(self):
        with pytest.raises(InvalidArchitectureError, match="allowed values: cifar10"):
            space_lib.get_space("nope")
