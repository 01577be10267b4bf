"""The real DenseNet modules: the seed's shapes, the channel formula, torchvision names, memory-efficient mode."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from densenet_viz import PRESETS, DenseNetConfig, build_model
from densenet_viz.models.densenet import DenseBlock, DenseLayer, Transition
from densenet_viz.models.plan import layer_plan


def test_seed_dense_block_of_four_layers():
    block = DenseBlock(num_layers=4, num_input_features=64, bn_size=4, growth_rate=32, drop_rate=0.0)
    assert block(torch.randn(2, 64, 32, 32)).shape == (2, 192, 32, 32)


def test_seed_transition_halves_channels_and_size():
    assert Transition(192, 96)(torch.randn(2, 192, 32, 32)).shape == (2, 96, 16, 16)


def test_dense_layer_reads_the_list_of_earlier_maps():
    layer = DenseLayer(64 + 2 * 32, 32, bn_size=4, drop_rate=0.0, memory_efficient=False)
    maps = [torch.randn(1, 64, 8, 8), torch.randn(1, 32, 8, 8), torch.randn(1, 32, 8, 8)]
    assert layer(maps).shape == (1, 32, 8, 8)
    assert layer(torch.cat(maps, 1)).shape == (1, 32, 8, 8)


def test_module_names_follow_torchvision():
    names = dict(build_model(PRESETS["densenet121"], device="meta").named_parameters())
    for key in [
        "features.conv0.weight",
        "features.norm0.weight",
        "features.denseblock1.denselayer1.norm1.weight",
        "features.denseblock1.denselayer1.conv1.weight",
        "features.denseblock1.denselayer6.conv2.weight",
        "features.transition1.conv.weight",
        "features.denseblock4.denselayer16.norm2.bias",
        "features.norm5.weight",
        "classifier.weight",
        "classifier.bias",
    ]:
        assert key in names
    assert len(names) == 364  # torchvision densenet121: 364 parameter tensors


def _record_block_shapes(model: torch.nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(out.shape)))
        for name, m in model.named_modules()
        if name.count(".") == 1 or (name.count(".") == 2 and "denselayer" in name)
    ]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return shapes


@settings(max_examples=15, deadline=None)
@given(
    k=st.integers(1, 16),
    blocks=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    k0=st.integers(1, 24),
    theta=st.sampled_from([0.25, 0.5, 0.7, 1.0]),
    bn_size=st.sampled_from([0, 2, 4]),
)
def test_real_shapes_follow_the_channel_formula(k, blocks, k0, theta, bn_size):
    cfg = DenseNetConfig(
        growth_rate=k, block_config=tuple(blocks), num_init_features=max(k0, 4), compression=theta,
        bn_size=bn_size, stem="cifar", num_classes=7,
    )
    model = build_model(cfg).eval()
    with torch.no_grad():
        shapes = _record_block_shapes(model, torch.randn(1, 3, 16, 16))
    c, size = cfg.num_init_features, 16
    for b, n in enumerate(blocks, start=1):
        for i in range(1, n + 1):
            assert shapes[f"features.denseblock{b}.denselayer{i}"] == (1, k, size, size)
        c += k * n  # k0 + k*l after l layers
        assert shapes[f"features.denseblock{b}"] == (1, c, size, size)
        if b < len(blocks):
            c, size = math.floor(theta * c), size // 2
            assert shapes[f"features.transition{b}"] == (1, c, size, size)
    plan = {s.path: s for s in layer_plan(cfg, 16)}
    assert plan["features.norm5"].out_channels == c


@pytest.mark.parametrize("name", [n for n, c in PRESETS.items() if isinstance(c, DenseNetConfig)])
def test_every_densenet_preset_runs_and_trains(name):
    cfg = PRESETS[name]
    # Tiny inputs and a shallow copy of the preset's shape keep the suite fast; the width is the preset's own.
    small = DenseNetConfig.from_dict({**cfg.to_dict(), "block_config": [1] * len(cfg.block_config)})
    model = build_model(small)
    size = 32
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, cfg.num_classes) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_state_dict_round_trip_gives_identical_outputs():
    cfg = PRESETS["densenet_bc_100_12"]
    a, b = build_model(cfg).eval(), build_model(cfg).eval()
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
