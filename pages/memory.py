"""Parameters & memory vs ResNet: side by side, per block, the quadratic-vs-linear chart, the measured trade."""

import streamlit as st

from densenet_viz.analysis.dense_form import efficient_kept_maps
from densenet_viz.app import caches, keys, ui
from densenet_viz.models.densenet import DenseLayer
from densenet_viz.models.efficient import cat_bn_relu_conv
from densenet_viz.viz import charts
from densenet_viz.viz.style import MACS_NOTE, mib_columns

state = ui.get_state()
ui.header(
    "Parameters & memory vs ResNet",
    state,
    "DenseNets reach ResNet accuracy with far fewer parameters, but concatenation keeps every feature map "
    "alive for backward: training memory is where they pay. The memory-efficient mode recomputes the "
    "concatenation in backward instead of storing it.",
)
ui.lesson_controls()
try:
    table = caches.comparison(state)
    report = caches.analysis(state)
except ValueError as exc:
    ui.stop_with_error(str(exc))

st.subheader("Side by side")
st.dataframe(ui.comparison_display(table, state), hide_index=True, key=keys.MEMORY_COMPARISON_TABLE)
st.caption(f"Batch {state.batch_size}, {state.dtype_name}, {state.input_size}×{state.input_size}. {MACS_NOTE}.")
with st.expander("What each memory figure means"):
    for field, meaning in report.memory.labels.items():
        st.markdown(f"- **{field.replace('_', ' ')}**: {meaning}")
ui.plot(charts.comparison_bars, table, state.title, state.baseline_title, key=keys.MEMORY_COMPARISON_CHART)

st.subheader("Stage by stage")
shown = mib_columns(report.blocks, [c for c in report.blocks.columns if c.endswith("_bytes")])
st.dataframe(
    shown,
    hide_index=True,
    column_config={
        "params": st.column_config.NumberColumn(format="localized"),
        "macs": st.column_config.NumberColumn("MACs (batch)", format="localized"),
        **{c: st.column_config.NumberColumn(format="%.1f") for c in shown.columns if c.endswith("(MiB)")},
    },
    key=keys.MEMORY_BLOCK_TABLE,
)
ui.plot(charts.block_memory_chart, report.blocks, key=keys.MEMORY_BLOCK_CHART)

st.subheader("Why plain training memory grows quadratically")
growth = caches.block_memory_growth(state)
ui.plot(charts.memory_growth_chart, growth,
        f"Your first dense block (k = {state.config.growth_rate}), more and more layers", key=keys.MEMORY_GROWTH_CHART)
config = state.config
kept = efficient_kept_maps(config)
how = {
    "recompute_bn": f"its bottleneck's 1×1 output ({kept} maps) and per-channel batch statistics; backward rebuilds "
                    "concat-BN-ReLU in one pass and runs no convolution twice",
    "checkpoint": f"its bottleneck's 1×1 output and that output after BN-ReLU ({kept} maps, since BN2-ReLU-Conv3×3 "
                  "run un-checkpointed); backward re-runs concat-BN-ReLU-Conv1×1, the 1×1 convolution included",
}[config.efficient_impl]
st.markdown(
    "In plain mode layer ℓ stores its own concatenated input of k₀ + k(ℓ−1) channels for backward, so a block of "
    "L layers stores about L²·k/2 channel maps: **quadratic**. The memory-efficient mode "
    f"(**{config.efficient_impl}**) stores no concatenation: besides its k = {config.growth_rate} new maps, which "
    f"later layers read anyway, each layer keeps {how}. That is **linear** in L, for some extra compute."
    if config.bn_size else
    "In plain mode layer ℓ stores its own concatenated input of k₀ + k(ℓ−1) channels for backward, so a block of "
    "L layers stores about L²·k/2 channel maps: **quadratic**. Without a bottleneck the memory-efficient mode "
    f"(**{config.efficient_impl}**) keeps only each layer's k = {config.growth_rate} new maps (and, in "
    "recompute_bn, per-channel batch statistics) and recomputes the rest in backward: **linear** in L."
)

st.subheader("Measure the trade")
st.markdown(
    f"Train {state.title} for a few steps on **{state.device}**, plain and memory-efficient, and compare step time "
    "and saved activations. This runs real models, so it happens only when you ask."
)
measured = caches.measured_trade(state, run=st.button("Measure the trade", key=keys.MEMORY_MEASURE, type="primary"))
if measured is not None:
    st.dataframe(ui.trade_display(measured), hide_index=True, key=keys.MEMORY_TRADE_TABLE)
    ui.plot(charts.trade_chart, measured, key=keys.MEMORY_TRADE_CHART)
    st.caption(
        "On a CPU step times swing with page faults and other work on the machine; compare the modes measured "
        "together in one run, as here, rather than numbers from separate runs."
    )
recomputed = [cat_bn_relu_conv] if config.efficient_impl == "recompute_bn" else []
ui.show_code(DenseLayer.bn_function, DenseLayer.forward, *recomputed,
             label="Show the code the memory-efficient mode recomputes")
