"""Feature maps: what every unit of the real DenseNet computes from an image, channel by channel."""

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from densenet_viz import markup
from densenet_viz.app import keys, work
from densenet_viz.app.caches import (
    digits,
    feature_view,
    prepared_upload,
    refuse_if_too_big,
    sample_input,
    upload_digest,
)
from densenet_viz.app.ui import get_state, lesson_controls, plot, show_code
from densenet_viz.app.uploads import warn_if_upload_lost
from densenet_viz.lab import features as fx
from densenet_viz.lab import images, training, weights
from densenet_viz.viz import feature_charts as fc

RANDOM, TRAINED, LOADED, SAMPLE, UPLOAD, DIGIT = fx.RANDOM, fx.TRAINED, fx.LOADED, fx.SAMPLE, fx.UPLOAD, fx.DIGIT


def weights_source() -> tuple[weights.WeightsFile, UploadedFile | None]:
    """The state dict this session chose (an upload named by its digest, not held here; or a hub-cache file), and
    the upload that can send its bytes when a worker does not hold them."""
    left, right = st.columns(2)
    upload = left.file_uploader(f"State dict (.pth / .pt, torchvision format, up to {weights.MAX_WEIGHTS_MIB} MiB)",
                                type=["pth", "pt"], key=keys.FM_WEIGHTS_FILE, max_upload_size=weights.MAX_WEIGHTS_MIB)
    found = weights.hub_checkpoints()
    hub = right.selectbox("…or a file in the torch hub cache", [None, *found], key=keys.FM_HUB_FILE,
                          format_func=lambda p: "(none)" if p is None else p.name)
    if upload is None and hub is None:
        warn_if_upload_lost(keys.FM_WEIGHTS_FILE, "state dict")
        right.caption("Nothing found in the hub cache." if not found else "")
        st.info("Upload a state dict saved by torchvision (e.g. densenet121-a639ec97.pth) or pick a cached one.")
        st.stop()
    if upload is not None:
        return weights.WeightsFile(upload.name, "sha256:" + upload_digest(upload)), upload
    return weights.WeightsFile.from_path(hub), None


state = get_state()
st.title("Feature maps")
st.markdown(
    "Every unit of the network turns its input into a stack of 2-D **feature maps**, one per channel. "
    "A dense block's output is the **concatenation** of its input x₀ and the k maps each layer added: "
    "pick a block output to see the channels grouped by the layer that produced them."
)
lesson_controls()
mode = st.radio("Weights", fx.WEIGHTS_SOURCES, key=keys.FM_WEIGHTS, horizontal=True)
config, size, device = state.config, state.input_size, state.device
if mode != TRAINED:  # the sidebar's model, built here in float32 for one image
    refuse_if_too_big(state, batch_size=1, dtype_name="float32")
run, wfile, wupload = st.session_state.get(keys.TRAINED_RUN), None, None
if mode == RANDOM:
    st.info("**Random weights:** maps show structure of the input, not learned features.")
elif mode == TRAINED:
    if run is None or not run.states:
        st.info("No trained model in this session: train one on the page **Train & feature reuse**. A trained "
                "model lives in the server process that trained it; if that process restarted, train it again.")
        st.stop()
    config, size = run.configs[training.DENSENET_NAME], run.settings.image_size
    st.success(f"DenseNet-BC trained here on digits ({len(run.history) // len(run.configs)} epoch(s)); "
               f"input {size}×{size}, 1 channel.")
else:
    wfile, wupload = weights_source()
    loaded_note = st.empty()  # says so once the worker has loaded them

sources = fx.image_sources(mode)
# Only a choice this session made is corrected: a new session (its server restarted) keeps the browser's choice.
if keys.FM_SOURCE in st.session_state and st.session_state[keys.FM_SOURCE] not in sources:
    st.session_state[keys.FM_SOURCE] = sources[0]
