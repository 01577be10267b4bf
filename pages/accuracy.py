"""Accuracy vs cost: published errors against our own parameter and FLOP counts, the sidebar's model marked."""

import pandas as pd
import streamlit as st

from densenet_viz.analysis import accuracy as acc
from densenet_viz.app import keys, ui
from densenet_viz.units import format_count
from densenet_viz.viz.accuracy_charts import accuracy_chart

state = ui.get_state()
ui.header(
    "Accuracy vs cost",
    state,
    "What do the parameters and FLOPs buy? Each point is a **published** error; its parameters and FLOPs are "
    "**computed here** from the model's config, exactly as every other page computes them. The paper's central "
    "claim (Figure 3): DenseNets reach ResNet accuracy with fewer parameters and less compute.",
)
mine = acc.dataset_for(state.config)


def _your_model(table: pd.DataFrame, columns: tuple[str, ...]) -> acc.ModelCost:
    """Say what is known about the sidebar's model against these published points (never an invented error)."""
    cost = acc.model_cost(state.config, table)
    if len(cost.published):
        said = "; ".join(f"{e:.2f} % ({s}, {t})" for e, s, t in
                         zip(cost.published["error"], cost.published["source_title"], cost.published["table"],
                             strict=True))
        st.success(f"**{state.title}** is a published model: error {said}.")
    else:
        st.info(f"**{state.title}** has no published error: only training tells what this configuration scores. "
                "The dashed line marks its cost.")
        st.page_link("pages/training.py", label="Train a small DenseNet and its ResNet on this machine",
                     icon=":material/model_training:")
    for column in columns:
        value = cost.params if column == "params" else cost.flops
        near = acc.nearest(table, value, column)
        names = ", ".join(f"**{t}** ({format_count(c)}, {e:.2f} %, {s})"
                          for t, c, e, s in zip(near["title"], near[column], near["error"], near["source_short"],
                                                strict=True))
        st.markdown(f"Nearest published models by {'parameters' if column == 'params' else 'FLOPs'} "
                    f"(yours: {format_count(value)}): {names}.")
    return cost


st.subheader("ImageNet: error vs parameters and vs FLOPs (the paper's Figure 3)")
ui.lesson_controls()
source = st.radio("Source of the errors", list(acc.SOURCE_SETS), format_func=acc.SOURCE_SET_TITLES.get,
                  key=keys.ACC_SOURCE, horizontal=True)
imagenet = acc.published_table("imagenet", acc.SOURCE_SETS[source])
cost = _your_model(imagenet, ("params", "flops")) if mine == "imagenet" else None
# One above the other: side by side, each would be narrower than a phone on a projector zoomed to 150 %.
for x, what in (("params", "parameters"), ("flops", "FLOPs")):
    ui.plot(accuracy_chart, imagenet, x, f"ImageNet top-1 error vs {what}",
            marker=None if cost is None else (cost.params if x == "params" else cost.flops),
            key=keys.acc_imagenet_chart(x))
st.caption("FLOPs at 224×224, one image; FLOPs = 2 × MACs. Hover a point for its source and table.")

st.subheader("CIFAR: error vs parameters (the paper's Table 2 and He et al.'s CIFAR ResNets)")
dataset = st.radio("Dataset", ["c10+", "c100+"], format_func=lambda d: acc.DATASETS[d].title, key=keys.ACC_CIFAR,
                   horizontal=True, index=1 if mine == "c100+" else 0)
cifar = acc.published_table(dataset)
cifar_cost = _your_model(cifar, ("params",)) if mine == dataset else None
ui.plot(accuracy_chart, cifar, "params", f"{acc.DATASETS[dataset].title}: test error vs parameters",
        marker=None if cifar_cost is None else cifar_cost.params, log_x=True, key=keys.ACC_CIFAR_CHART)
if mine == "imagenet":
    st.caption("Your model has the ImageNet stem, so it is marked on the ImageNet charts only.")
elif mine != dataset:
    st.caption(f"Your model has {state.config.num_classes} classes: it is marked on the "
               f"{acc.DATASETS[mine].title} chart.")
st.caption("CIFAR parameters at each dataset's classes (10 or 100). The pre-activation and wide ResNets of Table 2 "
           "are left out: the app does not build them, so it cannot compute their cost.")

st.subheader("Every number and where it comes from")
shown = acc.display_table(pd.concat([imagenet, cifar], ignore_index=True))
st.dataframe(shown, hide_index=True, key=keys.ACC_TABLE,
             column_config={c: st.column_config.NumberColumn(format="localized")
                            for c in ("parameters (computed)", "FLOPs (computed, 2 × MACs)")})
st.download_button("Download this table (CSV)", shown.to_csv(index=False), file_name="accuracy_vs_cost.csv",
                   mime="text/csv", key=keys.ACC_CSV)
