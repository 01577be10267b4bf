"""Config validation, dict round trips and the presets' published sizes."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import CIFAR_MILLIONS, IMAGENET

from densenet_viz import PRESET_TITLES, PRESETS, DenseNetConfig, ResNetConfig, config_from_dict, count_params

EXACT = {name: params for name, (params, _macs) in IMAGENET.items()}  # torchvision's exact counts
ROUNDED = CIFAR_MILLIONS


def test_every_preset_has_a_reference_and_a_title():
    assert set(PRESETS) == set(EXACT) | set(ROUNDED)
    assert set(PRESET_TITLES) == set(PRESETS)


@pytest.mark.parametrize("name", sorted(EXACT))
def test_imagenet_presets_match_torchvision_exactly(name):
    assert count_params(PRESETS[name]) == EXACT[name]


@pytest.mark.parametrize("name", sorted(ROUNDED))
def test_cifar_presets_round_to_the_papers_figures(name):
    millions, digits = ROUNDED[name]
    assert round(count_params(PRESETS[name]) / 1e6, digits) == millions


@pytest.mark.parametrize(
    ("name", "depth"),
    [("densenet121", 121), ("densenet169", 169), ("densenet201", 201), ("densenet161", 161),
     ("densenet_40_12", 40), ("densenet_bc_100_12", 100), ("densenet_bc_250_24", 250), ("densenet_bc_190_40", 190),
     ("resnet50", 50), ("resnet152", 152), ("resnet56", 56), ("resnet110", 110)],
)
def test_depth_counts_conv_and_linear_layers_as_the_papers_do(name, depth):
    assert PRESETS[name].depth == depth


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_dicts(name):
    cfg = PRESETS[name]
    again = config_from_dict(cfg.to_dict())
    assert again == cfg and hash(again) == hash(cfg)
    assert type(cfg).from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("kwargs", "field", "allowed"),
    [
        ({"growth_rate": 0}, "growth_rate", "[1, 512]"),
        ({"growth_rate": 12.5}, "growth_rate", "integer"),
        ({"growth_rate": True}, "growth_rate", "integer"),
        ({"block_config": (6, 0, 3)}, "block_config[1]", "[1, 512]"),
        ({"block_config": ()}, "block_config", "1 to 8"),
        ({"block_config": "6,12"}, "block_config", "sequence"),
        ({"compression": 0.0}, "compression", "(0.0, 1.0]"),
        ({"compression": 1.5}, "compression", "(0.0, 1.0]"),
        ({"compression": float("nan")}, "compression", "finite"),
        ({"bn_size": -1}, "bn_size", "[0, 16]"),
        ({"drop_rate": 1.0}, "drop_rate", "[0.0, 0.99]"),
        ({"stem": "resnet"}, "stem", "imagenet, cifar"),
        ({"num_init_features": 0}, "num_init_features", "[1, 4096]"),
        ({"num_classes": 0}, "num_classes", "[1, 100000]"),
        ({"memory_efficient": "yes"}, "memory_efficient", "true or false"),
    ],
)
def test_bad_densenet_fields_name_the_field_value_and_range(kwargs, field, allowed):
    with pytest.raises(ValueError) as err:
        DenseNetConfig(**kwargs)
    assert field in str(err.value) and allowed in str(err.value)


def test_compression_that_empties_a_transition_is_refused():
    with pytest.raises(ValueError, match="leaves no channels"):
        DenseNetConfig(growth_rate=1, block_config=(1, 1), num_init_features=1, compression=0.1)


def test_bad_resnet_fields_are_refused():
    with pytest.raises(ValueError, match="block must be one of basic, bottleneck"):
        ResNetConfig(block="wide")
    with pytest.raises(ValueError, match="same length"):
        ResNetConfig(layers=(1, 2), widths=(64,))
    with pytest.raises(ValueError, match="zero_pad"):
        ResNetConfig(block="bottleneck", shortcut="zero_pad")


def test_from_dict_refuses_unknown_fields_and_kinds():
    with pytest.raises(ValueError, match="unknown DenseNetConfig fields: depth"):
        DenseNetConfig.from_dict({"kind": "densenet", "depth": 3})
    with pytest.raises(ValueError, match="kind must be one of"):
        config_from_dict({"kind": "vgg"})


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        PRESETS["densenet121"].growth_rate = 12  # type: ignore[misc]


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 64),
    blocks=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    k0=st.integers(1, 128),
    theta=st.floats(0.05, 1.0),
)
def test_block_channels_follow_the_formula(k, blocks, k0, theta):
    try:
        cfg = DenseNetConfig(growth_rate=k, block_config=tuple(blocks), num_init_features=k0, compression=theta)
    except ValueError as err:
        assert "leaves no channels" in str(err)
        return
    c = k0
    for n, c_in, c_out in zip(blocks, cfg.block_in_channels(), cfg.block_out_channels(), strict=False):
        assert c_in == c and c_out == c + k * n
        c = math.floor(theta * c_out)


def test_the_channel_rules_give_the_papers_densenet_121_numbers():
    """Table 1 of the paper: DenseNet-121 (k = 32, k0 = 64, blocks 6-12-24-16, theta = 0.5) ends its blocks with 256,
    512, 1024 and 1024 channels; each transition halves them."""
    from densenet_viz.models.config import layer_in_channels, transition_out_channels

    assert layer_in_channels(64, 32, 1) == 64 and layer_in_channels(64, 32, 6) == 224  # layer 6 reads x0..x5
    assert layer_in_channels(64, 32, 7) == 256  # the block's output: 6 layers added
    assert transition_out_channels(256, 0.5) == 128 and transition_out_channels(1023, 0.5) == 511  # floor
    config = PRESETS["densenet121"]
    assert config.block_out_channels() == [256, 512, 1024, 1024]
    assert config.block_in_channels() == [64, 128, 256, 512]
