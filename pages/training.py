"""Train & feature reuse: a small DenseNet-BC and its matched ResNet on digits, then what the DenseNet reads."""

import inspect

import pandas as pd
import streamlit as st

from densenet_viz.app import keys, work
from densenet_viz.app.caches import digits, trained_views, training_curves
from densenet_viz.app.ui import get_state, lesson_controls, plot
from densenet_viz.lab import features as fx
from densenet_viz.lab import tasks, training
from densenet_viz.viz import feature_charts as fc

EPOCHS_KEY, START_KEY, STOP_KEY = keys.TRAIN_EPOCHS, keys.TRAIN_START, keys.TRAIN_STOP
BLOCK_KEY, DIGIT_KEY = keys.TRAIN_REUSE_BLOCK, keys.TRAIN_DIGIT


state = get_state()
st.title("Train & feature reuse")
config = training.DIGITS_CONFIG
st.markdown(
    f"A small **DenseNet-BC** (k = {config.growth_rate}, blocks {config.block_config}, bottleneck "
    f"{config.bn_size}k, θ = {config.compression}) and the CIFAR ResNet closest to it in parameters learn "
    "scikit-learn's bundled 8×8 handwritten digits, upsampled to 16×16: 1437 training and 360 held-out "
    "images, a fixed split and a fixed seed, so every run gives the same curves. Training runs on the server's "
    "CPU workers; the results stay in this session."
)
lesson_controls()
left, mid, right = st.columns([3, 1, 1])
epochs = left.slider("Epochs", 1, training.MAX_EPOCHS, 3, key=EPOCHS_KEY,
                     help="Each epoch trains both models once over the training digits (a few seconds each).")
start = mid.button("Train", key=START_KEY, type="primary")
# A click on Stop while training runs makes Streamlit stop this script at its next progress update and
# rerun it; leaving the wait releases the job (its worker stops it unless another session waits for it too),
# and the epochs finished so far are already in session state, so the rerun shows them.
right.button("Stop", key=STOP_KEY, help="Stop training and keep the epochs finished so far.")

settings = training.TrainSettings(epochs=epochs)
data = digits(settings.image_size, settings.test_fraction, settings.seed)
if start:
    # Training runs on the server's worker pool: everyone who presses Train with the same settings (and seed)
    # shares one run and sees its progress; each finished epoch arrives here as it is done.
    run = training.empty_run(settings)
    st.session_state[keys.TRAINED_RUN] = run
    live = st.empty()

    def show_epoch(partial) -> None:
        result, weights = partial
        run.history.append(result)
        run.states[result.model] = weights
        live.plotly_chart(training_curves(run), key=keys.train_live(len(run.history)))

    finished = work.run_job(("train", settings), tasks.train_digits, (settings,), "Training",
                            deadline=training.EPOCH_DEADLINE_S * settings.epochs, on_partial=show_epoch)
    if finished is not None:
        st.session_state[keys.TRAINED_RUN] = finished
    live.empty()

run = st.session_state.get(keys.TRAINED_RUN)
if run is None or not run.history:
    st.info("Press **Train** to train both models; the results stay in this session, in this server process "
            "only: if the server restarted, what was trained is gone and needs training again.")
    st.stop()
done = min(r.epoch for r in run.final().values())
if done < run.settings.epochs:
    st.warning(f"Training stopped after epoch {done} of {run.settings.epochs}; the results below are from there.")

plot(training_curves(run), key=keys.TRAIN_CURVES)
table = pd.DataFrame(run.summary())
left, right = st.columns([1, 1])
plot(fc.accuracy_vs_params_figure, table, key=keys.TRAIN_ACC_PARAMS, where=left)
right.dataframe(table, hide_index=True, column_config={
    "parameters": st.column_config.NumberColumn(format="%d"),
    "test accuracy (%)": st.column_config.NumberColumn(format="%.1f"),
    "seconds per epoch": st.column_config.NumberColumn(format="%.1f"),
})
right.caption("Test accuracy is measured on the 360 held-out digits (never trained on), in eval mode.")

st.header("Feature reuse (Huang et al. 2017, Figure 5)")
st.markdown(
    "Each dense layer's first convolution (the 1×1 bottleneck) has one input channel per channel it reads. "
    "Averaging the absolute weights over the channels that came from each earlier source shows **how much "
    "layer l still uses what source s produced**: each row is scaled so its strongest source is 1. The last "
    "row is the unit that reads the whole block (the transition, or the classifier after the last block)."
)
block = st.selectbox("Dense block", list(range(1, len(config.block_config) + 1)), key=BLOCK_KEY,
                     format_func=lambda b: f"Block {b}")
reuse_slot = st.container()  # filled below, from the same job as the maps
st.caption("After only a few epochs the weights are still close to their random start, so rows are flat; "
           "train for more epochs to see layers favour some sources. The paper's map is after 300 epochs on CIFAR.")
with st.expander("Show the code behind the heatmap"):
    st.code(inspect.getsource(training.source_strength) + "\n\n" + inspect.getsource(training.block_reuse),
            language="python")

st.header("The trained DenseNet's feature maps")
index = st.slider("Held-out digit", 0, len(data.y_test) - 1, 0, key=DIGIT_KEY)
spec = next(s for s in fx.selectable_layers(config, settings.image_size) if s.kind == "dense_block")
# The trained model runs in a worker like every other model: one job gives the reuse map and the maps.
views = trained_views(run, state.device, spec.path, data.x_test[index : index + 1], ("digit", index), block)
if views is None:
    st.stop()
view, reuse = views
plot(fc.reuse_heatmap_figure, reuse, key=keys.TRAIN_REUSE, where=reuse_slot)
left, right = st.columns([1, 4])
left.image(data.test_images[index], caption=f"label {int(data.y_test[index])}, predicted {int(view.logits.argmax())}",
           width=140, clamp=True, alt=f"Held-out digit {index}: a handwritten {int(data.y_test[index])}, "
                                      f"{settings.image_size}×{settings.image_size} pixels; the DenseNet predicts "
                                      f"{int(view.logits.argmax())}.")
plot(fc.sources_grid_figure, view.maps, fx.channel_groups(spec, config.growth_rate), 16, fx.layer_label(spec),
     key=keys.TRAIN_FMAPS, where=right)
st.caption("Every layer and channel of this model: page **Feature maps**, weights 'Trained in this app (digits)'.")
