"""The second method: the same figures measured on the real model (CPU tensors, or `meta` ones with shapes but
no memory). Tests hold the closed form to these; the UI may offer them as a check."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from ..models.config import DenseNetConfig, ResNetConfig
from ..models.plan import LayerSpec, layer_plan
from .closed_form import validated
from .report import check_mode


def _mode_config(config: DenseNetConfig | ResNetConfig, mode: str) -> DenseNetConfig | ResNetConfig:
    """The config whose model runs in a mode: memory_efficient on only for 'train_efficient'."""
    if not isinstance(config, DenseNetConfig):
        return config
    return replace(config, memory_efficient=mode == "train_efficient")


def _measurement_model(
    config: DenseNetConfig | ResNetConfig, hw: tuple[int, int], batch: int, dtype: torch.dtype, mode: str, device: str
) -> tuple[nn.Module, torch.Tensor]:
    from ..models.build import build_model  # build imports the models; the closed form above never needs them

    model = build_model(_mode_config(config, mode), device=device).to(dtype)
    model.train(mode != "inference")
    x = torch.randn(batch, config.in_channels, *hw, device=device, dtype=dtype)
    return model, x


def _unit_of_module(config: DenseNetConfig | ResNetConfig, plan: list[LayerSpec]) -> dict[str, str]:
    """Module path -> table row path, for the modules that make up each row."""
    units = {s.path: s.path for s in plan}
    if isinstance(config, DenseNetConfig):
        stem = ["features.conv0", "features.norm0", "features.relu0", "features.pool0"]
        units.update(dict.fromkeys(stem if config.stem == "imagenet" else stem[:1], plan[0].path))
    else:
        units.update(dict.fromkeys(["conv1", "bn1", "relu", "maxpool"], plan[0].path))
        units["avgpool"] = plan[-1].path
    return units


@contextmanager
def _charging_units(model: nn.Module, units: dict[str, str], charge: Callable[[str | None], None]) -> Iterator[None]:
    """Tell charge() which table row is running; None between rows (those ops go to the next row)."""
    handles = []
    for module_path, unit in units.items():
        module = model.get_submodule(module_path)
        handles.append(module.register_forward_pre_hook(lambda *_, u=unit: charge(u)))
        handles.append(module.register_forward_hook(lambda *_: charge(None)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def storage_key(t: torch.Tensor) -> int:
    # Identity of the storage, not its address: every meta tensor has data_ptr 0.
    return t.untyped_storage()._cdata


@contextmanager
def counting_saved_storages(model: nn.Module, count: Callable[[int], None]) -> Iterator[None]:
    """Call count(nbytes) once for every distinct storage autograd saves for backward inside the block,
    the model's parameters left out (they are weight memory, not activations)."""
    params = {storage_key(p) for p in model.parameters()}
    seen: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        if key not in params and key not in seen:
            seen.add(key)
            count(t.untyped_storage().nbytes())
        # A detached alias keeps the storage alive without the reference cycle `return t` would make.
        return t.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield


def _measure_saved(
    config: DenseNetConfig | ResNetConfig,
    input_size: int | tuple[int, int],
    batch_size: int,
    dtype: torch.dtype | str,
    mode: str,
    device: str,
) -> dict[str, int]:
    """Bytes of the distinct storages autograd saves in one training forward pass, per table row."""
    hw, batch, dt = validated(config, input_size, batch_size, dtype)
    model, x = _measurement_model(config, hw, batch, dt, mode, device)
    by_unit: dict[str, int] = {}
    state: dict[str, Any] = {"unit": None, "pending": 0}

    def charge(unit: str | None) -> None:
        if unit is not None and state["pending"]:
            by_unit[unit] = by_unit.get(unit, 0) + state["pending"]
            state["pending"] = 0
        state["unit"] = unit

    def count(nbytes: int) -> None:
        if state["unit"] is None:
            state["pending"] += nbytes
        else:
            by_unit[state["unit"]] = by_unit.get(state["unit"], 0) + nbytes

    plan = layer_plan(config, hw)
    units = _unit_of_module(config, plan)
    with _charging_units(model, units, charge), counting_saved_storages(model, count):
        out = model(x)
    del out
    return by_unit


