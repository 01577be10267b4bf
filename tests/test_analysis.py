"""The analysis against independent numbers: docs/reference.md, closed forms, FlopCounterMode, torchinfo, tensors."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError, replace

import pandas as pd
import pytest
import torch
import torchinfo
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import IMAGENET
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from densenet_viz import (
    PRESETS,
    AnalysisReport,
    DenseNetConfig,
    MemoryReport,
    ResNetConfig,
    analyze,
    build_model,
    count_params,
    max_batch_that_fits,
    measure_cuda_peak,
    memory_growth,
)
from densenet_viz.analysis import closed_form as A
from densenet_viz.analysis import measure as M
from densenet_viz.models.densenet import DenseBlock
from densenet_viz.models.plan import layer_plan, min_input_size

MIB = 2**20
MODES = ("train_plain", "train_efficient", "inference")

REFERENCE = IMAGENET  # docs/reference.md, ImageNet table: parameters and MACs of one 224x224 image.

# Small networks that exercise every branch of the closed form: both stems, with and without the
# bottleneck, dropout, compression 1, odd and non-square sizes, both memory-efficient implementations,
# each ResNet block and shortcut.
SMALL = [
    (DenseNetConfig(4, (2, 3), 8, num_classes=5, stem="cifar"), 9),
    (DenseNetConfig(4, (2, 3), 8, bn_size=0, compression=1.0, num_classes=5, stem="cifar", drop_rate=0.2), (7, 10)),
    (DenseNetConfig(3, (1, 2, 2), 6, bn_size=2, num_classes=4, drop_rate=0.3), (37, 29)),
    (DenseNetConfig(4, (2, 2), 8, bn_size=0, num_classes=3, in_channels=1), 33),
    (DenseNetConfig(4, (2, 3), 8, num_classes=5, stem="cifar", drop_rate=0.2, efficient_impl="recompute_bn"), 9),
    (DenseNetConfig(3, (2, 2), 6, bn_size=0, num_classes=4, efficient_impl="recompute_bn"), (35, 33)),
    (ResNetConfig("basic", (2, 2), (8, 16), stem="cifar", shortcut="zero_pad", num_classes=3), 9),
    (ResNetConfig("basic", (1, 2), (8, 8), stem="cifar", shortcut="zero_pad", num_classes=3), 9),
    (ResNetConfig("basic", (2, 1), (8, 16), num_classes=3), 35),
    (ResNetConfig("bottleneck", (2, 2), (4, 8), num_classes=3), 33),
    (ResNetConfig("bottleneck", (1, 2), (4, 8), stem="cifar", num_classes=3), (9, 6)),
]
SMALL_IDS = [f"{type(c).__name__}-{i}" for i, (c, _) in enumerate(SMALL)]


def closed_form(report: AnalysisReport) -> tuple[int, int, int]:
    m = report.memory
    return m.train_plain_bytes, m.train_efficient_bytes, m.inference_bytes


def measured(config, size, batch, dtype=torch.float32, device="cpu") -> tuple[int, ...]:
    return tuple(M.measure_activation_bytes(config, size, batch, dtype, mode, device) for mode in MODES)


# --- docs/reference.md --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_parameters_and_macs(name):
    report = analyze(PRESETS[name], 224)
    assert (report.params, report.macs_per_sample) == REFERENCE[name]
    assert analyze(PRESETS[name], 224, batch_size=3).macs == 3 * REFERENCE[name][1]


@pytest.mark.parametrize(
    ("batch", "plain", "efficient"), [(1, 131_030_528, 63_058_304), (8, 1_043_559_936, 503_312_384)]
)
def test_reference_training_memory_of_densenet121(batch, plain, efficient):
    memory = analyze(replace(PRESETS["densenet121"], efficient_impl="checkpoint"), 224, batch).memory  # torchvision's
    assert (memory.train_plain_bytes, memory.train_efficient_bytes) == (plain, efficient)


def test_reference_memory_growth_of_one_block():
    growth = memory_growth(efficient_impl="checkpoint").set_index("layers")  # 64 in, k=32, 4k, 32x32, batch 16
    expected = {8: (304.0, 146.0), 16: (864.1, 290.0), 32: (2752.3, 578.1), 64: (9601.2, 1154.1)}
    for layers, (plain, efficient) in expected.items():
        row = growth.loc[layers]
        assert (round(row.plain_bytes / MIB, 1), round(row.efficient_bytes / MIB, 1)) == (plain, efficient)


def test_memory_growth_follows_the_closed_formula():
    # docs/reference.md, in units of one 32x32 map at batch 16 (64 KiB): plain 32L^2 + 352L, efficient
    # 288L + 32, plus batch norm's four per-channel vectors (16 bytes per channel in float32).
    growth = memory_growth(max_layers=40, efficient_impl="checkpoint")
    unit = 16 * 32 * 32 * 4
    for layers, plain, efficient in growth.itertuples(index=False):
        norm1_channels = sum(64 + 32 * i for i in range(layers))
        norm2_channels = 128 * layers
        assert plain - 16 * (norm1_channels + norm2_channels) == (32 * layers**2 + 352 * layers) * unit
        assert efficient - 16 * norm2_channels == (288 * layers + 32) * unit


@pytest.mark.parametrize("impl", ["checkpoint", "recompute_bn"])
def test_memory_growth_is_quadratic_plain_and_linear_efficient(impl):
    growth = memory_growth(max_layers=12, efficient_impl=impl)  # k = 32, float32
    assert growth.columns.tolist() == ["layers", "plain_bytes", "efficient_bytes"]
    assert growth["layers"].tolist() == list(range(1, 13))
    assert growth["plain_bytes"].diff().diff().dropna().nunique() == 1  # constant second difference
    # Linear in the maps; recompute_bn also keeps each BN's batch mean and invstd (2 x 4 bytes per channel),
    # and every layer's first BN reads k more channels than the last one's.
    second = growth["efficient_bytes"].diff().diff().dropna().unique().tolist()
    assert second == ([0] if impl == "checkpoint" else [2 * 4 * 32])
    assert (growth["plain_bytes"] > growth["efficient_bytes"]).all()


@pytest.mark.parametrize(("efficient", "impl"), [(False, "checkpoint"), (True, "checkpoint"), (True, "recompute_bn")])
def test_memory_growth_equals_a_measured_block(efficient, impl):
    growth = memory_growth(4, 6, 2, max_layers=4, input_size=(5, 7), batch_size=3, efficient_impl=impl)
    column = "efficient_bytes" if efficient else "plain_bytes"
    for layers in (1, 2, 4):
        block = DenseBlock(layers, 6, 2, 4, drop_rate=0.0, memory_efficient=efficient, efficient_impl=impl)
        x = torch.randn(3, 6, 5, 7, requires_grad=True)  # as inside a network: the block input has a history
        params = {p.untyped_storage()._cdata for p in block.parameters()}
        seen: dict[int, int] = {}

        def pack(t, params=params, seen=seen):
            if t.untyped_storage()._cdata not in params:
                seen[t.untyped_storage()._cdata] = t.untyped_storage().nbytes()
            return t.detach()

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            block(x)
        assert sum(seen.values()) == growth.loc[layers - 1, column]


# --- Independent counts for every preset -----------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_parameters_equal_the_built_model(name):
    config = PRESETS[name]
    assert analyze(config, 224 if config.stem == "imagenet" else 32).params == count_params(config)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PRESETS))
def test_macs_equal_flop_counter_mode(name):
    config = PRESETS[name]
    size = 224 if config.stem == "imagenet" else 32
    assert analyze(config, size, batch_size=2).macs == M.measure_macs(config, size, batch_size=2)


# --- Memory: the closed form equals the measurement on real tensors and on meta ---------------------


@pytest.mark.parametrize(("config", "size"), SMALL, ids=SMALL_IDS)
def test_memory_equals_measurement_on_cpu_and_meta(config, size):
    expected = closed_form(analyze(config, size, batch_size=3))
    assert measured(config, size, 3, device="cpu") == expected
    assert measured(config, size, 3, device="meta") == expected


@pytest.mark.parametrize(("config", "size"), SMALL, ids=SMALL_IDS)
def test_training_bytes_per_row_equal_the_measurement(config, size):
    table = analyze(config, size, batch_size=2).table.set_index("path")
    for mode in ("train_plain", "train_efficient"):
        by_row = M._measure_saved(config, size, 2, torch.float32, mode, "cpu")
        expected = table[f"{mode}_bytes"]
        assert by_row == {path: nbytes for path, nbytes in expected.items() if nbytes}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    ("config", "size"), [SMALL[1], SMALL[2], SMALL[4], SMALL[9]], ids=["dense-plain", "dense", "recompute", "resnet"]
)
def test_memory_in_other_dtypes_equals_cpu_measurement(config, size, dtype):
    # On meta (and CUDA) half-precision batch norm keeps float32 statistics; CPU keeps them in the input dtype.
    assert measured(config, size, 2, dtype) == closed_form(analyze(config, size, 2, dtype))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["densenet121", "resnet50"])
def test_memory_of_imagenet_presets_equals_meta_measurement(name):
    assert measured(PRESETS[name], 224, 2, device="meta") == closed_form(analyze(PRESETS[name], 224, 2))


def _small_densenet():
    return st.builds(
        DenseNetConfig,
        growth_rate=st.integers(1, 6),
        block_config=st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple),
        num_init_features=st.integers(2, 10),
        bn_size=st.integers(0, 3),
        compression=st.sampled_from([0.5, 1.0]),
        drop_rate=st.sampled_from([0.0, 0.25]),
        stem=st.sampled_from(["cifar", "imagenet"]),
        in_channels=st.integers(1, 3),
        num_classes=st.integers(1, 7),
        efficient_impl=st.sampled_from(["checkpoint", "recompute_bn"]),
    )


def _small_resnet():
    return st.builds(
        lambda block, layers, widths, stem, shortcut: ResNetConfig(
            block, layers, widths[: len(layers)], stem, shortcut if block == "basic" else "projection", num_classes=3
        ),
        st.sampled_from(["basic", "bottleneck"]),
        st.lists(st.integers(1, 2), min_size=1, max_size=3).map(tuple),
        st.lists(st.integers(2, 8), min_size=3, max_size=3).map(tuple),
        st.sampled_from(["cifar", "imagenet"]),
        st.sampled_from(["projection", "zero_pad"]),
    )


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(config=st.one_of(_small_densenet(), _small_resnet()), extra=st.tuples(st.integers(0, 6), st.integers(0, 6)))
def test_random_configs_match_the_real_model(config, extra):
    size = (min_input_size(config) + extra[0], min_input_size(config) + extra[1])
    report = analyze(config, size, batch_size=2)
    assert measured(config, size, 2) == closed_form(report)
    model = build_model(config, device="meta")
    assert report.params == sum(p.numel() for p in model.parameters())
    assert report.memory.buffer_bytes == sum(b.numel() * b.element_size() for b in model.buffers())
    flops = FlopCounterMode(display=False)
    with flops, torch.no_grad():
        model.eval()(torch.empty(2, config.in_channels, *size, device="meta"))
    assert report.macs == flops.get_total_flops() // 2


def test_memory_is_linear_in_the_batch_plus_a_constant():
    config, size = SMALL[2]
    one, two, many = (analyze(config, size, b).memory for b in (1, 2, 37))
    for field in ("train_plain_bytes", "train_efficient_bytes", "inference_bytes"):
        a, b, n = getattr(one, field), getattr(two, field), getattr(many, field)
        assert n - a == 36 * (b - a)
    assert measured(config, size, 37, device="meta") == closed_form(analyze(config, size, 37))


def test_batch_norm_statistics_are_the_constant():
    memory = [analyze(PRESETS["densenet121"], 224, b).memory for b in (1, 2)]
    constant = 2 * memory[0].train_plain_bytes - memory[1].train_plain_bytes
    # Four float32 vectors per batch-norm channel: running mean and variance (the buffers), batch mean, invstd.
    assert constant == 2 * (memory[0].buffer_bytes - 8 * 121) == 669_184
    assert 2 * memory[0].inference_bytes == memory[1].inference_bytes


# --- The per-layer table ---------------------------------------------------------------------------


def test_table_has_one_row_per_plan_unit_with_the_documented_columns():
    config = PRESETS["densenet121"]
    report = analyze(config, 224, batch_size=4)
    table = report.table
    assert table.columns.tolist()[:10] == [
        "path", "kind", "block", "layer", "in_channels", "out_channels", "output_shape", "params", "macs",
        "output_bytes",
    ]  # fmt: skip
    plan = layer_plan(config, 224)
    assert table["path"].tolist() == [s.path for s in plan]
    assert table["kind"].tolist() == [s.kind for s in plan]
    assert table.loc[1, "output_shape"] == "4x32x56x56"  # the first dense layer adds k=32 maps
    assert table.iloc[-1]["output_shape"] == "4x1000"
    assert table["params"].sum() == report.params and table["macs"].sum() == report.macs
    shapes = table["output_shape"].str.split("x").map(lambda dims: math.prod(map(int, dims)))
    assert (shapes * 4 == table["output_bytes"]).all()
    assert table["train_plain_bytes"].sum() == report.memory.train_plain_bytes
    assert table["train_efficient_bytes"].sum() == report.memory.train_efficient_bytes


def test_block_subtotals_and_total_row():
    report = analyze(PRESETS["densenet121"], 224)
    blocks = report.blocks.set_index("block")
    assert blocks.index.tolist() == [
        "stem", "denseblock1", "transition1", "denseblock2", "transition2", "denseblock3", "transition3",
        "denseblock4", "head", "total",
    ]  # fmt: skip
    assert blocks.loc["denseblock3", ["layers", "in_channels", "out_channels"]].tolist() == [24, 256, 1024]
    parts = blocks.drop(index="total")
    for column in ("params", "macs", "output_bytes", "train_plain_bytes", "train_efficient_bytes"):
        assert parts[column].sum() == blocks.loc["total", column] == report.table[column].sum()
    assert blocks.loc["total", "params"] == 7_978_856
    assert blocks.loc["total", "train_plain_bytes"] == report.memory.train_plain_bytes
    resnet = analyze(PRESETS["resnet50"], 224).blocks
    assert resnet["block"].tolist() == ["stem", "layer1", "layer2", "layer3", "layer4", "head", "total"]


def test_table_agrees_with_torchinfo():
    config = DenseNetConfig(8, (2, 3), 16, num_classes=10)
    model = build_model(config)
    stats = torchinfo.summary(model, input_size=(2, 3, 64, 64), depth=10, verbose=0)
    report = analyze(config, 64, batch_size=2)
    assert stats.total_params == report.params
    names = {id(m): name for name, m in model.named_modules()}
    rows = report.table.set_index("path")
    seen = 0
    for info in stats.summary_list:
        name = names[id(info.module)]
        if name in rows.index and rows.loc[name, "kind"] in ("dense_layer", "transition", "norm", "classifier"):
            assert "x".join(map(str, info.output_size)) == rows.loc[name, "output_shape"]
            assert info.num_params == rows.loc[name, "params"]
            seen += 1
    assert seen == len(rows) - 1  # every row but the stem (four modules, no single torchinfo line)


def test_torchinfo_pass_size_is_the_different_number_the_docstring_explains():
    # docs/reference.md: torchinfo says 1444 MB at batch 8 for DenseNet-121, memory-efficient or not.
    sizes = []
    for efficient in (False, True):
        model = build_model(replace(PRESETS["densenet121"], memory_efficient=efficient), device="meta")
        sizes.append(torchinfo.summary(model, input_size=(8, 3, 224, 224), device="meta", verbose=0).total_output_bytes)
    assert sizes[0] == sizes[1] and round(sizes[0] / 1e6) == 1444
    assert "1444 MB" in A.__doc__ and "Forward/backward pass size" in A.__doc__


# --- Memory report, budgets and caching ----------------------------------------------------------


def test_memory_report_labels_and_weight_bytes():
    report = analyze(PRESETS["densenet121"], 224, dtype=torch.float16)
    memory = report.memory
    assert memory.weight_bytes == 2 * 7_978_856
    labels = memory.labels
    assert set(labels) == {"inference_bytes", "train_plain_bytes", "train_efficient_bytes", "weight_bytes",
                           "buffer_bytes"}  # fmt: skip
    assert all(text.endswith(".") and len(text) < 200 for text in labels.values())
    labels.clear()  # a fresh dict: the report's own labels stay
    assert memory.labels
    with pytest.raises(FrozenInstanceError):
        memory.train_plain_bytes = 0


def test_resnets_have_no_efficient_mode():
    memory = analyze(PRESETS["resnet50"], 224, 4).memory
    assert memory.train_efficient_bytes == memory.train_plain_bytes


def test_max_batch_that_fits_is_the_exact_boundary():
    config = PRESETS["densenet121"]
    budget = 8 * 2**30
    for mode in ("train_plain", "train_efficient", "inference"):
        batch = max_batch_that_fits(config, 224, budget, mode=mode)
        assert analyze(config, 224, batch).memory.required_bytes(mode) <= budget
        assert analyze(config, 224, batch + 1).memory.required_bytes(mode) > budget
        assert analyze(config, 224, batch).fits(budget, mode) and not analyze(config, 224, batch + 1).fits(budget, mode)
    plain = max_batch_that_fits(config, 224, budget)
    assert max_batch_that_fits(config, 224, budget, mode="train_efficient") > 1.8 * plain
    assert max_batch_that_fits(config, 224, 100 * MIB) == 0  # even one image does not fit
    assert max_batch_that_fits(PRESETS["resnet20"], 32, 2**60, mode="inference") == A.MAX_BATCH_SIZE


class _NoTensorOps(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        raise AssertionError(f"the closed form ran a tensor operation: {func}")


def test_analysis_runs_no_tensor_operation():
    A.clear_cache()
    with _NoTensorOps():
        analyze(PRESETS["densenet264"], 224, batch_size=256)
        max_batch_that_fits(PRESETS["densenet264"], 224, 80 * 2**30, mode="train_efficient")
        memory_growth(max_layers=8)


def test_results_are_cached_and_copies_protect_the_cache():
    config = DenseNetConfig(4, (2, 2), 8, stem="cifar", num_classes=3)
    first = analyze(config, 16, 2)
    hits = A._report.cache_info().hits
    first.table.loc[0, "params"] = -1
    first.blocks.loc[0, "block"] = "changed"
    second = analyze(config, 16, 2)
    assert A._report.cache_info().hits == hits + 1
    assert second.table.loc[0, "params"] > 0 and second.blocks.loc[0, "block"] == "stem"
    assert analyze(replace(config, memory_efficient=True), 16, 2).memory == second.memory


def test_dtype_names_and_list_sizes_are_accepted():
    config = PRESETS["densenet_bc_100_12"]
    assert analyze(config, [32, 32], 2, "bfloat16").memory == analyze(config, (32, 32), 2, torch.bfloat16).memory
    assert isinstance(analyze(config, 32).table, pd.DataFrame)
    assert isinstance(analyze(config, 32).memory, MemoryReport)


# --- Bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_size": 0}, "input_size"),
        ({"input_size": -5}, "input_size"),
        ({"input_size": 22.5}, "input_size"),
        ({"input_size": (224,)}, "input_size"),
        ({"input_size": True}, "input_size"),
        ({"input_size": 16}, "too small"),
        ({"input_size": (224, 16)}, "too small"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -1}, "batch_size"),
        ({"batch_size": 2.0}, "batch_size"),
        ({"batch_size": A.MAX_BATCH_SIZE + 1}, "batch_size"),
        ({"dtype": torch.int64}, "dtype"),
        ({"dtype": "float8"}, "dtype"),
    ],
)
def test_bad_input_raises_a_value_error_naming_it(kwargs, message):
    with pytest.raises(ValueError, match=message):
        analyze(PRESETS["densenet121"], **{"input_size": 224, **kwargs})


def test_too_small_input_says_why_and_what_works():
    with pytest.raises(ValueError, match=r"16x16 is too small.*downsamples by 32x.*at least 29x29"):
        analyze(PRESETS["densenet121"], 16)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="config"):
        analyze({"growth_rate": 32})
    with pytest.raises(ValueError, match="mode"):
        max_batch_that_fits(PRESETS["densenet121"], 224, 2**30, mode="training")
    for budget in (-1, float("inf"), float("nan"), "8GB"):
        with pytest.raises(ValueError, match="budget_bytes"):
            max_batch_that_fits(PRESETS["densenet121"], 224, budget)
    with pytest.raises(ValueError, match="max_layers"):
        memory_growth(max_layers=0)
    with pytest.raises(ValueError, match="growth_rate"):
        memory_growth(growth_rate=2.5)
    with pytest.raises(ValueError, match="input_size"):
        memory_growth(input_size=0)


# --- CUDA ----------------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where there is no GPU")
def test_cuda_peak_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA"):
        measure_cuda_peak(PRESETS["densenet121"], 224, 1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("mode", MODES)
def test_cuda_peak_is_at_least_the_estimate(mode):
    config, size, batch = PRESETS["densenet121"], 224, 8
    report = analyze(config, size, batch)
    input_bytes = batch * 3 * size * size * 4  # allocated before the peak is reset
    peak = measure_cuda_peak(config, size, batch, mode=mode)
    assert peak >= report.memory.activation_bytes(mode) - input_bytes
    assert peak < 3 * report.memory.required_bytes(mode)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_totals_are_the_reports_figures_and_its_tables_sums(name):
    from densenet_viz.analysis.closed_form import totals

    config = PRESETS[name]
    size = 224 if config.stem == "imagenet" else 32
    report, summed = analyze(config, size, batch_size=5), totals(config, size, batch_size=5)
    assert (summed.params, summed.macs_per_sample, summed.memory) == (
        report.params, report.macs_per_sample, report.memory)
    # A second method: the per-layer table's own sums.
    assert summed.params == int(report.table["params"].sum())
    assert 5 * summed.macs_per_sample == int(report.table["macs"].sum())
    assert summed.memory.train_plain_bytes == int(report.table["train_plain_bytes"].sum())
