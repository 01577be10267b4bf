"""Feature maps: the units one can inspect, capturing their outputs with hooks that are always removed,
and per-channel statistics grouped by the layer that produced each channel of a concatenation.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..analysis.records import ChannelGroup, source_of
from ..models.build import frozen, seeded_model
from ..models.config import DenseNetConfig, ResNetConfig, layer_in_channels
from ..models.plan import LayerSpec, layer_plan


@dataclass
class FeatureCapture:
    """Outputs captured from named modules (float32, CPU) and the logits when the forward ran to the end."""

    maps: dict[str, Tensor]
    logits: Tensor | None


# On a small shared CPU one OpenMP thread beats two by far: DenseNet-264 to norm5 at 224x224, batch 1,
# took 0.3-0.6 s on one thread and 7-9 s on two while other processes kept both cores busy (OpenMP's
# threads wait for each other when one is descheduled).
DEFAULT_THREADS = 1
# torch.set_num_threads in one thread also changes the count that threads started later inherit, so the
# body restores the process's own count rather than whatever it read on entry: two overlapping sessions
# would otherwise leave the whole server on one thread.
_PROCESS_THREADS = torch.get_num_threads()


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the body with n intra-op threads, then restore the process's own count (None: leave it)."""
    if n is None:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(_PROCESS_THREADS)


def inference_model(config: DenseNetConfig | ResNetConfig, device: str = "cpu", seed: int = 0) -> nn.Module:
    """A randomly initialised model in eval mode with frozen parameters, reproducible for a seed.

    Safe to share (st.cache_resource): nothing here or in capture_features changes it afterwards.
    """
    return frozen(seeded_model(config, seed), device)


# Where a page's weights and images come from (their labels, as the page shows them).
RANDOM, TRAINED, LOADED = "Random initialization", "Trained in this app (digits)", "Loaded state dict"
WEIGHTS_SOURCES = (RANDOM, TRAINED, LOADED)
SAMPLE, UPLOAD, DIGIT = "Sample image", "Upload", "Digit (held-out test set)"


def image_sources(weights: str) -> list[str]:
    """The images these weights may see: the held-out digits only with the model trained on them."""
    if weights not in WEIGHTS_SOURCES:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS_SOURCES)}; got {weights!r}")
    return [DIGIT, SAMPLE, UPLOAD] if weights == TRAINED else [SAMPLE, UPLOAD]


def input_crop(weights: str, stem: str) -> float:
    """The centre fraction of an image kept before resizing: torchvision's evaluation (resize to 256, crop 224)
    for loaded ImageNet weights, so their predictions are the published ones; all of it otherwise."""
    return 224 / 256 if weights == LOADED and stem == "imagenet" else 1.0


def default_layer(specs: list[LayerSpec]) -> str:
    """The unit a page opens on: the first dense block's output (the concatenation), else the first unit."""
    return next((s.path for s in specs if s.kind == "dense_block"), specs[0].path)


def selectable_layers(config: DenseNetConfig | ResNetConfig, input_size: int) -> list[LayerSpec]:
    """The layer plan without the classifier, plus each dense block's output (kind 'dense_block')."""
    plan = [s for s in layer_plan(config, input_size) if s.kind != "classifier"]
    if not isinstance(config, DenseNetConfig):
        return plan
    out: list[LayerSpec] = []
    block_in = dict(enumerate(config.block_in_channels(), start=1))
    block_out = dict(enumerate(config.block_out_channels(), start=1))
    for i, spec in enumerate(plan):
        out.append(spec)
        nxt = plan[i + 1] if i + 1 < len(plan) else None
        if spec.kind == "dense_layer" and (nxt is None or nxt.kind != "dense_layer" or nxt.block != spec.block):
            b = spec.block
            assert b is not None
            # The block's output is the concatenation [x0, f1, ..., fL] at the block's resolution.
            out.append(
                LayerSpec(f"features.denseblock{b}", "dense_block", b, None, block_in[b], block_out[b],
                          spec.height, spec.width)
            )
    return out


