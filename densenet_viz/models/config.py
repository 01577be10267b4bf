"""Model configs: one frozen dataclass per architecture, validated on creation, with presets."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

STEMS = ("imagenet", "cifar")
RESNET_BLOCKS = ("basic", "bottleneck")
RESNET_SHORTCUTS = ("projection", "zero_pad")
# How memory_efficient=True saves memory: "checkpoint" re-runs concat-BN-ReLU-Conv1x1 in backward
# (torchvision's way); "recompute_bn" re-runs only concat-BN-ReLU and never a convolution (efficient.py).
EFFICIENT_IMPLS = ("checkpoint", "recompute_bn")
# recompute_bn measured leaner and faster than torchvision's checkpointing (docs/memory-efficient.md);
# where it cannot run (autocast) a dense layer falls back to checkpointing.
DEFAULT_EFFICIENT_IMPL = "recompute_bn"

# Upper bounds keep a typo (k=3200) from freezing a shared machine; they sit well above every
# published model (DenseNet-BC-250 has 41 layers per block, DenseNet-161 has k=48).
MAX_GROWTH_RATE = 512
MAX_LAYERS_PER_BLOCK = 512
MAX_BLOCKS = 8
MAX_CHANNELS = 4096
MAX_CLASSES = 100_000

# What the app lets anyone ask for: the sidebar's ranges, which a URL, a lesson or a loaded weights file is held to
# as well. Far below the config's own bounds above, so that nothing a student sends builds a model the sidebar
# could not (every published model fits: DenseNet-161 has k = 48 and k0 = 96, DenseNet-BC-250 41 layers a block).
APP_LIMITS: dict[str, tuple[float, float]] = {
    "growth_rate": (1, 128),
    "block_config": (1, 128),  # layers in each block
    "num_init_features": (1, 512),
    "bn_size": (0, 8),
    "compression": (0.05, 1.0),
    "num_classes": (1, 10_000),
    "input_size": (8, 1024),
    "batch_size": (1, 1024),
}


def check_app_limits(config: DenseNetConfig) -> None:
    """Raise ValueError, naming the field, its value and the app's range, if config is outside APP_LIMITS."""
    for name, value in (("growth_rate", config.growth_rate), ("num_init_features", config.num_init_features),
                        ("bn_size", config.bn_size), ("compression", config.compression),
                        ("num_classes", config.num_classes), *(("block_config", v) for v in config.block_config)):
        low, high = APP_LIMITS[name]
        if not low <= value <= high:
            what = "layers in a block" if name == "block_config" else name
            raise ValueError(f"{what} is {value:g}; this app allows {low:g} to {high:g}")


def layer_in_channels(block_in: int, growth_rate: int, layer: int) -> int:
    """Channels dense layer `layer` (1-based) of a block reads: k0 + k·(l−1), the block input and every earlier
    layer's k new maps (paper Sec. 3). layer = L + 1 gives the block's output."""
    return block_in + growth_rate * (layer - 1)


def transition_out_channels(channels: int, compression: float) -> int:
    """Channels a transition keeps of the c it receives: floor(θ·c) (DenseNet-C, paper Sec. 3)."""
    return math.floor(compression * channels)


def check_int(name: str, value: Any, low: int, high: int) -> None:
    """Raise ValueError unless value is an int (not bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise ValueError unless value is one of choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_int_tuple(name: str, value: Any, low: int, high: int) -> tuple[int, ...]:
    """Return value as a tuple of ints in [low, high], 1..MAX_BLOCKS long, or raise ValueError."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a sequence of integers, got {value!r}")
    items = tuple(value)
    if not 1 <= len(items) <= MAX_BLOCKS:
        raise ValueError(f"{name} must have 1 to {MAX_BLOCKS} entries, got {len(items)}")
    for i, item in enumerate(items):
        check_int(f"{name}[{i}]", item, low, high)
    return items


