"""Real weights: load a torchvision-format DenseNet state dict safely and check that it fits a config.

Files are read with torch.load(weights_only=True), which only rebuilds tensors and plain containers: a
pickle that would import or call anything else is refused, and we report it as a ValueError.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import zipfile
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ..analysis.cost import build_seconds
from ..models.build import build_model, frozen
from ..models.config import PRESETS, DenseNetConfig, ResNetConfig, architecture, check_app_limits
from ..units import MIB, format_bytes

# The largest preset's float32 state dict fits: DenseNet-264's file is 129 MiB (DenseNet-161's ImageNet file 110 MiB).
MAX_WEIGHTS_MIB = 160  # also the uploader's limit (Streamlit counts upload sizes in MiB)
MAX_WEIGHTS_BYTES = MAX_WEIGHTS_MIB * MIB
MAX_TENSORS = 4_000  # entries in a zip-format file (one per tensor storage, plus a few records): every published
# DenseNet fits (DenseNet-264 has 1,591 tensors); each costs about a millisecond to rebuild
# Checking an inferred architecture builds it on the meta device: only when a real build is estimated to take less
# than this (the largest config the sidebar allows takes minutes even on meta).
VERIFY_BUILD_S = 2.0
# torchvision's DenseNet files predate its current module names: 'denselayer1.norm.1.weight' is now
# 'denselayer1.norm1.weight' (torchvision's _load_state_dict regular expression, plus num_batches_tracked,
# which those old files do not have but a re-saved legacy file might).
LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)
# Batch norm fills this counter in itself when a file lacks it (files saved before PyTorch 0.4.1 do).
OPTIONAL_SUFFIX = ".num_batches_tracked"
LABELS_FILE = Path(__file__).parents[1] / "data" / "imagenet_classes.txt"
_SHOWN = 5  # keys listed by name in an error message; the rest are counted


@dataclass
class KeyReport:
    """How a state dict differs from a model's: keys missing from the file, extra in it, or mis-shaped."""

    missing: list[str]
    unexpected: list[str]
    misshaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # (key, shape in file, shape in model)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.misshaped)


def remap_legacy_keys(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename torchvision's legacy DenseNet keys ('norm.1.weight' -> 'norm1.weight'); others pass through."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        match = LEGACY_KEY.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


def _unwrap(obj: object, name: str) -> dict[str, Tensor]:
    """The tensor dict inside what torch.load returned (a bare state dict or a {'state_dict': ...} checkpoint)."""
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{name} does not hold a state dict (a mapping of parameter names to tensors)")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, Tensor)}
    if not tensors:
        raise ValueError(f"{name} holds a {type(obj).__name__} without tensors; expected a model's state_dict()")
    if all(k.startswith("module.") for k in tensors):  # saved from nn.DataParallel
        tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    return remap_legacy_keys(tensors)


class WeightsNotHeld(LookupError):
    """A job named loaded weights by their key alone, and this worker does not hold them (any more)."""


def _check_archive(source: io.BytesIO | Path, name: str) -> None:
    """Refuse, before unpickling anything, a zip-format file with more tensors than any model here has: each one
    costs time and memory to rebuild, whatever its size in the file."""
    try:
        if not zipfile.is_zipfile(source):
            return  # the legacy format: bounded by the file size and the worker's deadline and memory limit
        with zipfile.ZipFile(source) as archive:
            entries = len(archive.infolist())
    finally:
        if isinstance(source, io.BytesIO):
            source.seek(0)  # torch.load reads it next, from the start
    if entries > MAX_TENSORS:
        raise ValueError(f"{name} holds {entries:,} entries; a DenseNet's state dict has at most {MAX_TENSORS:,} "
                         "tensors here (DenseNet-264's has 1,591)")


def _torch_load(source: io.BytesIO | Path, name: str) -> dict[str, Tensor]:
    try:
        _check_archive(source, name)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{name} is not a readable PyTorch weights file (.pth/.pt saved by torch.save): "
                         f"{exc}") from exc
    try:
        obj = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it asks for {found.group(1)})" if found else ""
        raise ValueError(
            f"{name} was refused: it is not a plain tensor file{what}. Only state dicts of tensors are loaded "
            "(torch.load with weights_only=True); a pickle that would import or run code is never opened."
        ) from exc
    except Exception as exc:  # any parse failure of untrusted bytes: zip, pickle, storage or encoding errors
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ValueError(
            f"{name} is not a readable PyTorch weights file (.pth/.pt saved by torch.save): "
            f"{type(exc).__name__} {detail}".rstrip()
        ) from exc
    return _unwrap(obj, name)


