"""Graphviz diagrams of dense connectivity: trace a config into records, then draw the records.

As in micrograd's `trace` / `draw_dot`, the `*_trace` functions turn a config into plain nodes and edges
(tested on their own: a block of L layers has L(L+1)/2 "read" edges), and `draw` only renders them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import graphviz
import pandas as pd

from ..models.config import DenseNetConfig, ResNetConfig
from ..models.plan import LayerSpec, layer_plan
from .style import (
    FONT_FAMILY,
    GRAPH_FONT_SIZE,
    HIGHLIGHT_COLOR,
    KIND_COLORS,
    LABEL_SIZE,
    PROJECTOR_GRAPH,
    foreground,
    muted,
    text_color_on,
)

# Edge kinds: "read" a dense layer reads an earlier map; "output" a map goes into the block's output;
# "flow" the next stage of a sequential path; "identity" a ResNet shortcut; "kept" maps a dense layer keeps.
DASHED_KINDS = ("output", "identity", "kept")


@dataclass(frozen=True)
class Node:
    """One box in a diagram: a tensor or the operation producing it."""

    id: str
    label: str  # text in the box; lines separated by "\n"
    kind: str  # a key of style.KIND_COLORS
    channels: int  # channels of the tensor the node stands for


@dataclass(frozen=True)
class Edge:
    """One arrow: src's tensor is an input of dst."""

    src: str
    dst: str
    kind: str = "flow"
    label: str = ""
    spine: bool = False  # on the main left-to-right path: drawn straight, so the skips arc around it


@dataclass(frozen=True)
class Trace:
    """The records of one diagram."""

    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    rankdir: str = "LR"

    def count(self, kind: str) -> int:
        """Edges of one kind."""
        return sum(e.kind == kind for e in self.edges)

    def reads(self, node_id: str) -> list[str]:
        """The nodes whose tensors node_id reads (its 'read' in-edges), in order."""
        return [e.src for e in self.edges if e.dst == node_id and e.kind == "read"]

    def read_channels(self, node_id: str) -> int:
        """Channels node_id reads: the sum over the maps it reads (k0 + k(l-1) for dense layer l)."""
        channels = {n.id: n.channels for n in self.nodes}
        return sum(channels[src] for src in self.reads(node_id))


def _block_specs(config: DenseNetConfig, block: int, input_size: int) -> list[LayerSpec]:
    if not 1 <= block <= len(config.block_config):
        raise ValueError(f"block must be in [1, {len(config.block_config)}], got {block}")
    return [s for s in layer_plan(config, input_size) if s.kind == "dense_layer" and s.block == block]


def dense_block_trace(config: DenseNetConfig, block: int = 1, input_size: int = 224) -> Trace:
    """Every connection of one dense block: x0 (the block input) and H1..HL, each reading all earlier maps.

    Edges: layer l reads x0..x_{l-1}, l "read" edges, L(L+1)/2 in all; then the block output
    concatenates x0..xL, L+1 "output" edges (what the transition or the classifier reads).
    """
    specs = _block_specs(config, block, input_size)
    first = specs[0]
    c_in, k, size = first.in_channels, config.growth_rate, f"{first.height}×{first.width}"
    nodes = [Node("x0", f"x₀ block input\n{c_in} ch · {size}", "input", c_in)]
    edges = []
    for s in specs:
        label = f"H{s.layer} → x{s.layer}: +{k} ch\nreads {s.in_channels} ch"
        nodes.append(Node(f"x{s.layer}", label, "dense_layer", k))
        edges += [Edge(f"x{i}", f"x{s.layer}", "read", spine=i == s.layer - 1) for i in range(s.layer)]
    last = block == len(config.block_config)
    c_out = specs[-1].in_channels + k
    to = "norm5 + classifier" if last else f"transition{block}"
    nodes.append(Node("out", f"[x₀ … x{len(specs)}] block output\n{c_out} ch → {to}", "concat", c_out))
    edges += [Edge(f"x{i}", "out", "output", spine=i == len(specs)) for i in range(len(specs) + 1)]
    # Top to bottom: the skip connections arc around a straight column, readable for small blocks.
    return Trace(f"Dense block {block}: {len(specs)} layers, k = {k}", tuple(nodes), tuple(edges), rankdir="TB")