def _check_float(name: str, value: Any, low: float, high: float, *, open_low: bool) -> None:
    """Raise ValueError unless value is a finite real number in (low, high] or [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    below = value <= low if open_low else value < low
    if below or value > high:
        bracket = "(" if open_low else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value}")


class _DictMixin:
    """Round trip to and from plain dicts (for URLs, cache keys and tests)."""

    kind: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict with a 'kind' entry naming the architecture."""
        data = asdict(self)  # type: ignore[call-overload]
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return {"kind": self.kind, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build a config from a dict made by to_dict (unknown keys are an error)."""
        data = dict(data)
        kind = data.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ValueError(f"kind must be {cls.kind!r} for {cls.__name__}, got {kind!r}")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)}")
        return cls(**data)


BN_SIZE = 4  # DenseNet-B's bottleneck: the 1x1 convolution gives 4k maps (Huang et al. 2017, Sec. 3)


@dataclass(frozen=True)
class DenseNetConfig(_DictMixin):
    """Everything that defines a DenseNet; the model, the analysis and the figures derive from it."""

    growth_rate: int = 32  # k: channels each dense layer adds (paper Sec. 3, "growth rate")
    block_config: tuple[int, ...] = (6, 12, 24, 16)  # dense layers in each dense block
    num_init_features: int = 64  # k0: channels the stem hands to the first block
    bn_size: int = BN_SIZE  # bottleneck width factor: the 1x1 conv gives bn_size*k maps; 0 = no bottleneck
    compression: float = 0.5  # theta: a transition keeps floor(theta*c) of its c channels
    drop_rate: float = 0.0  # dropout after each dense layer (the paper's CIFAR runs without aug.)
    stem: str = "imagenet"  # "imagenet": 7x7/2 conv + 3x3/2 max-pool; "cifar": one 3x3 conv
    in_channels: int = 3  # image channels (3 for RGB, 1 for grayscale digits)
    num_classes: int = 1000
    memory_efficient: bool = False  # recompute cheap parts of each dense layer in backward instead of storing them
    efficient_impl: str = DEFAULT_EFFICIENT_IMPL  # which recomputation memory_efficient uses (EFFICIENT_IMPLS)

    kind = "densenet"

    def __post_init__(self) -> None:
        check_int("growth_rate", self.growth_rate, 1, MAX_GROWTH_RATE)
        blocks = _check_int_tuple("block_config", self.block_config, 1, MAX_LAYERS_PER_BLOCK)
        object.__setattr__(self, "block_config", blocks)
        check_int("num_init_features", self.num_init_features, 1, MAX_CHANNELS)
        check_int("bn_size", self.bn_size, 0, 16)
        _check_float("compression", self.compression, 0.0, 1.0, open_low=True)
        _check_float("drop_rate", self.drop_rate, 0.0, 0.99, open_low=False)
        _check_choice("stem", self.stem, STEMS)
        check_int("in_channels", self.in_channels, 1, 64)
        check_int("num_classes", self.num_classes, 1, MAX_CLASSES)
        if not isinstance(self.memory_efficient, bool):
            raise ValueError(f"memory_efficient must be true or false, got {self.memory_efficient!r}")
        _check_choice("efficient_impl", self.efficient_impl, EFFICIENT_IMPLS)
        # A transition that compresses to zero channels would leave the next block nothing to read.
        for i, c in enumerate(self.block_out_channels()[:-1]):
            if transition_out_channels(c, self.compression) < 1:
                raise ValueError(
                    f"compression {self.compression} leaves no channels after block {i + 1} "
                    f"({c} channels); use compression >= {1 / c:.3g}"
                )

    @property
    def depth(self) -> int:
        """Conv and linear layers as the paper counts depth L (stem, 1 or 2 per layer, transitions, fc)."""
        per_layer = 2 if self.bn_size > 0 else 1
        return 1 + per_layer * sum(self.block_config) + (len(self.block_config) - 1) + 1

    def block_in_channels(self) -> list[int]:
        """Channels entering each dense block: k0, then what each transition keeps."""
        return self._block_channels()[0]

    def block_out_channels(self) -> list[int]:
        """Channels leaving each dense block: its input plus k per layer."""
        return self._block_channels()[1]

    def _block_channels(self) -> tuple[list[int], list[int]]:
        ins, outs, c = [], [], self.num_init_features
        for n in self.block_config:
            ins.append(c)
            outs.append(layer_in_channels(c, self.growth_rate, n + 1))
            c = transition_out_channels(outs[-1], self.compression)
        return ins, outs

    @property
    def num_features(self) -> int:
        """Channels reaching the classifier."""
        return self.block_out_channels()[-1]

    @property
    def downsampling(self) -> int:
        """Total spatial stride from input to the last block."""
        return (4 if self.stem == "imagenet" else 1) * 2 ** (len(self.block_config) - 1)


@dataclass(frozen=True)
class ResNetConfig(_DictMixin):
    """A ResNet baseline (He et al. 2016): torchvision's ImageNet models or the CIFAR family."""

    block: str = "bottleneck"  # "basic": two 3x3 convs; "bottleneck": 1x1-3x3-1x1 with 4x expansion
    layers: tuple[int, ...] = (3, 4, 6, 3)  # residual blocks per stage
    widths: tuple[int, ...] = (64, 128, 256, 512)  # base width of each stage (x4 out for bottleneck)
    stem: str = "imagenet"  # same stems as DenseNetConfig
    shortcut: str = "projection"  # "projection": 1x1 conv when shapes change; "zero_pad": option A
    in_channels: int = 3
    num_classes: int = 1000

    kind = "resnet"

    def __post_init__(self) -> None:
        _check_choice("block", self.block, RESNET_BLOCKS)
        layers = _check_int_tuple("layers", self.layers, 1, MAX_LAYERS_PER_BLOCK)
        widths = _check_int_tuple("widths", self.widths, 1, MAX_CHANNELS)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "widths", widths)
        if len(layers) != len(widths):
            raise ValueError(f"layers and widths must have the same length, got {len(layers)} and {len(widths)}")
        _check_choice("stem", self.stem, STEMS)
        _check_choice("shortcut", self.shortcut, RESNET_SHORTCUTS)
        if self.shortcut == "zero_pad" and self.block != "basic":
            raise ValueError("shortcut 'zero_pad' is defined for basic blocks only (He et al. option A)")
        check_int("in_channels", self.in_channels, 1, 64)
        check_int("num_classes", self.num_classes, 1, MAX_CLASSES)

    @property
    def expansion(self) -> int:
        """Output channels of a block per unit of base width."""
        return 4 if self.block == "bottleneck" else 1

    @property
    def depth(self) -> int:
        """Weighted layers as He et al. count them (stem conv, convs in blocks, fc)."""
        per_block = 3 if self.block == "bottleneck" else 2
        return 1 + per_block * sum(self.layers) + 1

    @property
    def num_features(self) -> int:
        """Channels reaching the classifier."""
        return self.widths[-1] * self.expansion

    @property
    def downsampling(self) -> int:
        """Total spatial stride from input to the last stage."""
        return (4 if self.stem == "imagenet" else 1) * 2 ** (len(self.layers) - 1)


