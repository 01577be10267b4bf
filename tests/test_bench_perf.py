"""The train and infer benchmarks run their quick cases, so they never rot; the no-grad buffer path is exact."""

import pytest
import torch

from densenet_viz import DenseNetConfig, build_model
from densenet_viz.bench import __main__ as bench
from densenet_viz.bench import infer as bench_infer
from densenet_viz.bench import train as bench_train
from densenet_viz.models.densenet import DenseBlock


def _table_rows(markdown: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in markdown.splitlines() if line.startswith("| ")]


def test_train_quick_prints_both_tables():
    text = bench_train.run(quick=True)
    rows = _table_rows(text)
    modes = [r[2] for r in rows if r[0] == "tiny DenseNet-BC"]
    assert modes[:3] == ["plain", "checkpoint", "recompute_bn"]
    sweep = [r for r in rows if r[0] in {"2", "4"}]
    assert len(sweep) == 2
    for row in sweep:  # plain > checkpoint > recompute_bn bytes
        plain, checkpoint, recompute = map(float, row[1:4])
        assert plain > checkpoint > recompute


def test_infer_quick_prints_both_tables():
    text = bench_infer.run(quick=True)
    rows = _table_rows(text)
    assert {r[2] for r in rows if r[0].startswith("tiny")} == {"NCHW", "channels_last"}
    block = [r for r in rows if r[0] == "4"]
    assert block and block[0][-1] == "yes"


def test_bench_entry_runs_the_parts(capsys):
    bench.main(["train", "infer", "--quick"])
    out = capsys.readouterr().out
    assert "## train" in out and "## infer" in out


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("bn_size", [0, 4])
def test_buffer_path_equals_concatenation(fmt, bn_size):
    torch.manual_seed(0)
    block = DenseBlock(5, 6, bn_size=bn_size, growth_rate=3, drop_rate=0.0).eval().to(memory_format=fmt)
    x = torch.randn(3, 6, 7, 7).contiguous(memory_format=fmt)
    with torch.no_grad():
        expected, got = block.forward_concat(x), block(x)
    torch.testing.assert_close(got, expected)
    assert got.is_contiguous(memory_format=fmt)


def test_whole_model_no_grad_matches_the_concatenating_path_and_hooks_see_new_maps():
    model = build_model(DenseNetConfig(4, (3, 2), 8, stem="cifar", num_classes=5)).eval()
    x = torch.randn(2, 3, 8, 8)
    seen = {}
    hook = model.features.denseblock1.denselayer2.register_forward_hook(lambda m, i, o: seen.update(out=o.shape))
    with torch.no_grad():
        fast = model(x)
        with bench_infer.concatenating_blocks(model):
            slow = model(x)
    hook.remove()
    torch.testing.assert_close(fast, slow)
    assert seen["out"] == (2, 4, 8, 8)  # a dense layer's hook still sees its k new maps
    assert "forward" not in vars(model.features.denseblock1)  # the comparison patch is undone
