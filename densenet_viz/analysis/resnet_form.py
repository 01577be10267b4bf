"""The ResNet closed form: parameters, MACs, saved and live bytes per sample, walking `models.resnet`'s forward."""

from __future__ import annotations

from dataclasses import dataclass

from ..models.config import ResNetConfig
from ..models.plan import LayerSpec
from .ledger import INDEX_BYTES, Live, Saved, Unit, classifier_unit, conv_cost, stem_conv_hw


@dataclass(frozen=True)
class _ResBlock:
    """One residual block with what its forward needs besides the plan's record."""

    spec: LayerSpec
    in_hw: tuple[int, int]
    planes: int
    shortcut: str | None  # None (identity), "projection" or "zero_pad"


def _res_blocks(c: ResNetConfig, plan: list[LayerSpec]) -> list[_ResBlock]:
    blocks, prev = [], plan[0]
    for s in plan[1:-1]:
        stride = 2 if s.block > 1 and s.layer == 1 else 1
        shortcut = c.shortcut if stride != 1 or s.in_channels != s.out_channels else None
        blocks.append(_ResBlock(s, (prev.height, prev.width), c.widths[s.block - 1], shortcut))
        prev = s
    return blocks


def resnet_units(c: ResNetConfig, plan: list[LayerSpec], hw: tuple[int, int]) -> list[Unit]:
    stem = plan[0]
    p, m = conv_cost(stem.in_channels, stem.out_channels, 7 if c.stem == "imagenet" else 3, *stem_conv_hw(c, hw))
    units = [Unit(stem, p + 2 * stem.out_channels, m, stem.out_channels * stem.height * stem.width)]
    for b in _res_blocks(c, plan):
        s, w, out_hw = b.spec, b.planes, (b.spec.height, b.spec.width)
        if c.block == "bottleneck":
            # torchvision puts the stride on the 3x3, so the first 1x1 runs at the block's input size.
            convs = [conv_cost(s.in_channels, w, 1, *b.in_hw), conv_cost(w, w, 3, *out_hw)]
            convs.append(conv_cost(w, s.out_channels, 1, *out_hw))
            norms = 2 * (w + w + s.out_channels)
        else:
            convs = [conv_cost(s.in_channels, w, 3, *out_hw), conv_cost(w, w, 3, *out_hw)]
            norms = 2 * (w + w)
        if b.shortcut == "projection":
            convs.append(conv_cost(s.in_channels, s.out_channels, 1, *out_hw))
            norms += 2 * s.out_channels
        params, macs = sum(p for p, _ in convs) + norms, sum(m for _, m in convs)
        units.append(Unit(s, params, macs, s.out_channels * s.height * s.width))
    f = plan[-1]
    units.append(classifier_unit(f))
    return units