class _LiveTensors(TorchFunctionMode):
    """Tracks the storages of live tensors that torch functions return; keeps the peak of their bytes."""

    def __init__(self, exclude: set[int]) -> None:
        super().__init__()
        self.exclude = exclude
        self.nbytes: dict[int, int] = {}  # storage key -> bytes
        self.refs: dict[int, int] = {}  # storage key -> tracked tensors alive on it
        self.tracked: set[int] = set()
        self.current = 0
        self.peak = 0

    def _release(self, tensor_id: int, key: int) -> None:
        self.tracked.discard(tensor_id)
        self.refs[key] -= 1
        if self.refs[key] == 0:
            del self.refs[key]
            self.current -= self.nbytes.pop(key)

    def track(self, t: torch.Tensor) -> None:
        """Count t's storage as live until the last tracked tensor on it is freed."""
        key = storage_key(t)
        if id(t) in self.tracked or key in self.exclude:
            return
        if key not in self.refs:
            self.refs[key] = 0
            self.nbytes[key] = t.untyped_storage().nbytes()
            self.current += self.nbytes[key]
        self.refs[key] += 1
        self.tracked.add(id(t))
        weakref.finalize(t, self._release, id(t), key)
        self.peak = max(self.peak, self.current)

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.track(t)
        return out


def _measure_inference(
    config: DenseNetConfig | ResNetConfig,
    input_size: int | tuple[int, int],
    batch_size: int,
    dtype: torch.dtype | str,
    device: str,
) -> int:
    """Peak bytes of live tensors during an eval-mode no-grad forward pass, the input included."""
    hw, batch, dt = validated(config, input_size, batch_size, dtype)
    model, x = _measurement_model(config, hw, batch, dt, "inference", device)
    weights = {storage_key(t) for t in [*model.parameters(), *model.buffers()]}
    mode = _LiveTensors(weights)
    with torch.no_grad(), mode:
        mode.track(x)
        model(x)
    return mode.peak


def measure_activation_bytes(
    config: DenseNetConfig | ResNetConfig,
    input_size: int | tuple[int, int] = 224,
    batch_size: int = 1,
    dtype: torch.dtype | str = torch.float32,
    mode: str = "train_plain",
    device: str = "meta",
) -> int:
    """One memory figure measured by running the real model ('meta': shapes only, nothing allocated)."""
    check_mode(mode)
    if mode == "inference":
        return _measure_inference(config, input_size, batch_size, dtype, device)
    return sum(_measure_saved(config, input_size, batch_size, dtype, mode, device).values())


def measure_macs(
    config: DenseNetConfig | ResNetConfig,
    input_size: int | tuple[int, int] = 224,
    batch_size: int = 1,
    device: str = "meta",
) -> int:
    """Multiply-accumulates of one forward pass as torch.utils.flop_counter.FlopCounterMode counts them (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    hw, batch, _ = validated(config, input_size, batch_size, torch.float32)
    model, x = _measurement_model(config, hw, batch, torch.float32, "inference", device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() // 2


def measure_cuda_peak(
    config: DenseNetConfig | ResNetConfig,
    input_size: int | tuple[int, int] = 224,
    batch_size: int = 1,
    dtype: torch.dtype | str = torch.float32,
    mode: str = "train_plain",
) -> int:
    """Peak CUDA bytes a training step (forward + backward) or a no-grad forward adds above weights and input.

    `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`. It is larger than the estimate:
    it also holds the weight gradients, backward's temporaries, cuDNN workspaces and the allocator's
    512-byte rounding, and CUDA keeps dropout masks in 1 byte and half-precision BN statistics in float32.
    """
    if not torch.cuda.is_available():
        raise ValueError("measure_cuda_peak needs a CUDA GPU, and torch.cuda.is_available() is False here")
    hw, batch, dt = validated(config, input_size, batch_size, dtype)
    check_mode(mode)
    model, x = _measurement_model(config, hw, batch, dt, mode, "cuda")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    if mode == "inference":
        with torch.no_grad():
            model(x)
    else:
        model(x).float().sum().backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del model, x
    torch.cuda.empty_cache()
    return peak
