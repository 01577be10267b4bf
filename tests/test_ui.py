"""The shared sidebar: one config for every page, kept in step with the URL; lesson links; AppState."""

import inspect

import torch
from apptest_helpers import new_app, open_page, shown

from densenet_viz import PRESETS
from densenet_viz.app import keys
from densenet_viz.app.keys import STATE as STATE_KEY
from densenet_viz.app.state import AppState, config_key
from densenet_viz.models.densenet import DenseBlock, DenseLayer


def state(at) -> AppState:
    return at.session_state[STATE_KEY]


def test_defaults_build_densenet121_against_an_auto_matched_resnet():
    at = new_app()
    at.run()
    s = state(at)
    assert s.config == PRESETS["densenet121"]
    assert (s.input_size, s.batch_size, s.dtype, s.device) == (224, 1, torch.float32, "cpu")
    assert s.baseline_name == "resnet18"  # closest in parameters (docs/reference.md: 11.7M vs 8.0M)
    assert at.query_params == {"preset": "densenet121"}
    keys = {w.key for w in at.sidebar.slider} | {w.key for w in at.sidebar.selectbox}
    assert {"preset", "growth_rate", "compression", "dtype", "device", "baseline"} <= keys


def test_changing_a_control_updates_the_config_the_preset_menu_and_the_url():
    at = new_app()
    at.run()
    at.sidebar.slider(key="growth_rate").set_value(12).run()
    assert state(at).config.growth_rate == 12 and state(at).preset == "custom"
    # The menu keeps what the user chose (no widget writes it: that raced with fast slider moves) and says
    # the model differs from it.
    assert at.sidebar.selectbox(key="preset").value == "densenet121"
    assert "Changed from DenseNet-121" in " ".join(c.value for c in at.sidebar.caption)
    assert at.query_params == {"preset": "densenet121", "k": "12"}
    at.sidebar.slider(key="growth_rate").set_value(32).run()
    assert state(at).preset == "densenet121"  # back to the preset: it matches again
    assert not at.sidebar.button  # nothing to reset
    assert at.query_params == {"preset": "densenet121"}


def test_reset_button_restores_the_chosen_preset():
    at = new_app()
    at.run()
    at.sidebar.slider(key="growth_rate").set_value(12).run()
    at.sidebar.text_input(key="block_config").set_value("2, 3").run()
    assert state(at).config.block_config == (2, 3)
    at.sidebar.button(key="sidebar_reset_to_preset").click().run()
    assert state(at).config == PRESETS["densenet121"]
    assert at.query_params == {"preset": "densenet121"}


def test_choosing_a_preset_fills_every_model_control_and_its_input_size():
    at = new_app()
    at.run()
    at.sidebar.selectbox(key="preset").set_value("densenet_40_12").run()
    s = state(at)
    assert s.config == PRESETS["densenet_40_12"]
    assert s.input_size == 32
    assert at.sidebar.toggle(key="sidebar_bottleneck").value is False  # the plain DenseNet has no bottleneck
    assert s.baseline.stem == "cifar"
    assert at.query_params == {"preset": "densenet_40_12"}


def test_the_run_controls_reach_the_state():
    at = new_app()
    at.run()
    at.sidebar.number_input(key="batch_size").set_value(8).run()
    at.sidebar.selectbox(key="dtype").set_value("bfloat16").run()
    at.sidebar.toggle(key="memory_efficient").set_value(True).run()
    at.sidebar.selectbox(key="baseline").set_value("auto-depth").run()
    s = state(at)
    assert (s.batch_size, s.dtype, s.config.memory_efficient, s.baseline_name) == (8, torch.bfloat16, True, "resnet101")
    assert at.query_params["batch"] == "8" and at.query_params["dtype"] == "bfloat16"


def test_the_memory_efficient_implementation_is_a_choice_when_the_config_offers_one():
    at = new_app({"preset": "densenet_bc_100_12", "eff": "1", "impl": "recompute_bn"})
    at.run()
    assert not at.warning
    assert state(at).config.memory_efficient and state(at).config.efficient_impl == "recompute_bn"
    at.sidebar.selectbox(key="efficient_impl").set_value("checkpoint").run()
    assert state(at).config.efficient_impl == "checkpoint"
    at.sidebar.toggle(key="memory_efficient").set_value(False).run()
    assert not [w for w in at.sidebar.selectbox if w.key == "efficient_impl"]  # only shown when it applies


def test_a_link_reopens_the_same_model():
    at = new_app({"preset": "densenet121", "k": "24", "blocks": "6-12-32", "batch": "4"})
    at.run()
    s = state(at)
    assert (s.config.growth_rate, s.config.block_config, s.batch_size) == (24, (6, 12, 32), 4)
    assert at.sidebar.text_input(key="block_config").value == "6, 12, 32"
    assert not at.warning