def resnet_saved(c: ResNetConfig, plan: list[LayerSpec], hw: tuple[int, int], size: int) -> Saved:
    """What autograd keeps during a training forward pass of resnet.ResNet."""
    acc, stem = Saved(), plan[0]
    acc.enter(stem.path)  # conv1, bn1, relu and maxpool are the stem
    acc.save("input", c.in_channels * hw[0] * hw[1] * size)
    h1, w1 = stem_conv_hw(c, hw)
    acc.save("conv1", stem.out_channels * h1 * w1 * size)  # bn1 keeps its input
    acc.bn_stats(stem.out_channels, size)
    acc.save("bn1", stem.out_channels * h1 * w1 * size)  # relu (in place) keeps it
    if c.stem == "imagenet":
        acc.save("maxpool.indices", stem.out_channels * stem.height * stem.width * INDEX_BYTES)
        x = ("maxpool", stem.out_channels * stem.height * stem.width * size)
    else:
        x = ("bn1", stem.out_channels * h1 * w1 * size)  # the identity max-pool hands on relu's output
    for b in _res_blocks(c, plan):
        s, w = b.spec, b.planes
        acc.enter(s.path)
        plane, in_plane = s.height * s.width * size, b.in_hw[0] * b.in_hw[1] * size
        acc.save(*x)  # conv1 (and a projection's conv) keep the block's input
        if b.shortcut == "projection":
            acc.save(f"{s.path}.downsample.0", s.out_channels * plane)  # its batch norm keeps the conv's output
            acc.bn_stats(s.out_channels, size)
        # Each conv's output is kept by the batch norm after it, each batch norm's output by the in-place
        # ReLU (and the next conv); the zero-padding shortcut and the addition keep nothing.
        if c.block == "bottleneck":
            maps = [("conv1", w, in_plane), ("bn1", w, in_plane), ("conv2", w, plane), ("bn2", w, plane)]
            maps.append(("conv3", s.out_channels, plane))
        else:
            maps = [("conv1", w, plane), ("bn1", w, plane), ("conv2", w, plane)]
        for name, channels, p in maps:
            acc.save(f"{s.path}.{name}", channels * p)
            if name.startswith("conv"):
                acc.bn_stats(channels, size)
        x = (f"{s.path}.out", s.out_channels * plane)
        acc.save(*x)  # the ReLU after the addition keeps its output
    fc = plan[-1]
    acc.enter(fc.path)  # avgpool (a mean: keeps nothing) and fc, which keeps its (B, C) input
    acc.save("pooled", fc.in_channels * size)
    return acc


def resnet_inference(c: ResNetConfig, plan: list[LayerSpec], hw: tuple[int, int], size: int) -> int:
    """Peak live bytes per sample during an eval-mode no-grad forward pass of resnet.ResNet."""
    live, stem = Live(), plan[0]
    live.alloc(c.in_channels * hw[0] * hw[1] * size)  # the caller holds the input throughout
    h1, w1 = stem_conv_hw(c, hw)
    conv1 = live.alloc(stem.out_channels * h1 * w1 * size)
    x = live.alloc(stem.out_channels * h1 * w1 * size)  # bn1; relu works in place
    live.free(conv1)
    if c.stem == "imagenet":
        pooled = live.alloc(stem.out_channels * stem.height * stem.width * size)
        live.free(x)
        x = pooled
    blocks = _res_blocks(c, plan)
    for stage in range(1, len(c.layers) + 1):
        stage_in = cur = x  # ResNet.forward's `x` holds the stage input until the stage returns
        for b in (b for b in blocks if b.spec.block == stage):
            s, w = b.spec, b.planes
            plane, in_plane = s.height * s.width * size, b.in_hw[0] * b.in_hw[1] * size
            identity = 0
            if b.shortcut == "projection":
                d = live.alloc(s.out_channels * plane)
                identity = live.alloc(s.out_channels * plane)
                live.free(d)
            elif b.shortcut == "zero_pad":
                identity = live.alloc(s.out_channels * plane)  # the strided slice is a view; F.pad copies
            first = in_plane if c.block == "bottleneck" else plane
            c1 = live.alloc(w * first)
            out = live.alloc(w * first)  # bn1 (+ in-place ReLU)
            live.free(c1)
            widths = [w, s.out_channels] if c.block == "bottleneck" else [w]
            for channels in widths:  # conv2/bn2 (and conv3/bn3): the old `out` lives until reassigned
                conv = live.alloc(channels * plane)
                normed = live.alloc(channels * plane)
                live.free(conv, out)
                out = normed
            added = live.alloc(s.out_channels * plane)  # out + identity; the ReLU works in place
            live.free(out, identity)
            if cur != stage_in:
                live.free(cur)  # nn.Sequential drops the previous block's output
            cur = added
        if cur != stage_in:
            live.free(stage_in)
        x = cur
    fc = plan[-1]
    live.alloc(fc.in_channels * size)  # avgpool's (B, C, 1, 1); flatten is a view
    live.free(x)
    live.alloc(fc.out_channels * size)
    return live.peak


