"""Hostile input: query strings and uploads. The parsers refuse what is wrong with a message, never crash,
and the app shows a warning or an error and keeps serving.
"""

from __future__ import annotations

import contextlib
import io
import math
import pickle
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from apptest_helpers import shown
from conftest import ROOT, record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from densenet_viz import DenseNetConfig, count_params
from densenet_viz.app import work
from densenet_viz.lab.images import MAX_PIXELS, decode_upload, prepare_upload, preprocess
from densenet_viz.models.plan import layer_plan
from densenet_viz.settings import (
    BY_KEY,
    CONTROLS,
    LESSON_KEYS,
    QueryState,
    config_from_settings,
    settings_from_query,
)

# ---- query strings -------------------------------------------------------------------------------

HOSTILE_VALUES = [
    "", " ", "abc", "-1", "-0", "0", "1e309", "1e-309", "99999999999999999999", str(2**63), "NaN", "nan", "inf",
    "-inf", "Infinity", "0x10", "1_000", "٣٢", "３２", "12\x00", "k=12", "%00", "%zz", "💥", "\u202e12", "1.5",
    "0.5.5", ".5", "5.", "6-12-24-16", "6--12", "-6-12", "6,12,24,16", "0-0", "999-999", "1-" * 60,
    "a" * 10_000, "9" * 5_000, "<script>alert(1)</script>", "'; DROP TABLE x; --", "${jndi:ldap://x}",
    "../../etc/passwd", "true", "yes", "off", "None", "null", "[]", "{}",
]  # fmt: skip
KNOWN_KEYS = [c.key for c in CONTROLS] + list(LESSON_KEYS)
query_keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=20))
query_values = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.text(max_size=50),
    st.integers().map(str),
    st.floats().map(repr),
    st.lists(st.sampled_from(HOSTILE_VALUES), min_size=0, max_size=4),  # repeated keys: ?k=1&k=2
)
queries = st.dictionaries(query_keys, query_values, max_size=12)

_counts = {"parse": 0, "app": 0}


def _check_state(state: QueryState, params: dict) -> DenseNetConfig:
    """What the parser returns always makes a network the app can draw."""
    assert isinstance(state, QueryState)
    config = config_from_settings(state.settings)
    layer_plan(config, state.settings["input_size"])  # raises if the input would vanish
    for name, value in state.settings.items():
        if isinstance(value, float):
            assert math.isfinite(value), (name, value)
    assert all(isinstance(w, str) and len(w) < 2_000 for w in state.warnings)
    return config


@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(params=queries)
def test_query_parser_never_raises_and_always_yields_a_valid_config(params):
    _counts["parse"] += 1
    state = settings_from_query(params)
    _check_state(state, params)
    bad = [k for k in params if k not in KNOWN_KEYS]
    if bad:
        assert state.warnings, f"unknown keys {bad} produced no warning"


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize("key", ["k", "blocks", "theta", "size", "batch", "classes", "preset", "dtype", "show"])
def test_each_hostile_value_is_refused_with_a_warning_or_accepted_in_range(key, value):
    _counts["parse"] += 1
    state = settings_from_query({key: value})
    config = _check_state(state, {key: value})
    if key == "k" and value in ("-1", "0", "NaN", "inf", "1e309", "💥", "٣٢", "３２", "a" * 10_000):
        assert config.growth_rate == 32 and any("k=" in w for w in state.warnings), state.warnings
    if key != "show" and BY_KEY[key].low is not None and state.warnings == []:
        # Accepted: then the value is within the widget's range.
        name = BY_KEY[key].name
        shown = state.settings[name]
        values = shown if isinstance(shown, tuple) else (shown,)
        assert all(BY_KEY[key].low <= v <= BY_KEY[key].high for v in values)


def test_a_good_query_is_taken_as_is():
    state = settings_from_query({"preset": "densenet121", "k": "12", "blocks": "6-12-24-16"})
    assert state.warnings == []
    config = config_from_settings(state.settings)
    assert config.growth_rate == 12 and config.block_config == (6, 12, 24, 16)