ModelConfig = DenseNetConfig | ResNetConfig


def architecture(config: ModelConfig) -> ModelConfig:
    """The config without what changes how it trains or saves memory but not what it computes (memory_efficient,
    efficient_impl, drop_rate): two models are the same architecture when these are equal."""
    if isinstance(config, DenseNetConfig):
        return replace(config, memory_efficient=False, efficient_impl=DEFAULT_EFFICIENT_IMPL, drop_rate=0.0)
    return config


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Build whichever config the dict's 'kind' names."""
    kinds = {"densenet": DenseNetConfig, "resnet": ResNetConfig}
    kind = data.get("kind")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {', '.join(kinds)}; got {kind!r}")
    return kinds[kind].from_dict(data)


def _cifar_densenet(depth: int, k: int, bc: bool, num_classes: int = 10) -> DenseNetConfig:
    """The paper's CIFAR DenseNet of depth L: 3 blocks of (L-4)/3 plain or (L-4)/6 bottleneck layers."""
    n = (depth - 4) // 6 if bc else (depth - 4) // 3
    return DenseNetConfig(
        growth_rate=k,
        block_config=(n, n, n),
        num_init_features=2 * k if bc else 16,
        bn_size=BN_SIZE if bc else 0,
        compression=0.5 if bc else 1.0,
        stem="cifar",
        num_classes=num_classes,
    )


