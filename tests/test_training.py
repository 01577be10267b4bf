"""The digits demo (fixed split, seeded, beats chance after 2 epochs) and the feature-reuse map."""

import numpy as np
import pytest
import torch

from densenet_viz import DenseNetConfig, count_params
from densenet_viz.lab import training as tr
from densenet_viz.models.build import seeded_model
from densenet_viz.models.densenet import DenseBlock


@pytest.fixture(scope="module")
def data() -> tr.DigitsData:
    return tr.digits_data()


@pytest.fixture(scope="module")
def trained(data):
    """Both models after 2 epochs (the one expensive step of this file: about 10 s on one core)."""
    settings = tr.TrainSettings(epochs=2)
    run, models = tr.new_run(settings)
    threads = torch.get_num_threads()
    for result in tr.train_models(models, data, settings):
        run.history.append(result)
        run.states[result.model] = tr.snapshot(models[result.model])
    after = torch.get_num_threads()
    assert after == threads  # the one-thread setting is put back
    return run, models


def test_digits_split_is_fixed_stratified_and_normalised(data):
    assert data.x_train.shape == (1437, 1, 16, 16) and data.x_test.shape == (360, 1, 16, 16)
    assert data.test_images.shape == (360, 16, 16) and data.test_images.dtype == np.uint8
    assert float(data.x_train.min()) >= -1.0 and float(data.x_train.max()) <= 1.0
    assert np.bincount(data.y_test.numpy()).min() >= 35  # stratified: about 36 of each digit
    again = tr.digits_data()
    assert torch.equal(again.x_test, data.x_test) and torch.equal(again.y_test, data.y_test)
    # the display images are the test inputs before normalisation
    assert np.allclose(data.test_images / 255.0, (data.x_test[:, 0].numpy() + 1) / 2, atol=1 / 255)


def test_demo_models_and_their_parameter_counts():
    run, models = tr.new_run(tr.TrainSettings(epochs=1))
    assert list(run.configs) == ["DenseNet-BC", "ResNet-20"]
    assert run.params == {"DenseNet-BC": 102_298, "ResNet-20": 269_434}
    assert run.params["DenseNet-BC"] == count_params(tr.DIGITS_CONFIG)
    # seeded: the same initial weights every time
    _, again = tr.new_run(tr.TrainSettings(epochs=1))
    for name in models:
        for a, b in zip(models[name].state_dict().values(), again[name].state_dict().values(), strict=True):
            assert torch.equal(a, b)


def test_two_epochs_beat_chance_by_a_wide_margin(trained):
    run, models = trained
    assert [(r.model, r.epoch) for r in run.history] == [
        ("DenseNet-BC", 1), ("ResNet-20", 1), ("DenseNet-BC", 2), ("ResNet-20", 2)
    ]
    final = run.final()
    assert final["DenseNet-BC"].test_acc > 0.8  # chance is 0.1; measured 0.97 with this seed
    assert final["ResNet-20"].test_acc > 0.6  # measured 0.91
    for name in models:
        losses = [r.loss for r in run.history if r.model == name]
        assert losses[1] < losses[0]
        assert not models[name].training  # left in eval mode after each epoch


def test_the_trained_weights_rebuild_the_same_model(trained, data):
    run, models = trained
    copy = tr.trained_model(run.configs[tr.DENSENET_NAME], run.states[tr.DENSENET_NAME])
    assert not copy.training and not any(p.requires_grad for p in copy.parameters())
    with torch.no_grad():
        assert torch.equal(copy(data.x_test[:8]), models["DenseNet-BC"](data.x_test[:8]))
    assert tr.evaluate(copy, data.x_test, data.y_test) == run.final()["DenseNet-BC"].test_acc


@pytest.mark.parametrize("field,value", [("epochs", 0), ("epochs", tr.MAX_EPOCHS + 1), ("lr", 0.0),
                                         ("image_size", 4), ("test_fraction", 0.9)])
