"""State-dict loading: identical outputs, legacy keys, clear mismatch reports, and no unpickled code."""

import io
import pickle
import re
from pathlib import Path

import pytest
import torch

from densenet_viz import PRESETS, DenseNetConfig, build_model
from densenet_viz.lab import weights as w
from densenet_viz.lab.features import inference_model

CONFIG = DenseNetConfig(8, (2, 3), 16, stem="cifar", num_classes=10)
FLAG: list[str] = []


def _set_flag() -> dict:
    """What a malicious file would run; harmless here, it only records that it ran."""
    FLAG.append("code ran")
    return {}


class _Payload:
    def __reduce__(self):
        return (_set_flag, ())


def _trained_like(config: DenseNetConfig = CONFIG) -> torch.nn.Module:
    """A model whose batch-norm buffers moved away from their defaults (so buffers matter too)."""
    model = build_model(config)
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, config.in_channels, 16, 16) * 3 + 1)
    return model.eval()


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _legacy(state_dict: dict) -> dict:
    """A state dict as torchvision's old DenseNet files hold it: 'norm.1.weight' for 'norm1.weight', and no
    num_batches_tracked buffers (they predate PyTorch 0.4.1)."""
    return {
        re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v
        for k, v in state_dict.items()
        if not k.endswith("num_batches_tracked")
    }


def test_a_saved_state_dict_loads_and_gives_identical_outputs(tmp_path: Path):
    model = _trained_like()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
    data = _saved(model.state_dict())
    from_bytes = w.load_weights(CONFIG, w.load_state_dict_bytes(data, "m.pth"))
    (tmp_path / "m.pth").write_bytes(data)
    from_file = w.load_weights(CONFIG, w.load_state_dict_file(tmp_path / "m.pth"))
    for loaded in (from_bytes, from_file):
        assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
        with torch.no_grad():
            assert torch.equal(loaded(x), expected)


def test_legacy_keys_are_remapped_as_torchvision_does():
    assert w.remap_legacy_keys({"features.denseblock1.denselayer1.norm.1.weight": 1}) == {
        "features.denseblock1.denselayer1.norm1.weight": 1
    }
    assert list(w.remap_legacy_keys({"features.denseblock4.denselayer16.conv.2.weight": 1})) == [
        "features.denseblock4.denselayer16.conv2.weight"
    ]
    untouched = {"features.transition1.norm.weight": 1, "features.norm5.running_var": 2, "classifier.bias": 3}
    assert w.remap_legacy_keys(untouched) == untouched
    model = _trained_like()
    legacy = _legacy(model.state_dict())
    assert "features.denseblock1.denselayer1.norm.1.running_mean" in legacy
    loaded = w.load_weights(CONFIG, w.load_state_dict_bytes(_saved(legacy)))
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_checkpoint_wrappers_and_data_parallel_prefixes_are_unwrapped():
    sd = _trained_like().state_dict()
    for obj in ({"state_dict": sd, "epoch": 3}, {f"module.{k}": v for k, v in sd.items()}):
        loaded = w.load_state_dict_bytes(_saved(obj))
        assert loaded.keys() == sd.keys()


def test_a_pickle_that_would_run_code_is_refused_and_never_runs():
    FLAG.clear()
    for data in (_saved({"weight": torch.ones(1), "payload": _Payload()}), pickle.dumps(_Payload())):
        with pytest.raises(ValueError, match="refused"):
            w.load_state_dict_bytes(data, "evil.pth")
    assert FLAG == []
    # The payload is live: an unsafe load would have run it (shown here with our harmless function).
    torch.load(io.BytesIO(_saved({"payload": _Payload()})), weights_only=False)
    assert FLAG == ["code ran"]
    FLAG.clear()


def test_the_refusal_names_what_the_file_asked_for():
    with pytest.raises(ValueError, match="_set_flag"):
        w.load_state_dict_bytes(_saved({"payload": _Payload()}), "evil.pth")


@pytest.mark.parametrize(
    "data,words",
    [
        (b"", "empty"),
        (b"this is not a checkpoint" * 4, "not a readable PyTorch weights file"),
        (_saved({"w": torch.ones(3)})[:120], "not a readable PyTorch weights file"),
        (_saved({"epoch": 3, "note": "no tensors"}), "without tensors"),
        (_saved([1, 2, 3]), "does not hold a state dict"),
    ],
)
def test_files_that_are_not_state_dicts_get_a_clean_error(data, words):
    with pytest.raises(ValueError, match=words):
        w.load_state_dict_bytes(data, "f.pth")


def test_missing_path_is_a_value_error(tmp_path: Path):
    with pytest.raises(ValueError, match="not a file"):
        w.load_state_dict_file(tmp_path / "nope.pth")


