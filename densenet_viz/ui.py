"""The shared sidebar and small display helpers; the only module of densenet_viz that imports streamlit.

Contract for pages: call `get_state()` at the top; it returns the AppState the sidebar (drawn once by
app.py through `sidebar()`) put in st.session_state. (A first version: the app issue fills it in.)
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from .config import PRESETS, DenseNetConfig, ResNetConfig
from .resnet import match_baseline

STATE_KEY = "app_state"


@dataclass(frozen=True)
class AppState:
    """Everything the sidebar chose: the model config plus how to run it."""

    config: DenseNetConfig
    baseline: ResNetConfig
    input_size: int = 224
    batch_size: int = 1
    dtype: torch.dtype = torch.float32
    device: str = "cpu"


def sidebar() -> AppState:
    """Draw the shared controls and store the resulting AppState in session state."""
    name = st.sidebar.selectbox(
        "Preset", [n for n, c in PRESETS.items() if isinstance(c, DenseNetConfig)], key="preset"
    )
    config = PRESETS[name]
    size = 224 if config.stem == "imagenet" else 32
    state = AppState(config=config, baseline=match_baseline(config)[1], input_size=size)
    st.session_state[STATE_KEY] = state
    return state


def get_state() -> AppState:
    """The AppState of this session (defaults until the sidebar has run)."""
    if STATE_KEY not in st.session_state:
        config = PRESETS["densenet121"]
        st.session_state[STATE_KEY] = AppState(config=config, baseline=match_baseline(config)[1])
    return st.session_state[STATE_KEY]