def load_state_dict_bytes(data: bytes, name: str = "upload") -> dict[str, Tensor]:
    """A state dict from uploaded bytes (legacy keys remapped), or ValueError."""
    if not data:
        raise ValueError(f"{name} is empty (0 bytes)")
    if len(data) > MAX_WEIGHTS_BYTES:
        raise ValueError(f"{name} is {format_bytes(len(data))}; the limit is {MAX_WEIGHTS_MIB} MiB")
    return _torch_load(io.BytesIO(bytes(data)), name)


@dataclass(frozen=True)
class WeightsFile:
    """Where a state dict comes from: an upload's bytes or a local file, named, with a key that tells files apart
    (an upload's SHA-256; a local file's path, size and modification time)."""

    name: str
    key: str
    data: bytes | None = None
    path: str | None = None

    @classmethod
    def from_upload(cls, data: bytes, name: str) -> WeightsFile:
        """An uploaded file (its bytes travel with it to a worker)."""
        return cls(name, "sha256:" + hashlib.sha256(data).hexdigest(), data=data)

    @classmethod
    def from_path(cls, path: str | Path) -> WeightsFile:
        """A file on this machine, e.g. in the torch hub cache."""
        path = Path(path).expanduser()
        stat = path.stat() if path.is_file() else None
        return cls(path.name, f"file:{path}:{stat and stat.st_size}:{stat and stat.st_mtime_ns}", path=str(path))

    def state_dict(self) -> dict[str, Tensor]:
        """The state dict it holds (legacy keys remapped), or ValueError."""
        return load_state_dict_bytes(self.data, self.name) if self.data is not None else load_state_dict_file(self.path)


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """A state dict from a local file (legacy keys remapped), or ValueError."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise ValueError(f"{path.name} is {format_bytes(size)}; the limit is {MAX_WEIGHTS_MIB} MiB")
    return _torch_load(path, path.name)


def hub_checkpoints() -> list[Path]:
    """DenseNet weight files in the torch hub cache (e.g. densenet121-a639ec97.pth), if any were downloaded."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".pth", ".pt") and "densenet" in p.name.lower())


