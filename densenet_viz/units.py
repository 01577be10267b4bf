"""Numbers as people read them: bytes in binary units, large counts, MACs/FLOPs and ratios.

At the top of the package so that the analysis (error messages) and the figures (labels) share them.
"""

from __future__ import annotations

import math

MIB = 2**20  # bytes in a mebibyte: every MiB the app computes or shows

_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_COUNT_UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def format_bytes(n: int | float) -> str:
    """Bytes in binary units with the unit written: 131030528 -> '125.0 MiB'."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "–"
    value, unit = float(n), _BINARY_UNITS[0]
    for unit in _BINARY_UNITS:
        if abs(value) < 1024 or unit == _BINARY_UNITS[-1]:
            break
        value /= 1024
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"


def format_count(n: int | float, digits: int = 2) -> str:
    """A large count in short form: 7978856 -> '7.98 M'; small counts stay whole: 512 -> '512'."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "–"
    for scale, suffix in _COUNT_UNITS:
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f} {suffix}"
    return f"{int(n)}"


def format_macs(n: int) -> str:
    """MACs with the unit written, e.g. '2.83 G MACs'."""
    return f"{format_count(n)} MACs"


def format_flops(macs: int) -> str:
    """FLOPs of a MACs count (one MAC is two FLOPs), e.g. '5.67 G FLOPs'."""
    return f"{format_count(2 * macs)} FLOPs"


def format_value(value: int | float, unit: str) -> str:
    """A number as a table cell for its unit: 'bytes' -> MiB/GiB, 'MACs' -> G MACs, 'count' -> 7.98 M."""
    if unit == "bytes":
        return format_bytes(value)
    if unit == "MACs":
        return format_macs(value)
    return format_count(value)


def format_ratio(ratio: float | None) -> str:
    """A ratio as '0.31×' (or a dash when undefined)."""
    return "–" if ratio is None or not math.isfinite(ratio) else f"{ratio:.2f}×"