# ---- uploads -------------------------------------------------------------------------------------


def _png(size=(64, 48), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color=0 if mode in ("L", "1", "I;16", "P") else (10, 200, 30)[: len(mode)]).save(buf, "PNG")
    return buf.getvalue()


def _image_bytes(fmt: str, size=(64, 48), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 40).convert(mode).save(buf, fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int, height: int) -> bytes:
    """A valid-looking PNG whose header claims width x height 8-bit gray pixels, with a tiny zlib stream of
    zeros (a real decompression bomb: ~width*height bytes once inflated)."""
    raw_rows = zlib.compressobj(9)
    body = b""
    row = b"\x00" * (width + 1)
    # Compress only a few rows: Pillow must refuse from the header, long before it would read them all.
    for _ in range(min(height, 64)):
        body += raw_rows.compress(row)
    body += raw_rows.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def _upload_cases() -> list[tuple[str, bytes]]:
    rng = random.Random(1234)
    cases: list[tuple[str, bytes]] = [("empty", b""), ("one byte", b"\x89")]
    cases += [(f"random {n} B", rng.randbytes(n)) for n in (1, 7, 64, 512, 4096, 65536) for _ in range(5)]
    for fmt in ("PNG", "JPEG", "WEBP", "BMP"):
        good = _image_bytes(fmt, (80, 60))
        for cut in (8, 16, 33, 100, len(good) // 2, len(good) - 10):
            cases.append((f"{fmt} truncated to {cut} B", good[:cut]))
        corrupted = bytearray(good)
        for i in rng.sample(range(20, len(good)), min(40, len(good) - 20)):
            corrupted[i] ^= 0xFF
        cases.append((f"{fmt} with flipped bytes", bytes(corrupted)))
        cases.append((f"{fmt} magic then garbage", good[:12] + rng.randbytes(300)))
    cases += [
        ("PNG bomb 100000x100000", png_bomb(100_000, 100_000)),
        ("PNG bomb just over MAX_PIXELS", png_bomb(MAX_PIXELS // 1000 + 1, 1000)),
        ("PNG claiming 0x0", png_bomb(0, 0)),
        ("GIF (not accepted)", _image_bytes("GIF", (20, 20), "P")),
        ("TIFF (not accepted)", _image_bytes("TIFF", (20, 20))),
        ("PDF header", b"%PDF-1.4\n" + rng.randbytes(200)),
        ("SVG text", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"),
        ("zip", b"PK\x03\x04" + rng.randbytes(100)),
        ("pickle", pickle.dumps({"a": 1})),
        ("over 20 MiB", b"\x89PNG\r\n\x1a\n" + bytes(20 * 1024 * 1024 + 1)),
    ]
    return cases


UPLOAD_CASES = _upload_cases()


def test_bad_uploads_raise_value_error_and_nothing_else():
    refused = 0
    for name, data in UPLOAD_CASES:
        try:
            decoded = decode_upload(data, filename="x.png")
        except ValueError as exc:
            assert str(exc), name
            refused += 1
            continue
        # A few truncations still decode (e.g. a BMP cut inside padding); then the image must be usable.
        assert decoded.image.size[0] * decoded.image.size[1] <= MAX_PIXELS
        assert preprocess(decoded.image, 16).tensor.shape == (1, 3, 16, 16), name
        assert "bomb" not in name and "over 20" not in name and name not in ("empty", "one byte"), name
    record("uploads_bad_refused", refused)
    record("uploads_bad_tried", len(UPLOAD_CASES))
    assert refused >= len(UPLOAD_CASES) - 5


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    data=st.binary(max_size=2048),
    prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8 "]),
)
def test_random_bytes_behind_image_magic_raise_value_error(data, prefix):
    _counts.setdefault("upload_random", 0)
    _counts["upload_random"] += 1
    with contextlib.suppress(ValueError):  # refusing is fine; any other exception fails the test
        decode_upload(prefix + data)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "P", "1", "I;16", "CMYK"])
def test_good_images_in_every_mode_decode_to_rgb_or_l(mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    buf = io.BytesIO()
    Image.new(mode, (33, 17)).save(buf, fmt)
    assert decode_upload(buf.getvalue()).image.size == (33, 17)
    for channels in (1, 3):
        pre = prepare_upload(buf.getvalue(), "x.png", 17, channels)
        assert pre.display.shape == ((17, 17) if channels == 1 else (17, 17, 3)) and pre.display.dtype == np.uint8


# ---- weights: a pickle that would run code -------------------------------------------------------


def _mark(path: str) -> None:
    Path(path).write_text("the pickle ran code")


class Evil:
    """Unpickling this calls _mark(path): a stand-in for arbitrary code in a malicious checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (_mark, (self.path,))


def _evil_checkpoints(flag: Path) -> list[tuple[str, bytes]]:
    import torch

    raw = pickle.dumps(Evil(flag))
    buf = io.BytesIO()
    torch.save({"features.conv0.weight": Evil(flag)}, buf)
    buf2 = io.BytesIO()
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Evil(flag)}, buf2)
    return [("raw pickle", raw), ("torch.save with payload", buf.getvalue()), ("nested payload", buf2.getvalue())]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_in_uploaded_weights_does_not_run(tmp_path):
    from densenet_viz.lab import weights

    flag = tmp_path / "ran"
    # Sanity: the payload does run under plain pickle, so the test would notice if the loader used it.
    pickle.loads(pickle.dumps(Evil(flag)))
    assert flag.exists()
    flag.unlink()
    cases = _evil_checkpoints(flag)
    for name, data in cases:
        with pytest.raises(ValueError, match=r"refused|state dict|not"):
            weights.load_state_dict_bytes(data, name="evil.pt")
        assert not flag.exists(), f"{name}: the pickle ran code while loading uploaded weights"
        path = tmp_path / "evil.pt"
        path.write_bytes(data)
        with pytest.raises(ValueError):
            weights.load_state_dict_file(path)
        assert not flag.exists(), f"{name}: the pickle ran code while loading a weights file"
    record("uploads_malicious_pickles", len(cases))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_garbage_and_mismatched_weights_raise_value_error():
    import torch

    from densenet_viz.lab import weights

    rng = random.Random(7)
    config = DenseNetConfig(growth_rate=4, block_config=(1, 1), num_init_features=8, stem="cifar", num_classes=3)
    blobs = [b"", b"PK\x03\x04", rng.randbytes(1000), pickle.dumps([1, 2, 3])]
    good = io.BytesIO()
    torch.save({"features.conv0.weight": torch.zeros(8, 3, 3, 3)}, good)
    blobs.append(good.getvalue()[: len(good.getvalue()) // 2])  # truncated zip
    for data in blobs:
        with pytest.raises(ValueError):
            weights.load_state_dict_bytes(data, name="bad.pt")
    partial = weights.load_state_dict_bytes(good.getvalue(), name="partial.pt")
    with pytest.raises(ValueError, match="do not fit"):
        weights.load_weights(config, partial)
    wrong = {k: torch.zeros(1) for k in weights.load_state_dict_bytes(_state_bytes(config), "ok.pt")}
    with pytest.raises(ValueError, match="do not fit"):
        weights.load_weights(config, wrong)
    record("uploads_bad_weights", len(blobs) + 2)


def _state_bytes(config: DenseNetConfig) -> bytes:
    import torch

    from densenet_viz import build_model

    buf = io.BytesIO()
    torch.save(build_model(config).state_dict(), buf)
    return buf.getvalue()


def test_zz_record_fuzz_counts():
    record("query_strings_fuzzed_parser", _counts["parse"])
    record("uploads_random_bytes", _counts.get("upload_random", 0))
    assert count_params(DenseNetConfig()) == 7_978_856  # the default config is intact after fuzzing


# ---- the same hostile input through the running app (AppTest) -------------------------------------

APP = str(ROOT / "app.py")
PAGES_DIR = ROOT / "pages"
APP_QUERIES: list[dict] = [
    {"k": "NaN", "theta": "inf", "blocks": "💥"},
    {"k": "-1", "k0": "0", "size": "-224", "batch": "0"},
    {"k": "1e309", "classes": str(10**30), "batch": "9" * 40},
    {"k": ["1", "2", "3"], "blocks": ["6-12", "x"]},  # repeated keys
    {"blocks": "1-" * 60, "preset": "../../etc/passwd"},
    {"k": "a" * 10_000},
    {"preset": "custom", "stem": "cifar", "size": "8", "blocks": "1-1-1-1-1-1-1-1"},  # input too small
    {"theta": "0.05", "k": "1", "k0": "1", "blocks": "1-1"},  # theta leaves no channel
    {"dtype": "float128", "device": "cuda:99", "baseline": "resnet9000", "eff": "maybe"},
    {"show": "k,💥,../", "hide": "<script>", "lock": "x" * 500},
    {"\u202ek": "12", "": "", "k\x00": "1", "%00": "%zz"},
    {"preset": "densenet_bc_100_12", "k": "٣٢", "k0": "３２"},
]


def _app(query: dict) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    return at


def test_hostile_links_through_the_app_warn_and_show_a_valid_model():
    for query in APP_QUERIES:
        at = _app(query).run()
        _counts["app"] += 1
        assert not at.exception, (query, [e.value for e in at.exception])
        said = " ".join(shown(w.value) for w in at.warning) + " ".join(shown(e.value) for e in at.error)
        assert said, f"no warning or error for {query}"
        # What the app shows is the model the parser made of the link: never a half-parsed one.
        config = config_from_settings(settings_from_query(query).settings)
        metrics = {m.label: m.value for m in at.metric}
        assert metrics.get("Parameters") == f"{count_params(config):,}", (query, metrics)
    record("query_strings_through_app", _counts["app"])


def _feature_page() -> AppTest:
    """The Feature maps page on its own with a small CIFAR model in session state (as the sidebar sets it)."""
    from densenet_viz import match_baseline
    from densenet_viz.app.keys import STATE as STATE_KEY
    from densenet_viz.app.state import AppState

    config = DenseNetConfig(8, (2, 2), 16, stem="cifar", num_classes=10)
    at = AppTest.from_file(str(PAGES_DIR / "features.py"), default_timeout=120)
    at.session_state[STATE_KEY] = AppState(config=config, baseline=match_baseline(config)[1], input_size=32)
    return at.run()


def test_hostile_uploads_through_the_feature_page_show_an_error_and_it_recovers():
    at = _feature_page()
    at.radio(key="fm_image_source").set_value("Upload").run()
    errors = 0
    for name, data in UPLOAD_CASES:
        at.file_uploader(key="fm_upload").set_value(("upload.png", data, "image/png")).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        errors += bool(at.error)
        if not at.error:  # the few that decode must then draw their maps
            assert at.get("plotly_chart"), name
    at.file_uploader(key="fm_upload").set_value(("ok.png", _png(), "image/png")).run()
    assert not at.exception and not at.error and at.get("plotly_chart")
    record("uploads_through_page", {"tried": len(UPLOAD_CASES), "refused_with_error": errors})
    assert errors >= len(UPLOAD_CASES) - 5


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_code_running_pickle_uploaded_as_weights_is_refused_on_the_page(tmp_path):
    flag = tmp_path / "ran"
    at = _feature_page()
    at.radio(key="fm_weights").set_value("Loaded state dict").run()
    for name, data in _evil_checkpoints(flag):
        at.file_uploader(key="fm_weights_file").set_value((f"{name}.pth", data, "application/octet-stream")).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert at.error and "refused" in shown(at.error[0].value) + " ".join(shown(e.value) for e in at.error), name
        assert not flag.exists(), f"{name}: the pickle ran code in the app"


# ---- models too big for the device, and out-of-memory during a run ---------------------------------

HUGE = {"preset": "densenet264", "k": "128", "size": "1024", "batch": "1024"}  # about 540 GiB to build and run


def test_a_model_bigger_than_free_memory_is_refused_before_anything_is_allocated(monkeypatch):
    from densenet_viz.analysis.budget import free_memory_bytes
    from densenet_viz.analysis.closed_form import analyze
    from densenet_viz.settings import config_from_settings, settings_from_query

    built = []
    monkeypatch.setattr(work, "run_job", lambda *a, **k: built.append(a) or pytest.fail("a build was started"))
    at = _app(HUGE).run()
    assert not at.exception, [e.value for e in at.exception]
    config = config_from_settings(settings_from_query(HUGE).settings)
    report = analyze(config, input_size=1024, batch_size=1024)
    needed = report.memory.weight_bytes + report.memory.inference_bytes
    assert needed > free_memory_bytes("cpu")  # the real free memory: no monkeypatching of the guard
    refusal = " ".join(shown(e.value) for e in at.error)
    assert "Not built" in refusal and ("TiB" in refusal or "GiB" in refusal), refusal
    assert not built
    record("guard_refused_estimate_gib", round(needed / 2**30, 1))


def test_the_feature_page_refuses_a_model_bigger_than_free_memory_before_building_it(monkeypatch):
    import densenet_viz.analysis.budget as guard
    import densenet_viz.lab.features as fx

    monkeypatch.setattr(guard, "free_memory_bytes", lambda device: 1024)  # a device with 1 KiB free
    monkeypatch.setattr(fx, "inference_model", lambda *a, **k: pytest.fail("the model was built"))
    st_cache_clear()
    at = _feature_page()
    assert not at.exception, [e.value for e in at.exception]
    refusal = " ".join(shown(e.value) for e in at.error)
    assert "Not built" in refusal and "KiB" in refusal, refusal


def _oom(*args, **kwargs):
    import torch

    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated by the test)")


@pytest.fixture
def emptied(monkeypatch) -> list[bool]:
    """Records each torch.cuda.empty_cache() call (a no-op here: no GPU)."""
    import torch

    calls: list[bool] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(True))
    return calls


def _assert_oom_explained(at: AppTest, emptied: list[bool]) -> None:
    """The page shows an error naming the out-of-memory, no traceback, and CUDA's cache was emptied."""
    assert not at.exception, "an out-of-memory error reached the page as a traceback: " + " ".join(
        e.value for e in at.exception
    )
    said = " ".join(shown(e.value) for e in at.error)
    assert "memory" in said.lower(), said
    assert emptied, "torch.cuda.empty_cache() was not called after the out-of-memory error"


def test_an_out_of_memory_while_building_is_caught_and_explained(monkeypatch, emptied, in_process_pool):
    """Simulated on the CPU: the build raises torch.OutOfMemoryError (what CUDA raises)."""
    import densenet_viz.models.build

    monkeypatch.setattr(densenet_viz.models.build, "build_model", _oom)
    _assert_oom_explained(_app({"preset": "densenet_bc_100_12", "k": "11"}).run(), emptied)


def test_an_out_of_memory_while_drawing_feature_maps_is_caught_and_explained(monkeypatch, emptied, in_process_pool):
    from densenet_viz.lab import features as fx

    monkeypatch.setattr(fx, "compute_feature_map", _oom)
    _assert_oom_explained(_feature_page(), emptied)


def test_an_out_of_memory_while_measuring_the_trade_is_caught_and_explained(monkeypatch, emptied, in_process_pool):
    from apptest_helpers import open_page  # its AppTest patch keeps a button's click across the page switch

    import densenet_viz.analysis.trade as perf

    monkeypatch.setattr(perf, "measure_trade", _oom)
    at = open_page("memory", {"preset": "densenet_bc_100_12", "blocks": "2-2-2"})
    at.button(key="memory_measure_trade").click().run()
    _assert_oom_explained(at, emptied)
    said = shown(" ".join(shown(e.value) for e in at.error))
    assert "Out of memory" in said and "20.00 GiB" in said, said


def st_cache_clear() -> None:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()




def test_students_see_no_tracebacks():
    """Streamlit shows an uncaught exception's type and traceback unless told not to; the server log keeps them."""
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
