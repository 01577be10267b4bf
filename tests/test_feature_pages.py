"""AppTest for the pages Feature maps and Train & feature reuse: assert on the figures' data, not on 'it ran'.

The pages are run on their own (AppTest.from_file); ui.get_state() supplies its defaults, or a test puts
an AppState in session state first, as the sidebar would. Uploads go through AppTest's file_uploader.
"""

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from apptest_helpers import shown
from PIL import Image
from streamlit.testing.v1 import AppTest

from densenet_viz import DenseNetConfig, build_model, match_baseline
from densenet_viz.app.keys import STATE as STATE_KEY
from densenet_viz.app.keys import TRAINED_RUN
from densenet_viz.app.state import AppState
from densenet_viz.lab import features as fx
from densenet_viz.lab import training as tr

PAGES = Path(__file__).resolve().parents[1] / "pages"
TIMEOUT = 90
SMALL = DenseNetConfig(8, (3, 2), 16, stem="cifar", num_classes=10)



def stats_table(at):
    """The page's per-channel statistics (each chart's numbers table is a dataframe too)."""
    return next(d.value for d in at.dataframe if "std" in d.value)

def small_state() -> AppState:
    return AppState(config=SMALL, baseline=match_baseline(SMALL)[1], input_size=32)


def page(name: str, state: AppState | None = None) -> AppTest:
    at = AppTest.from_file(str(PAGES / name), default_timeout=TIMEOUT)
    if state is not None:
        at.session_state[STATE_KEY] = state
    return at


def figures(at: AppTest) -> dict[str, dict]:
    """Every plotly chart of the page as its JSON, by title."""
    out = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        out[spec["layout"]["title"]["text"].replace("<br>", " ")] = spec  # titles wrap to fit a phone
    return out


def find(figs: dict[str, dict], words: str) -> dict:
    matches = [spec for title, spec in figs.items() if words in title]
    assert len(matches) == 1, (words, list(figs))
    return matches[0]


def traces(spec: dict, kind: str) -> list[dict]:
    return [d for d in spec["data"] if d["type"] == kind]


def array(value) -> np.ndarray:
    """A plotly JSON array: a list, or plotly's typed array {'dtype', 'bdata', 'shape'}."""
    if isinstance(value, dict):
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return data.reshape([int(s) for s in str(shape).split(",")]) if shape else data
    return np.asarray(value, dtype=float)


def healthy(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [shown(e.value) for e in at.error]


def png(mode: str = "RGB", size: tuple[int, int] = (80, 60)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (size[1], size[0], 4), dtype=np.uint8), "RGBA").convert(
        mode
    ).save(buf, "PNG")
    return buf.getvalue()


def test_feature_page_with_a_sample_image_and_the_default_model():
    at = page("features.py").run()  # no sidebar: get_state() gives DenseNet-121 at 224x224
    healthy(at)
    assert any("Random weights" in shown(i.value) for i in at.info)
    figs = figures(at)
    grid = find(figs, "Block 1 output (concatenation)")
    assert len(traces(grid, "heatmap")) == 16
    groups = find(figs, "who produced each channel")
    bars = traces(groups, "bar")
    assert sum(b["x"][0] for b in bars) == 256  # 64 channels of x0 + 6 layers x 32
    assert [b["x"][0] for b in bars] == [64] + [32] * 6
    assert len(traces(find(figs, "Mean activation per source"), "bar")[0]["x"]) == 7
    assert len(stats_table(at)) == 256  # per-channel statistics: one row per channel


@pytest.mark.parametrize("kind", ["stem", "dense_layer", "transition", "norm"])
def test_every_kind_of_layer_draws_its_maps_at_the_planned_size(kind):
    spec = next(s for s in fx.selectable_layers(SMALL, 32) if s.kind == kind)
    at = page("features.py", small_state()).run()
    at.selectbox(key="fm_layer").set_value(spec.path).run()
    healthy(at)
    figs = figures(at)
    grid = find(figs, fx.layer_label(spec))
    maps = traces(grid, "heatmap")
    assert len(maps) == min(16, spec.out_channels)
    assert array(maps[0]["z"]).shape == (spec.height, spec.width)
    assert not [t for t in figs if "who produced" in t]  # the grouping is for block outputs only
    assert len(stats_table(at)) == spec.out_channels


def test_channel_slider_and_block_output_groups_of_a_small_model():
    at = page("features.py", small_state()).run()
    at.slider(key="fm_channels").set_value(40).run()
    healthy(at)
    figs = figures(at)
    grid = find(figs, "Block 1 output (concatenation)")
    assert len(traces(grid, "heatmap")) == 40
    bars = traces(find(figs, "who produced each channel"), "bar")
    assert [b["x"][0] for b in bars] == [16, 8, 8, 8] and sum(b["x"][0] for b in bars) == SMALL.block_out_channels()[0]


def test_feature_page_with_an_uploaded_file():
    at = page("features.py", small_state()).run()
    at.radio(key="fm_image_source").set_value("Upload").run()
    assert any("Upload an image" in shown(i.value) for i in at.info)
    at.file_uploader(key="fm_upload").set_value(("photo.png", png("RGBA"), "image/png")).run()
    healthy(at)
    assert any("transparency composited on white" in c.value for c in at.caption)
    assert len(traces(find(figures(at), "Block 1 output (concatenation)"), "heatmap")) == 16


