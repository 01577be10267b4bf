"""Channel growth: the saw-tooth of channels along the network, spatial size, and the ResNet beside it."""

import streamlit as st

from densenet_viz.app import keys, ui
from densenet_viz.models.densenet import DenseNet
from densenet_viz.viz import charts, series

OVERLAY_KEY = keys.GROWTH_OVERLAY

state = ui.get_state()
config, size = state.config, state.input_size
ui.header(
    "Channel growth",
    state,
    f"Each dense layer adds **k = {config.growth_rate}** channels to what its block carries, so the channels "
    f"entering layer l of a block are k₀ + k(l−1); each transition compresses them by **θ = {config.compression:g}** "
    "and halves the spatial size. The result is a saw-tooth.",
)
# Two formulas, one per line: a formula never wraps, and side by side they are wider than a phone.
st.latex(r"c_\ell = c_0 + k\,(\ell - 1)")
st.latex(r"c_0^{(b+1)} = \left\lfloor \theta\,\bigl(c_0^{(b)} + k\,L_b\bigr)\right\rfloor")

others = [k for k in series.GROWTH_RATES if k != config.growth_rate]
overlay = st.multiselect(
    "Overlay other growth rates (same blocks, k₀ and θ)", others, key=OVERLAY_KEY, format_func=lambda k: f"k = {k}"
)
ui.lesson_controls()
try:
    channels = series.channel_series(config, size, [config.growth_rate, *overlay])
except ValueError as exc:  # an overlaid k can make a transition compress to nothing
    ui.stop_with_error(str(exc))
ui.plot(charts.channel_growth_chart, channels, config.growth_rate, config.compression, key=keys.GROWTH_CHANNELS)

# One under the other, at full width: side by side they are narrower than a phone on a zoomed projector.
ui.plot(charts.spatial_size_chart, channels, key=keys.GROWTH_SPATIAL)
ui.plot(charts.resnet_channel_chart, series.resnet_channel_series(state.baseline, size), state.baseline_title,
        key=keys.GROWTH_RESNET)
st.markdown(
    f"The baseline **{state.baseline_title}** keeps its width inside a stage (addition needs equal shapes) and "
    "doubles it when it halves the spatial size; the DenseNet grows by k inside each block and compresses at "
    "the transitions."
)
ui.show_code(DenseNet.__init__, label="Show the code that sets the channel counts")