def network_trace(config: DenseNetConfig, input_size: int = 224) -> Trace:
    """The whole network as stem -> dense blocks -> transitions -> classifier, each with its output shape."""
    specs = layer_plan(config, input_size)
    stem = specs[0]
    stem_ops = "conv 7×7/2 + max-pool 3×3/2" if config.stem == "imagenet" else "conv 3×3"
    nodes = [
        Node("input", f"Input\n{config.in_channels}×{input_size}×{input_size}", "input", config.in_channels),
        Node("stem", f"Stem: {stem_ops}\n{stem.out_channels}×{stem.height}×{stem.width}", "stem", stem.out_channels),
    ]
    for b, n in enumerate(config.block_config, start=1):
        layers = [s for s in specs if s.kind == "dense_layer" and s.block == b]
        c_out = layers[-1].in_channels + config.growth_rate
        label = (
            f"Dense block {b}: {n} layers × +{config.growth_rate}\n"
            f"{layers[0].in_channels} → {c_out} ch · {layers[0].height}×{layers[0].width}"
        )
        nodes.append(Node(f"block{b}", label, "block", c_out))
        for t in (s for s in specs if s.kind == "transition" and s.block == b):
            label = (
                f"Transition {b}: 1×1 conv ×θ + avg-pool 2×2\n"
                f"{t.in_channels} → {t.out_channels} ch · {t.height}×{t.width}"
            )
            nodes.append(Node(f"transition{b}", label, "transition", t.out_channels))
    norm, fc = specs[-2], specs[-1]
    nodes.append(Node("norm5", f"BN-ReLU + global avg-pool\n{norm.out_channels}×1×1", "norm", norm.out_channels))
    label = f"Linear classifier\n{fc.in_channels} → {fc.out_channels}"
    nodes.append(Node("classifier", label, "classifier", fc.out_channels))
    edges = tuple(Edge(a.id, b.id) for a, b in itertools.pairwise(nodes))
    return Trace(f"DenseNet, depth {config.depth}: the whole network", tuple(nodes), edges, rankdir="TB")


def resnet_block_trace(config: ResNetConfig, input_size: int = 224) -> Trace:
    """One residual block with an identity shortcut: the input is added, so channels stay the same."""
    specs = [s for s in layer_plan(config, input_size) if s.kind == "residual_block"]
    spec = next((s for s in specs if s.in_channels == s.out_channels), specs[-1])
    c, size = spec.out_channels, f"{spec.height}×{spec.width}"
    width = c // config.expansion
    if config.block == "bottleneck":
        ops = [("1×1 conv, BN, ReLU", width), ("3×3 conv, BN, ReLU", width), ("1×1 conv, BN", c)]
    else:
        ops = [("3×3 conv, BN, ReLU", c), ("3×3 conv, BN", c)]
    nodes = [Node("x", f"x_(l−1)\n{c} ch · {size}", "input", c)]
    nodes += [Node(f"op{i}", f"{text}\n{ch} ch", "conv", ch) for i, (text, ch) in enumerate(ops, start=1)]
    nodes += [Node("add", f"+ add, ReLU → x_l\n{c} ch (same width)", "add", c)]
    edges = [Edge(a.id, b.id) for a, b in itertools.pairwise(nodes)]
    edges.append(Edge("x", "add", "identity", "identity"))
    title = f"ResNet block ({spec.path}): x_l = H_l(x_(l−1)) + x_(l−1)"
    return Trace(title, tuple(nodes), tuple(edges), rankdir="TB")


