"""ResNet baselines (He et al., CVPR 2016) with torchvision's module names."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ResNetConfig


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; the input is added to their output (addition, not concatenation)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)  # same channel count in and out: x_l = H_l(x_{l-1}) + x_{l-1}


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), plus the shortcut; torchvision puts the stride on the 3x3."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ZeroPadShortcut(nn.Module):
    """He et al.'s option A: subsample by striding and pad the new channels with zeros (no parameters)."""

    def __init__(self, planes: int, stride: int) -> None:
        super().__init__()
        self.planes = planes
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        extra = self.planes - x.shape[1]
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))


class ResNet(nn.Module):
    """A ResNet from a ResNetConfig: stem, stages layer1..layerN, global pool, fc."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = config
        block = Bottleneck if config.block == "bottleneck" else BasicBlock
        self.inplanes = config.widths[0]
        if config.stem == "imagenet":
            self.conv1 = nn.Conv2d(config.in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(config.in_channels, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        for i, (blocks, width) in enumerate(zip(config.layers, config.widths, strict=False)):
            stage = self._make_layer(block, width, blocks, stride=1 if i == 0 else 2)
            self.add_module(f"layer{i + 1}", stage)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(config.num_features, config.num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int) -> nn.Sequential:
        out = planes * block.expansion
        downsample: nn.Module | None = None
        if stride != 1 or self.inplanes != out:
            if self.config.shortcut == "zero_pad":
                downsample = ZeroPadShortcut(out, stride)
            else:
                downsample = nn.Sequential(
                    nn.Conv2d(self.inplanes, out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out)
                )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = out
        layers += [block(out, planes, 1, None) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    @property
    def stages(self) -> list[nn.Sequential]:
        """The residual stages in order (layer1, layer2, ...)."""
        return [getattr(self, f"layer{i + 1}") for i in range(len(self.config.layers))]

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages:
            x = stage(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)
