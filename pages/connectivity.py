"""Connectivity: every connection of a dense block, the whole network, and addition vs concatenation."""

import streamlit as st

from densenet_viz.app import keys, ui
from densenet_viz.models.densenet import DenseBlock, DenseLayer
from densenet_viz.models.resnet import BasicBlock, Bottleneck
from densenet_viz.viz import charts, graphs

# A block's graph has L(L+1)/2 + L+1 edges: readable up to about 8 layers, a hairball beyond 24.
GRAPH_DEFAULT_LAYERS, MAX_GRAPH_LAYERS = 8, 24
BLOCK_KEY, LAYER_KEY, VIEW_KEY = keys.CONN_BLOCK, keys.CONN_LAYER, keys.CONN_VIEW
GRAPH, MATRIX = "Graph", "Matrix"

state = ui.get_state()
config, size, dark = state.config, state.input_size, ui.is_dark()
ui.header(
    "Dense connectivity",
    state,
    "Inside a dense block every layer reads the feature maps of **all** earlier layers, concatenated: "
    "with the block input x₀ and L layers, that is 1 + 2 + … + L = **L(L+1)/2** connections.",
)

ui.lesson_controls()


# The block explorer reruns alone when its controls move (a fragment): the sidebar, the whole network's graph and
# the code below stay as they are.
@st.fragment
def block_explorer() -> None:
    """One dense block, layer by layer, as a graph or a matrix, and the chosen layer beside a ResNet block."""
    blocks = list(range(1, len(config.block_config) + 1))
    if st.session_state.get(BLOCK_KEY) not in blocks:
        st.session_state[BLOCK_KEY] = 1
    left, right = st.columns([1, 2])
    block = left.selectbox(
        "Dense block", blocks, key=BLOCK_KEY, format_func=lambda b: f"Block {b} ({config.block_config[b - 1]} layers)",
        on_change=lambda: st.session_state.pop(VIEW_KEY, None),  # each block starts in its own default view
    )
    n_layers = config.block_config[block - 1]
    views = [GRAPH, MATRIX] if n_layers <= MAX_GRAPH_LAYERS else [MATRIX]
    if st.session_state.get(VIEW_KEY) not in views:
        st.session_state[VIEW_KEY] = GRAPH if n_layers <= GRAPH_DEFAULT_LAYERS else MATRIX
    if st.session_state.get(LAYER_KEY, 1) > n_layers:
        st.session_state[LAYER_KEY] = n_layers
    if n_layers > 1:
        layer = right.slider("Step through the block: layer H_l", 1, n_layers, key=LAYER_KEY)
    else:
        layer = 1
        right.caption("This block has one layer: it reads only the block input x₀.")

    trace = graphs.dense_block_trace(config, block, size)
    reads = trace.reads(f"x{layer}")
    st.markdown(
        f"**H{layer}** reads {', '.join(reads)} ({len(reads)} {'map' if len(reads) == 1 else 'maps'}, "
        f"{trace.read_channels(f'x{layer}')} channels) and adds k = {config.growth_rate} new ones. "
        f"Block {block} has **{trace.count('read')} connections into its {n_layers} layers** (L(L+1)/2 with "
        f"L = {n_layers}), plus {trace.count('output')} dashed ones into the block output that the next stage reads."
    )
    view = st.segmented_control("Show the block as", views, key=VIEW_KEY, required=True)
    if n_layers > GRAPH_DEFAULT_LAYERS:
        st.caption(f"With {n_layers} layers the graph has {len(trace.edges)} arrows, so the matrix is the readable "
                   f"form (the graph is offered up to {MAX_GRAPH_LAYERS} layers).")
    if view == GRAPH:
        ui.graph(trace, "conn_graph", highlight=f"x{layer}")
        # On a phone the graph shrinks to the screen; its labels are vector text that stays sharp when zoomed.
        st.caption("Too small to read? Zoom in (pinch on a phone, or the chart's full-screen button), or show the "
                   "block as a matrix.")
    else:
        ui.plot(charts.connectivity_heatmap, graphs.connectivity_matrix(trace), highlight=layer, key=keys.CONN_MATRIX)
    st.download_button(  # the file is made when it is asked for, not on every rerun
        "Download this block's DOT source", lambda: graphs.draw(trace, highlight=f"x{layer}", dark=dark).source,
        file_name=f"dense_block{block}.dot", mime="text/vnd.graphviz",
        key=keys.CONN_DOT_BLOCK,
    )

    st.header("Concatenation vs addition")
    st.markdown(
        "A **ResNet** block *adds* its input to its output, so the width stays the same and earlier features are "
        "mixed into one sum. A **dense layer** *concatenates*: earlier maps are kept as they are and every later "
        "layer can read them directly."
    )
    dense_col, res_col = (st, st) if ui.is_projector() else st.columns(2)  # a projector needs them full width
    ui.graph(graphs.dense_layer_trace(config, block, layer, size), "conn_dense_layer", where=dense_col)
    ui.graph(graphs.resnet_block_trace(state.baseline, size), "conn_resnet_block", where=res_col)


block_explorer()

st.header("The whole network")
network_trace = graphs.network_trace(config, size)
ui.graph(network_trace, "conn_network", width="content")
st.download_button(  # in the page's theme, made when it is asked for
    "Download the network's DOT source", lambda: graphs.draw(network_trace, dark=dark).source,
    file_name="densenet.dot", mime="text/vnd.graphviz", key=keys.CONN_DOT_NETWORK,
)

ui.show_code(DenseLayer, DenseBlock, Bottleneck if state.baseline.block == "bottleneck" else BasicBlock)