def test_a_bad_upload_shows_an_error_and_the_page_lives_on():
    at = page("features.py", small_state()).run()
    at.radio(key="fm_image_source").set_value("Upload").run()
    data = png()
    at.file_uploader(key="fm_upload").set_value(("broken.png", data[: len(data) // 2], "image/png")).run()
    assert not at.exception
    assert "truncated or corrupt" in shown(at.error[0].value) and "broken.png" in shown(at.error[0].value)
    at.file_uploader(key="fm_upload").set_value(("ok.png", png(), "image/png")).run()  # and it recovers
    healthy(at)


def test_each_uploader_has_its_own_limit_and_an_oversized_file_is_refused_with_a_message():
    at = page("features.py", small_state()).run()
    at.radio(key="fm_image_source").set_value("Upload").run()
    (uploader,) = at.get("file_uploader")
    assert uploader.proto.max_upload_size_mb == 20  # the browser refuses a bigger image before sending it
    too_big = b"\x89PNG" + b"\0" * (20 * 2**20)  # one byte past 20 MiB, should it reach the server anyway
    at.file_uploader(key="fm_upload").set_value(("huge.png", too_big, "image/png")).run()
    assert not at.exception and "huge.png is 20,971,524 bytes; the limit is 20 MiB" in shown(at.error[0].value)
    at.radio(key="fm_weights").set_value("Loaded state dict").run()
    weights_uploader = [u for u in at.get("file_uploader") if u.proto.id.endswith("fm_weights_file")]
    # DenseNet-264's float32 state dict (33,337,704 parameters, 129 MiB saved) fits; the server allows no more.
    assert weights_uploader[0].proto.max_upload_size_mb == 160 >= 33_337_704 * 4 / 2**20
    config = (Path(__file__).parents[1] / ".streamlit" / "config.toml").read_text()
    assert "\nmaxUploadSize = 160\n" in config


def test_trained_weights_mode_shows_digits_and_predictions():
    at = page("features.py", small_state()).run()
    at.radio(key="fm_weights").set_value("Trained in this app (digits)").run()
    assert any("No trained model" in shown(i.value) for i in at.info) and not at.exception
    run, models = tr.new_run(tr.TrainSettings(epochs=1))
    run.states = {name: tr.snapshot(m) for name, m in models.items()}  # untrained weights are enough here
    run.history = [tr.EpochResult(name, 1, 2.3, 0.1, 0.1, 0.0) for name in models]
    at.session_state[TRAINED_RUN] = run
    at.run()
    healthy(at)
    groups = traces(find(figures(at), "who produced each channel"), "bar")
    assert sum(b["x"][0] for b in groups) == tr.DIGITS_CONFIG.block_out_channels()[0] == 72
    top5 = at.dataframe[-1].value
    assert len(top5) == 5 and set(top5["label"]) <= set(tr.DIGIT_LABELS)


def test_loaded_weights_from_an_upload_and_a_mismatch():
    model = build_model(SMALL).eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    at = page("features.py", small_state()).run()
    at.radio(key="fm_weights").set_value("Loaded state dict").run()
    assert not at.exception
    at.file_uploader(key="fm_weights_file").set_value(("small.pth", buf.getvalue(), "application/octet-stream"))
    at.run()
    healthy(at)
    assert any("Weights loaded" in shown(s.value) for s in at.success)
    top5 = at.dataframe[-1].value
    assert len(top5) == 5 and top5["probability"].is_monotonic_decreasing
    other = io.BytesIO()
    torch.save(build_model(DenseNetConfig(12, (3, 2), 16, stem="cifar", num_classes=10)).state_dict(), other)
    at.file_uploader(key="fm_weights_file").set_value(("other.pth", other.getvalue(), "application/octet-stream"))
    at.run()
    assert not at.exception
    assert "do not fit" in shown(at.error[0].value) and "k=12" in shown(at.error[0].value)


def test_training_page_trains_and_draws_the_reuse_heatmap():
    at = page("training.py").run()
    healthy(at)
    assert any("Press **Train**" in shown(i.value) for i in at.info)
    at.slider(key="train_epochs").set_value(1)
    at.button(key="train_start").click().run()
    healthy(at)
    run = at.session_state[TRAINED_RUN]
    assert [(r.model, r.epoch) for r in run.history] == [("DenseNet-BC", 1), ("ResNet-20", 1)]
    figs = figures(at)
    curves = find(figs, "Training on scikit-learn digits")
    assert {t["name"] for t in traces(curves, "scatter")} >= {"DenseNet-BC test", "ResNet-20 test"}
    points = traces(find(figs, "Held-out accuracy against parameters"), "scatter")[0]
    assert array(points["x"]).tolist() == [102_298, 269_434]
    reuse = traces(find(figs, "Feature reuse in dense block 1"), "heatmap")[0]
    z = array(reuse["z"])
    assert z.shape == (5, 5) and np.isnan(z[0, 1:]).all() and np.nanmax(z, axis=1).tolist() == [1.0] * 5
    assert reuse["y"][-1] == "transition 1"
    assert len(traces(find(figs, "16 of 72 channels, coloured by source"), "heatmap")) == 16
    table = next(d.value for d in at.dataframe if "model" in d.value)  # not a chart's numbers table
    assert table["model"].tolist() == ["DenseNet-BC", "ResNet-20"] and (table["test accuracy (%)"] > 10).all()
    at.selectbox(key="train_reuse_block").set_value(3).run()
    assert traces(find(figures(at), "Feature reuse in dense block 3"), "heatmap")[0]["y"][-1] == "classifier"


def test_training_page_reports_a_stopped_run():
    run, models = tr.new_run(tr.TrainSettings(epochs=5))
    run.states = {name: tr.snapshot(m) for name, m in models.items()}
    run.history = [tr.EpochResult(name, 1, 2.0, 0.5, 0.5, 1.0) for name in models]
    at = page("training.py")
    at.session_state[TRAINED_RUN] = run
    at.run()
    assert not at.exception
    assert "stopped after epoch 1 of 5" in shown(at.warning[0].value)
