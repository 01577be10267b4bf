"""Images for the feature-map views: bundled samples, checked upload decoding, and preprocessing.

Every bad upload (empty, too large, not an image, truncated, a decompression bomb, an unsupported
format) raises ValueError with what was wrong and what is allowed; what can be converted (16-bit,
grayscale, RGBA, CMYK, palette) is converted, and the conversion is reported in `notes`.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..models.config import check_int
from ..units import MIB

# Uploads: what Pillow may decode and how big it may be. The pixel limit is checked from the header,
# before any pixel data is decoded, so a small file that claims a huge canvas costs nothing.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
ALLOWED_TEXT = "PNG, JPEG, WebP or BMP"
UPLOAD_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp")
MAX_UPLOAD_MIB = 20  # also the uploader's limit (Streamlit counts upload sizes in MiB)
MAX_UPLOAD_BYTES = MAX_UPLOAD_MIB * MIB
# Decoded pixels at most (a 16 MP photo; Pillow holds RGB and RGBA at 4 bytes a pixel: 64 MiB). A larger JPEG is
# decoded at 1/2, 1/4 or 1/8 scale to fit; other formats are refused.
MAX_PIXELS = 4096 * 4096
MAX_ASPECT = 20  # longest side over shortest: panoramas pass, a 100,000 x 10 strip does not
MAX_RESIZED_PIXELS = 2048 * 2048  # a whole image resized before the crop (a 3:1 panorama at input 1024 fits)

# torchvision's ImageNet statistics (the numbers every pretrained DenseNet was trained with).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# One-channel models (the digits demo) see [0, 1] intensities mapped to [-1, 1]: a neutral choice that
# needs no dataset statistics, and the same mapping the digits training uses (training.digits_data).
GRAY_MEAN = (0.5,)
GRAY_STD = (0.5,)

# Images shipped inside scikit-image's wheel (skimage/data/*.png|jpg): no download at run time.
SAMPLE_IMAGES: dict[str, str] = {
    "astronaut": "Eileen Collins, astronaut (RGB, 512x512)",
    "chelsea": "Chelsea the cat (RGB, 451x300)",
    "coffee": "A cup of coffee (RGB, 600x400)",
    "rocket": "A rocket launch (RGB, 640x427)",
    "camera": "The cameraman (grayscale, 512x512)",
    "coins": "Greek coins (grayscale, 384x303)",
    "hubble_deep_field": "Hubble deep field (RGB, 1000x872)",
    "immunohistochemistry": "Immunohistochemistry stain (RGB, 512x512)",
}


@dataclass
class DecodedImage:
    """An upload or sample as an upright PIL image (any mode Pillow decodes), with what was done to get there."""

    image: Image.Image
    source_format: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Preprocessed:
    """A model input of shape (1, C, S, S) and the same crop as a displayable uint8 array."""

    tensor: torch.Tensor  # (1, C, S, S), normalised
    display: np.ndarray  # (S, S, 3) or (S, S) uint8: what the network sees, before normalisation
    mean: tuple[float, ...]
    std: tuple[float, ...]
    notes: tuple[str, ...] = ()  # what was done to the image to get here (conversions, reduced decoding)


def load_sample(name: str) -> DecodedImage:
    """One of SAMPLE_IMAGES as an 8-bit RGB or L image."""
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample image {name!r}; choose one of {', '.join(SAMPLE_IMAGES)}")
    import skimage.data  # imported here: only the samples need scikit-image

    array = getattr(skimage.data, name)()
    image = Image.fromarray(array)
    return DecodedImage(image=image.convert("RGB") if image.mode != "L" else image, source_format="sample")


def _to_8bit_gray(image: Image.Image) -> Image.Image:
    """A 16- or 32-bit integer grayscale image scaled to 0..255 (0..65535 maps linearly, rounded to nearest)."""
    array = np.asarray(image).astype(np.int64)
    # round(v / 257) in integers (v / 257 is never exactly half-way): no float64 copy of a large image
    return Image.fromarray(np.clip((2 * array + 257) // 514, 0, 255).astype(np.uint8), mode="L")


def _on_white(image: Image.Image) -> Image.Image:
    """Composite an image with alpha onto a white background (transparent areas become white)."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _normalise_mode(image: Image.Image, notes: list[str]) -> Image.Image:
    """Convert any decodable mode to 8-bit RGB or L, noting each conversion."""
    mode = image.mode
    if mode in ("RGB", "L"):
        return image
    if mode.startswith("I;16") or mode == "I":
        notes.append(f"16-bit image (mode {mode}) scaled to 8 bits")
        return _to_8bit_gray(image)
    if mode == "1":
        notes.append("1-bit image converted to 8-bit grayscale")
        return image.convert("L")
    if mode == "P":
        has_alpha = "transparency" in image.info
        notes.append("palette image converted to RGB" + (" (transparency on white)" if has_alpha else ""))
        return _on_white(image) if has_alpha else image.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        notes.append(f"{mode} image: transparency composited on white")
        rgb = _on_white(image)
        return rgb.convert("L") if mode in ("LA", "La") else rgb
    if mode == "CMYK":
        notes.append("CMYK image converted to RGB")
        return image.convert("RGB")
    try:
        converted = image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ValueError(f"image mode {mode} cannot be converted to RGB") from exc
    notes.append(f"{mode} image converted to RGB")
    return converted