def test_a_lesson_link_shows_only_the_named_controls_in_the_page_and_keeps_the_rest_fixed():
    at = new_app({"preset": "densenet_bc_100_12", "batch": "4", "show": "k"})
    at.run()
    assert [w.key for w in at.main.slider] == ["growth_rate"]  # in the page, above the figure
    assert not at.sidebar.slider and not at.sidebar.selectbox and not at.sidebar.number_input
    assert not at.main.selectbox and not at.main.number_input and not at.main.text_input
    assert any("Fixed by this lesson link" in c.value for c in at.sidebar.caption)
    assert not at.sidebar.header and not at.main.header  # no section headers around one control
    at.main.slider(key="growth_rate").set_value(24).run()
    s = state(at)
    assert (s.config.growth_rate, s.config.block_config, s.batch_size) == (24, (16, 16, 16), 4)
    assert at.query_params["show"] == "k" and at.query_params["k"] == "24"


def test_a_lesson_link_draws_its_controls_once_on_every_page():
    for page in ("build", "connectivity", "growth", "memory", "tradeoffs", "accuracy", "features", "training"):
        at = open_page(page, {"preset": "densenet_bc_100_12", "show": "k,theta"})
        assert [w.key for w in at.main.slider if w.key in ("growth_rate", "compression")] == [
            "growth_rate", "compression"], page
        assert not at.sidebar.slider, page


def test_the_share_box_offers_the_link_and_a_lesson_link():
    at = new_app()
    at.run()
    assert not at.sidebar.code and not at.sidebar.multiselect  # drawn only once the box is opened
    at.session_state["sidebar_share"] = True  # what opening the expander in the browser sends
    at.run()
    at.sidebar.multiselect(key="sidebar_lesson_controls").set_value(["growth_rate", "compression"]).run()
    links = [c.value for c in at.sidebar.code]
    assert links[0].endswith("?preset=densenet121")
    assert links[1].endswith("?preset=densenet121&show=k,theta")


def test_the_code_box_draws_the_real_source_once_it_is_opened():
    at = open_page("build", {})
    assert "Show the code behind this" in [e.label for e in at.expander]
    assert not at.main.code  # drawn only once the box is opened
    at.session_state[keys.code_box("DenseLayer")] = True  # what opening the expander in the browser sends
    at.run()
    assert [c.value.rstrip() for c in at.main.code] == [inspect.getsource(o).rstrip() for o in (DenseLayer, DenseBlock)]


def test_a_bad_link_warns_and_keeps_warning_until_a_setting_changes():
    at = open_page("growth", {"k": "1e9", "zzz": "1"})
    assert any("k='1e9'" in shown(w.value) and "zzz" in shown(w.value) for w in at.warning)
    at.run()
    assert at.warning  # still there on a rerun
    at.sidebar.slider(key="growth_rate").set_value(16).run()
    assert not at.warning


def test_config_keys_are_equal_for_equal_configs():
    assert config_key(PRESETS["densenet121"]) == config_key(PRESETS["densenet121"].__class__())


def test_every_control_is_drawn_with_the_settings_value_as_its_default():
    """A control whose widget state Streamlit dropped (a page switch in the middle of a run) is remounted by the
    browser from its element's default: that default must be the settings' value, never the widget's minimum
    (issue 22: a lesson's slider showed k = 1 under a header saying k = 12, and the next key press wrote k=2)."""
    at = new_app({"preset": "densenet_bc_100_12", "k": "20"})
    at.run()
    at.sidebar.number_input(key="num_init_features").set_value(30).run()
    s = state(at)
    assert list(at.sidebar.slider(key="growth_rate").proto.default) == [20]
    assert at.sidebar.text_input(key="block_config").proto.default == "16, 16, 16"
    assert at.sidebar.number_input(key="num_init_features").proto.default == 30 == s.config.num_init_features
    assert list(at.sidebar.slider(key="compression").proto.default) == [0.5]
    assert at.sidebar.toggle(key="sidebar_bottleneck").proto.default is True
    assert at.sidebar.radio(key="stem").proto.default == 1  # CIFAR
    lesson = new_app({"preset": "densenet_bc_100_12", "show": "k"})
    lesson.run()
    assert list(lesson.main.slider(key="growth_rate").proto.default) == [12]


def test_a_refused_change_stays_in_its_control_with_the_error_and_the_model_and_url_stay_valid():
    at = new_app({"preset": "densenet121"})
    at.run()
    at.sidebar.text_input(key="block_config").set_value("6, x").run()
    assert any("layers per block" in e.value for e in at.error)
    assert at.sidebar.text_input(key="block_config").value == "6, x"  # the user's text, to correct
    assert at.query_params == {"preset": "densenet121"}
    at.sidebar.text_input(key="block_config").set_value("6, 12").run()
    assert not at.error and state(at).config.block_config == (6, 12)
    assert at.query_params == {"preset": "densenet121", "blocks": "6-12"}
