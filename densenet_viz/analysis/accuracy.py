"""Published error rates joined with our own cost of each model: what the parameters and FLOPs buy.

The errors come from `data/accuracy.toml`, one entry per (model, dataset, source), each with its source
and table. The parameters and MACs of every point are computed here by `analyze()` from the model's
config (a preset, or an architecture the data file describes), so the chart's x axis is never typed in.
"""

from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..models.config import PRESET_TITLES, PRESETS, DenseNetConfig, ModelConfig, architecture, config_from_dict
from .closed_form import analyze

DATA_FILE = Path(__file__).resolve().parents[1] / "data" / "accuracy.toml"


@dataclass(frozen=True)
class Dataset:
    """A benchmark: how the app names it, its classes and the input size its published models use."""

    key: str
    title: str
    num_classes: int
    input_size: int
    stem: str


DATASETS: dict[str, Dataset] = {
    "imagenet": Dataset("imagenet", "ImageNet (single-crop top-1)", 1000, 224, "imagenet"),
    "c10+": Dataset("c10+", "CIFAR-10+ (C10+)", 10, 32, "cifar"),
    "c100+": Dataset("c100+", "CIFAR-100+ (C100+)", 100, 32, "cifar"),
}
# The ImageNet source switch: the paper's Figure 3 (its DenseNets, fb.resnet.torch's ResNets) or torchvision.
SOURCE_SETS: dict[str, tuple[str, ...]] = {
    "paper": ("densenet_paper", "fb_resnet_torch"),
    "torchvision": ("torchvision",),
}
SOURCE_SET_TITLES = {
    "paper": "The paper's Figure 3: its DenseNets, fb.resnet.torch's ResNets",
    "torchvision": "torchvision's trained weights",
}
COLUMNS = ["model", "title", "family", "dataset", "error", "params", "macs", "flops", "source", "source_short",
           "source_title", "table"]  # fmt: skip
_REQUIRED = {"model": str, "dataset": str, "source": str, "table": str, "error": (int, float)}


@dataclass(frozen=True)
class Published:
    """One published result: a model, a dataset, its error in percent and where it comes from."""

    model: str
    dataset: str
    error: float
    source: str
    table: str


@dataclass(frozen=True)
class PublishedData:
    """The data file: its sources (key -> title), extra architectures (key -> (title, config)) and results."""

    sources: dict[str, str]
    short: dict[str, str]  # source key -> a name short enough for a legend
    architectures: dict[str, tuple[str, ModelConfig]]
    results: tuple[Published, ...]


def parse_published(data: dict[str, Any]) -> PublishedData:
    """The published results of a parsed data file, checked (raises ValueError naming the entry and field)."""
    sources = {key: str(entry["title"]) for key, entry in data.get("sources", {}).items()}
    short = {key: str(entry.get("short", key)) for key, entry in data.get("sources", {}).items()}
    architectures = {
        key: (str(entry["title"]), config_from_dict(dict(entry["config"])))
        for key, entry in data.get("architectures", {}).items()
    }
    results = []
    for i, entry in enumerate(data.get("results", [])):
        for name, kind in _REQUIRED.items():
            if not isinstance(entry.get(name), kind) or isinstance(entry.get(name), bool):
                raise ValueError(f"results[{i}].{name} is missing or has the wrong type: {entry.get(name)!r}")
        if entry["model"] not in PRESETS and entry["model"] not in architectures:
            raise ValueError(f"results[{i}].model {entry['model']!r} is neither a preset nor an architecture")
        if entry["dataset"] not in DATASETS:
            raise ValueError(f"results[{i}].dataset must be one of {', '.join(DATASETS)}; got {entry['dataset']!r}")
        if entry["source"] not in sources:
            raise ValueError(f"results[{i}].source {entry['source']!r} is not in [sources]")
        if not 0 < entry["error"] < 100:
            raise ValueError(f"results[{i}].error must be a percentage in (0, 100), got {entry['error']}")
        results.append(Published(entry["model"], entry["dataset"], float(entry["error"]), entry["source"],
                                 entry["table"]))  # fmt: skip
    return PublishedData(sources, short, architectures, tuple(results))


@functools.lru_cache(maxsize=4)
def load_published(path: Path = DATA_FILE) -> PublishedData:
    """The published results of a data file, checked (raises ValueError naming the entry and field)."""
    with open(path, "rb") as f:
        return parse_published(tomllib.load(f))


