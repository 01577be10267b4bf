"""What pages compute through Streamlit's caches (analysis reports, sweeps, sample inputs, digits) or on the worker
pool (built models, feature maps of random models, the measured trade), and what an out-of-memory error frees."""

from __future__ import annotations

import gc
import hashlib
import importlib
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from streamlit.runtime.uploaded_file_manager import UploadedFile

from .. import markup
from .. import settings as us
from ..analysis.budget import ENV_JOB_MEMORY, FORWARD_OVERHEAD, check_fits
from ..analysis.records import EpochResult, ReuseMap
from ..analysis.report import DTYPES
from ..lab import features as fx
from ..lab.features import FeatureView
from ..lab.images import Preprocessed, load_sample, preprocess
from ..lab.training import DENSENET_NAME, DigitsData, TrainedRun, TrainSettings, digits_data, state_digest
from ..lab.weights import WeightsFile, WeightsNotHeld
from ..models.config import DenseNetConfig, ResNetConfig, config_from_dict
from ..viz import feature_charts as fc
from ..viz import series
from . import keys, work
from .state import AppState, config_key


def chart(builder: Callable[..., go.Figure], *args: Any, **kwargs: Any) -> go.Figure:
    """builder(*args, **kwargs), a figure from viz, built once per server for arguments equal in value and shared by
    every session that draws it: a class on one lesson link draws the same few figures, which no page changes."""
    return _chart(builder.__module__, builder.__qualname__, args, tuple(sorted(kwargs.items())))


# 128 figures, each with up to four themed copies (light, dark, projector): tens of MB at most.
# DataFrames are compared by their pickle: Streamlit's own DataFrame hash (hash_pandas_object) cost ten times as much,
# more than building most figures. Equal pickles are equal frames; unequal pickles of equal frames only miss.
@st.cache_resource(max_entries=128, show_spinner=False, hash_funcs={pd.DataFrame: lambda df: pickle.dumps(df, 5)})
def _chart(module: str, name: str, args: tuple, kwargs: tuple) -> go.Figure:
    return getattr(importlib.import_module(module), name)(*args, **dict(kwargs))


@st.cache_data(max_entries=64, show_spinner=False)
def _baseline(config_json: str, choice: str) -> tuple[str, dict]:
    name, config = us.resolve_baseline(config_from_dict(json.loads(config_json)), choice)
    return name, config.to_dict()


def baseline(config: DenseNetConfig, choice: str) -> tuple[str, ResNetConfig]:
    """The ResNet a baseline choice names for this DenseNet, and its preset name (cached per config)."""
    name, chosen = _baseline(config_key(config), choice)
    return name, config_from_dict(chosen)


def analysis(state: AppState, config: DenseNetConfig | ResNetConfig | None = None):
    """The analysis report of the state's model (or of `config` at the state's input, batch and dtype)."""
    from ..analysis.closed_form import analyze

    # analyze keeps its reports per server (closed_form's own cache) and hands out copies of their tables: a
    # Streamlit cache around it pickled every report once more and unpickled it on every rerun.
    config = state.config if config is None else config
    return analyze(config, input_size=state.input_size, batch_size=state.batch_size, dtype=DTYPES[state.dtype_name])


@st.cache_data(max_entries=16, show_spinner=False)
def _sweeps(config_json: str, input_size: int, batch_size: int, dtype_name: str) -> dict[str, pd.DataFrame]:
    config, dtype = config_from_dict(json.loads(config_json)), DTYPES[dtype_name]
    return {
        "growth": series.sweep_growth(config, input_size, batch_size, dtype),
        "depth": series.sweep_depth(config, input_size, batch_size, dtype),
        "resnets": series.resnet_family(config, input_size, batch_size, dtype),
    }


def sweeps(state: AppState) -> dict[str, pd.DataFrame]:
    """The growth-rate sweep, the depth sweep and the ResNet reference points (cached)."""
    return _sweeps(config_key(state.config), state.input_size, state.batch_size, state.dtype_name)


