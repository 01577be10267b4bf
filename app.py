"""densenet-viz: the Streamlit entry point (a first model summary; the pages come with the app issue)."""

import streamlit as st

from densenet_viz import PRESET_TITLES, PRESETS, build_model, count_params

st.set_page_config(page_title="densenet-viz", layout="wide")
st.title("densenet-viz")
name = st.selectbox("Model", list(PRESETS), format_func=PRESET_TITLES.get, key="preset")
config = PRESETS[name]
st.metric("Parameters", f"{count_params(config):,}")
st.code(repr(build_model(config, device="meta")), language="text")
