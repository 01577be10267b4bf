"""Device listing and the refusal of absent devices."""

import pytest
import torch

from densenet_viz import PRESETS, available_devices, build_model, check_device


def test_cpu_is_always_listed_first():
    assert available_devices()[0] == "cpu"


def test_absent_or_unknown_devices_are_clear_errors():
    with pytest.raises(ValueError, match="available"):
        check_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' is not available"):
            build_model(PRESETS["densenet121"], device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_builds_on_cuda():
    model = build_model(PRESETS["densenet_bc_100_12"], device="cuda")
    assert next(model.parameters()).device.type == "cuda"
    assert model(torch.randn(2, 3, 32, 32, device="cuda")).shape == (2, 10)