def model_title(name: str, data: PublishedData | None = None) -> str:
    """How tables and hover text name a preset or a data-file architecture."""
    data = data or load_published()
    if name in data.architectures:
        return data.architectures[name][0]
    return PRESET_TITLES.get(name, name).removesuffix(" (CIFAR)")


def model_config(name: str, dataset: str, data: PublishedData | None = None) -> ModelConfig:
    """The config whose cost a published point shows: the preset (or architecture) with the dataset's classes."""
    data = data or load_published()
    config = data.architectures[name][1] if name in data.architectures else PRESETS[name]
    return replace(config, num_classes=DATASETS[dataset].num_classes)


def family(config: ModelConfig) -> str:
    """'ResNet', 'DenseNet-BC' (bottleneck and compression) or 'DenseNet', as the paper's legends say."""
    if not isinstance(config, DenseNetConfig):
        return "ResNet"
    return "DenseNet-BC" if config.bn_size > 0 and config.compression < 1 else "DenseNet"


def published_table(dataset: str, sources: tuple[str, ...] | None = None, path: Path = DATA_FILE) -> pd.DataFrame:
    """Every published result for a dataset (optionally from some sources), with its computed cost.

    params and macs are `analyze()` of the model at the dataset's classes and input size; flops = 2 x macs.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    data, ds = load_published(path), DATASETS[dataset]
    rows = []
    for r in data.results:
        if r.dataset != dataset or (sources is not None and r.source not in sources):
            continue
        config = model_config(r.model, dataset, data)
        report = analyze(config, input_size=ds.input_size)
        rows.append({
            "model": r.model, "title": model_title(r.model, data), "family": family(config), "dataset": dataset,
            "error": r.error, "params": report.params, "macs": report.macs_per_sample,
            "flops": 2 * report.macs_per_sample, "source": r.source, "source_short": data.short[r.source],
            "source_title": data.sources[r.source], "table": r.table,
        })  # fmt: skip
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["family", "params"], kind="stable", ignore_index=True)


@dataclass(frozen=True)
class ModelCost:
    """The sidebar's model measured as the published points are: params and FLOPs at the dataset's input."""

    dataset: str
    params: int
    macs: int
    published: pd.DataFrame  # the published rows of exactly this config (empty for a custom model)

    @property
    def flops(self) -> int:
        """FLOPs = 2 x MACs, as the paper's Figure 3 counts them."""
        return 2 * self.macs


def dataset_for(config: DenseNetConfig) -> str:
    """The dataset whose published models a config compares with: its stem, then its classes on CIFAR."""
    if config.stem == "imagenet":
        return "imagenet"
    return "c100+" if config.num_classes == 100 else "c10+"


def model_cost(config: DenseNetConfig, table: pd.DataFrame) -> ModelCost:
    """The cost of a config at the input size of its dataset's published models, and its published rows if any."""
    dataset = dataset_for(config)
    report = analyze(replace(config, memory_efficient=False), input_size=DATASETS[dataset].input_size)
    data, plain = load_published(), architecture(config)
    same = [i for i, m in enumerate(table["model"]) if architecture(model_config(m, dataset, data)) == plain]
    return ModelCost(dataset, report.params, report.macs_per_sample, table.iloc[same].reset_index(drop=True))


def nearest(table: pd.DataFrame, value: float, column: str = "params", n: int = 3) -> pd.DataFrame:
    """The n published rows closest to value in column (by ratio: 10 M is as near 20 M as 5 M is)."""
    if column not in ("params", "flops", "macs"):
        raise ValueError(f"column must be params, flops or macs; got {column!r}")
    if table.empty or value <= 0:
        return table.head(0)
    distance = (table[column].astype(float) / float(value)).map(lambda r: abs(math.log(r)))
    return table.assign(distance=distance).nsmallest(n, "distance").drop(columns="distance").reset_index(drop=True)


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The published table as the page shows it and the CSV holds it: units in the column names."""
    return pd.DataFrame({
        "model": table["title"],
        "family": table["family"],
        "dataset": [DATASETS[d].title for d in table["dataset"]],
        "error (%)": table["error"],
        "parameters (computed)": table["params"],
        "FLOPs (computed, 2 × MACs)": table["flops"],
        "source": table["source_title"],
        "table": table["table"],
    })  # fmt: skip