def _describe_format(data: bytes) -> str:
    """'a GIF image' for a format Pillow knows but we do not accept, else 'not an image (or corrupt)'."""
    try:
        with Image.open(io.BytesIO(data)) as other:  # reads the header only
            return f"a {other.format} image, which is not supported"
    except Exception:  # any failure here just means "not an image we can name"
        return "not an image (or the file is corrupt)"


def _check_canvas(filename: str, width: int, height: int, limit: int) -> None:
    """Refuse, before any pixel is decoded, a canvas that is empty, too large or absurdly narrow."""
    if width < 1 or height < 1:
        raise ValueError(f"{filename} has an empty canvas ({width}x{height})")
    if width * height > limit:
        raise ValueError(f"{filename} is {width}x{height} = {width * height:,} pixels; the limit is {limit:,} pixels "
                         f"(a larger JPEG is read at a reduced scale): save it smaller")
    if max(width, height) > MAX_ASPECT * min(width, height):
        ratio = max(width, height) / min(width, height)
        raise ValueError(f"{filename} is {width}x{height} pixels, a strip {ratio:,.0f} times longer than wide; the "
                         f"network sees a square, so images up to {MAX_ASPECT}:1 are taken")


def _draft_scale(width: int, height: int) -> int:
    """The smallest JPEG decoding scale (1, 2, 4 or 8) that brings the image within MAX_PIXELS."""
    return next((s for s in (1, 2, 4, 8) if math.ceil(width / s) * math.ceil(height / s) <= MAX_PIXELS), 8)


def decode_upload(data: bytes, filename: str = "upload") -> DecodedImage:
    """Decode uploaded bytes with bounded memory, or raise ValueError saying what is wrong.

    The canvas is checked from the header before any pixel is decoded (pixels, aspect ratio); a large JPEG is
    decoded at a reduced scale (its own DCT scaling) to at most MAX_PIXELS. The result is upright (EXIF
    orientation applied) in the mode it was stored in; `preprocess` converts only the part the network sees.
    """
    allowed = ALLOWED_TEXT
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"{filename}: expected the file's bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) == 0:
        raise ValueError(f"{filename} is empty (0 bytes); upload a {allowed} image")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"{filename} is {len(data):,} bytes; the limit is {MAX_UPLOAD_MIB} MiB "
                         f"({MAX_UPLOAD_BYTES:,} bytes)")
    with warnings.catch_warnings():
        # Pillow warns (and past 2x its limit raises) about decompression bombs when it reads the header.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(
                f"{filename} claims a huge canvas (a decompression bomb?); the limit is {MAX_PIXELS:,} pixels"
            ) from exc
        except UnidentifiedImageError as exc:
            raise ValueError(f"{filename} is {_describe_format(data)}; upload a {allowed} image") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ValueError(f"{filename} could not be read as an image: {exc}") from exc
        width, height = image.size
        fmt = image.format or "unknown"
        scale = _draft_scale(width, height) if fmt == "JPEG" else 1
        _check_canvas(filename, width, height, MAX_PIXELS * scale**2)
        notes: list[str] = []
        if scale > 1:
            image.draft(image.mode, (math.ceil(width / scale), math.ceil(height / scale)))
            notes.append(f"{width}x{height} JPEG decoded at 1/{scale} scale ({image.size[0]}x{image.size[1]})")
        try:
            image.load()  # decode now, inside the guard: truncated or corrupt data fails here
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(f"{filename} decodes to too many pixels; the limit is {MAX_PIXELS:,}") from exc
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
            raise ValueError(f"{filename} is truncated or corrupt ({fmt}): {exc}") from exc
    try:
        image = ImageOps.exif_transpose(image)  # phones store rotation in EXIF, not in the pixels
    except (OSError, ValueError, SyntaxError):
        notes.append("EXIF orientation could not be read and was ignored")
    return DecodedImage(image=image, source_format=fmt, notes=notes)


