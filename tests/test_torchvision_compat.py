"""Our models use torchvision's state-dict layout, so its weights load with strict=True."""

import json
from pathlib import Path

import pytest
import torch

from densenet_viz import PRESETS, build_model

# Key names and shapes of torchvision 0.29.1's models, recorded once with torchvision installed
# (torchvision cannot be installed beside this project's pinned torch).
RECORDED = json.loads((Path(__file__).parent / "data" / "torchvision_state_dicts.json").read_text())["state_dicts"]


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_state_dict_keys_and_shapes_equal_torchvision(name):
    ours = {k: list(v.shape) for k, v in build_model(PRESETS[name], device="meta").state_dict().items()}
    assert ours == RECORDED[name]


@pytest.mark.parametrize("name", ["densenet121", "resnet50"])
def test_torchvision_weights_give_identical_outputs(name):
    torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed beside torch 2.13")
    theirs = getattr(torchvision.models, name)().eval()
    ours = build_model(PRESETS[name]).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
