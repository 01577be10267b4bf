"""Feature-map capture: the shapes the plan predicts, hooks always removed, channel groups by source layer."""

import itertools
import threading

import numpy as np
import pytest
import torch
from torch import nn

from densenet_viz import PRESETS, DenseNetConfig, ResNetConfig, build_model
from densenet_viz.analysis import records
from densenet_viz.lab import features as fx
from densenet_viz.models.plan import layer_plan

SMALL = {
    "cifar-bc": (DenseNetConfig(8, (3, 2, 2), 16, stem="cifar", num_classes=10), 16),
    "plain": (DenseNetConfig(6, (2, 3), 10, bn_size=0, compression=1.0, stem="cifar", num_classes=5), 12),
    "imagenet-stem": (DenseNetConfig(8, (2, 2, 2), 16, in_channels=1, num_classes=7), 64),
    "resnet": (ResNetConfig("basic", (1, 2), (8, 16), stem="cifar", num_classes=10), 16),
}


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def _shape(spec) -> tuple[int, int, int]:
    return (spec.out_channels, spec.height, spec.width)


@pytest.mark.parametrize("name", list(SMALL))
def test_feature_maps_have_the_planned_shapes(name):
    config, size = SMALL[name]
    model = fx.inference_model(config)
    specs = fx.selectable_layers(config, size)
    paths = [fx.capture_path(config, s) for s in specs]
    capture = fx.capture_features(model, torch.randn(2, config.in_channels, size, size), paths, run_to_end=True)
    for spec, path in zip(specs, paths, strict=True):
        assert tuple(capture.maps[path].shape) == (2, *_shape(spec)), spec.path
        assert torch.isfinite(capture.maps[path]).all()
    assert capture.logits.shape == (2, config.num_classes)
    assert _hooks(model) == 0


@pytest.mark.parametrize("name", [n for n, c in PRESETS.items() if isinstance(c, DenseNetConfig)])
def test_every_preset_on_the_meta_device(name):
    config = PRESETS[name]
    size = 224 if config.stem == "imagenet" else 32
    model = build_model(config, device="meta").eval()
    specs = fx.selectable_layers(config, size)
    capture = fx.capture_features(model, torch.empty(1, 3, size, size, device="meta"),
                                  [fx.capture_path(config, s) for s in specs], run_to_end=True)
    for spec in specs:
        assert tuple(capture.maps[fx.capture_path(config, spec)].shape[1:]) == _shape(spec)
    assert _hooks(model) == 0


def test_selectable_layers_add_one_block_output_after_each_block():
    config, size = SMALL["cifar-bc"]
    specs = fx.selectable_layers(config, size)
    plan = [s for s in layer_plan(config, size) if s.kind != "classifier"]
    assert [s for s in specs if s.kind != "dense_block"] == plan
    outputs = [s for s in specs if s.kind == "dense_block"]
    assert [s.path for s in outputs] == ["features.denseblock1", "features.denseblock2", "features.denseblock3"]
    assert [s.out_channels for s in outputs] == config.block_out_channels()
    kinds = [s.kind for s in specs]
    assert kinds.index("dense_block") == kinds.index("transition") - 1  # block output comes before its transition
    assert all(fx.layer_label(s) for s in specs)


@pytest.mark.parametrize("name", [n for n, c in PRESETS.items() if isinstance(c, DenseNetConfig)])
def test_channel_groups_sum_to_the_block_output(name):
    config = PRESETS[name]
    for spec in (s for s in fx.selectable_layers(config, 224 if config.stem == "imagenet" else 32)
                 if s.kind == "dense_block"):
        groups = fx.channel_groups(spec, config.growth_rate)
        assert sum(g.size for g in groups) == spec.out_channels
        assert groups[0].size == config.block_in_channels()[spec.block - 1] and groups[0].layer == 0
        assert all(g.size == config.growth_rate for g in groups[1:])
        assert len(groups) == 1 + config.block_config[spec.block - 1]
        assert all(a.stop == b.start for a, b in itertools.pairwise(groups))


