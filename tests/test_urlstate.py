"""The query-string round trip, the fallbacks for bad URLs, and lesson links that hide controls."""

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from densenet_viz import PRESETS
from densenet_viz.settings import (
    BY_NAME,
    CONTROLS,
    CUSTOM,
    apply_changes,
    check_input_size,
    config_from_settings,
    default_settings,
    densenet_presets,
    format_blocks,
    matching_preset,
    parse_blocks,
    query_string,
    resolve_baseline,
    settings_from_query,
    settings_to_query,
    visible_from_query,
    with_preset,
)

ALL = frozenset(BY_NAME)


def test_defaults_are_densenet121_and_their_query_is_just_the_preset():
    s = default_settings()
    assert config_from_settings(s) == PRESETS["densenet121"]
    assert settings_to_query(s) == {"preset": "densenet121"}
    state = settings_from_query({})
    assert state.settings == s and state.warnings == [] and state.visible == ALL


@pytest.mark.parametrize("name", densenet_presets())
def test_every_preset_round_trips_and_opens_at_its_family_size(name):
    state = settings_from_query({"preset": name})
    assert state.warnings == []
    assert config_from_settings(state.settings) == PRESETS[name]
    assert state.settings["input_size"] == (224 if PRESETS[name].stem == "imagenet" else 32)
    assert settings_to_query(state.settings) == {"preset": name}


def test_a_preset_plus_overrides_is_a_short_link():
    state = settings_from_query({"preset": "densenet121", "k": "12", "batch": "8", "eff": "1"})
    assert state.warnings == []
    config = config_from_settings(state.settings)
    assert (config.growth_rate, config.block_config, config.memory_efficient) == (12, (6, 12, 24, 16), True)
    assert state.settings["preset"] == CUSTOM
    assert settings_to_query(state.settings) == {"preset": "densenet121", "k": "12", "batch": "8", "eff": "1"}


def test_the_issue_example_query_is_understood():
    query = {
        "k": "32", "blocks": "6-12-24-16", "k0": "64", "bn": "4", "theta": "0.5", "stem": "imagenet", "size": "224",
        "batch": "1", "dtype": "float32", "device": "cpu", "eff": "0", "preset": "densenet121",
        "baseline": "auto-params",
    }
    state = settings_from_query(query)
    assert state.warnings == []
    assert state.settings == default_settings()


valid_settings = st.fixed_dictionaries(
    {
        "growth_rate": st.integers(1, 128),
        "block_config": st.lists(st.integers(1, 128), min_size=1, max_size=8).map(tuple),
        "num_init_features": st.integers(16, 512),
        "bn_size": st.integers(0, 8),
        "compression": st.sampled_from([0.25, 0.5, 0.75, 1.0]),
        "stem": st.sampled_from(["imagenet", "cifar"]),
        "num_classes": st.integers(1, 10_000),
        "input_size": st.integers(256, 1024),
        "batch_size": st.integers(1, 1024),
        "dtype": st.sampled_from(["float32", "float16", "bfloat16", "float64"]),
        "memory_efficient": st.booleans(),
        "baseline": st.sampled_from(["auto-params", "auto-depth"]),
    }
)


@settings(max_examples=60, deadline=None)
@given(valid_settings)
def test_any_valid_settings_round_trip_through_the_query_string(values):
    s = {**default_settings(), **values}
    try:
        check_input_size(config_from_settings(s), s["input_size"])
    except ValueError:
        assume(False)  # not a network (e.g. theta leaves a block no channels): other tests cover those
    s["preset"] = matching_preset(s)
    state = settings_from_query(settings_to_query(s))
    assert state.warnings == []
    assert state.settings == s


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("k", "abc", "growth_rate"),
        ("k", "NaN", "growth_rate"),
        ("k", "-4", "growth_rate"),
        ("k", "99999999999", "growth_rate"),
        ("k", "٣٢", "growth_rate"),  # Arabic-Indic digits: int() would accept them
        ("k", "1_0", "growth_rate"),
        ("k", "", "growth_rate"),
        ("theta", "nan", "compression"),
        ("theta", "inf", "compression"),
        ("theta", "1e-9", "compression"),
        ("theta", "2", "compression"),
        ("blocks", "6-x-24", "block_config"),
        ("blocks", "1-2-3-4-5-6-7-8-9", "block_config"),
        ("blocks", "0-4", "block_config"),
        ("size", "7" * 60, "input_size"),
        ("dtype", "int8", "dtype"),
        ("stem", "IMAGENET", "stem"),
        ("eff", "maybe", "memory_efficient"),
        ("preset", "densenet9000", "preset"),
        ("device", "tpu", "device"),
        ("baseline", "vgg16", "baseline"),
    ],
)
def test_a_bad_value_falls_back_to_the_default_and_says_so(key, value, field):
    state = settings_from_query({key: value})
    assert any(f"{key}=" in w for w in state.warnings), state.warnings
    assert state.settings[field] == default_settings()[field]
    config_from_settings(state.settings)  # still a valid model