def normalization(in_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) used for a model with in_channels 3 (ImageNet) or 1 (0.5, 0.5)."""
    if in_channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    if in_channels == 1:
        return GRAY_MEAN, GRAY_STD
    raise ValueError(f"images give 1 (grayscale) or 3 (RGB) channels; the model expects in_channels={in_channels}")


def preprocess(image: Image.Image, input_size: int, in_channels: int = 3, crop_fraction: float = 1.0) -> Preprocessed:
    """Resize the shorter side to input_size / crop_fraction, centre-crop input_size, normalise.

    crop_fraction 0.875 is torchvision's ImageNet evaluation (resize 256, crop 224); 1.0 keeps the
    whole shorter side. When resizing the whole image would make more than MAX_RESIZED_PIXELS, only the
    centre region the crop reads (plus the resampling filter's reach) is converted and resampled, so the
    cost follows the input size, not the image's length.
    """
    check_int("input_size", input_size, 1, 4096)
    if not 0.1 <= crop_fraction <= 1.0:
        raise ValueError(f"crop_fraction must be in [0.1, 1.0], got {crop_fraction}")
    mean, std = normalization(in_channels)
    width, height = image.size
    short = max(input_size, round(input_size / crop_fraction))
    scale = short / min(width, height)
    new_w, new_h = max(short, round(width * scale)), max(short, round(height * scale))
    left, top = (new_w - input_size) // 2, (new_h - input_size) // 2
    # The crop in source pixels, as a whole-image resize maps it (a source pixel per width / new_w output pixels).
    sx, sy = width / new_w, height / new_h
    box = (left * sx, top * sy, (left + input_size) * sx, (top + input_size) * sy)
    # A bilinear output pixel reads max(1, scale) source pixels on each side of its centre.
    mx, my = math.ceil(max(sx, 1.0)) + 2, math.ceil(max(sy, 1.0)) + 2
    x0, y0 = max(0, math.floor(box[0]) - mx), max(0, math.floor(box[1]) - my)
    x1, y1 = min(width, math.ceil(box[2]) + mx), min(height, math.ceil(box[3]) + my)
    notes: list[str] = []
    mode = "L" if in_channels == 1 else "RGB"
    if new_w * new_h <= MAX_RESIZED_PIXELS:  # every ordinary image: resize the whole, then crop (torchvision's way)
        resized = _normalise_mode(image, notes).convert(mode).resize((new_w, new_h), Image.Resampling.BILINEAR,
                                                                     reducing_gap=None)
        cropped = resized.crop((left, top, left + input_size, top + input_size))
    else:  # a long strip: only the region the crop reads (the filter's arithmetic may differ by one grey level)
        region = _normalise_mode(image.crop((x0, y0, x1, y1)), notes).convert(mode)
        cropped = region.resize((input_size, input_size), Image.Resampling.BILINEAR,
                                box=(box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0), reducing_gap=None)
    display = np.asarray(cropped, dtype=np.uint8).copy()
    x = torch.from_numpy(display.astype(np.float32) / 255.0)
    x = x.unsqueeze(0) if in_channels == 1 else x.permute(2, 0, 1)  # (C, S, S)
    x = (x - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    return Preprocessed(tensor=x.unsqueeze(0).contiguous(), display=display, mean=mean, std=std, notes=tuple(notes))


def prepare_upload(data: bytes, filename: str, input_size: int, in_channels: int = 3,
                   crop_fraction: float = 1.0) -> Preprocessed:
    """An upload decoded (bounded) and preprocessed for a model, with every note on what was done to it."""
    decoded = decode_upload(data, filename)
    pre = preprocess(decoded.image, input_size, in_channels, crop_fraction)
    return replace(pre, notes=(*decoded.notes, *pre.notes))