def layer_label(spec: LayerSpec) -> str:
    """A menu label: what the unit is, how many channels it gives, at what size."""
    size = f"{spec.height}×{spec.width}"
    if spec.kind == "stem":
        return f"Stem — {spec.out_channels} ch, {size}"
    if spec.kind == "dense_layer":
        return f"Block {spec.block} · layer {spec.layer} — {spec.out_channels} new ch, {size}"
    if spec.kind == "dense_block":
        return f"Block {spec.block} output (concatenation) — {spec.out_channels} ch, {size}"
    if spec.kind == "transition":
        return f"Transition {spec.block} — {spec.out_channels} ch, {size}"
    if spec.kind == "residual_block":
        return f"Stage {spec.block} · block {spec.layer} — {spec.out_channels} ch, {size}"
    if spec.kind == "norm":
        return f"Final BN ({spec.path.split('.')[-1]}) — {spec.out_channels} ch, {size}"
    return f"{spec.path} — {spec.out_channels} ch, {size}"


def capture_path(config: DenseNetConfig | ResNetConfig, spec: LayerSpec) -> str:
    """The module whose output has the shape the plan gives for spec (the stem ends after its pooling)."""
    if spec.kind == "stem":
        if isinstance(config, DenseNetConfig):
            return "features.pool0" if config.stem == "imagenet" else "features.conv0"
        return "maxpool"  # ResNet: after conv1-bn1-relu (and the max-pool of the ImageNet stem)
    return spec.path


def channel_groups(spec: LayerSpec, growth_rate: int | None = None) -> list[ChannelGroup]:
    """Who produced each channel of spec's output: for a dense block x0 then k channels per layer."""
    if spec.kind == "dense_block":
        if growth_rate is None:
            raise ValueError("growth_rate is needed to split a dense block's output by source layer")
        n_layers = (spec.out_channels - spec.in_channels) // growth_rate
        groups = [ChannelGroup("x0 (block input)", 0, 0, spec.in_channels)]
        for layer in range(1, n_layers + 1):
            start = layer_in_channels(spec.in_channels, growth_rate, layer)
            groups.append(ChannelGroup(f"layer {layer}", layer, start, start + growth_rate))
        return groups
    if spec.kind == "dense_layer":
        return [ChannelGroup(f"layer {spec.layer}", spec.layer or 0, 0, spec.out_channels)]
    return [ChannelGroup(spec.kind.replace("_", " "), -1, 0, spec.out_channels)]


class _Captured(Exception):
    """Raised by the last hook to stop the forward once every requested output is in hand."""


def capture_features(model: nn.Module, x: Tensor, paths: list[str], run_to_end: bool = False) -> FeatureCapture:
    """Outputs of the modules at `paths` for input x, under no_grad; the hooks are removed in `finally`.

    The model must already be in eval mode (a shared model is never flipped here). Hooks act only in the
    calling thread, so another session running the same cached model at the same moment is unaffected.
    Without run_to_end the forward stops after the last requested module (no logits). On the meta
    device the maps are shapes only.
    """
    if model.training:
        raise ValueError("capture_features needs a model in eval mode; call .eval() on a model you own")
    modules = dict(model.named_modules())
    unknown = [p for p in paths if p not in modules]
    if unknown:
        raise ValueError(f"no module named {', '.join(unknown)} in {type(model).__name__}")
    owner = threading.get_ident()
    wanted = set(paths)
    maps: dict[str, Tensor] = {}

    def make_hook(path: str):
        def hook(module: nn.Module, inputs: object, output: Tensor) -> None:
            if threading.get_ident() != owner:
                return
            if output.is_meta:  # shape-only run (no memory): keep the meta tensor
                maps[path] = output.detach()
            else:  # clone: DenseNet.forward applies an in-place ReLU to norm5's output after this hook runs
                maps[path] = output.detach().float().cpu().clone()
            if not run_to_end and wanted <= maps.keys():
                raise _Captured

        return hook

    param = next(model.parameters(), None)
    if param is not None:
        x = x.to(device=param.device, dtype=param.dtype)
    handles = [modules[p].register_forward_hook(make_hook(p)) for p in paths]
    logits = None
    try:
        with torch.no_grad():
            out = model(x).detach()
            logits = out if out.is_meta else out.float().cpu()
    except _Captured:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return FeatureCapture(maps=maps, logits=logits)


