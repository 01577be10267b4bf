"""Records the lab produces and the figures draw: plain data, so that viz/ needs nothing from lab/."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChannelGroup:
    """A run of channels produced by one source: the block input x0 (layer 0) or dense layer `layer`."""

    label: str
    layer: int  # 0 = the block input x0, l = dense layer l; -1 outside dense blocks
    start: int
    stop: int  # exclusive

    @property
    def size(self) -> int:
        return self.stop - self.start


def spread_channels(groups: list[ChannelGroup], n: int) -> list[int]:
    """Up to n channel indices taken round-robin from the groups, so every source layer shows up."""
    iters = [iter(range(g.start, g.stop)) for g in groups]
    chosen: list[int] = []
    while len(chosen) < n and iters:
        for it in list(iters):
            c = next(it, None)
            if c is None:
                iters.remove(it)
            elif len(chosen) < n:
                chosen.append(c)
    return sorted(chosen)


def source_of(groups: list[ChannelGroup], n_channels: int) -> list[str]:
    """The group label of each channel 0..n_channels-1."""
    labels = [""] * n_channels
    for g in groups:
        for c in range(g.start, min(g.stop, n_channels)):
            labels[c] = g.label
    return labels


@dataclass(frozen=True)
class EpochResult:
    """One model's numbers after one epoch."""

    model: str
    epoch: int
    loss: float  # mean training cross-entropy over the epoch
    train_acc: float  # accuracy on the training batches as they were seen (train mode)
    test_acc: float  # accuracy on the held-out digits (eval mode)
    seconds: float


@dataclass
class ReuseMap:
    """values[t, s]: how strongly target t reads source s, per target normalised to a maximum of 1.

    Sources are the block input x0 (s = 0) and dense layers 1..L; targets are dense layers 1..L and,
    where present, the unit reading the whole block (its transition or the classifier). NaN: no edge.
    """

    block: int
    values: np.ndarray  # (targets, 1 + L)
    raw: np.ndarray  # the same before per-target normalisation: mean |w| per input channel
    targets: list[str]
    sources: list[str]
