"""Trade-offs: sweeps over growth rate and depth, the ResNet family as reference, the largest batch that fits."""

import streamlit as st

from densenet_viz.app import caches, keys, ui
from densenet_viz.viz import charts
from densenet_viz.viz.style import MACS_NOTE

BUDGET_KEY = keys.TRADEOFFS_BUDGET

state = ui.get_state()
config = state.config
ui.header(
    "Trade-offs",
    state,
    "How parameters, compute and training memory move when you change one knob and keep the rest. "
    "The star is the sidebar's model; the ResNets of the same family are reference points.",
)
ui.lesson_controls()
with st.spinner("Sweeping configurations (cached after the first time)…"):
    try:
        sweeps = caches.sweeps(state)
    except ValueError as exc:
        ui.stop_with_error(str(exc))

st.subheader("Growth rate k")
ui.plot(
    charts.sweep_chart, sweeps["growth"], "growth_rate", "growth rate k (channels per layer)",
    f"Sweeping k with blocks {'-'.join(map(str, config.block_config))}, k₀ = {config.num_init_features}, "
    f"θ = {config.compression:g}",
    references=sweeps["resnets"], baseline=state.baseline_name, key=keys.TRADEOFFS_GROWTH_SWEEP,
)
st.caption(
    f"Dotted lines: the baseline {state.baseline_title}. Parameters grow roughly like k² (every layer's "
    f"convolutions get wider on both sides); training memory grows roughly like k. {MACS_NOTE}."
)

st.subheader("Depth")
ui.plot(charts.sweep_chart, sweeps["depth"], "depth", "depth L (conv and linear layers)",
        "Sweeping depth: every block's layer count scaled", references=sweeps["resnets"],
        key=keys.TRADEOFFS_DEPTH_SWEEP)
st.caption(
    "Scaling every block by 0.25× to 3× (same k, k₀, θ). Plain training memory grows quadratically within a "
    "block; memory-efficient training grows linearly."
)

st.subheader("The largest batch that fits")
budget = st.columns(3)[0].number_input(
    "Memory budget (GiB)", min_value=0.25, max_value=1024.0, value=8.0, step=0.25, key=BUDGET_KEY,
    help="For instance your GPU's memory. Weights and activations count; the allocator's overhead does not.",
)
batches = caches.largest_batches(state, budget)
for column, (_, row) in zip(st.columns(len(batches)), batches.iterrows(), strict=True):
    column.metric(row["label"], f"{row['batch']:,}" if row["batch"] else "does not fit",
                  help=f"Largest batch of {state.input_size}×{state.input_size} images in {budget:g} GiB.")
st.caption(f"For {state.title} at {state.input_size}×{state.input_size} in {state.dtype_name}.")
