"""Property tests over the config space: every config either raises a ValueError naming the field or
builds a real model whose output shapes and parameter count equal the analysis (and a closed form).
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from conftest import record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from densenet_viz import DenseNetConfig, ResNetConfig, build_model, count_params
from densenet_viz.analysis.closed_form import analyze
from densenet_viz.models.plan import layer_plan

FIELDS = (
    "growth_rate", "block_config", "num_init_features", "bn_size", "compression", "drop_rate",
    "stem", "in_channels", "num_classes", "memory_efficient", "efficient_impl",
)  # fmt: skip

# What a user, a URL or a caller might pass: sane values most of the time, and hostile ones.
garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=10),
    st.binary(max_size=4),
)
small_blocks = st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=3).map(tuple)


def _valid_fields() -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {
            "growth_rate": st.integers(1, 12),
            "block_config": small_blocks,
            "num_init_features": st.integers(1, 24),
            "bn_size": st.integers(0, 4),
            "compression": st.floats(0.05, 1.0),
            "drop_rate": st.sampled_from([0.0, 0.2]),
            "stem": st.sampled_from(["cifar", "imagenet"]),
            "in_channels": st.integers(1, 4),
            "num_classes": st.integers(1, 20),
            "memory_efficient": st.booleans(),
            "efficient_impl": st.sampled_from(["checkpoint", "recompute_bn"]),
        }
    )


@st.composite
def config_kwargs(draw) -> dict:
    """Keyword arguments for DenseNetConfig: valid, with 0 to 3 fields replaced by garbage or edge values."""
    kwargs = draw(_valid_fields())
    edges = {
        "growth_rate": st.sampled_from([0, -1, 513, 10**9, 2.5, "32", True]),
        "block_config": st.sampled_from([(), (0,), (1, -2), tuple(range(1, 10)), (513,), "6-12", None, (1.0,)]),
        "num_init_features": st.sampled_from([0, -64, 4097, 64.0, None]),
        "bn_size": st.sampled_from([-1, 17, 4.0, "4"]),
        "compression": st.sampled_from([0.0, -0.5, 1.01, math.nan, math.inf, -math.inf, "0.5", 1e-9, 0.001]),
        "drop_rate": st.sampled_from([-0.1, 1.0, math.nan, 2]),
        "stem": st.sampled_from(["", "ImageNet", "resnet", None, 3]),
        "in_channels": st.sampled_from([0, 65, -3, 3.5]),
        "num_classes": st.sampled_from([0, 100_001, -10, 10.0]),
        "memory_efficient": st.sampled_from([1, 0, "yes", None]),
        "efficient_impl": st.sampled_from(["", "fast", None]),
    }
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        kwargs[name] = draw(st.one_of(edges[name], garbage))
    return kwargs


def closed_form_params(config: DenseNetConfig) -> int:
    """Parameters from the paper's layer definitions alone (a second method, not the model's modules)."""
    k, bn = config.growth_rate, config.bn_size
    c = config.num_init_features
    kernel = 49 if config.stem == "imagenet" else 9
    total = config.in_channels * c * kernel + (2 * c if config.stem == "imagenet" else 0)
    for b, n in enumerate(config.block_config):
        for i in range(n):
            cin = c + i * k
            if bn > 0:  # BN(cin), 1x1 to bn*k, BN(bn*k), 3x3 to k
                total += 2 * cin + cin * bn * k + 2 * bn * k + 9 * bn * k * k
            else:  # BN(cin), 3x3 to k
                total += 2 * cin + 9 * cin * k
        c += n * k
        if b < len(config.block_config) - 1:
            out = math.floor(config.compression * c)
            total += 2 * c + c * out
            c = out
    return total + 2 * c + c * config.num_classes + config.num_classes


def real_shapes(model: torch.nn.Module, x: torch.Tensor, paths: list[str]) -> dict[str, tuple[int, ...]]:
    """Output shape of each named module in one real forward pass (hooks removed afterwards)."""
    shapes, handles = {}, []
    modules = dict(model.named_modules())
    for path in paths:
        handles.append(
            modules[path].register_forward_hook(lambda _m, _i, out, p=path: shapes.__setitem__(p, tuple(out.shape)))
        )
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    shapes["<output>"] = tuple(out.shape)
    return shapes


def real_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass, counted by PyTorch's FLOP counter (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


_counts = {"configs": 0, "invalid": 0, "built": 0}


def check_config(kwargs: dict, input_size: int, batch: int) -> None:
    _counts["configs"] += 1
    try:
        config = DenseNetConfig(**kwargs)
    except ValueError as exc:
        _counts["invalid"] += 1
        message = str(exc)
        named = [f for f in FIELDS if re.search(rf"\b{f}\b", message)]
        assert named, f"ValueError does not name the field: {message!r} for {kwargs!r}"
        return
    # Everything the constructor accepted must be exactly what the paper allows.
    assert config.growth_rate >= 1 and config.num_init_features >= 1 and 0 < config.compression <= 1
    assert all(isinstance(n, int) and n >= 1 for n in config.block_config)

    try:
        plan = layer_plan(config, input_size)
    except ValueError as exc:
        assert "input" in str(exc), str(exc)
        with pytest.raises(ValueError, match="input"):
            analyze(config, input_size=input_size, batch_size=batch, dtype=torch.float32)
        # The analysis refuses what the real network cannot run: a forward pass must fail too.
        with pytest.raises(RuntimeError):
            build_model(config).eval()(torch.zeros(batch, config.in_channels, input_size, input_size))
        return
    _counts["built"] += 1
    model = build_model(config, device="cpu").eval()
    params = sum(p.numel() for p in model.parameters())
    assert params == closed_form_params(config) == count_params(config)

    x = torch.randn(batch, config.in_channels, input_size, input_size)
    # Where the plan puts the stem's output: after the max-pool for the ImageNet stem.
    stem_path = "features.pool0" if config.stem == "imagenet" else "features.conv0"
    paths = [stem_path if s.kind == "stem" else s.path for s in plan]
    shapes = real_shapes(model, x, paths)
    assert shapes["<output>"] == (batch, config.num_classes)
    for spec, path in zip(plan, paths, strict=True):
        expected = (
            (batch, spec.out_channels)
            if spec.kind == "classifier"
            else (batch, spec.out_channels, spec.height, spec.width)
        )
        assert shapes[path] == expected, f"{spec.path}: real {shapes[path]} vs plan {expected}"
    assert torch.isfinite(model(x)).all()

    report = analyze(config, input_size=input_size, batch_size=batch, dtype=torch.float32)
    assert report.params == params
    assert report.macs == real_macs(model, x)
    _check_table(model, report.table, shapes, config)


def _check_table(model: torch.nn.Module, table, shapes: dict[str, tuple[int, ...]], config: DenseNetConfig) -> None:
    """Every row of the analysis table: the real module's output shape and parameter count."""
    modules = dict(model.named_modules())
    stem = "features.pool0" if config.stem == "imagenet" else "features.conv0"
    for row in table.to_dict("records"):
        path = row["path"]
        real = shapes[stem if row["kind"] == "stem" else path]
        assert row["output_shape"] == "x".join(map(str, real)), f"{path}: real {real} vs analysis {row}"
        if row["kind"] == "stem":
            real_params = sum(p.numel() for n, p in model.features.named_parameters() if n.split(".")[0].endswith("0"))
        else:
            real_params = sum(p.numel() for p in modules[path].parameters())
        assert row["params"] == real_params, f"{path}: real {real_params} params vs analysis {row['params']}"
    assert table["params"].sum() == sum(p.numel() for p in model.parameters())


