"""Job functions for the worker-pool tests (importable, so a spawned worker can unpickle them)."""

import time


def square(x: int, *, progress) -> int:
    """x squared, after reporting one partial result."""
    progress(0.5, "half way", partial=x)
    return x * x


def spin(seconds: float, checking: bool, *, progress) -> float:
    """Burn CPU for `seconds`, checking for a cancel on every loop only if `checking`."""
    end = time.monotonic() + seconds
    n = 0.0
    while time.monotonic() < end:
        if checking:
            progress.check()
        for i in range(10_000):
            n += i * 0.5
    return n


def fail(*, progress) -> None:
    """Raise a ValueError with a known message."""
    raise ValueError("no good")


def out_of_memory(*, progress) -> None:
    """Raise what CUDA raises when it runs out of memory."""
    import torch

    raise torch.OutOfMemoryError("CUDA out of memory (simulated by the test)")


def models_kept(*, progress) -> int:
    """How many random-weight models this worker keeps for the feature-map jobs."""
    from densenet_viz.lab import tasks

    return int("random" in tasks._kept)


def weights_loaded(*, progress) -> int:
    """How many models with loaded weights this worker keeps."""
    from densenet_viz.lab import tasks

    return int("loaded" in tasks._kept)


def allocate(n_bytes: int, *, progress) -> int:
    """Allocate n_bytes and touch every page; returns how many bytes it held."""
    import numpy as np

    return int(np.ones(n_bytes, dtype=np.uint8).sum())


def big_result(n_bytes: int, *, progress) -> bytes:
    """A result of n_bytes."""
    return bytes(n_bytes)


def weights_held(*, progress) -> int:
    """How many state dicts this worker holds."""
    from densenet_viz.lab import tasks

    return len(tasks._weights)
