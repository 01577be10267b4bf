"""The memory-efficient modes (checkpoint and recompute_bn): same numbers as plain mode, fewer saved bytes,
batch-norm statistics updated once."""

from dataclasses import replace

import pytest
import torch
from second_methods import retained_bytes
from torch import nn

from densenet_viz import DenseNetConfig, build_model
from densenet_viz.analysis.trade import saved_activation_bytes
from densenet_viz.models.densenet import DenseBlock
from densenet_viz.models.efficient import cat_bn_relu_conv

SMALL = DenseNetConfig(growth_rate=6, block_config=(3, 4), num_init_features=8, stem="cifar", num_classes=5)


def _pair(config: DenseNetConfig, impl: str = "recompute_bn") -> tuple[nn.Module, nn.Module]:
    plain = build_model(config).double()
    efficient = build_model(replace(config, memory_efficient=True, efficient_impl=impl)).double()
    efficient.load_state_dict(plain.state_dict())
    return plain, efficient


@pytest.mark.parametrize("impl", ["checkpoint", "recompute_bn"])
@pytest.mark.parametrize("bn_size", [0, 4])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_outputs_gradients_and_running_stats_equal_plain_mode(impl, bn_size, momentum):
    plain, efficient = _pair(replace(SMALL, bn_size=bn_size), impl)
    for m in [*plain.modules(), *efficient.modules()]:
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = momentum
    for step in range(2):  # two steps: the running averages must follow the same path
        x = torch.randn(3, 3, 12, 12, dtype=torch.float64)
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        y1, y2 = plain(x1), efficient(x2)
        torch.testing.assert_close(y1, y2)
        y1.square().sum().backward()
        y2.square().sum().backward()
        torch.testing.assert_close(x1.grad, x2.grad)
        for (name, p1), p2 in zip(plain.named_parameters(), efficient.parameters(), strict=True):
            torch.testing.assert_close(p1.grad, p2.grad, msg=f"step {step}: {name}")
        for (name, b1), b2 in zip(plain.named_buffers(), efficient.buffers(), strict=True):
            torch.testing.assert_close(b1, b2, msg=f"step {step}: {name}")


def test_dropout_draws_the_same_masks_as_plain_mode():
    plain, efficient = _pair(replace(SMALL, drop_rate=0.3))
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    grads = []
    for model in (plain, efficient):
        torch.manual_seed(1)
        xi = x.clone().requires_grad_()
        model(xi).square().sum().backward()
        grads.append(xi.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_running_stats_are_updated_exactly_once_per_forward():
    _, efficient = _pair(SMALL)
    efficient(torch.randn(2, 3, 8, 8, dtype=torch.float64)).sum().backward()
    counts = {int(m.num_batches_tracked) for m in efficient.modules() if isinstance(m, nn.BatchNorm2d)}
    assert counts == {1}


@pytest.mark.parametrize(("kernel", "bias", "pieces"), [(1, False, 3), (3, False, 1), (3, True, 2)])
def test_gradcheck_on_a_small_layer(kernel, bias, pieces):
    torch.manual_seed(0)
    sizes = [2, 3, 1][:pieces]
    norm = nn.BatchNorm2d(sum(sizes)).double()
    conv = nn.Conv2d(sum(sizes), 4, kernel, padding=kernel // 2, bias=bias).double()
    with torch.no_grad():  # non-trivial affine parameters, so their gradients are checked too
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    inputs = [torch.randn(2, c, 4, 4, dtype=torch.float64, requires_grad=True) for c in sizes]
    params = [norm.weight, norm.bias, conv.weight] + ([conv.bias] if bias else [])

    def f(*tensors: torch.Tensor) -> torch.Tensor:
        return cat_bn_relu_conv(list(tensors[: len(inputs)]), norm, conv)

    assert torch.autograd.gradcheck(f, (*inputs, *params))


def test_gradcheck_through_a_dense_block():
    torch.manual_seed(0)
    block = DenseBlock(3, 4, bn_size=2, growth_rate=3, drop_rate=0.0, memory_efficient=True,
                        efficient_impl="recompute_bn").double()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))


def test_eval_mode_and_no_grad_use_the_plain_path():
    _, efficient = _pair(SMALL)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    efficient.eval()(x).sum().backward()  # eval with gradients: checkpointing (BN has no batch statistics)
    with torch.no_grad():
        efficient.train()(x)
    assert x.grad is not None


