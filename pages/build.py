"""Build: the real model on the chosen device, its summary numbers, the per-layer table and the principle."""

import streamlit as st

from densenet_viz.app import caches, keys, ui
from densenet_viz.models.densenet import DenseBlock, DenseLayer
from densenet_viz.units import format_bytes, format_count, format_flops, format_macs
from densenet_viz.viz import series
from densenet_viz.viz.style import MACS_NOTE, mib_columns

state = ui.get_state()
config = state.config
ui.header(
    "Build the real model",
    state,
    "The sidebar's settings define one `DenseNetConfig`; this page builds the real PyTorch model from it and "
    "measures what it costs.",
)
ui.lesson_controls()
try:
    report = caches.analysis(state)
except ValueError as exc:
    ui.stop_with_error(str(exc))
built = caches.built_model(state)  # refuses (st.error) a model too big for the device, before building it
if built is not None:
    st.success(
        f"Built `{built.class_name}` with {format_count(report.params)} parameters on **{built.device}** in "
        f"{built.seconds:.2f} s, in one of this server's worker processes; students who ask for the same model "
        "share that build, so coming back with the same settings shows it at once."
    )

st.subheader("Summary")
row1, row2 = st.columns(4), st.columns(4)
row1[0].metric("Parameters", f"{report.params:,}", help="Weights and biases that training updates.")
row1[1].metric("MACs per image", format_macs(report.macs_per_sample), help=MACS_NOTE)
row1[2].metric("FLOPs per image", format_flops(report.macs_per_sample), help=MACS_NOTE)
row1[3].metric("Output", report.table["output_shape"].iloc[-1], help="Logits: one score per class per image.")
memory = report.memory
row2[0].metric("Weights", format_bytes(memory.weight_bytes), help=memory.labels.get("weight_bytes"))
row2[1].metric("Inference activations", format_bytes(memory.inference_bytes),
               help=memory.labels.get("inference_bytes"))
row2[2].metric("Training activations, plain", format_bytes(memory.train_plain_bytes),
               help=memory.labels.get("train_plain_bytes"))
row2[3].metric("Training, memory-efficient", format_bytes(memory.train_efficient_bytes),
               help=memory.labels.get("train_efficient_bytes"))
st.caption(f"Memory for batch {state.batch_size} in {state.dtype_name}; MiB and GiB are binary (2²⁰, 2³⁰ bytes). "
           f"{MACS_NOTE}.")

st.subheader("The principle")
explain, formulas = st.columns([3, 2])
explain.markdown(
    "A DenseNet layer does not replace its input: it reads the **concatenation of every earlier feature map** "
    "in its block and adds **k** new maps (the growth rate). Layer ℓ of a block that starts with k₀ channels "
    "therefore reads k₀ + k(ℓ−1) channels. Transitions between blocks compress the channels by θ and halve "
    "the spatial size."
)
with formulas:
    st.latex(r"x_\ell = H_\ell\left([x_0, x_1, \ldots, x_{\ell-1}]\right)")
    st.latex(r"\text{channels read by layer } \ell = k_0 + k\,(\ell - 1)")

st.subheader("Every layer")


# The filters redraw the table alone (a fragment): nothing above reruns.
@st.fragment
def layer_table() -> None:
    """The per-layer table, filtered by kind and block, and its CSV."""
    kinds = sorted(report.table["kind"].dropna().unique())
    blocks = sorted(int(b) for b in report.table["block"].dropna().unique())
    pick_kind, pick_block = st.columns(2)
    chosen_kinds = pick_kind.multiselect("Kinds (none = all)", kinds, key=keys.BUILD_KINDS)
    chosen_blocks = pick_block.multiselect("Blocks (none = all)", blocks, key=keys.BUILD_BLOCKS)
    table = series.filter_layers(report.table, chosen_kinds, chosen_blocks)
    shown = mib_columns(table, [c for c in table.columns if c.endswith("_bytes")])
    st.dataframe(
        shown,
        hide_index=True,
        column_config={
            "params": st.column_config.NumberColumn("params", format="localized"),
            "macs": st.column_config.NumberColumn("MACs (batch)", format="localized", help=MACS_NOTE),
            **{c: st.column_config.NumberColumn(format="%.3f") for c in shown.columns if c.endswith("(MiB)")},
        },
        key=keys.BUILD_LAYER_TABLE,
    )
    st.caption(f"{len(table)} of {len(report.table)} rows.")
    st.download_button(
        "Download the table as CSV", lambda: table.to_csv(index=False),  # made when it is asked for
        file_name="densenet_layers.csv", mime="text/csv", key=keys.BUILD_LAYERS_CSV,
    )


layer_table()

ui.show_code(DenseLayer, DenseBlock)
