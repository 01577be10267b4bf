"""The heavy jobs the app hands to its worker pool (lab.jobs): importable, picklable, and cancellable.

Each takes plain arguments (configs, settings, tensors) and a `progress` keyword (jobs.Progress), builds
what it needs inside the worker, checks for a cancel per batch or per module, and returns only what the
page shows.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ..models.config import DenseNetConfig, ResNetConfig
from . import features as fx
from . import training
from .weights import WeightsFile, load_weights


@contextlib.contextmanager
def checked_per_module(model: nn.Module, check: Callable[[], None]) -> Iterator[None]:
    """Call check() before every module's forward, so a cancelled forward pass stops within one layer."""
    handles = [m.register_forward_pre_hook(lambda *_: check()) for m in model.modules()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def train_digits(settings: training.TrainSettings, *, progress: Any) -> training.TrainedRun:
    """Train the digits demo (both models) as the page did, reporting each epoch as a partial result.

    A partial is (EpochResult, that model's weights after the epoch): what a session keeps if it stops early.
    """
    data = training.digits_data(settings.image_size, settings.test_fraction, settings.seed)
    run, models = training.new_run(settings)
    total = settings.epochs * len(models)
    progress(0.0, "starting")
    for i, result in enumerate(training.train_models(models, data, settings, on_batch=progress.check), start=1):
        run.history.append(result)
        run.states[result.model] = weights = training.snapshot(models[result.model])
        progress(i / total, f"{result.model}: epoch {result.epoch}/{settings.epochs}, test accuracy "
                            f"{result.test_acc:.1%} ({result.seconds:.1f} s)", partial=(result, weights))
    return run


def measure_trade(config: DenseNetConfig, input_size: int, batch_size: int, device: str, *,
                  progress: Any) -> pd.DataFrame:
    """analysis.trade.measure_trade in a worker, its progress forwarded (each report checks for a cancel)."""
    from ..analysis import trade

    return trade.measure_trade(config, input_size, batch_size, device=device, progress=progress)


# Per kind of model (random, loaded), the one this worker made last: a student who picks another layer or image
# of the same model does not wait for it again.
_kept: dict[str, tuple[Hashable, nn.Module]] = {}


def _kept_model(kind: str, key: Hashable, make: Callable[[], nn.Module]) -> nn.Module:
    held = _kept.get(kind)
    if held is None or held[0] != key:
        _kept.pop(kind, None)  # drop the last before making the next
        _kept[kind] = held = (key, make())
    return held[1]


def release_models() -> None:
    """Drop the models this worker keeps and return the device's cached memory (after an out-of-memory error)."""
    _kept.clear()
    gc.collect()
    torch.cuda.empty_cache()  # a no-op unless CUDA has been initialised


def _feature_map(model: nn.Module, config: DenseNetConfig | ResNetConfig, path: str, x: Tensor, with_logits: bool,
                 progress: Any) -> tuple[np.ndarray, np.ndarray | None]:
    progress(0.5, "running the forward pass")
    spec = next(s for s in fx.selectable_layers(config, x.shape[-1]) if s.path == path)
    with checked_per_module(model, progress.check):
        return fx.compute_feature_map(model, x, config, spec, with_logits=with_logits, num_threads=None)


def random_feature_map(config: DenseNetConfig | ResNetConfig, device: str, path: str, x: Tensor, *,
                       progress: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The feature map at `path` of the seeded random model of config for image x (the worker keeps its last
    model)."""
    progress(0.0, "building the model")
    model = _kept_model("random", (config, device), lambda: fx.inference_model(config, device))
    return _feature_map(model, config, path, x, False, progress)


def loaded_feature_map(config: DenseNetConfig | ResNetConfig, device: str, source: WeightsFile, path: str, x: Tensor,
                       *, progress: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The feature map at `path` and the logits of config with the weights of `source`, for image x; ValueError
    if the weights do not fit the model (the worker keeps the last model it loaded)."""
    progress(0.0, f"loading {source.name} (torch.load, weights_only=True)")
    model = _kept_model("loaded", (source.key, config, device),
                        lambda: load_weights(config, source.state_dict(), device))
    return _feature_map(model, config, path, x, True, progress)


def build_seconds(config: DenseNetConfig | ResNetConfig, device: str, dtype: torch.dtype, *,
                  progress: Any) -> tuple[float, str]:
    """Build the model as the Build page does and return how long it took and where it lives."""
    from ..models.build import build_model

    progress(0.0, "building the model")
    start = time.perf_counter()
    model = build_model(config, device=device).to(dtype).eval()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, str(next(model.parameters()).device)