def test_repeated_keys_take_the_last_value_and_unknown_keys_are_named():
    state = settings_from_query({"k": ["8", "12"], "zoom": "3"})
    assert state.settings["growth_rate"] == 12
    assert state.warnings == ["unknown URL setting 'zoom' ignored"]


def test_an_invalid_combination_falls_back_to_the_default_model():
    # theta = 0.05 of 2 channels leaves none for the second block.
    state = settings_from_query({"preset": CUSTOM, "k": "1", "k0": "1", "blocks": "1-1", "theta": "0.05"})
    assert any("not valid" in w and "compression" in w for w in state.warnings)
    assert config_from_settings(state.settings) == PRESETS["densenet121"]


def test_an_input_too_small_for_the_network_is_replaced_by_a_size_that_works():
    state = settings_from_query({"preset": "densenet121", "size": "16"})
    assert any("too small" in w for w in state.warnings)
    assert state.settings["input_size"] == 224


def test_a_baseline_of_the_other_stem_is_replaced_by_auto_matching():
    state = settings_from_query({"preset": "densenet121", "baseline": "resnet56"})
    assert any("baseline" in w for w in state.warnings)
    assert state.settings["baseline"] == "auto-params"
    assert resolve_baseline(PRESETS["densenet_bc_100_12"], "resnet56")[0] == "resnet56"
    assert resolve_baseline(PRESETS["densenet121"], "auto-depth")[0] == "resnet101"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([c.key for c in CONTROLS] + ["show", "hide", "x"]), st.text(max_size=30)))
def test_any_query_whatsoever_gives_valid_settings_without_raising(params):
    state = settings_from_query(params)
    config_from_settings(state.settings)
    assert state.visible <= ALL


def test_lesson_links_show_only_or_hide_the_named_controls():
    assert visible_from_query({"show": "k"}) == (frozenset({"growth_rate"}), [])
    assert visible_from_query({"show": "growth_rate,theta"})[0] == {"growth_rate", "compression"}
    hidden, _ = visible_from_query({"hide": "k,blocks"})
    assert hidden == ALL - {"growth_rate", "block_config"}
    assert visible_from_query({"lock": "preset"})[0] == ALL - {"preset"}
    assert visible_from_query({"show": "none"}) == (frozenset(), [])
    visible, warnings = visible_from_query({"show": "k,wings"})
    assert visible == {"growth_rate"} and "wings" in warnings[0]


def test_a_lesson_link_round_trips_its_visible_controls():
    s = {**default_settings(), "growth_rate": 12, "preset": CUSTOM}
    query = settings_to_query(s, visible={"growth_rate"})
    assert query["show"] == "k"
    state = settings_from_query(query)
    assert state.visible == {"growth_rate"} and state.settings == s
    assert "show" not in settings_to_query(s, visible=ALL)
    assert query_string(query) == "preset=densenet121&k=12&show=k"


def test_blocks_text_both_ways():
    assert parse_blocks("6, 12, 24, 16") == (6, 12, 24, 16)
    assert parse_blocks(" 6-12 ") == (6, 12)
    assert format_blocks((6, 12)) == "6, 12"
    with pytest.raises(ValueError, match="layers per block"):
        parse_blocks("6, twelve")


def test_a_change_is_applied_as_one_checked_model_or_refused_whole():
    s = default_settings()
    changed = apply_changes(s, {"growth_rate": 12, "block_config": "6, 12"})
    assert (changed["growth_rate"], changed["block_config"], changed["preset"]) == (12, (6, 12), CUSTOM)
    assert s == default_settings()  # the settings given are left as they were
    with pytest.raises(ValueError, match="layers per block"):
        apply_changes(s, {"block_config": ""})  # what a dropped text box would have said
    with pytest.raises(ValueError, match=r"Growth rate k must be in \[1, "):
        apply_changes(s, {"growth_rate": 0})
    with pytest.raises(ValueError):
        apply_changes(s, {"compression": 0.05, "growth_rate": 1, "num_init_features": 1})  # no channel left
    cifar = apply_changes(s, {"stem": "cifar", "input_size": 32})
    assert cifar["baseline"] == "auto-params" and config_from_settings(cifar).stem == "cifar"
    named = apply_changes({**s, "baseline": "resnet50"}, {"stem": "cifar", "input_size": 32})
    assert named["baseline"] == "auto-params"  # resnet50 has the other stem


def test_a_preset_replaces_the_model_and_its_family_size_and_keeps_the_rest():
    s = {**default_settings(), "batch_size": 8, "growth_rate": 12}
    bc = with_preset(s, "densenet_bc_100_12")
    assert config_from_settings(bc) == PRESETS["densenet_bc_100_12"]
    assert (bc["input_size"], bc["batch_size"], bc["preset"]) == (32, 8, "densenet_bc_100_12")
    back = with_preset(bc, "densenet121")
    assert config_from_settings(back) == PRESETS["densenet121"] and back["input_size"] == 224
    assert with_preset(bc, CUSTOM) == bc
