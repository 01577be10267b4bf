"""ResNet baselines and matching a DenseNet to its closest ResNet."""

import pytest
import torch

from densenet_viz import PRESETS, DenseNetConfig, ResNetConfig, build_model, count_params, match_baseline
from densenet_viz.models.resnet import ZeroPadShortcut


@pytest.mark.parametrize("name", [n for n, c in PRESETS.items() if isinstance(c, ResNetConfig)])
def test_every_resnet_preset_runs(name):
    cfg = PRESETS[name]
    small = ResNetConfig.from_dict({**cfg.to_dict(), "layers": [1] * len(cfg.layers)})
    model = build_model(small)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, cfg.num_classes)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_resnet_names_follow_torchvision():
    names = dict(build_model(PRESETS["resnet50"], device="meta").named_parameters())
    assert {"conv1.weight", "bn1.weight", "layer1.0.downsample.0.weight", "layer4.2.conv3.weight", "fc.bias"} <= set(
        names
    )


def test_zero_pad_shortcut_keeps_the_input_and_pads_zeros():
    x = torch.randn(1, 16, 8, 8)
    y = ZeroPadShortcut(32, 2)(x)
    assert y.shape == (1, 32, 4, 4)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0


def test_cifar_resnet_parameter_counts_equal_the_closed_form():
    # He et al.'s 6n+2 nets: 3x3 stem conv + 2n 3x3 convs per stage + BN affine pairs + fc; option A is free.
    for n in (3, 5, 9):
        cfg = PRESETS[f"resnet{6 * n + 2}"]
        stem = 3 * 16 * 9 + 2 * 16
        stages = sum(
            (2 * n) * (w * w * 9 + 2 * w) - (w // 2 * w * 9 if w > 16 else 0) for w in (16, 32, 64)
        )
        fc = 64 * 10 + 10
        assert count_params(cfg) == stem + stages + fc


def test_baseline_matching_by_params_and_depth():
    assert match_baseline(PRESETS["densenet121"], by="params")[0] == "resnet18"  # 8.0M: 11.7M is closest
    assert match_baseline(PRESETS["densenet201"], by="params")[0] == "resnet34"  # 20.0M vs 21.8M
    assert match_baseline(PRESETS["densenet121"], by="depth")[0] == "resnet101"
    name, cfg = match_baseline(PRESETS["densenet_bc_100_12"], by="params")
    assert name == "resnet56" and cfg.num_classes == 10  # 0.77M vs 0.85M and cfg.stem == "cifar"
    gray = DenseNetConfig(block_config=(2, 2), stem="cifar", in_channels=1, num_classes=10)
    assert match_baseline(gray, by="depth")[1].in_channels == 1
    with pytest.raises(ValueError, match="'params' or 'depth'"):
        match_baseline(PRESETS["densenet121"], by="width")
