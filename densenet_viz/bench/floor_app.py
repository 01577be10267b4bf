"""Streamlit's floor: the least a page like ours can cost. A sidebar of the app's 15 setting widgets (the same
kinds, keys and ranges), one Plotly chart built as a plain dict, and a 20-row table; nothing computed beyond a
list of numbers. The classroom benchmark plays the same students against this page and the app, in one run, and
reports the app's server CPU per rerun as a multiple of this page's.

Run by `python -m densenet_viz.bench classroom` (with .streamlit/config.toml's settings: no file watcher, no
post-run garbage collection); `streamlit run densenet_viz/bench/floor_app.py` shows it.
"""

import plotly.graph_objects as go
import streamlit as st

st.set_page_config(page_title="Streamlit's floor", layout="wide")
sb = st.sidebar
sb.header("Model")
sb.selectbox("Preset", ["densenet121", "densenet169", "custom"], key="preset")
k = sb.slider("Growth rate k", 1, 128, 32, key="growth_rate")
sb.text_input("Layers per dense block", "6, 12, 24, 16", key="block_config", max_chars=60)
k0 = sb.number_input("Initial features k₀", 1, 512, 64, key="num_init_features")
if sb.toggle("Bottleneck", True, key="sidebar_bottleneck"):
    sb.slider("Bottleneck width (× k)", 1, 8, 4, key="bn_size")
theta = sb.slider("Compression θ", 0.05, 1.0, 0.5, step=0.05, key="compression")
sb.radio("Stem", ["imagenet", "cifar"], key="stem", horizontal=True)
sb.number_input("Classes", 1, 10_000, 1000, key="num_classes")
sb.header("Input and device")
sb.number_input("Input size (pixels)", 8, 1024, 224, step=8, key="input_size")
sb.number_input("Batch size", 1, 1024, 1, key="batch_size")
sb.selectbox("Data type", ["float32", "float16", "bfloat16"], key="dtype")
sb.selectbox("Device", ["cpu"], key="device")
if sb.toggle("Memory-efficient training", False, key="memory_efficient"):
    sb.selectbox("Memory-efficient implementation", ["recompute_bn", "checkpoint"], key="efficient_impl")
sb.header("Baseline")
sb.selectbox("ResNet baseline", ["auto-params", "auto-depth", "resnet18", "resnet50"], key="baseline")

st.title("Channel growth")
channels = [k0 + k * layer for layer in range(20)]
figure = go.Figure({"data": [{"type": "scatter", "x": list(range(1, 21)), "y": channels, "mode": "lines+markers",
                              "name": f"k = {k}"}],
                    "layout": {"title": {"text": f"Channels into each layer (k = {k}, θ = {theta:g})"},
                               "xaxis": {"title": {"text": "layer"}}, "yaxis": {"title": {"text": "channels"}}}},
                   skip_invalid=False, _validate=False)
st.plotly_chart(figure, key="floor_chart")
st.dataframe({"layer": list(range(1, 21)), "channels in": channels, "channels out": [c + k for c in channels]},
             hide_index=True, key="floor_table")
