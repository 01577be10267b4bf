"""The DenseNet closed form: parameters, MACs, saved and live bytes per sample, walking `models.densenet`'s forward."""

from __future__ import annotations

from dataclasses import dataclass

from ..models.config import DenseNetConfig
from ..models.plan import LayerSpec
from .ledger import INDEX_BYTES, Live, Saved, Unit, classifier_unit, conv_cost, stem_conv_hw


@dataclass(frozen=True)
class DenseParts:
    """A DenseNet plan cut along the model's structure."""

    stem: LayerSpec
    blocks: tuple[tuple[tuple[LayerSpec, ...], LayerSpec | None], ...]  # (dense layers, transition after)
    norm: LayerSpec
    classifier: LayerSpec


def dense_parts(plan: list[LayerSpec]) -> DenseParts:
    blocks: list[tuple[list[LayerSpec], LayerSpec | None]] = []
    for s in plan[1:-2]:
        if s.kind == "dense_layer":
            if s.layer == 1:
                blocks.append(([], None))
            blocks[-1][0].append(s)
        else:
            blocks[-1] = (blocks[-1][0], s)
    return DenseParts(plan[0], tuple((tuple(ls), t) for ls, t in blocks), plan[-2], plan[-1])


def densenet_units(c: DenseNetConfig, parts: DenseParts, hw: tuple[int, int]) -> list[Unit]:
    k, inter = c.growth_rate, c.bn_size * c.growth_rate
    s = parts.stem
    if c.stem == "imagenet":
        p, m = conv_cost(s.in_channels, s.out_channels, 7, *stem_conv_hw(c, hw))
        p += 2 * s.out_channels  # norm0
    else:
        p, m = conv_cost(s.in_channels, s.out_channels, 3, *hw)
    units = [Unit(s, p, m, s.out_channels * s.height * s.width)]
    for layers, transition in parts.blocks:
        for s in layers:
            if inter:
                p1, m1 = conv_cost(s.in_channels, inter, 1, s.height, s.width)
                p2, m2 = conv_cost(inter, k, 3, s.height, s.width)
                p, m = 2 * s.in_channels + p1 + 2 * inter + p2, m1 + m2
            else:
                p, m = conv_cost(s.in_channels, k, 3, s.height, s.width)
                p += 2 * s.in_channels
            units.append(Unit(s, p, m, k * s.height * s.width))
        if transition is not None:
            t, last = transition, layers[-1]
            # The 1x1 convolution runs before the 2x2 pooling, at the block's size.
            p, m = conv_cost(t.in_channels, t.out_channels, 1, last.height, last.width)
            units.append(Unit(t, 2 * t.in_channels + p, m, t.out_channels * t.height * t.width))
    n, f = parts.norm, parts.classifier
    units.append(Unit(n, 2 * n.in_channels, 0, n.out_channels * n.height * n.width))
    units.append(classifier_unit(f))
    return units


def efficient_kept_maps(config: DenseNetConfig) -> int:
    """Channel maps a memory-efficient dense layer keeps for backward besides its k new maps (which the
    later layers read anyway): the bottleneck's 1x1 output (recompute_bn), or that output and its BN-ReLU
    (checkpoint, whose BN2-ReLU-Conv3x3 run un-checkpointed). Per-channel batch statistics not counted."""
    inter = config.bn_size * config.growth_rate
    return inter if config.efficient_impl == "recompute_bn" else 2 * inter


def save_dense_block(
    acc: Saved,
    c: DenseNetConfig,
    layers: tuple[LayerSpec, ...],
    block_in: tuple[str, int],
    plane: int,
    size: int,
    efficient: bool,
) -> None:
    """What autograd keeps in one dense block (plane: bytes per sample of one channel map)."""
    k, inter = c.growth_rate, c.bn_size * c.growth_rate
    features, kept = [block_in], 0
    for s in layers:
        acc.enter(s.path)
        if efficient:
            # Both implementations keep the layer's inputs (shared with the block, so once per block): each is
            # charged to the first layer that reads it; going over them all again would make a block quadratic.
            for key, nbytes in features[kept:]:
                acc.save(key, nbytes)
            kept = len(features)
        if efficient and c.efficient_impl == "recompute_bn":
            # efficient.cat_bn_relu_conv keeps the inputs and the batch mean and invstd of each BN it
            # wraps; in a bottleneck layer it wraps BN2-ReLU-Conv3x3 too, whose input is conv1's output.
            acc.bn_stats(s.in_channels, size, running=False)
            if inter:
                acc.save(f"{s.path}.conv1", inter * plane)
                acc.bn_stats(inter, size, running=False)
        else:
            if not efficient:  # (checkpointing keeps nothing of concat-norm1-relu1-conv1)
                acc.save(f"{s.path}.cat", s.in_channels * plane)  # norm1 keeps the concatenation
                acc.bn_stats(s.in_channels, size)
                acc.save(f"{s.path}.norm1", s.in_channels * plane)  # relu1 (in place) keeps it; conv1 reads it
            if inter:
                acc.save(f"{s.path}.conv1", inter * plane)  # norm2 keeps the bottleneck's output
                acc.bn_stats(inter, size)
                acc.save(f"{s.path}.norm2", inter * plane)  # relu2 (in place) keeps it; conv2 reads it
        if c.drop_rate > 0:
            acc.save(f"{s.path}.dropout", k * plane)  # the scaled keep-mask (CPU: activation dtype)
        features.append((s.path, k * plane))


