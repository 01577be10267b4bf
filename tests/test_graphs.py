"""Connectivity records and their drawing: L(L+1)/2 connections, channel labels, shapes, highlighting."""

import itertools
import math
import re

import pytest
from second_methods import count_dot_edges

from densenet_viz import PRESETS, DenseNetConfig
from densenet_viz.viz.graphs import (
    connectivity_matrix,
    dense_block_trace,
    dense_layer_trace,
    draw,
    network_trace,
    resnet_block_trace,
)
from densenet_viz.viz.style import HIGHLIGHT_COLOR, foreground


def small(layers: int, k: int = 12, k0: int = 16) -> DenseNetConfig:
    return DenseNetConfig(growth_rate=k, block_config=(layers, 2), num_init_features=k0, stem="cifar", num_classes=10)


@pytest.mark.parametrize("layers", [1, 2, 3, 6, 12, 24, 40])
def test_a_block_of_L_layers_has_L_times_L_plus_1_over_2_connections(layers):
    trace = dense_block_trace(small(layers), block=1, input_size=32)
    assert trace.count("read") == layers * (layers + 1) // 2
    assert trace.count("output") == layers + 1  # x0..xL all reach the block's concatenated output
    dot = draw(trace).source
    assert count_dot_edges(dot, dashed=False) == layers * (layers + 1) // 2
    assert count_dot_edges(dot) == layers * (layers + 1) // 2 + layers + 1


def test_every_layer_reads_every_earlier_map_and_is_labelled_with_its_channels():
    k, k0, layers = 12, 16, 5
    trace = dense_block_trace(small(layers, k, k0), block=1, input_size=32)
    labels = {n.id: n.label for n in trace.nodes}
    assert f"{k0} ch" in labels["x0"]
    for layer in range(1, layers + 1):
        assert trace.reads(f"x{layer}") == [f"x{i}" for i in range(layer)]
        assert trace.read_channels(f"x{layer}") == k0 + k * (layer - 1)  # the paper's k0 + k(l-1)
        assert f"+{k} ch" in labels[f"x{layer}"]
        assert f"reads {k0 + k * (layer - 1)} ch" in labels[f"x{layer}"]
    assert f"{k0 + layers * k} ch" in labels["out"]


def test_the_seed_example_block_outputs_192_channels():
    # docs/reference.md: a dense block of 4 layers, 64 input channels, k = 32 -> 192 channels.
    config = DenseNetConfig(growth_rate=32, block_config=(4,), num_init_features=64, stem="cifar")
    out = next(n for n in dense_block_trace(config, 1, 32).nodes if n.id == "out")
    assert out.channels == 192


def test_later_blocks_start_from_the_compressed_channels():
    config = PRESETS["densenet121"]
    trace = dense_block_trace(config, block=2, input_size=224)
    x0 = next(n for n in trace.nodes if n.id == "x0")
    assert x0.channels == math.floor(0.5 * (64 + 6 * 32)) == 128
    assert "28×28" in x0.label


def test_the_whole_network_runs_stem_blocks_transitions_classifier_with_shapes():
    trace = network_trace(PRESETS["densenet121"], 224)
    ids = [n.id for n in trace.nodes]
    assert ids == [
        "input", "stem", "block1", "transition1", "block2", "transition2", "block3", "transition3", "block4",
        "norm5", "classifier",
    ]
    assert [(e.src, e.dst) for e in trace.edges] == list(itertools.pairwise(ids))
    labels = {n.id: n.label for n in trace.nodes}
    assert "3×224×224" in labels["input"]
    assert "64×56×56" in labels["stem"]
    assert "64 → 256 ch · 56×56" in labels["block1"]
    assert "256 → 128 ch · 28×28" in labels["transition1"]
    assert "512 → 1024 ch · 7×7" in labels["block4"]
    assert "1024 → 1000" in labels["classifier"]


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet56"])
def test_the_resnet_block_adds_its_input_and_keeps_the_width(name):
    config = PRESETS[name]
    trace = resnet_block_trace(config, 32 if config.stem == "cifar" else 224)
    assert trace.count("identity") == 1
    x = next(n for n in trace.nodes if n.id == "x")
    add = next(n for n in trace.nodes if n.id == "add")
    assert x.channels == add.channels
    assert len([n for n in trace.nodes if n.kind == "conv"]) == (3 if config.block == "bottleneck" else 2)


def test_a_dense_layer_keeps_all_inputs_and_adds_k():
    config = PRESETS["densenet121"]
    trace = dense_layer_trace(config, block=1, layer=3, input_size=224)
    cat = next(n for n in trace.nodes if n.id == "cat")
    keep = next(n for n in trace.nodes if n.id == "keep")
    assert cat.channels == 64 + 2 * 32
    assert keep.channels == cat.channels + 32
    assert [n.channels for n in trace.nodes if n.kind == "conv"] == [4 * 32, 32]  # the bottleneck, then k
    long = dense_layer_trace(config, block=3, layer=20, input_size=224)
    assert sum(n.channels for n in long.nodes if n.kind == "input") == next(
        n.channels for n in long.nodes if n.id == "cat"
    )


def test_out_of_range_blocks_and_layers_are_errors():
    with pytest.raises(ValueError, match="block must be in"):
        dense_block_trace(PRESETS["densenet121"], block=5)
    with pytest.raises(ValueError, match="layer must be in"):
        dense_layer_trace(PRESETS["densenet121"], block=1, layer=7)


@pytest.mark.parametrize("layers", [1, 4, 30])
def test_the_connectivity_matrix_is_lower_triangular_with_L_L_plus_1_over_2_ones(layers):
    matrix = connectivity_matrix(dense_block_trace(small(layers), 1, 32))
    assert matrix.shape == (layers, layers)
    assert int(matrix.to_numpy().sum()) == layers * (layers + 1) // 2
    for i in range(layers):
        assert list(matrix.iloc[i]) == [1] * (i + 1) + [0] * (layers - i - 1)


def test_highlighting_a_layer_lights_exactly_what_it_reads():
    trace = dense_block_trace(small(6), 1, 32)
    dot = draw(trace, highlight="x4").source
    lit = [line for line in dot.splitlines() if "->" in line and "penwidth=3" in line]
    assert sorted(re.findall(r"(x\d) -> x4", "\n".join(lit))) == ["x0", "x1", "x2", "x3"]
    assert all(HIGHLIGHT_COLOR in line for line in lit)


def test_dark_theme_draws_light_lines_on_a_transparent_background():
    dot = draw(network_trace(PRESETS["densenet121"]), dark=True).source
    assert "bgcolor=transparent" in dot
    assert foreground(True) in dot and foreground(False) not in dot