def compare_keys(model: nn.Module, state_dict: dict[str, Tensor]) -> KeyReport:
    """Missing, unexpected and mis-shaped keys of state_dict against model.state_dict()."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith(OPTIONAL_SUFFIX)]
    unexpected = [k for k in state_dict if k not in own]
    misshaped = [
        (k, tuple(state_dict[k].shape), tuple(v.shape))
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    return KeyReport(missing, unexpected, misshaped)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def describe(report: KeyReport) -> str:
    """The report as one sentence per kind of problem (a few keys by name, the rest counted)."""
    parts = []
    if report.missing:
        parts.append(f"{len(report.missing)} missing key(s): {_listing(report.missing)}")
    if report.unexpected:
        parts.append(f"{len(report.unexpected)} unexpected key(s): {_listing(report.unexpected)}")
    if report.misshaped:
        shapes = [f"{k} (file {list(f)} vs model {list(m)})" for k, f, m in report.misshaped]
        parts.append(f"{len(report.misshaped)} mis-shaped key(s): {_listing(shapes)}")
    return "; ".join(parts)


def infer_config(state_dict: dict[str, Tensor]) -> DenseNetConfig | None:
    """The DenseNetConfig a torchvision-format state dict was saved from, or None if it is not one.

    Read from the tensors' shapes; ValueError (saying the limit) when the architecture is beyond what the app
    allows. Every key and shape is checked against a model built on the meta device when that is quick; a
    larger one is returned as the shapes say.
    """
    sd = remap_legacy_keys(state_dict)
    try:
        conv0 = sd["features.conv0.weight"]
        classifier = sd["classifier.weight"]
        blocks: dict[int, int] = {}
        for key in sd:
            m = re.match(r"features\.denseblock(\d+)\.denselayer(\d+)\.conv1\.weight$", key)
            if m:
                b, i = int(m.group(1)), int(m.group(2))
                blocks[b] = max(blocks.get(b, 0), i)
        if not blocks or sorted(blocks) != list(range(1, len(blocks) + 1)):
            return None
        first = "features.denseblock1.denselayer1"
        conv1 = sd[f"{first}.conv1.weight"]
        if f"{first}.conv2.weight" in sd:
            k = sd[f"{first}.conv2.weight"].shape[0]
            bn_size = conv1.shape[0] // k
        else:
            k, bn_size = conv1.shape[0], 0
        compression = 1.0
        if "features.transition1.conv.weight" in sd:
            out, inp = sd["features.transition1.conv.weight"].shape[:2]
            compression = round(out / inp, 4)
        config = DenseNetConfig(
            growth_rate=int(k),
            block_config=tuple(blocks[b] for b in sorted(blocks)),
            num_init_features=int(conv0.shape[0]),
            bn_size=int(bn_size),
            compression=compression,
            stem="imagenet" if conv0.shape[-1] == 7 else "cifar",
            in_channels=int(conv0.shape[1]),
            num_classes=int(classifier.shape[0]),
        )
    except (KeyError, IndexError, ValueError, ZeroDivisionError):
        return None
    check_app_limits(config)
    if build_seconds(config) > VERIFY_BUILD_S:
        return config
    model = build_model(config, device="meta")
    return config if compare_keys(model, sd).ok else None


def preset_for(config: DenseNetConfig) -> str | None:
    """The preset with the same architecture (ignoring classes, input channels and run-time options)."""
    wanted = architecture(config)
    for name, preset in PRESETS.items():
        if isinstance(preset, DenseNetConfig) and architecture(
                replace(preset, num_classes=config.num_classes, in_channels=config.in_channels)) == wanted:
            return name
    return None


def _architecture(config: DenseNetConfig) -> str:
    return (
        f"k={config.growth_rate}, blocks {config.block_config}, k0={config.num_init_features}, "
        f"bn_size={config.bn_size}, theta={config.compression}, {config.stem} stem, "
        f"{config.in_channels} input channel(s), {config.num_classes} classes"
    )


def load_weights(
    config: DenseNetConfig | ResNetConfig, state_dict: dict[str, Tensor], device: str = "cpu"
) -> nn.Module:
    """A model of config holding state_dict's tensors, in eval mode with frozen parameters, or ValueError.

    Built on the meta device and given the file's tensors themselves (float32 ones are not copied): the weights
    take their memory once, and no initialiser runs for weights that are replaced at once.
    """
    model = build_model(config, device="meta")
    report = compare_keys(model, state_dict)
    if not report.ok:
        message = f"these weights do not fit the current model: {describe(report)}."
        try:
            found = infer_config(state_dict)
        except ValueError as exc:
            message += f" The file holds a DenseNet beyond this app's limits: {exc}."
        else:
            if found is not None:
                preset = preset_for(found)
                message += f" The file holds a DenseNet with {_architecture(found)}" + (
                    f" (preset {preset})." if preset else "."
                )
        raise ValueError(message)
    floats = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    model.load_state_dict(floats, strict=True, assign=True)
    return frozen(model, device)


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in torchvision's order (index = output unit)."""
    names = tuple(line.strip() for line in LABELS_FILE.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names) != 1000:
        raise ValueError(f"{LABELS_FILE} has {len(names)} class names; expected 1000")
    return names


def top_k(logits: np.ndarray | Tensor, labels: list[str] | tuple[str, ...], k: int = 5) -> pd.DataFrame:
    """The k most probable classes of one image's logits: rank, class index, label and softmax probability."""
    x = torch.as_tensor(np.asarray(logits, dtype=np.float32)).flatten()
    if len(labels) != x.numel():
        raise ValueError(f"{x.numel()} logits but {len(labels)} labels")
    probs = torch.softmax(x, 0)
    p, idx = probs.topk(min(k, x.numel()))
    return pd.DataFrame(
        {
            "rank": range(1, len(idx) + 1),
            "class": idx.tolist(),
            "label": [labels[i] for i in idx.tolist()],
            "probability": p.tolist(),
        }
    )
