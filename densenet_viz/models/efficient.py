"""Memory-efficient DenseNet training that recomputes only the cheap concat-BN-ReLU in backward.

A dense layer's BN-ReLU-Conv reads the concatenation of every earlier map in its block. Autograd
would keep that concatenation (for BN's backward) and the ReLU output (for the conv's backward) in
every layer, so a block stores O(L²) channels. torchvision's memory-efficient mode checkpoints
concat-BN-ReLU-Conv1x1 and re-runs all four, the 1x1 convolution included, in backward.

Pleiss et al. (2017, "Memory-Efficient Implementation of DenseNets") note that only the concat, BN
and ReLU are cheap to recompute. `cat_bn_relu_conv` below keeps just the layer's inputs (which the
block holds anyway), the per-channel batch statistics and the weights. Its backward rebuilds
relu(BN(cat)) from the saved statistics in one elementwise pass and never re-runs a convolution.
A bottleneck layer applies it twice (concat-BN1-ReLU-Conv1x1, then BN2-ReLU-Conv3x3 on the 1x1's
output), so the only per-layer activation kept is the 1x1 output (bn_size*k maps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


def _bn_momentum(norm: nn.BatchNorm2d) -> float:
    """Count one training batch and return the running-average factor, exactly as nn.BatchNorm2d does."""
    if norm.track_running_stats and norm.num_batches_tracked is not None:
        norm.num_batches_tracked.add_(1)
        if norm.momentum is None:  # a cumulative moving average
            return 1.0 / float(norm.num_batches_tracked)
    return 0.0 if norm.momentum is None else norm.momentum


def _cat(inputs: Sequence[Tensor]) -> Tensor:
    return inputs[0] if len(inputs) == 1 else torch.cat(list(inputs), 1)


class _CatBNReLUConv(torch.autograd.Function):
    """conv(relu(batch_norm(cat(inputs)))) in training mode, saving inputs and statistics only."""

    @staticmethod
    def forward(
        ctx: Any,
        bn_weight: Tensor | None,
        bn_bias: Tensor | None,
        running_mean: Tensor | None,
        running_var: Tensor | None,
        momentum: float,
        eps: float,
        conv_weight: Tensor,
        conv_bias: Tensor | None,
        conv_args: tuple,
        *inputs: Tensor,
    ) -> Tensor:
        x = _cat(inputs)  # (B, sum of input channels, H, W): freed when forward returns
        # The only BN call that updates the running statistics; backward reuses mean and invstd.
        normed, mean, invstd = torch.ops.aten.native_batch_norm(
            x, bn_weight, bn_bias, running_mean, running_var, True, momentum, eps
        )
        out = F.conv2d(normed.relu_(), conv_weight, conv_bias, *conv_args)
        # Everything backward needs goes through save_for_backward, so saved-tensor hooks see all of it.
        ctx.save_for_backward(bn_weight, bn_bias, mean, invstd, conv_weight, *inputs)
        ctx.eps, ctx.conv_args, ctx.has_conv_bias = eps, conv_args, conv_bias is not None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        bn_weight, bn_bias, mean, invstd, conv_weight, *inputs = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv_args
        needs = ctx.needs_input_grad
        x = _cat(inputs)  # recomputed concatenation
        # relu(BN(x)) again, with the saved batch statistics as fixed ones: one pass, no reduction.
        # (var = 1/invstd² with eps = 0 gives back invstd exactly where var + eps would round.)
        var = invstd.pow(-2)
        relu_out = F.batch_norm(x, mean, var, bn_weight, bn_bias, training=False, eps=0.0).relu_()

        # The convolution's backward only: its forward output is not needed, so it is not recomputed.
        grad_relu, grad_conv_w, grad_conv_b = torch.ops.aten.convolution_backward(
            grad_out, relu_out, conv_weight, [conv_weight.shape[0]] if ctx.has_conv_bias else None,
            stride, padding, dilation, False, [0, 0], groups, [True, needs[6], needs[7]],
        )
        # ReLU's backward, written over grad_relu (elementwise, so in place is safe).
        grad_normed = torch.ops.aten.threshold_backward.grad_input(grad_relu, relu_out, 0, grad_input=grad_relu)
        del relu_out
        grad_x, grad_bn_w, grad_bn_b = torch.ops.aten.native_batch_norm_backward(
            grad_normed, x, bn_weight, None, None, mean, invstd, True, ctx.eps, [True, needs[0], needs[1]]
        )
        grad_inputs = grad_x.split([t.shape[1] for t in inputs], 1)  # undo the concatenation
        return (grad_bn_w, grad_bn_b, None, None, None, None, grad_conv_w, grad_conv_b, None, *grad_inputs)


def autocast_enabled() -> bool:
    """Whether autocast is on for the CPU or CUDA (where cat_bn_relu_conv cannot run)."""
    return any(torch.is_autocast_enabled(device) for device in ("cpu", "cuda"))


def cat_bn_relu_conv(inputs: Sequence[Tensor], norm: nn.BatchNorm2d, conv: nn.Conv2d) -> Tensor:
    """conv(relu(norm(cat(inputs, 1)))) for training: backward recomputes concat-BN-ReLU, not the conv.

    Running statistics are updated once, in forward. Use it only with norm in training mode (batch
    statistics); in eval mode BN is a fixed affine map and the plain path is as cheap.
    """
    if not norm.training:
        raise ValueError("cat_bn_relu_conv needs the batch-norm in training mode (batch statistics)")
    first = inputs[0]
    if first.shape[0] * first[0, 0].numel() == 1:  # what F.batch_norm refuses too
        raise ValueError(f"expected more than 1 value per channel when training, got input size {tuple(first.shape)}")
    if autocast_enabled():
        raise ValueError("cat_bn_relu_conv does not support autocast; use efficient_impl='checkpoint'")
    if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise ValueError(f"cat_bn_relu_conv needs numeric zero padding, got {conv.padding!r} / {conv.padding_mode!r}")
    conv_args = (conv.stride, conv.padding, conv.dilation, conv.groups)
    return _CatBNReLUConv.apply(
        norm.weight, norm.bias, norm.running_mean, norm.running_var, _bn_momentum(norm), norm.eps,
        conv.weight, conv.bias, conv_args, *inputs,
    )