def test_mismatch_lists_a_few_keys_counts_the_rest_and_names_the_file_architecture():
    other = DenseNetConfig(12, (2, 3), 16, stem="cifar", num_classes=10)  # another growth rate
    sd = build_model(other).state_dict()
    with pytest.raises(ValueError) as info:
        w.load_weights(CONFIG, sd)
    message = str(info.value)
    assert "do not fit" in message and "mis-shaped key(s)" in message and "more" in message
    assert "file [" in message and "vs model [" in message
    assert "k=12, blocks (2, 3)" in message
    sd = dict(build_model(CONFIG).state_dict())
    del sd["classifier.bias"]
    sd["extra.weight"] = torch.ones(1)
    report = w.compare_keys(build_model(CONFIG), sd)
    assert report.missing == ["classifier.bias"] and report.unexpected == ["extra.weight"] and not report.misshaped
    with pytest.raises(ValueError, match=r"1 missing key\(s\): classifier.bias; 1 unexpected key\(s\): extra.weight"):
        w.load_weights(CONFIG, sd)


def test_imagenet_weights_into_a_cifar_config_name_the_preset():
    sd = build_model(PRESETS["densenet121"], device="meta").state_dict()
    with pytest.raises(ValueError, match=r"preset densenet121"):
        w.load_weights(CONFIG, sd)


@pytest.mark.parametrize("name", [n for n, c in PRESETS.items() if isinstance(c, DenseNetConfig)])
def test_infer_config_recovers_every_preset(name):
    sd = build_model(PRESETS[name], device="meta").state_dict()
    found = w.infer_config(_legacy(sd))
    assert found is not None and w.preset_for(found) == name
    assert found.num_classes == PRESETS[name].num_classes


def test_infer_config_is_none_for_other_models():
    assert w.infer_config(build_model(PRESETS["resnet18"], device="meta").state_dict()) is None
    assert w.infer_config({"x": torch.ones(1)}) is None


def test_imagenet_class_file_has_1000_names_in_torchvision_order():
    lines = w.LABELS_FILE.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 1001  # exactly 1000 lines, newline-terminated
    names = w.imagenet_classes()
    assert len(names) == 1000 and len(set(names)) == 1000 and all(n == n.strip() and n for n in names)
    anchors = {0: "tench", 1: "goldfish", 134: "crane bird", 207: "golden retriever", 281: "tabby",
               285: "Egyptian cat", 409: "analog clock", 517: "crane", 639: "maillot tank suit",
               817: "sports car", 948: "Granny Smith", 954: "banana", 999: "toilet tissue"}
    assert {i: names[i] for i in anchors} == anchors


def test_top_k_ranks_the_softmax():
    logits = torch.zeros(1000)
    logits[207], logits[281] = 5.0, 4.0
    table = w.top_k(logits, w.imagenet_classes(), 5)
    assert table["label"].tolist()[:2] == ["golden retriever", "tabby"]
    assert table["rank"].tolist() == [1, 2, 3, 4, 5]
    assert table["probability"].is_monotonic_decreasing and table["probability"].sum() <= 1
    assert table["probability"][0] == pytest.approx(float(torch.softmax(logits, 0)[207]))
    with pytest.raises(ValueError):
        w.top_k(torch.zeros(10), ["a"] * 9)


def test_hub_checkpoints_lists_densenet_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    assert w.hub_checkpoints() == []
    folder.mkdir(parents=True)
    for name in ("densenet121-a639ec97.pth", "resnet50-0676ba61.pth", "notes.txt"):
        (folder / name).write_bytes(b"")
    assert [p.name for p in w.hub_checkpoints()] == ["densenet121-a639ec97.pth"]


def test_real_densenet121_weights_when_the_hub_cache_has_them():
    path = next((p for p in w.hub_checkpoints() if p.name.startswith("densenet121-")), None)
    if path is None:
        pytest.skip("densenet121-a639ec97.pth is not in the torch hub cache here")
    from densenet_viz.lab.images import load_sample, preprocess

    model = w.load_weights(PRESETS["densenet121"], w.load_state_dict_file(path))
    x = preprocess(load_sample("chelsea").image, 224, 3, crop_fraction=0.875).tensor
    with torch.no_grad():
        top = w.top_k(model(x)[0], w.imagenet_classes(), 5)
    assert set(top["class"]) & set(range(281, 286))  # a domestic cat class among the top 5


def test_random_and_loaded_models_differ():
    sd = _trained_like().state_dict()
    loaded, random = w.load_weights(CONFIG, sd), inference_model(CONFIG)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.equal(loaded(x), random(x))