@st.cache_data(max_entries=16, show_spinner=False)
def _block_memory_growth(config_json: str, input_size: int, batch_size: int, dtype_name: str) -> pd.DataFrame:
    config = config_from_dict(json.loads(config_json))
    return series.block_memory_growth(config, input_size, batch_size, DTYPES[dtype_name])


def block_memory_growth(state: AppState) -> pd.DataFrame:
    """Plain vs memory-efficient training memory of the model's first block as its layers grow (cached)."""
    return _block_memory_growth(config_key(state.config), state.input_size, state.batch_size, state.dtype_name)


@st.cache_data(max_entries=32, show_spinner=False)
def _largest_batches(config_json: str, input_size: int, budget_gib: float, dtype_name: str) -> pd.DataFrame:
    config = config_from_dict(json.loads(config_json))
    return series.largest_batches(config, input_size, budget_gib, DTYPES[dtype_name])


def largest_batches(state: AppState, budget_gib: float) -> pd.DataFrame:
    """The largest batch per mode that fits in budget_gib GiB (cached)."""
    return _largest_batches(config_key(state.config), state.input_size, float(budget_gib), state.dtype_name)


def comparison(state: AppState) -> pd.DataFrame:
    """The DenseNet and its baseline side by side (series.comparison_table of both cached reports)."""
    return series.comparison_table(analysis(state), analysis(state, state.baseline))


def measured_trade(state: AppState, run: bool) -> pd.DataFrame | None:
    """The measured plain-vs-efficient trade for this state: measured on the worker pool if asked.

    Kept in session state per config, input, batch and device, so it survives reruns but is measured
    only on request (it trains real models), and refused up front when over the compute budget.
    """
    key = (config_key(state.config), state.input_size, state.batch_size, state.device)
    results = dict(st.session_state.get(keys.MEASURED_TRADE, {}))
    if run:
        from ..analysis.cost import trade_seconds
        from ..lab import tasks

        seconds = trade_seconds(state.config, state.input_size, state.batch_size, work.calibration())
        work.refuse_over_budget(seconds, f"Measuring the trade for {state.title} at batch {state.batch_size}",
                                "Choose a smaller batch size or input size, or fewer layers.")
        try:
            budget = work.job_memory() if state.device == "cpu" else None
            measured = work.run_job(("trade", *key), tasks.measure_trade,
                                    (state.config, state.input_size, state.batch_size, state.device, budget),
                                    "Measuring the trade", deadline=work.deadline_s(seconds))
            if measured is not None:
                results = {key: measured}  # one measurement per session: the latest
        except torch.OutOfMemoryError as exc:
            report_out_of_memory(exc, f"measuring {state.title} on {state.device}")
        except (ValueError, MemoryError) as exc:
            st.error(f"Not measured: {markup.message(exc)}")
        st.session_state[keys.MEASURED_TRADE] = results
    return results.get(key)


@dataclass(frozen=True)
class BuiltModel:
    """What building a model took: seconds, the device it landed on, and the model's class name."""

    seconds: float
    device: str
    class_name: str


def refuse_if_too_big(state: AppState, batch_size: int | None = None, dtype_name: str | None = None) -> None:
    """Stop the page with st.error, before anything is allocated, when the model's weights and one forward
    pass (at the state's batch and dtype unless given) cannot fit in the device's free memory or, on the CPU, in
    what one job may use on this server."""
    from ..analysis.closed_form import totals

    batch = state.batch_size if batch_size is None else batch_size
    memory = totals(state.config, state.input_size, batch, DTYPES[dtype_name or state.dtype_name]).memory
    needed = memory.weight_bytes + int(FORWARD_OVERHEAD * memory.inference_bytes)
    job = work.job_memory() if state.device == "cpu" else None
    try:
        check_fits(needed, state.device, what=f"{state.title} (weights + one forward pass at batch {batch})",
                   budget_bytes=job)
    except MemoryError as exc:
        setting = (f" On a server of your own, a teacher can raise what one job may use with the setting "
                   f"{ENV_JOB_MEMORY} (MiB).") if job is not None and needed > job else ""
        st.error(f"Not built: {markup.message(exc)}{setting}")
        st.stop()


