"""How the app's colours look to colour-blind students, and how far apart two colours are.

- `simulate`: dichromat vision (protanopia, deuteranopia, tritanopia) by the matrices of Machado, Oliveira
  and Fernandes (2009), "A Physiologically-based Model for Simulation of Color Vision Deficiency", IEEE TVCG
  15(6), at severity 1.0, applied to linear sRGB.
- `ciede2000`: the CIEDE2000 colour difference, as written out step by step in Sharma, Wu and Dalal (2005),
  "The CIEDE2000 Color-Difference Formula: Implementation Notes, Supplementary Test Data, and Mathematical
  Observations", Color Research and Application 30(1), 21-30 (kL = kC = kH = 1).
- `srgb_to_lab`: sRGB (IEC 61966-2-1) to CIELAB under D65.

Plain Python floats: the checks run on a handful of palette colours.
"""

from __future__ import annotations

import itertools
import math

# Machado et al. (2009), severity 1.0, rows give the simulated linear R, G, B.
MACHADO_2009 = {
    "protanopia": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998)),
    "deuteranopia": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881)),
    "tritanopia": ((1.255528, -0.076749, -0.178779), (-0.078411, 0.930809, 0.147602), (0.004733, 0.691367, 0.303900)),
}
DEFICIENCIES = tuple(MACHADO_2009)
# sRGB primaries to XYZ (D65), IEC 61966-2-1; and the D65 white the Lab conversion divides by.
_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
_WHITE = (0.95047, 1.0, 1.08883)


def hex_to_rgb(color: str) -> tuple[float, float, float]:
    """'#RRGGBB' as sRGB components in [0, 1]."""
    h = color.lstrip("#")
    if len(h) != 6:
        raise ValueError(f"expected #RRGGBB, got {color!r}")
    return tuple(int(h[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def rgb_to_hex(rgb: tuple[float, float, float]) -> str:
    """sRGB components in [0, 1] as '#RRGGBB' (clipped)."""
    return "#" + "".join(f"{round(min(1.0, max(0.0, c)) * 255):02X}" for c in rgb)


def _to_linear(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _to_srgb(c: float) -> float:
    c = min(1.0, max(0.0, c))
    return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


def _matmul(m, v) -> tuple[float, float, float]:
    return tuple(sum(a * b for a, b in zip(row, v, strict=True)) for row in m)  # type: ignore[return-value]


def simulate(color: str, deficiency: str) -> str:
    """The colour a dichromat sees for `color` ('#RRGGBB'), as '#RRGGBB' (Machado 2009, severity 1.0)."""
    linear = tuple(_to_linear(c) for c in hex_to_rgb(color))
    return rgb_to_hex(tuple(_to_srgb(c) for c in _matmul(MACHADO_2009[deficiency], linear)))


def srgb_to_lab(color: str) -> tuple[float, float, float]:
    """CIELAB (D65) of an sRGB colour '#RRGGBB'."""
    xyz = _matmul(_RGB_TO_XYZ, tuple(_to_linear(c) for c in hex_to_rgb(color)))

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = (f(v / w) for v, w in zip(xyz, _WHITE, strict=True))
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def ciede2000(lab1: tuple[float, float, float], lab2: tuple[float, float, float]) -> float:
    """CIEDE2000 difference of two CIELAB colours (Sharma et al. 2005, equations 1-22; kL = kC = kH = 1)."""
    L1, a1, b1 = lab1
    L2, a2, b2 = lab2
    c_bar = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_bar**7 / (c_bar**7 + 25**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = 0.0 if a1p == b1 == 0 else math.degrees(math.atan2(b1, a1p)) % 360
    h2p = 0.0 if a2p == b2 == 0 else math.degrees(math.atan2(b2, a2p)) % 360
    dLp, dCp = L2 - L1, c2p - c1p
    if c1p * c2p == 0:
        dhp = 0.0
    elif abs(h2p - h1p) <= 180:
        dhp = h2p - h1p
    elif h2p - h1p > 180:
        dhp = h2p - h1p - 360
    else:
        dhp = h2p - h1p + 360
    dHp = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dhp / 2))
    Lp_bar, Cp_bar = (L1 + L2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        hp_bar = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        hp_bar = (h1p + h2p) / 2
    elif h1p + h2p < 360:
        hp_bar = (h1p + h2p + 360) / 2
    else:
        hp_bar = (h1p + h2p - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(hp_bar - 30)) + 0.24 * math.cos(math.radians(2 * hp_bar))
         + 0.32 * math.cos(math.radians(3 * hp_bar + 6)) - 0.20 * math.cos(math.radians(4 * hp_bar - 63)))
    d_theta = 30 * math.exp(-(((hp_bar - 275) / 25) ** 2))
    r_c = 2 * math.sqrt(Cp_bar**7 / (Cp_bar**7 + 25**7))
    s_l = 1 + 0.015 * (Lp_bar - 50) ** 2 / math.sqrt(20 + (Lp_bar - 50) ** 2)
    s_c = 1 + 0.045 * Cp_bar
    s_h = 1 + 0.015 * Cp_bar * t
    r_t = -math.sin(math.radians(2 * d_theta)) * r_c
    return math.sqrt((dLp / s_l) ** 2 + (dCp / s_c) ** 2 + (dHp / s_h) ** 2 + r_t * (dCp / s_c) * (dHp / s_h))


def difference(color1: str, color2: str, deficiency: str | None = None) -> float:
    """CIEDE2000 between two sRGB colours as seen with normal vision (None) or with a deficiency."""
    if deficiency is not None:
        color1, color2 = simulate(color1, deficiency), simulate(color2, deficiency)
    return ciede2000(srgb_to_lab(color1), srgb_to_lab(color2))


def closest_pairs(colors: dict[str, str], deficiency: str | None = None) -> list[tuple[float, str, str]]:
    """Every pair of named colours with its difference under `deficiency`, smallest first."""
    return sorted((difference(colors[a], colors[b], deficiency), a, b) for a, b in itertools.combinations(colors, 2))


def simulate_image(rgb, deficiency: str):
    """An 8-bit RGB image (H, W, 3 numpy array) as a dichromat sees it (Machado 2009, severity 1.0)."""
    import numpy as np  # only here: the palette checks above need plain floats alone

    srgb = np.asarray(rgb, dtype=np.float64)[..., :3] / 255
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    seen = np.clip(linear @ np.asarray(MACHADO_2009[deficiency]).T, 0, 1)
    out = np.where(seen <= 0.0031308, 12.92 * seen, 1.055 * seen ** (1 / 2.4) - 0.055)
    return np.round(out * 255).astype(np.uint8)