left, right = st.columns([2, 1])
source = left.radio("Image", sources, key=keys.FM_SOURCE, horizontal=True)
try:
    if source == DIGIT:
        data = digits(size, run.settings.test_fraction, run.settings.seed)
        index = left.slider("Test digit", 0, len(data.y_test) - 1, 0, key=keys.FM_DIGIT)
        x, display = data.x_test[index : index + 1], data.test_images[index]
        notes, image_key = [f"label {int(data.y_test[index])}"], ("digit", index)
        seen = f"held-out digit {index}, a handwritten {int(data.y_test[index])}"
    else:
        crop = fx.input_crop(mode, config.stem)
        if source == SAMPLE:
            name = left.selectbox("Sample (bundled with scikit-image)", list(images.SAMPLE_IMAGES), key=keys.FM_SAMPLE,
                                  format_func=images.SAMPLE_IMAGES.get)
            pre, image_key = sample_input(name, size, config.in_channels, crop), ("sample", name)
            seen = f"the sample image {images.SAMPLE_IMAGES[name]}"
        else:
            upload = left.file_uploader(f"Image ({images.ALLOWED_TEXT}, up to {images.MAX_UPLOAD_MIB} MiB)",
                                        type=list(images.UPLOAD_EXTENSIONS), key=keys.FM_UPLOAD,
                                        max_upload_size=images.MAX_UPLOAD_MIB)
            if upload is None:
                warn_if_upload_lost(keys.FM_UPLOAD, "image")
                st.info("Upload an image to see its feature maps.")
                st.stop()
            pre, image_key = prepared_upload(upload, size, config.in_channels, crop), ("upload", upload_digest(upload))
            seen = f"your upload {upload.name}"
            if pre is None:
                st.stop()
        x, display, notes = pre.tensor, pre.display, list(pre.notes)
        image_key = (*image_key, size, config.in_channels, crop)
except ValueError as exc:
    st.error(f"This image cannot be used: {markup.message(exc)}")
    st.stop()
right.image(display, caption=f"What the network sees: {size}×{size}, {config.in_channels} channel(s)", width=220,
            alt=f"The network's input: {seen}, resized and cropped to {size}×{size} pixels, "
                f"{'grey' if config.in_channels == 1 else 'colour'}.")
if notes:
    right.caption(markup.message("; ".join(notes)))

try:
    specs = {s.path: s for s in fx.selectable_layers(config, size)}
except ValueError as exc:
    st.error(str(exc))
    st.stop()
if st.session_state.get(keys.FM_LAYER) not in specs:
    st.session_state[keys.FM_LAYER] = fx.default_layer(list(specs.values()))
path = st.selectbox("Layer", list(specs), key=keys.FM_LAYER, format_func=lambda p: fx.layer_label(specs[p]))
spec = specs[path]
n_show = st.slider("Channels to draw", 1, 64, 16, key=keys.FM_CHANNELS)

seconds = work.forward_cost(config, size, build=True)
work.refuse_over_budget(seconds, f"One {size}×{size} image through this {config.depth}-layer model",
                        work.FORWARD_ADVICE)
groups = fx.channel_groups(spec, getattr(config, "growth_rate", None))
view = feature_view(mode, config, device, path, x, image_key, seconds, run, wfile, wupload)
if mode == LOADED:
    loaded_note.success(f"Weights loaded from {markup.plain(wfile.name)} into the sidebar's model "
                        f"({config.num_classes} classes).")

channels, colors = view.shape[0], fc.source_colors(groups)
plot(fc.sources_grid_figure, view.maps, groups, n_show, fx.layer_label(spec), key=keys.FM_GRID)
if spec.kind == "dense_block":
    st.markdown(
        f"Block {spec.block}'s output: **{spec.in_channels}** channels of x₀ followed by **{len(groups) - 1} × "
        f"{config.growth_rate}** new channels, {channels} in all. The next unit reads all of them."
    )
    plot(fc.channel_groups_figure, groups, colors, f"Block {spec.block} output: who produced each channel",
         key=keys.FM_GROUPS)
    plot(fc.source_means_figure, view.summary, colors, "Mean activation per source layer", key=keys.FM_SOURCES)
st.subheader("Per-channel statistics")
st.dataframe(view.stats, hide_index=True, height=260,
             column_config={c: st.column_config.NumberColumn(format="%.4g") for c in ("mean", "std", "min", "max")})

logits = view.logits
if logits is not None and mode != RANDOM:
    names = (training.DIGIT_LABELS if mode == TRAINED else
             weights.imagenet_classes() if len(logits) == 1000 else [f"class {i}" for i in range(len(logits))])
    st.subheader("Top-5 predictions" + (" (ImageNet labels)" if len(logits) == 1000 else ""))
    st.dataframe(weights.top_k(logits, names, 5), hide_index=True,
                 column_config={"probability": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)})
show_code(fx.capture_features, label="Show the code that captures the maps")