def built_model(state: AppState) -> BuiltModel | None:
    """Build the real model on the chosen device in a worker of the pool (identical requests share one build)
    and say what it took; refused with st.error if it cannot fit there or is over the compute budget, None
    (with a message on the page) if the build was stopped."""
    from ..lab import tasks

    refuse_if_too_big(state)
    seconds = work.build_cost(state.config)
    work.refuse_over_budget(seconds, f"Building {state.title} ({state.config.depth} layers)",
                            "Choose fewer layers per block, a smaller growth rate or fewer initial features.")
    # In a worker, not here: building is Python-heavy (a module per layer, an initialiser per weight) and here
    # it would hold the interpreter lock every other session's page needs; the round trip costs ~10 ms.
    try:
        timed = work.run_job(("build", config_key(state.config), state.device, state.dtype_name), tasks.build_seconds,
                             (state.config, state.device, state.dtype), "Building the model",
                             deadline=work.deadline_s(seconds), lane=work.VIEW)
    except torch.OutOfMemoryError as exc:  # the estimate fitted, but the device's memory ran out anyway
        report_out_of_memory(exc, f"building {state.title} on {state.device}")
        st.stop()
    return None if timed is None else BuiltModel(*timed, class_name=type(state.config).__name__.removesuffix("Config"))


def trained_views(run: TrainedRun, device: str, path: str, x: torch.Tensor, image_key: tuple,
                  block: int | None = None) -> tuple[FeatureView, ReuseMap | None] | None:
    """The map at `path` and the logits of the DenseNet trained in this session for image x (and its feature-reuse
    map of `block`), computed in a worker of the view lane; None (said on the page) if stopped."""
    from ..lab import tasks

    config, state_dict = run.configs[DENSENET_NAME], run.states[DENSENET_NAME]
    seconds = work.forward_cost(config, run.settings.image_size, build=True)
    try:
        digest = state_digest(state_dict)
        return work.run_job(("trained", digest, device, path, image_key, block), tasks.trained_views,
                            (config, state_dict, digest, device, path, x, block), "Running the trained model",
                            deadline=work.deadline_s(seconds), lane=work.VIEW)
    except torch.OutOfMemoryError as exc:
        report_out_of_memory(exc, f"running the trained model on {device}")
        st.stop()


@st.cache_resource(max_entries=32, show_spinner=False)
def sample_input(name: str, size: int, in_channels: int, crop: float) -> Preprocessed:
    """A bundled sample image preprocessed for a model: shared by every session (read-only)."""
    return preprocess(load_sample(name).image, size, in_channels, crop)


MAX_DIGESTS = 4  # uploads a session remembers the digest of (one per uploader is what it needs)


def upload_digest(upload: UploadedFile) -> str:
    """The SHA-256 of an upload's bytes, taken once per uploaded file (a session keeps the digest, not the bytes)."""
    digests = st.session_state.setdefault(keys.UPLOAD_DIGESTS, {})
    if upload.file_id not in digests:
        while len(digests) >= MAX_DIGESTS:
            digests.pop(next(iter(digests)))
        digests[upload.file_id] = hashlib.sha256(upload.getbuffer()).hexdigest()
    return digests[upload.file_id]


IMAGE_DEADLINE_S = 15.0  # the largest image a worker decodes takes about a second


def prepared_upload(upload: UploadedFile, size: int, in_channels: int, crop: float) -> Preprocessed | None:
    """An uploaded image decoded and preprocessed in a worker, once per file and geometry (identical requests share
    the job and its result); ValueError saying what is wrong with the file, None if the job was stopped."""
    from ..lab import tasks

    return work.run_job(("image", upload_digest(upload), size, in_channels, crop), tasks.prepare_image,
                        (upload.getvalue(), upload.name, size, in_channels, crop), "Reading the image",
                        deadline=IMAGE_DEADLINE_S, lane=work.VIEW)