def densenet_saved(c: DenseNetConfig, parts: DenseParts, hw: tuple[int, int], size: int, efficient: bool) -> Saved:
    """What autograd keeps during a training forward pass of densenet.DenseNet."""
    acc, k = Saved(), c.growth_rate
    stem = parts.stem
    acc.enter(stem.path)
    acc.save("input", c.in_channels * hw[0] * hw[1] * size)  # conv0 keeps the image for its weight gradient
    if c.stem == "imagenet":
        h1, w1 = stem_conv_hw(c, hw)
        acc.save("conv0", stem.out_channels * h1 * w1 * size)  # norm0 keeps its input
        acc.bn_stats(stem.out_channels, size)
        acc.save("norm0", stem.out_channels * h1 * w1 * size)  # relu0 (in place) keeps it; pool0 reads it
        acc.save("pool0.indices", stem.out_channels * stem.height * stem.width * INDEX_BYTES)
    block_in = ("stem", stem.out_channels * stem.height * stem.width * size)
    for layers, transition in parts.blocks:
        plane = layers[0].height * layers[0].width * size  # bytes of one channel map
        save_dense_block(acc, c, layers, block_in, plane, size, efficient)
        block_out = (f"block{layers[0].block}.cat", (layers[-1].in_channels + k) * plane)
        if transition is not None:
            t = transition
            acc.enter(t.path)
            acc.save(*block_out)  # norm keeps the block's concatenation
            acc.bn_stats(t.in_channels, size)
            acc.save(f"{t.path}.norm", t.in_channels * plane)  # relu (in place) keeps it; conv reads it
            acc.save(f"{t.path}.conv", t.out_channels * plane)  # avg-pool keeps its input
            block_in = (t.path, t.out_channels * t.height * t.width * size)
    acc.enter(parts.norm.path)
    acc.save(*block_out)  # norm5 keeps the last block's concatenation
    acc.bn_stats(parts.norm.in_channels, size)
    # The head: F.relu (in place) keeps norm5's output, global pooling keeps nothing, the linear layer
    # keeps its (B, C) input. These run between modules; they are charged to the classifier's row.
    acc.enter(parts.classifier.path)
    acc.save("norm5", block_out[1])
    acc.save("pooled", parts.classifier.in_channels * size)
    return acc


def _inference_block(live: Live, c: DenseNetConfig, layers: tuple[LayerSpec, ...], plane: int) -> int:
    """DenseBlock without grad (forward_into_buffer): layers read views of one buffer and write after them."""
    k, inter = c.growth_rate, c.bn_size * c.growth_rate
    buffer = live.alloc((layers[-1].in_channels + k) * plane)
    for s in layers:
        norm1 = live.alloc(s.in_channels * plane)  # the concatenation is a view of the buffer: no copy
        new = live.alloc((inter or k) * plane)
        live.free(norm1)
        if inter:
            norm2 = live.alloc(inter * plane)
            conv2 = live.alloc(k * plane)
            live.free(new, norm2)
            new = conv2
        live.free(new)  # copied into the buffer and dropped
    return buffer


def densenet_inference(c: DenseNetConfig, parts: DenseParts, hw: tuple[int, int], size: int) -> int:
    """Peak live bytes per sample during an eval-mode no-grad forward pass of densenet.DenseNet."""
    live = Live()
    live.alloc(c.in_channels * hw[0] * hw[1] * size)  # the caller holds the input throughout
    stem = parts.stem
    c0 = stem.out_channels
    if c.stem == "imagenet":
        h1, w1 = stem_conv_hw(c, hw)
        conv0 = live.alloc(c0 * h1 * w1 * size)
        norm0 = live.alloc(c0 * h1 * w1 * size)
        live.free(conv0)  # nn.Sequential rebinds its input; relu0 works in place
        out = live.alloc(c0 * stem.height * stem.width * size)
        live.free(norm0)
    else:
        out = live.alloc(c0 * stem.height * stem.width * size)
    for layers, transition in parts.blocks:
        plane = layers[0].height * layers[0].width * size
        block_out = _inference_block(live, c, layers, plane)
        live.free(out)  # the outer nn.Sequential drops the block's input once the block returns
        out = block_out
        if transition is not None:
            t = transition
            norm = live.alloc(t.in_channels * plane)
            conv = live.alloc(t.out_channels * plane)
            live.free(norm)
            pooled = live.alloc(t.out_channels * t.height * t.width * size)
            live.free(conv, out)  # the outer nn.Sequential drops the block's output once the transition returns
            out = pooled
    live.alloc(parts.norm.out_channels * parts.norm.height * parts.norm.width * size)  # norm5
    live.free(out)
    live.alloc(parts.classifier.in_channels * size)  # pooled (B, C, 1, 1); `features` still holds norm5's output
    live.alloc(parts.classifier.out_channels * size)  # logits
    return live.peak
