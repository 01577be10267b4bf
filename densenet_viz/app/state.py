"""What one session looks at: the AppState the sidebar computes, and the text key caches use for a config."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from .. import settings as us
from ..analysis.report import DTYPES
from ..models.config import PRESET_TITLES, DenseNetConfig, ResNetConfig


@dataclass(frozen=True)
class AppState:
    """Everything the sidebar chose: the model config plus how to run it."""

    config: DenseNetConfig
    baseline: ResNetConfig
    input_size: int = 224
    batch_size: int = 1
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    preset: str = us.DEFAULT_PRESET  # the DenseNet preset these settings equal, or "custom"
    baseline_name: str = "resnet18"  # PRESETS name of the baseline

    @property
    def title(self) -> str:
        """How the page headers name the model."""
        return PRESET_TITLES.get(self.preset, f"Custom DenseNet (depth {self.config.depth})")

    @property
    def baseline_title(self) -> str:
        """How the page headers name the baseline."""
        return PRESET_TITLES.get(self.baseline_name, self.baseline_name)

    @property
    def dtype_name(self) -> str:
        """The dtype as the URL and the caches spell it."""
        return next(n for n, d in DTYPES.items() if d == self.dtype)


def config_key(config: DenseNetConfig | ResNetConfig) -> str:
    """A canonical text key for caches."""
    return json.dumps(config.to_dict(), sort_keys=True)