def weights_view(key: tuple, config: DenseNetConfig | ResNetConfig, device: str, source: WeightsFile,
                 upload: UploadedFile | None, path: str, x: torch.Tensor, deadline: float,
                 lane: str) -> FeatureView | None:
    """The view of loaded weights' maps, from a worker: an upload's bytes travel only when the worker does not hold
    them yet (the session keeps the digest); None if the job was stopped."""
    from ..lab import tasks

    what = "Loading the weights and running the image"
    try:
        return work.run_job(key, tasks.loaded_feature_map, (config, device, source, path, x), what,
                            deadline=deadline, lane=lane)
    except WeightsNotHeld:
        if upload is None:
            raise
        with_bytes = WeightsFile(source.name, source.key, data=upload.getvalue())
        return work.run_job(key, tasks.loaded_feature_map, (config, device, with_bytes, path, x), what,
                            deadline=deadline, lane=lane)


def feature_view(weights: str, config: DenseNetConfig | ResNetConfig, device: str, path: str, x: torch.Tensor,
                 image_key: tuple, seconds: float, run: TrainedRun | None = None, source: WeightsFile | None = None,
                 upload: UploadedFile | None = None) -> FeatureView:
    """What the Feature maps page shows of unit `path` for image x, with the weights chosen (lab.features.RANDOM,
    TRAINED with the session's run, LOADED from `source`), computed in a worker and shared by identical requests;
    a failure or a stop is said on the page, which then stops."""
    from ..lab import tasks

    deadline, lane = work.deadline_s(seconds), work.view_lane(seconds)
    try:
        if weights == fx.LOADED:
            view = weights_view(("loaded", source.key, config_key(config), device, path, image_key), config, device,
                                source, upload, path, x, deadline, lane)
        elif weights == fx.TRAINED:
            views = trained_views(run, device, path, x, image_key)
            view = None if views is None else views[0]
        else:  # the seeded random model
            view = work.run_job(("features", config_key(config), device, path, image_key), tasks.random_feature_map,
                                (config, device, path, x), "Building the model and running the image",
                                deadline=deadline, lane=lane)
    except torch.OutOfMemoryError as exc:  # a subclass of RuntimeError: free memory before saying so
        report_out_of_memory(exc, f"running the model on {device}")
        st.stop()
    except (ValueError, RuntimeError, LookupError) as exc:  # a file that does not fit the model, or no state dict
        st.error(f"Not computed with {markup.plain(source.name)}: {markup.message(exc)}" if weights == fx.LOADED
                 else f"The forward pass failed: {markup.message(exc)}")
        st.stop()
    if view is None:
        st.stop()
    return view


# A shared resource, not cache_data: a copy per session and rerun cost more than the page's own work.
@st.cache_resource(max_entries=2, show_spinner="Loading scikit-learn's digits…")
def digits(size: int, test_fraction: float, seed: int) -> DigitsData:
    """scikit-learn's digits as lab.training.digits_data splits them: loaded once, shared by every page and
    session (read-only)."""
    return digits_data(size, test_fraction, seed)


@st.cache_resource(max_entries=32, show_spinner=False)
def _training_curves(settings: TrainSettings, epochs_done: int, _history: tuple[EpochResult, ...]) -> go.Figure:
    return fc.training_curves_figure(list(_history))


def training_curves(run: TrainedRun) -> go.Figure:
    """The training curves of a run so far: built once per settings and epoch count, shared by every session
    waiting on the same (deterministic) run; never mutate it. Thirty sessions drawing their own copy each
    epoch cost more CPU than the training itself."""
    return _training_curves(run.settings, len(run.history), tuple(run.history))


def free_memory() -> None:
    """After an out-of-memory error: collect what this process no longer uses and return the allocator's cached
    blocks (models, loaded weights and their outputs live in the pool's workers, which drop their own)."""
    gc.collect()
    torch.cuda.empty_cache()  # a no-op unless CUDA has been initialised


def report_out_of_memory(exc: BaseException, what: str) -> None:
    """Free what can be freed and say on the page what ran out (the caller decides whether to stop)."""
    free_memory()
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    st.error(
        f"Out of memory while {what}: {markup.message(first_line)}. The device's cached memory was freed; choose a "
        "smaller batch size, input size or model, or turn on the memory-efficient mode."
    )