HYP = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@HYP
@given(kwargs=config_kwargs(), input_size=st.integers(1, 40), batch=st.integers(1, 2))
def test_every_config_is_refused_clearly_or_matches_the_real_model(kwargs, input_size, batch):
    check_config(kwargs, input_size, batch)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(kwargs=st.dictionaries(st.sampled_from(FIELDS), garbage, max_size=len(FIELDS)))
def test_garbage_fields_raise_value_error_naming_the_field(kwargs):
    try:
        DenseNetConfig(**kwargs)
    except ValueError as exc:
        assert any(re.search(rf"\b{f}\b", str(exc)) for f in FIELDS), str(exc)
    _counts["configs"] += 1


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    block=st.sampled_from(["basic", "bottleneck", "other"]),
    layers=st.lists(st.integers(0, 3), min_size=0, max_size=4),
    widths=st.lists(st.integers(-1, 16), min_size=1, max_size=4),
    stem=st.sampled_from(["cifar", "imagenet", "x"]),
    shortcut=st.sampled_from(["projection", "zero_pad"]),
    size=st.integers(4, 40),
)
def test_resnet_configs_refused_clearly_or_run(block, layers, widths, stem, shortcut, size):
    _counts["configs"] += 1
    try:
        config = ResNetConfig(block, tuple(layers), tuple(widths), stem, shortcut, num_classes=7)
    except ValueError as exc:
        assert re.search(r"\b(block|layers|widths|stem|shortcut)\b", str(exc)), str(exc)
        return
    try:
        plan = layer_plan(config, size)
    except ValueError as exc:
        assert "input" in str(exc)
        return
    model = build_model(config).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size))
    assert out.shape == (1, 7)
    assert sum(p.numel() for p in model.parameters()) == count_params(config)
    assert plan[-1].out_channels == 7


def test_zz_record_property_counts():
    """Write how many configs the property tests tried (runs after them: pytest keeps file order)."""
    record("property_configs_tried", dict(_counts))
    assert _counts["configs"] > 0