def compute_feature_map(
    model: nn.Module,
    x: Tensor,
    config: DenseNetConfig | ResNetConfig,
    spec: LayerSpec,
    with_logits: bool = False,
    num_threads: int | None = DEFAULT_THREADS,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The (C, H, W) feature map of spec for a single image x (1, C, S, S), and the logits if asked."""
    path = capture_path(config, spec)
    with torch_threads(num_threads):
        capture = capture_features(model, x, [path], run_to_end=with_logits)
    fmap = capture.maps[path][0].numpy()
    logits = capture.logits[0].numpy() if capture.logits is not None else None
    return fmap, logits


def channel_stats(fmap: np.ndarray, groups: list[ChannelGroup]) -> pd.DataFrame:
    """Per channel of a (C, H, W) map: source, mean, std, min, max and the fraction of exact zeros."""
    flat = fmap.reshape(fmap.shape[0], -1).astype(np.float64)
    return pd.DataFrame(
        {
            "channel": np.arange(fmap.shape[0]),
            "source": source_of(groups, fmap.shape[0]),
            "mean": flat.mean(1),
            "std": flat.std(1),
            "min": flat.min(1),
            "max": flat.max(1),
            "fraction zero": (flat == 0).mean(1),
        }
    )


def source_summary(fmap: np.ndarray, groups: list[ChannelGroup]) -> pd.DataFrame:
    """Per source group: its channel range and the mean (and mean absolute) activation of its channels."""
    rows = []
    for g in groups:
        part = fmap[g.start : g.stop].astype(np.float64)
        rows.append(
            {
                "source": g.label,
                "layer": g.layer,
                "first channel": g.start,
                "channels": g.size,
                "mean activation": float(part.mean()),
                "mean |activation|": float(np.abs(part).mean()),
            }
        )
    return pd.DataFrame(rows)


DRAW_SIDE = 64  # a drawn map is average-pooled to at most this many pixels a side


@dataclass(frozen=True)
class FeatureView:
    """What a page shows of one unit's output for one image, a few MB whatever the input size: every channel pooled
    for drawing, per-channel statistics and per-source means at full resolution, and the logits if computed."""

    maps: np.ndarray  # (C, h, w): every channel average-pooled to at most DRAW_SIDE a side (grid_maps)
    shape: tuple[int, int, int]  # the full map's (C, H, W)
    stats: pd.DataFrame  # channel_stats of the full map
    summary: pd.DataFrame  # source_summary of the full map
    logits: np.ndarray | None

    @property
    def nbytes(self) -> int:
        """About what it takes in memory (and on the way from a worker)."""
        return self.maps.nbytes + (0 if self.logits is None else self.logits.nbytes) + 64 * self.shape[0]


def feature_view(fmap: np.ndarray, groups: list[ChannelGroup], logits: np.ndarray | None = None) -> FeatureView:
    """The FeatureView of a (C, H, W) map whose channels come from `groups`."""
    return FeatureView(grid_maps(fmap, list(range(fmap.shape[0]))), tuple(fmap.shape), channel_stats(fmap, groups),
                       source_summary(fmap, groups), logits)


def grid_maps(fmap: np.ndarray, channels: list[int], max_side: int = DRAW_SIDE) -> np.ndarray:
    """The chosen channels of a (C, H, W) map, average-pooled down to at most max_side for drawing."""
    maps = torch.from_numpy(np.ascontiguousarray(fmap[channels], dtype=np.float32))
    h, w = maps.shape[-2:]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        maps = F.adaptive_avg_pool2d(maps.unsqueeze(0), (max(1, round(h * scale)), max(1, round(w * scale))))[0]
    return maps.numpy()