def dense_layer_trace(config: DenseNetConfig, block: int = 1, layer: int = 3, input_size: int = 224) -> Trace:
    """One dense layer H_l: it concatenates every earlier map, adds k new ones, and the block keeps all."""
    specs = _block_specs(config, block, input_size)
    if not 1 <= layer <= len(specs):
        raise ValueError(f"layer must be in [1, {len(specs)}], got {layer}")
    spec, k = specs[layer - 1], config.growth_rate
    c_in, c0, size = spec.in_channels, specs[0].in_channels, f"{spec.height}×{spec.width}"
    shown = list(range(layer)) if layer <= 4 else [0, 1, layer - 1]
    nodes = []
    for i in shown:
        nodes.append(Node(f"x{i}", f"x{i}\n{c0 if i == 0 else k} ch · {size}", "input", c0 if i == 0 else k))
        if i == 1 and layer > 4:
            nodes.append(Node("more", f"… {layer - 3} more maps\n{(layer - 3) * k} ch", "input", (layer - 3) * k))
    sources = [n.id for n in nodes]
    nodes.append(Node("cat", f"concatenate [x₀ … x{layer - 1}]\n{c_in} ch", "concat", c_in))
    if config.bn_size > 0:
        ops = [("BN, ReLU, 1×1 conv", config.bn_size * k), ("BN, ReLU, 3×3 conv", k)]
    else:
        ops = [("BN, ReLU, 3×3 conv", k)]
    nodes += [Node(f"op{i}", f"{text}\n{ch} ch", "conv", ch) for i, (text, ch) in enumerate(ops, start=1)]
    nodes.append(Node("keep", f"[x₀ … x{layer}] kept for later layers\n{c_in + k} ch (+k)", "concat", c_in + k))
    edges = [Edge(s, "cat", "read") for s in sources]
    chain = ["cat", *(f"op{i}" for i in range(1, len(ops) + 1)), "keep"]
    edges += [Edge(a, b) for a, b in itertools.pairwise(chain)]
    edges.append(Edge("cat", "keep", "kept", "kept"))
    title = f"Dense layer H{layer} of block {block}: x_l = H_l([x₀, …, x_(l−1)])"
    return Trace(title, tuple(nodes), tuple(edges), rankdir="TB")


def connectivity_matrix(trace: Trace) -> pd.DataFrame:
    """Who reads whom in a block trace: rows the layers H1..HL, columns the maps x0..x_(L-1); 1 = reads."""
    readers = [n.id for n in trace.nodes if n.kind == "dense_layer"]
    sources = ["x0", *readers[:-1]]
    matrix = pd.DataFrame(0, index=[f"H{r[1:]}" for r in readers], columns=sources)
    for e in trace.edges:
        if e.kind == "read":
            matrix.loc[f"H{e.dst[1:]}", e.src] = 1
    return matrix


def draw(trace: Trace, highlight: str | None = None, dark: bool = False, projector: bool = False) -> graphviz.Digraph:
    """Render a trace; with `highlight`, that node and the edges into it stand out and the rest recede.

    `projector`: the projector theme (style.PROJECTOR_GRAPH): larger type and thicker lines."""
    fg, faint = foreground(dark), muted(dark)
    sizes = PROJECTOR_GRAPH if projector else {"title": "20", "node": GRAPH_FONT_SIZE, "edge": str(LABEL_SIZE)}
    thick = {"penwidth": PROJECTOR_GRAPH["penwidth"]} if projector else {}
    dot = graphviz.Digraph(name=trace.title)
    dot.attr(
        "graph",
        rankdir=trace.rankdir,
        bgcolor="transparent",
        label=trace.title,
        labelloc="t",
        fontname=FONT_FAMILY,
        fontsize=sizes["title"],
        fontcolor=fg,
        nodesep="0.25",
        ranksep="0.45",
    )
    dot.attr("node", shape="box", style="rounded,filled", fontname=FONT_FAMILY, fontsize=sizes["node"], color=fg,
             **thick)
    dot.attr("edge", color=fg, fontcolor=fg, fontname=FONT_FAMILY, fontsize=sizes["edge"], arrowsize="0.7",
             **thick)
    sources = set(trace.reads(highlight)) if highlight else set()
    spine = {e.src for e in trace.edges if e.spine} | {e.dst for e in trace.edges if e.spine}
    for n in trace.nodes:
        fill = KIND_COLORS.get(n.kind, KIND_COLORS["input"])
        attrs = {"fillcolor": fill, "fontcolor": text_color_on(fill)}
        if n.id in spine:
            attrs["group"] = "spine"  # graphviz keeps edges within a group straight
        if n.id == highlight:
            attrs.update(penwidth="4", color=HIGHLIGHT_COLOR)
        elif n.id in sources:
            attrs.update(penwidth="3", color=HIGHLIGHT_COLOR)
        dot.node(n.id, n.label, **attrs)
    for e in trace.edges:
        attrs = {}
        if e.kind in DASHED_KINDS:
            attrs["style"] = "dashed"
        if e.label:
            attrs["label"] = e.label
        if e.spine:
            attrs["weight"] = "100"
        if highlight:
            lit = e.dst == highlight and e.kind == "read"
            lit_width = "5" if projector else "3"
            attrs.update(color=HIGHLIGHT_COLOR, penwidth=lit_width) if lit else attrs.update(color=faint)
        dot.edge(e.src, e.dst, **attrs)
    return dot
