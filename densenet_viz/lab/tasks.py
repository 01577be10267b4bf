"""The heavy jobs the app hands to its worker pool (lab.jobs): importable, picklable, and cancellable.

Each takes plain arguments (configs, settings, tensors) and a `progress` keyword (jobs.Progress), builds
what it needs inside the worker, checks for a cancel per batch or per module, and returns only what the
page shows.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from ..analysis.records import ReuseMap
from ..models.config import DenseNetConfig, ResNetConfig
from . import features as fx
from . import training
from .images import Preprocessed, prepare_upload
from .weights import MAX_WEIGHTS_BYTES, WeightsFile, WeightsNotHeld, load_weights


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


def measure_trade(config: DenseNetConfig, input_size: int, batch_size: int, device: str,
                  budget_bytes: int | None = None, *, progress: Any) -> pd.DataFrame:
    """analysis.trade.measure_trade in a worker, its progress forwarded (each report checks for a cancel); refused
    (ValueError) when it would need more than budget_bytes."""
    from ..analysis import trade

    return trade.measure_trade(config, input_size, batch_size, device=device, progress=progress,
                               budget_bytes=budget_bytes)


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
    """Drop the models and weights this worker keeps and return the device's cached memory (after an out-of-memory
    error)."""
    _kept.clear()
    _weights.clear()
    gc.collect()
    torch.cuda.empty_cache()  # a no-op unless CUDA has been initialised


def _feature_view(model: nn.Module, config: DenseNetConfig | ResNetConfig, path: str, x: Tensor, with_logits: bool,
                  progress: Any) -> fx.FeatureView:
    progress(0.5, "running the forward pass")
    spec = next(s for s in fx.selectable_layers(config, x.shape[-1]) if s.path == path)
    with checked_per_module(model, progress.check):
        fmap, logits = fx.compute_feature_map(model, x, config, spec, with_logits=with_logits, num_threads=None)
    return fx.feature_view(fmap, fx.channel_groups(spec, getattr(config, "growth_rate", None)), logits)


def random_feature_map(config: DenseNetConfig | ResNetConfig, device: str, path: str, x: Tensor, *,
                       progress: Any) -> fx.FeatureView:
    """What the page shows of the map at `path` of the seeded random model of config for image x (the worker keeps
    its last model)."""
    progress(0.0, "building the model")
    model = _kept_model("random", (config, device), lambda: fx.inference_model(config, device))
    return _feature_view(model, config, path, x, False, progress)


def trained_views(config: DenseNetConfig, state_dict: dict[str, Tensor], digest: str, device: str, path: str,
                  x: Tensor, block: int | None = None, *, progress: Any) -> tuple[fx.FeatureView, ReuseMap | None]:
    """The map at `path` and the logits of the model trained in the app (its weights travel with the job, a few
    hundred KB, with their training.state_digest) for image x, and the feature-reuse map of dense block `block` if
    asked."""
    progress(0.0, "loading the trained weights")
    model = _kept_model("trained", (digest, config, device),
                        lambda: training.trained_model(config, state_dict, device))
    reuse = None if block is None else training.feature_reuse(model, block)
    return _feature_view(model, config, path, x, True, progress), reuse


# Loaded state dicts by key (an upload's SHA-256; a local file's path, size and time), the newest last: held once, in
# the worker that uses them, while a session keeps only the key. At most MAX_WEIGHTS_BYTES of tensors.
_weights: OrderedDict[str, dict[str, Tensor]] = OrderedDict()


def _storage_bytes(state_dict: dict[str, Tensor]) -> int:
    """Bytes the tensors hold (a shared or stride-0 storage counted once, at its real size)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in state_dict.values()}
    return sum(storages.values())


def _held_state_dict(source: WeightsFile) -> dict[str, Tensor]:
    """The state dict of `source`: held already, or read from its bytes or path (WeightsNotHeld when it comes
    with its key alone and this worker does not hold it)."""
    if source.key in _weights:
        _weights.move_to_end(source.key)
        return _weights[source.key]
    if source.data is None and source.path is None:
        raise WeightsNotHeld(f"{source.name} is not held by this worker")
    state_dict = source.state_dict()
    _weights[source.key] = state_dict
    while len(_weights) > 1 and sum(_storage_bytes(sd) for sd in _weights.values()) > MAX_WEIGHTS_BYTES:
        _weights.popitem(last=False)
    return state_dict


def loaded_feature_map(config: DenseNetConfig | ResNetConfig, device: str, source: WeightsFile, path: str, x: Tensor,
                       *, progress: Any) -> fx.FeatureView:
    """What the page shows of the map at `path`, and the logits, of config with the weights of `source` for image x;
    ValueError if the weights do not fit the model, WeightsNotHeld if `source` has no bytes and is not held here
    (the worker keeps the last model it loaded)."""
    progress(0.0, f"loading {source.name} (torch.load, weights_only=True)")
    model = _kept_model("loaded", (source.key, config, device),
                        lambda: load_weights(config, _held_state_dict(source), device))
    return _feature_view(model, config, path, x, True, progress)


def prepare_image(data: bytes, name: str, input_size: int, in_channels: int, crop_fraction: float, *,
                  progress: Any) -> Preprocessed:
    """An uploaded image decoded (bounded) and preprocessed for a model, off the server's page threads."""
    progress(0.0, "decoding the image")
    return prepare_upload(data, name, input_size, in_channels, crop_fraction)


def read_lesson(data: bytes, name: str, *, progress: Any) -> Any:
    """An uploaded lesson checked and its answers computed (lessons.read_lesson), off the server's page threads."""
    from ..lessons import read_lesson as read

    progress(0.0, "checking the lesson and computing its answers")
    return read(data, name)


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