def _cifar_resnet(depth: int) -> ResNetConfig:
    """He et al.'s CIFAR ResNet of depth 6n+2: three stages of n basic blocks, 16/32/64 channels."""
    n = (depth - 2) // 6
    return ResNetConfig(
        block="basic", layers=(n, n, n), widths=(16, 32, 64), stem="cifar", shortcut="zero_pad", num_classes=10
    )


PRESETS: dict[str, ModelConfig] = {
    # ImageNet DenseNet-BC (torchvision; parameter counts exact)
    "densenet121": DenseNetConfig(32, (6, 12, 24, 16), 64),  # 7,978,856
    "densenet169": DenseNetConfig(32, (6, 12, 32, 32), 64),  # 14,149,480
    "densenet201": DenseNetConfig(32, (6, 12, 48, 32), 64),  # 20,013,928
    "densenet161": DenseNetConfig(48, (6, 12, 36, 24), 96),  # 28,681,000
    "densenet264": DenseNetConfig(32, (6, 12, 64, 48), 64),  # 33,337,704
    # CIFAR, Huang et al. Table 2 (10 classes)
    "densenet_40_12": _cifar_densenet(40, 12, bc=False),  # 1.0M
    "densenet_100_12": _cifar_densenet(100, 12, bc=False),  # 7.0M
    "densenet_100_24": _cifar_densenet(100, 24, bc=False),  # 27.2M
    "densenet_bc_100_12": _cifar_densenet(100, 12, bc=True),  # 0.8M
    "densenet_bc_250_24": _cifar_densenet(250, 24, bc=True),  # 15.3M
    "densenet_bc_190_40": _cifar_densenet(190, 40, bc=True),  # 25.6M
    # ImageNet ResNets (torchvision; parameter counts exact)
    "resnet18": ResNetConfig("basic", (2, 2, 2, 2)),  # 11,689,512
    "resnet34": ResNetConfig("basic", (3, 4, 6, 3)),  # 21,797,672
    "resnet50": ResNetConfig("bottleneck", (3, 4, 6, 3)),  # 25,557,032
    "resnet101": ResNetConfig("bottleneck", (3, 4, 23, 3)),  # 44,549,160
    "resnet152": ResNetConfig("bottleneck", (3, 8, 36, 3)),  # 60,192,808
    # CIFAR ResNets, He et al. Table 6
    "resnet20": _cifar_resnet(20),  # 0.27M
    "resnet32": _cifar_resnet(32),  # 0.46M
    "resnet44": _cifar_resnet(44),  # 0.66M
    "resnet56": _cifar_resnet(56),  # 0.85M
    "resnet110": _cifar_resnet(110),  # 1.7M
}

# Display names for menus and tables.
PRESET_TITLES: dict[str, str] = {
    "densenet121": "DenseNet-121",
    "densenet169": "DenseNet-169",
    "densenet201": "DenseNet-201",
    "densenet161": "DenseNet-161",
    "densenet264": "DenseNet-264",
    "densenet_40_12": "DenseNet (L=40, k=12)",
    "densenet_100_12": "DenseNet (L=100, k=12)",
    "densenet_100_24": "DenseNet (L=100, k=24)",
    "densenet_bc_100_12": "DenseNet-BC (L=100, k=12)",
    "densenet_bc_250_24": "DenseNet-BC (L=250, k=24)",
    "densenet_bc_190_40": "DenseNet-BC (L=190, k=40)",
    "resnet18": "ResNet-18",
    "resnet34": "ResNet-34",
    "resnet50": "ResNet-50",
    "resnet101": "ResNet-101",
    "resnet152": "ResNet-152",
    "resnet20": "ResNet-20 (CIFAR)",
    "resnet32": "ResNet-32 (CIFAR)",
    "resnet44": "ResNet-44 (CIFAR)",
    "resnet56": "ResNet-56 (CIFAR)",
    "resnet110": "ResNet-110 (CIFAR)",
}
