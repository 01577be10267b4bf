"""DenseNet (Huang et al., CVPR 2017) as a student can read it, with torchvision's module names.

x_l = H_l([x_0, x_1, ..., x_{l-1}]): every layer reads the concatenation of all earlier feature
maps of its block and adds k (the growth rate) new ones, so layer l sees k0 + k*(l-1) channels.
torchvision's DenseLayer, DenseBlock and Transition carry a leading underscore; here they are public,
because the pages show their code and the benchmarks build blocks on their own.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import Tensor, nn

from .config import DEFAULT_EFFICIENT_IMPL, DenseNetConfig, layer_in_channels, transition_out_channels
from .efficient import autocast_enabled, cat_bn_relu_conv


class DenseLayer(nn.Module):
    """H_l: [BN-ReLU-Conv1x1 to bn_size*k] (the bottleneck, "-B") then BN-ReLU-Conv3x3 to k maps."""

    def __init__(
        self,
        num_input_features: int,
        growth_rate: int,
        bn_size: int,
        drop_rate: float,
        memory_efficient: bool,
        efficient_impl: str = DEFAULT_EFFICIENT_IMPL,
    ) -> None:
        super().__init__()
        if bn_size > 0:
            inter = bn_size * growth_rate
            self.norm1 = nn.BatchNorm2d(num_input_features)
            self.relu1 = nn.ReLU(inplace=True)
            self.conv1 = nn.Conv2d(num_input_features, inter, kernel_size=1, stride=1, bias=False)
            self.norm2 = nn.BatchNorm2d(inter)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(inter, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            # The plain DenseNet layer of the paper: BN-ReLU-Conv3x3 straight from the concatenation.
            self.norm1 = nn.BatchNorm2d(num_input_features)
            self.relu1 = nn.ReLU(inplace=True)
            self.conv1 = nn.Conv2d(num_input_features, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        self.bottleneck = bn_size > 0
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient
        self.efficient_impl = efficient_impl  # "checkpoint" or "recompute_bn" (see config.EFFICIENT_IMPLS)

    def bn_function(self, inputs: Tensor | list[Tensor], update_stats: bool = True) -> Tensor:
        """Concatenate the earlier maps and apply the first BN-ReLU-Conv (what checkpointing recomputes)."""
        # (B, k0 + (l-1)*k, H, W): the concatenation costs memory; a block's buffer view needs none.
        concated = inputs if isinstance(inputs, Tensor) else torch.cat(inputs, 1)
        if update_stats or not self.training:
            normed = self.norm1(concated)
        else:
            # Recomputation in backward: momentum 0 uses the same batch statistics but leaves the running
            # averages where the first pass put them (updating them twice would skew eval-mode outputs).
            n = self.norm1
            normed = F.batch_norm(concated, n.running_mean, n.running_var, n.weight, n.bias, True, 0.0, n.eps)
        return self.conv1(self.relu1(normed))

    def _checkpointed_bn_function(self, inputs: list[Tensor]) -> Tensor:
        # Only the layer's inputs (shared with the block) survive forward; backward runs bn_function again.
        calls = []

        def closure(*xs: Tensor) -> Tensor:
            calls.append(None)
            return self.bn_function(list(xs), update_stats=len(calls) == 1)

        return cp.checkpoint(closure, *inputs, use_reentrant=False)

    def forward(self, inputs: Tensor | list[Tensor]) -> Tensor:
        prev = [inputs] if isinstance(inputs, Tensor) else inputs
        efficient = self.memory_efficient and torch.is_grad_enabled() and any(t.requires_grad for t in prev)
        # recompute_bn's backward works in the forward's dtype; under autocast it cannot, so it falls back to
        # checkpointing, which re-runs the autocast forward in backward.
        if efficient and self.efficient_impl == "recompute_bn" and self.training and not autocast_enabled():
            # Pleiss et al.: keep only the inputs and the 1x1's output; backward recomputes concat-BN-ReLU.
            out = cat_bn_relu_conv(prev, self.norm1, self.conv1)  # (B, bn_size*k or k, H, W)
            if self.bottleneck:
                out = cat_bn_relu_conv([out], self.norm2, self.conv2)  # (B, k, H, W)
        else:
            # Checkpointing is torchvision's way (recompute_bn takes it too in eval mode, with no batch stats).
            out = self._checkpointed_bn_function(prev) if efficient else self.bn_function(inputs)
            if self.bottleneck:
                out = self.conv2(self.relu2(self.norm2(out)))  # (B, k, H, W)
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class DenseBlock(nn.ModuleDict):
    """L dense layers; layer i reads c_in + i*k channels and the block returns c_in + L*k."""

    def __init__(
        self,
        num_layers: int,
        num_input_features: int,
        bn_size: int,
        growth_rate: int,
        drop_rate: float,
        memory_efficient: bool = False,
        efficient_impl: str = DEFAULT_EFFICIENT_IMPL,
    ) -> None:
        super().__init__()
        self.growth_rate = growth_rate
        for i in range(1, num_layers + 1):
            c = layer_in_channels(num_input_features, growth_rate, i)  # k0 + k*(i-1)
            layer = DenseLayer(c, growth_rate, bn_size, drop_rate, memory_efficient, efficient_impl)
            self.add_module(f"denselayer{i}", layer)

    def forward(self, init_features: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            return self.forward_concat(init_features)
        return self.forward_into_buffer(init_features)  # inference: the same numbers, less copying

    def forward_concat(self, init_features: Tensor) -> Tensor:
        """The paper's form: keep a list of every layer's maps, concatenated again by each layer."""
        features = [init_features]  # [(B, c_in, H, W)]
        for layer in self.values():
            new_features = layer(features)  # (B, k, H, W)
            features.append(new_features)  # the list holds c_in + i*k channels after layer i
        return torch.cat(features, 1)  # (B, c_in + L*k, H, W)

    def forward_into_buffer(self, init_features: Tensor) -> Tensor:
        """Inference without re-concatenation: one buffer, each layer reading a view of its first c channels."""
        # Concatenating a growing list copies O(L²) channels; with no graph to keep for backward, each
        # layer can instead write its k new maps into the buffer right after the ones it read.
        c, k = init_features.shape[1], self.growth_rate
        buffer = _empty_with_channels(init_features, c + len(self) * k)  # (B, c_in + L*k, H, W)
        buffer[:, :c] = init_features
        for layer in self.values():
            buffer[:, c : c + k] = layer(buffer[:, :c])  # reads a (B, c, H, W) view, writes (B, k, H, W)
            c += k
        return buffer


def _empty_with_channels(x: Tensor, channels: int) -> Tensor:
    """An uninitialised (B, channels, H, W) tensor in x's dtype, device and memory format."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty((x.shape[0], channels, *x.shape[2:]), dtype=x.dtype, device=x.device, memory_format=fmt)