def test_refusals_are_clear():
    norm, conv = nn.BatchNorm2d(3), nn.Conv2d(3, 2, 1)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        cat_bn_relu_conv([torch.randn(1, 3, 1, 1)], norm, conv)
    with pytest.raises(ValueError, match="training mode"):
        cat_bn_relu_conv([torch.randn(2, 3, 4, 4)], norm.eval(), conv)


def test_saved_bytes_follow_the_closed_form_of_one_block():
    # docs/reference.md's block (64 input channels, k = 32, bottleneck 4k, 32x32, batch 16). In units of one
    # channel map (64 KiB): the block input (64) and every new map but the last (32(L-1)) are shared by the
    # layers; each layer keeps only its 1x1 output (128). Plus mean and invstd of each batch-norm.
    unit = 16 * 32 * 32 * 4
    for layers in (8, 16):
        block = DenseBlock(layers, 64, 4, 32, 0.0, True, "recompute_bn").to("meta")
        x = torch.empty(16, 64, 32, 32, device="meta", requires_grad=True)
        stats = 2 * 4 * sum(64 + 32 * i + 128 for i in range(layers))
        assert saved_activation_bytes(block, x) == (160 * layers + 32) * unit + stats
        checkpoint = DenseBlock(layers, 64, 4, 32, 0.0, True, "checkpoint").to("meta")
        assert saved_activation_bytes(checkpoint, x) > (288 * layers + 32) * unit  # docs/reference.md: 288L + 32


def test_nothing_hides_outside_save_for_backward():
    # retained_bytes sees every storage a forward leaves alive, however it is kept; the saved-tensor
    # hooks see only what goes through save_for_backward. For one layer they must agree.
    norm, conv = nn.BatchNorm2d(10), nn.Conv2d(10, 8, 1, bias=False)
    inputs = [torch.randn(4, 6, 8, 8, requires_grad=True), torch.randn(4, 4, 8, 8, requires_grad=True)]

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm, self.conv = norm, conv

        def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
            return cat_bn_relu_conv(xs, self.norm, self.conv)

    layer = Layer()
    stats = 2 * 10 * 4  # mean and invstd
    assert saved_activation_bytes(layer, inputs) == sum(t.nbytes for t in inputs) + stats
    assert retained_bytes(layer, inputs) == stats  # the inputs existed before the forward


def test_densenet121_keeps_less_than_torchvisions_efficient_mode():
    x = torch.empty(8, 3, 224, 224, device="meta")
    config = DenseNetConfig()
    efficient = build_model(replace(config, memory_efficient=True, efficient_impl="recompute_bn"), device="meta")
    assert saved_activation_bytes(efficient.train(), x) <= 503_312_384  # docs/reference.md's checkpointed figure


def test_config_names_the_implementation_and_validates_it():
    config = replace(SMALL, memory_efficient=True, efficient_impl="recompute_bn")
    assert DenseNetConfig.from_dict(config.to_dict()) == config
    assert DenseNetConfig().efficient_impl == "recompute_bn"  # measured leaner and faster: docs/memory-efficient.md
    with pytest.raises(ValueError, match=r"efficient_impl must be one of checkpoint, recompute_bn; got 'fast'"):
        replace(SMALL, efficient_impl="fast")


def test_the_default_memory_efficient_mode_is_the_leaner_one_measured():
    # docs/memory-efficient.md: the default implementation is the one that keeps fewer bytes for backward.

    config = DenseNetConfig(12, (3, 3), 24, stem="cifar", num_classes=10, memory_efficient=True)
    x = torch.randn(4, 3, 16, 16)
    saved = {impl: saved_activation_bytes(build_model(replace(config, efficient_impl=impl)).train(), x)
             for impl in ("checkpoint", "recompute_bn")}
    assert saved_activation_bytes(build_model(config).train(), x) == min(saved.values()) < max(saved.values())


def test_under_autocast_the_default_mode_falls_back_to_checkpointing_with_the_same_gradients():
    # recompute_bn cannot run under autocast (its backward works in the forward's dtype); the layer then
    # checkpoints instead, so a model with the default mode trains under autocast like torchvision's.

    config = DenseNetConfig(8, (2, 2), 16, stem="cifar", num_classes=10, memory_efficient=True)
    torch.manual_seed(0)
    default = build_model(config).train()
    checkpoint = build_model(replace(config, efficient_impl="checkpoint")).train()
    checkpoint.load_state_dict(default.state_dict())
    x = torch.randn(4, 3, 16, 16)
    grads = []
    for model in (default, checkpoint):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(x).float().square().mean()
        loss.backward()
        grads.append(model.features.conv0.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])
