"""Second methods the tests hold the library to; nothing in the library needs them, so they live here."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from densenet_viz.analysis.measure import storage_key


class _NewStorages(TorchDispatchMode):
    """Records a weak reference to every storage an operator returns (below autograd, so nothing hides)."""

    def __init__(self) -> None:
        super().__init__()
        self.storages: dict[int, tuple[StorageWeakRef, int]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, Tensor):
                storage = t.untyped_storage()
                self.storages.setdefault(storage._cdata, (StorageWeakRef(storage), storage.nbytes()))
        return out


def retained_bytes(model: nn.Module, x: Tensor | list[Tensor]) -> int:
    """Bytes of storages created during one forward that are still alive while only its output is held.

    An independent check on saved_activation_bytes: it sees every tensor the graph keeps alive,
    however it is kept (save_for_backward, attributes on a ctx, closures), minus the output itself.
    """
    inputs = [t for t in tree_flatten(x)[0] if isinstance(t, Tensor)]
    before = {storage_key(t) for t in [*model.parameters(), *model.buffers(), *inputs]}
    recorder = _NewStorages()
    with torch.enable_grad(), recorder:
        out = model(x)
    out_keys = {storage_key(t) for t in tree_flatten(out)[0] if isinstance(t, Tensor)}
    total = sum(
        nbytes
        for key, (ref, nbytes) in recorder.storages.items()
        if key not in before and key not in out_keys and not ref.expired()
    )
    del out
    return total


def count_dot_edges(source: str, dashed: bool | None = None) -> int:
    """Edges in DOT text (all, only dashed, or only solid ones): what tests and captions check against."""
    lines = [line for line in source.splitlines() if "->" in line]
    if dashed is None:
        return len(lines)
    return sum(("style=dashed" in line) == dashed for line in lines)


def to_display(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """Undo the normalisation of a (C, H, W) or (1, C, H, W) input: uint8 (H, W, 3) or (H, W)."""
    x = x.detach().float().cpu()
    if x.dim() == 4:
        x = x[0]
    x = x * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    array = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