class Transition(nn.Sequential):
    """Between blocks: BN-ReLU-Conv1x1 to floor(theta*c) channels, then 2x2 average pooling."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """The whole network: stem, dense blocks joined by transitions, BN-ReLU, global pool, classifier."""

    def __init__(self, config: DenseNetConfig) -> None:
        super().__init__()
        self.config = config
        c0 = config.num_init_features
        if config.stem == "imagenet":
            stem = [
                ("conv0", nn.Conv2d(config.in_channels, c0, kernel_size=7, stride=2, padding=3, bias=False)),
                ("norm0", nn.BatchNorm2d(c0)),
                ("relu0", nn.ReLU(inplace=True)),
                ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            ]
        else:
            # The paper's CIFAR models start with a single 3x3 convolution and no pooling.
            stem = [("conv0", nn.Conv2d(config.in_channels, c0, kernel_size=3, stride=1, padding=1, bias=False))]
        self.features = nn.Sequential(OrderedDict(stem))

        num_features = c0
        for i, num_layers in enumerate(config.block_config):
            block = DenseBlock(
                num_layers=num_layers,
                num_input_features=num_features,
                bn_size=config.bn_size,
                growth_rate=config.growth_rate,
                drop_rate=config.drop_rate,
                memory_efficient=config.memory_efficient,
                efficient_impl=config.efficient_impl,
            )
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features = layer_in_channels(num_features, config.growth_rate, num_layers + 1)  # k0 + k*L
            if i != len(config.block_config) - 1:
                out_features = transition_out_channels(num_features, config.compression)  # floor(theta*c)
                self.features.add_module(f"transition{i + 1}", Transition(num_features, out_features))
                num_features = out_features

        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, config.num_classes)

        # torchvision's initialisation, so a fresh model matches it statistically.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        features = self.features(x)  # (B, num_features, H/s, W/s)
        out = F.relu(features, inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))  # global average pooling
        out = torch.flatten(out, 1)  # (B, num_features)
        return self.classifier(out)  # (B, num_classes)
