"""A small training demo on scikit-learn's bundled digits, and the feature-reuse map of a trained DenseNet.

The DenseNet-BC here (k=12, three blocks of 4 layers, ~0.1M parameters) and its parameter-matched ResNet
train in a few seconds per epoch on one CPU core; the trained DenseNet's first convolutions then show
which earlier layers each layer reads (Huang et al. 2017, Figure 5).
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..analysis.baselines import count_params, match_baseline
from ..analysis.records import EpochResult, ReuseMap
from ..models.build import build_model, frozen, seeded_model
from ..models.config import PRESET_TITLES, DenseNetConfig, ResNetConfig, check_int
from .features import torch_threads
from .images import GRAY_MEAN, GRAY_STD

# The demo model: the paper's CIFAR DenseNet-BC recipe (2k stem channels, bottleneck 4k, theta 0.5) shrunk
# to 4 layers per block, for 1-channel 16x16 digits. 102,298 parameters.
DIGITS_CONFIG = DenseNetConfig(
    growth_rate=12,
    block_config=(4, 4, 4),
    num_init_features=24,
    bn_size=4,
    compression=0.5,
    stem="cifar",
    in_channels=1,
    num_classes=10,
)
DIGIT_LABELS = [str(d) for d in range(10)]
DENSENET_NAME = "DenseNet-BC"  # the trained DenseNet's name in a run, its legends and tables
MAX_EPOCHS = 20
# A worker stops a training run that takes longer than this per epoch (both models; ~5 s alone on one core).
EPOCH_DEADLINE_S = 60


@dataclass(frozen=True)
class TrainSettings:
    """How the demo trains: Adam with a fixed seed, a fixed split and a bounded number of epochs."""

    epochs: int = 5
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    image_size: int = 16  # the 8x8 digits upsampled (bilinear); 16 keeps an epoch at a few seconds
    test_fraction: float = 0.2
    # Small convolutions on a shared 2-core machine run faster on one OpenMP thread than on two (measured
    # here under load: 0.13 s vs 3 s per batch of 64); see features.torch_threads. None: torch's setting.
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        for name, low, high in [("epochs", 1, MAX_EPOCHS), ("batch_size", 1, 4096), ("image_size", 8, 64)]:
            check_int(name, getattr(self, name), low, high)
        if not 0 < self.lr <= 1:
            raise ValueError(f"lr must be in (0, 1], got {self.lr}")
        if not 0.05 <= self.test_fraction <= 0.5:
            raise ValueError(f"test_fraction must be in [0.05, 0.5], got {self.test_fraction}")


@dataclass
class DigitsData:
    """The digits split into train and test tensors (N, 1, S, S), normalised, with uint8 test images."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    test_images: np.ndarray  # (N_test, S, S) uint8, for display


@dataclass
class TrainedRun:
    """What a session keeps after training: configs, parameter counts, history and CPU weight copies."""

    configs: dict[str, DenseNetConfig | ResNetConfig]
    settings: TrainSettings
    params: dict[str, int] = field(default_factory=dict)
    history: list[EpochResult] = field(default_factory=list)
    states: dict[str, dict[str, Tensor]] = field(default_factory=dict)  # after the last complete epoch

    def final(self) -> dict[str, EpochResult]:
        """Each model's last epoch."""
        return {r.model: r for r in self.history}

    def summary(self) -> list[dict[str, object]]:
        """One row per model: parameters, epochs done, final test accuracy (%) and mean seconds per epoch."""
        return [{"model": name, "parameters": self.params[name], "epochs": last.epoch,
                 "test accuracy (%)": 100 * last.test_acc,
                 "seconds per epoch": sum(r.seconds for r in self.history if r.model == name) / last.epoch}
                for name, last in self.final().items()]


def trained_model(config: DenseNetConfig | ResNetConfig, state_dict: dict[str, Tensor],
                  device: str = "cpu") -> nn.Module:
    """The model of config with these weights, in eval mode on device (state_dict itself is never mutated)."""
    model = build_model(config, device="cpu")
    model.load_state_dict(state_dict)
    return frozen(model, device)


def state_digest(state_dict: dict[str, Tensor]) -> str:
    """A SHA-256 of the names, shapes and values of a state dict: which trained weights a job uses."""
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def digits_data(image_size: int = 16, test_fraction: float = 0.2, seed: int = 0) -> DigitsData:
    """scikit-learn's 1797 bundled 8x8 digits, stratified split, upsampled and normalised to [-1, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp(0, 1)
    y = torch.from_numpy(digits.target.astype(np.int64))
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    norm = (x - GRAY_MEAN[0]) / GRAY_STD[0]  # the same mapping images.preprocess uses for 1 channel
    display = (x[idx_test, 0] * 255).round().to(torch.uint8).numpy()
    return DigitsData(norm[idx_train], y[idx_train], norm[idx_test], y[idx_test], display)


def digits_baseline(config: DenseNetConfig = DIGITS_CONFIG) -> tuple[str, ResNetConfig]:
    """The CIFAR ResNet closest in parameters to the demo DenseNet (ResNet-20, 1 channel, 10 classes)."""
    return match_baseline(config, by="params")


def empty_run(settings: TrainSettings, config: DenseNetConfig = DIGITS_CONFIG) -> TrainedRun:
    """An empty TrainedRun for the DenseNet and its matched ResNet (no model is built)."""
    base_name, baseline = digits_baseline(config)
    base_title = PRESET_TITLES[base_name].removesuffix(" (CIFAR)")  # "ResNet-20" in legends and tables
    configs: dict[str, DenseNetConfig | ResNetConfig] = {DENSENET_NAME: config, base_title: baseline}
    return TrainedRun(configs=configs, settings=settings, params={n: count_params(c) for n, c in configs.items()})


def new_run(settings: TrainSettings, config: DenseNetConfig = DIGITS_CONFIG) -> tuple[TrainedRun, dict[str, nn.Module]]:
    """An empty TrainedRun for the DenseNet and its matched ResNet, and the freshly initialised models."""
    run = empty_run(settings, config)
    return run, {name: seeded_model(cfg, settings.seed) for name, cfg in run.configs.items()}


def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    """Accuracy of a model this caller owns (it is left in eval mode)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / max(1, len(y))


