"""densenet-viz: build real DenseNets and ResNets from one config, and measure and draw them."""

from .analysis import (
    AnalysisReport,
    MemoryReport,
    analyze,
    max_batch_that_fits,
    measure_cuda_peak,
    memory_growth,
)
from .analysis.baselines import count_params, match_baseline
from .models.build import build_model
from .models.config import PRESET_TITLES, PRESETS, DenseNetConfig, ModelConfig, ResNetConfig, config_from_dict
from .models.devices import available_devices, check_device

__all__ = [
    "PRESETS",
    "PRESET_TITLES",
    "AnalysisReport",
    "DenseNetConfig",
    "MemoryReport",
    "ModelConfig",
    "ResNetConfig",
    "analyze",
    "available_devices",
    "build_model",
    "check_device",
    "config_from_dict",
    "count_params",
    "match_baseline",
    "max_batch_that_fits",
    "measure_cuda_peak",
    "memory_growth",
]