def test_channel_groups_hold_what_each_layer_produced():
    config, size = SMALL["cifar-bc"]
    model = fx.inference_model(config)
    block = next(s for s in fx.selectable_layers(config, size) if s.kind == "dense_block" and s.block == 2)
    layers = [f"features.denseblock2.denselayer{i}" for i in (1, 2)]
    paths = ["features.transition1", "features.denseblock2", *layers]
    maps = fx.capture_features(model, torch.randn(1, 3, size, size), paths).maps
    out = maps["features.denseblock2"]
    groups = fx.channel_groups(block, config.growth_rate)
    assert torch.equal(out[:, groups[0].start : groups[0].stop], maps["features.transition1"])  # x0
    for group, path in zip(groups[1:], layers, strict=True):
        assert torch.equal(out[:, group.start : group.stop], maps[path])


def test_hooks_are_removed_even_when_the_forward_fails():
    config, size = SMALL["cifar-bc"]
    model = fx.inference_model(config)
    with pytest.raises(RuntimeError):  # wrong number of input channels
        fx.capture_features(model, torch.randn(1, 5, size, size), ["features.denseblock1"])
    assert _hooks(model) == 0


def test_capture_leaves_a_shared_model_as_it_was():
    config, size = SMALL["cifar-bc"]
    model = fx.inference_model(config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fx.capture_features(model, torch.randn(3, 3, size, size), ["features.norm5"], run_to_end=True)
    assert not model.training and _hooks(model) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_early_stop_skips_the_logits_and_norm5_is_captured_before_the_in_place_relu():
    config, size = SMALL["cifar-bc"]
    model = fx.inference_model(config)
    x = torch.randn(1, 3, size, size)
    assert fx.capture_features(model, x, ["features.denseblock1"]).logits is None
    norm5 = fx.capture_features(model, x, ["features.norm5"], run_to_end=True).maps["features.norm5"]
    assert (norm5 < 0).any()  # DenseNet.forward's in-place ReLU must not reach the captured copy


def test_capture_refuses_train_mode_and_unknown_paths():
    model = build_model(SMALL["cifar-bc"][0])
    with pytest.raises(ValueError, match="eval mode"):
        fx.capture_features(model, torch.randn(1, 3, 16, 16), ["features.conv0"])
    with pytest.raises(ValueError, match="no module named"):
        fx.capture_features(model.eval(), torch.randn(1, 3, 16, 16), ["features.nope"])


class _OtherSession(nn.Module):
    """Runs the whole model in another thread (another session sharing the cached model) mid-capture."""

    def __init__(self) -> None:
        super().__init__()
        self.model: nn.Module | None = None
        self.other_out: list[torch.Tensor] = []
        self.errors: list[BaseException] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if threading.current_thread() is threading.main_thread():
            def other() -> None:
                try:
                    self.other_out.append(self.model(torch.full((1, 2), 100.0)))
                except BaseException as exc:  # reported by the test below
                    self.errors.append(exc)

            t = threading.Thread(target=other)
            t.start()
            t.join()
        return x


def test_hooks_ignore_forwards_from_other_threads():
    gate = _OtherSession()
    model = nn.Sequential(gate, nn.Linear(2, 2), nn.Linear(2, 2)).eval()
    gate.model = model
    x = torch.zeros(1, 2)
    capture = fx.capture_features(model, x, ["1"])  # stops early after module "1" in this thread only
    assert gate.errors == [] and len(gate.other_out) == 1  # the other session's forward ran to the end
    assert torch.allclose(capture.maps["1"], model[1](x))  # and this capture holds this thread's input
    assert _hooks(model) == 0


def test_inference_model_is_seeded_frozen_and_leaves_the_global_rng_alone():
    config = SMALL["cifar-bc"][0]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, b = fx.inference_model(config), fx.inference_model(config)
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not a.training and not any(p.requires_grad for p in a.parameters())


def test_channel_stats_and_source_summary():
    fmap = np.zeros((3, 2, 2), dtype=np.float32)
    fmap[1] = [[1, 2], [3, 4]]
    fmap[2] = [[-1, 0], [1, 0]]
    groups = [fx.ChannelGroup("x0 (block input)", 0, 0, 1), fx.ChannelGroup("layer 1", 1, 1, 3)]
    stats = fx.channel_stats(fmap, groups)
    assert stats["source"].tolist() == ["x0 (block input)", "layer 1", "layer 1"]
    assert stats["fraction zero"].tolist() == [1.0, 0.0, 0.5]
    assert stats.loc[1, "mean"] == 2.5 and stats.loc[1, "std"] == pytest.approx(np.std([1, 2, 3, 4]))
    assert (stats.loc[1, "min"], stats.loc[1, "max"]) == (1, 4)
    summary = fx.source_summary(fmap, groups)
    assert summary["channels"].tolist() == [1, 2]
    assert summary["mean activation"].tolist() == [0.0, pytest.approx(10 / 8)]


def test_spread_channels_shows_every_source():
    groups = [fx.ChannelGroup("x0", 0, 0, 64), *(fx.ChannelGroup(f"layer {i}", i, 64 + 8 * (i - 1), 64 + 8 * i)
                                                 for i in range(1, 5))]
    chosen = records.spread_channels(groups, 10)
    assert len(chosen) == 10 and chosen == sorted(set(chosen))
    assert {records.source_of(groups, 96)[c] for c in chosen} == {g.label for g in groups}
    assert records.spread_channels(groups, 1000) == list(range(96))


def test_grid_maps_pool_large_maps_down():
    fmap = np.random.default_rng(0).normal(size=(8, 112, 112)).astype(np.float32)
    assert fx.grid_maps(fmap, [0, 3, 5], max_side=56).shape == (3, 56, 56)
    assert fx.grid_maps(fmap[:, :20, :20], [1], max_side=56).shape == (1, 20, 20)


@pytest.fixture
def two_threads(monkeypatch):
    """The process on two torch threads for the test (the suite's processes run on one): a count that one thread
    could leave changed."""
    was = torch.get_num_threads()
    monkeypatch.setattr(fx, "_PROCESS_THREADS", 2)
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(was)


def test_torch_threads_restores_the_count_even_after_an_error(two_threads):
    before = torch.get_num_threads()
    assert before == 2
    with pytest.raises(RuntimeError), fx.torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_overlapping_sessions_do_not_leave_the_process_on_one_thread(two_threads):
    def count_in_a_new_thread() -> int:
        seen = []
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        t.start()
        t.join()
        return seen[0]

    before = count_in_a_new_thread()  # what a new session's script thread starts with
    assert before == 2
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first_session():
        with fx.torch_threads(1):
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second_session():  # enters while the first still holds one thread, leaves after it
        first_in.wait(10)
        with fx.torch_threads(1):
            second_in.set()
            first_out.wait(10)

    threads = [threading.Thread(target=first_session), threading.Thread(target=second_session)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count_in_a_new_thread() == before


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_capture_on_cuda_matches_the_cpu():
    config, size = SMALL["cifar-bc"]
    x = torch.randn(1, 3, size, size)
    spec = next(s for s in fx.selectable_layers(config, size) if s.kind == "dense_block")
    cpu, _ = fx.compute_feature_map(fx.inference_model(config, "cpu"), x, config, spec)
    gpu_model = fx.inference_model(config, "cuda")
    gpu, logits = fx.compute_feature_map(gpu_model, x, config, spec, with_logits=True)
    assert np.allclose(cpu, gpu, atol=1e-3) and logits.shape == (config.num_classes,)
    assert _hooks(gpu_model) == 0


def test_the_feature_page_choices():
    assert fx.image_sources(fx.TRAINED) == [fx.DIGIT, fx.SAMPLE, fx.UPLOAD]
    assert fx.image_sources(fx.RANDOM) == fx.image_sources(fx.LOADED) == [fx.SAMPLE, fx.UPLOAD]
    with pytest.raises(ValueError, match="weights must be one of"):
        fx.image_sources("pretrained")
    # torchvision's ImageNet evaluation: resize the short side to 256, keep the centre 224
    assert fx.input_crop(fx.LOADED, "imagenet") * 256 == 224
    assert fx.input_crop(fx.LOADED, "cifar") == fx.input_crop(fx.RANDOM, "imagenet") == 1.0
    specs = fx.selectable_layers(PRESETS["densenet121"], 224)
    assert fx.default_layer(specs) == "features.denseblock1"
    resnet_specs = fx.selectable_layers(PRESETS["resnet18"], 224)
    assert fx.default_layer(resnet_specs) == resnet_specs[0].path  # no dense block: the first unit