def train_models(models: dict[str, nn.Module], data: DigitsData, settings: TrainSettings,
                 on_batch: Callable[[], None] | None = None) -> Iterator[EpochResult]:
    """Train each model one epoch at a time (same batches for all), yielding after each model's epoch.

    The caller may stop iterating at any time; every model is left in eval mode after its epoch. on_batch,
    if given, is called before every batch (a worker's cancel check: it may raise to stop at once).
    """
    optimizers = {
        name: torch.optim.Adam(m.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        for name, m in models.items()
    }
    order = torch.Generator().manual_seed(settings.seed)
    n = len(data.y_train)
    for epoch in range(1, settings.epochs + 1):
        perm = torch.randperm(n, generator=order)
        for name, model in models.items():
            with torch_threads(settings.num_threads):
                start = time.perf_counter()
                model.train()
                total_loss, correct = 0.0, 0
                for i in range(0, n, settings.batch_size):
                    if on_batch is not None:
                        on_batch()
                    idx = perm[i : i + settings.batch_size]
                    if len(idx) < 2:  # batch norm needs two samples to estimate a variance
                        continue
                    logits = model(data.x_train[idx])
                    loss = F.cross_entropy(logits, data.y_train[idx])
                    optimizers[name].zero_grad(set_to_none=True)
                    loss.backward()
                    optimizers[name].step()
                    total_loss += float(loss.detach()) * len(idx)
                    correct += int((logits.argmax(1) == data.y_train[idx]).sum())
                test_acc = evaluate(model, data.x_test, data.y_test)
                seconds = time.perf_counter() - start
            yield EpochResult(name, epoch, total_loss / n, correct / n, test_acc, seconds)


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    """A CPU copy of a model's state dict (what a session stores)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


# --- Feature reuse (Huang et al. 2017, Figure 5) ---------------------------------------------------


def source_strength(weight: Tensor, in_channels: int, growth_rate: int) -> np.ndarray:
    """Mean absolute weight over the input channels of each source (x0, then k channels per layer).

    weight: (out, c, ...) of a convolution or linear layer that reads c = in_channels + n*k channels.
    """
    w = weight.detach().float().abs().cpu()
    w = w.reshape(w.shape[0], w.shape[1], -1)
    c = w.shape[1]
    if c < in_channels or (c - in_channels) % growth_rate:
        raise ValueError(f"a layer reading {c} channels is not x0 ({in_channels}) plus multiples of k={growth_rate}")
    bounds = [0, in_channels, *range(in_channels + growth_rate, c + 1, growth_rate)]
    return np.array([float(w[:, a:b].mean()) for a, b in itertools.pairwise(bounds)])


def block_reuse(
    block: nn.Module,
    in_channels: int,
    growth_rate: int,
    reader: Tensor | None = None,
    reader_label: str = "reader",
    block_index: int = 1,
) -> ReuseMap:
    """The reuse map of a dense block from each layer's first conv (conv1: the 1x1 bottleneck, or the 3x3)."""
    layers = [m for name, m in block.named_children() if name.startswith("denselayer")]
    n = len(layers)
    rows = [source_strength(layer.conv1.weight, in_channels, growth_rate) for layer in layers]
    targets = [f"layer {i}" for i in range(1, n + 1)]
    if reader is not None:
        rows.append(source_strength(reader, in_channels, growth_rate))
        targets.append(reader_label)
    raw = np.full((len(rows), n + 1), np.nan)
    for t, row in enumerate(rows):
        raw[t, : len(row)] = row
    peak = np.nanmax(raw, axis=1, keepdims=True)
    values = np.divide(raw, peak, out=np.zeros_like(raw), where=peak > 0)
    values[np.isnan(raw)] = np.nan
    sources = ["x0 (block input)"] + [f"layer {i}" for i in range(1, n + 1)]
    return ReuseMap(block_index, values, raw, targets, sources)


def feature_reuse(model: nn.Module, block: int) -> ReuseMap:
    """The reuse map of dense block `block` (1-based) of a DenseNet, with its transition or classifier row."""
    config = getattr(model, "config", None)
    if not isinstance(config, DenseNetConfig):
        raise ValueError("feature_reuse needs a DenseNet built from a DenseNetConfig")
    if not 1 <= block <= len(config.block_config):
        raise ValueError(f"block must be in [1, {len(config.block_config)}], got {block}")
    modules = dict(model.named_modules())
    dense = modules[f"features.denseblock{block}"]
    if block < len(config.block_config):
        reader, label = modules[f"features.transition{block}"].conv.weight, f"transition {block}"
    else:
        reader, label = model.classifier.weight, "classifier"
    return block_reuse(dense, config.block_in_channels()[block - 1], config.growth_rate, reader, label, block)