def test_settings_are_bounded(field, value):
    with pytest.raises(ValueError, match=field):
        tr.TrainSettings(**{field: value})


def _block(bn_size: int = 4) -> DenseBlock:
    """4 layers, x0 = 8 channels, k = 4: layer l reads 8 + 4(l-1) channels."""
    return DenseBlock(num_layers=4, num_input_features=8, bn_size=bn_size, growth_rate=4, drop_rate=0.0)


def _set_by_source(weight: torch.Tensor, values: list[float]) -> None:
    """Fill the input channels of each source (x0: 8 channels, then 4 per layer) with one value."""
    bounds = [0, 8, 12, 16, 20, 24]
    with torch.no_grad():
        for s, v in enumerate(values):
            weight[:, bounds[s] : bounds[s + 1]] = v


@pytest.mark.parametrize("bn_size", [4, 0])
def test_reuse_map_on_a_hand_built_block(bn_size):
    block = _block(bn_size)
    _set_by_source(block.denselayer3.conv1.weight, [0.0, 0.0, 1.0])  # layer 3 reads only layer 2
    _set_by_source(block.denselayer4.conv1.weight, [1.0, -2.0, 3.0, 4.0])  # |w| grows with the source
    reader = torch.zeros(6, 24, 1, 1)
    _set_by_source(reader, [0.5, 0.0, 0.0, 0.0, 0.0])  # the transition reads only x0
    reuse = tr.block_reuse(block, 8, 4, reader, "transition 1")
    assert reuse.values.shape == (5, 5)
    assert reuse.targets == ["layer 1", "layer 2", "layer 3", "layer 4", "transition 1"]
    assert reuse.sources == ["x0 (block input)", "layer 1", "layer 2", "layer 3", "layer 4"]
    np.testing.assert_array_equal(reuse.values[2], [0.0, 0.0, 1.0, np.nan, np.nan])
    np.testing.assert_allclose(reuse.values[3], [0.25, 0.5, 0.75, 1.0, np.nan])
    np.testing.assert_array_equal(reuse.values[4], [1.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(reuse.raw[3, :4], [1.0, 2.0, 3.0, 4.0])
    assert np.isnan(reuse.values[np.triu_indices(4)[0], np.triu_indices(4)[1] + 1]).all()  # s >= l: no edge
    assert np.nanmax(reuse.values[:2], axis=1).tolist() == [1.0, 1.0]  # every row peaks at 1


def test_reuse_map_follows_the_weights():
    block = _block()
    before = tr.block_reuse(block, 8, 4).raw[3].copy()
    with torch.no_grad():
        block.denselayer4.conv1.weight[:, 12:16] *= 10  # source 2's channels
    after = tr.block_reuse(block, 8, 4).raw[3]
    assert after[2] == pytest.approx(10 * before[2])
    np.testing.assert_allclose(after[[0, 1, 3]], before[[0, 1, 3]])


def test_feature_reuse_of_the_demo_model_has_one_row_per_reader():
    model = seeded_model(tr.DIGITS_CONFIG, 0)
    for block in (1, 2, 3):
        reuse = tr.feature_reuse(model, block)
        assert reuse.values.shape == (5, 5)
        assert reuse.targets[-1] == ("classifier" if block == 3 else f"transition {block}")
    with pytest.raises(ValueError):
        tr.feature_reuse(model, 4)


def test_source_strength_rejects_a_mismatched_layer():
    with pytest.raises(ValueError, match="multiples of k"):
        tr.source_strength(torch.ones(2, 11, 1, 1), in_channels=8, growth_rate=4)


def test_demo_config_is_the_documented_one():
    documented = DenseNetConfig(12, (4, 4, 4), 24, bn_size=4, compression=0.5, stem="cifar", in_channels=1,
                                num_classes=10)
    assert documented == tr.DIGITS_CONFIG
