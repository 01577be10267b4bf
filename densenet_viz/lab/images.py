"""Images for the feature-map views: bundled samples, checked upload decoding, and preprocessing.

Every bad upload (empty, too large, not an image, truncated, a decompression bomb, an unsupported
format) raises ValueError with what was wrong and what is allowed; what can be converted (16-bit,
grayscale, RGBA, CMYK, palette) is converted, and the conversion is reported in `notes`.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

# Uploads: what Pillow may decode and how big it may be. The pixel limit is checked from the header,
# before any pixel data is decoded, so a small file that claims a huge canvas costs nothing.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
ALLOWED_TEXT = "PNG, JPEG, WebP or BMP"
UPLOAD_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp")
MAX_UPLOAD_MIB = 20  # also the uploader's limit (Streamlit counts upload sizes in MiB)
MAX_UPLOAD_BYTES = MAX_UPLOAD_MIB * 1024 * 1024
MAX_PIXELS = 40_000_000  # about 6300 x 6300; a 40 MP photo decodes to 120 MB of RGB

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
    """An upload or sample as an 8-bit RGB or L PIL image, with what was done to get there."""

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


def load_sample(name: str) -> DecodedImage:
    """One of SAMPLE_IMAGES as an 8-bit RGB or L image."""
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample image {name!r}; choose one of {', '.join(SAMPLE_IMAGES)}")
    import skimage.data  # imported here: only the samples need scikit-image

    array = getattr(skimage.data, name)()
    image = Image.fromarray(array)
    return DecodedImage(image=image.convert("RGB") if image.mode != "L" else image, source_format="sample")


def _to_8bit_gray(image: Image.Image) -> Image.Image:
    """A 16- or 32-bit integer grayscale image scaled to 0..255 (0..65535 maps linearly)."""
    array = np.asarray(image).astype(np.float64)
    return Image.fromarray(np.clip(np.round(array / 257.0), 0, 255).astype(np.uint8), mode="L")


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


def decode_upload(data: bytes, filename: str = "upload") -> DecodedImage:
    """Decode uploaded bytes into an 8-bit RGB or L image, or raise ValueError saying what is wrong."""
    allowed = ALLOWED_TEXT
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"{filename}: expected the file's bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) == 0:
        raise ValueError(f"{filename} is empty (0 bytes); upload a {allowed} image")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(
            f"{filename} is {len(data) / 2**20:.1f} MiB; the limit is {MAX_UPLOAD_BYTES / 2**20:.0f} MiB"
        )
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
        if width < 1 or height < 1:
            raise ValueError(f"{filename} has an empty canvas ({width}x{height})")
        if width * height > MAX_PIXELS:
            raise ValueError(
                f"{filename} is {width}x{height} = {width * height:,} pixels (a decompression bomb?); "
                f"the limit is {MAX_PIXELS:,} pixels"
            )
        try:
            image.load()  # decode now, inside the guard: truncated or corrupt data fails here
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(f"{filename} decodes to too many pixels; the limit is {MAX_PIXELS:,}") from exc
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
            raise ValueError(f"{filename} is truncated or corrupt ({fmt}): {exc}") from exc
    notes: list[str] = []
    try:
        image = ImageOps.exif_transpose(image)  # phones store rotation in EXIF, not in the pixels
    except (OSError, ValueError, SyntaxError):
        notes.append("EXIF orientation could not be read and was ignored")
    image = _normalise_mode(image, notes)
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
    whole shorter side.
    """
    if isinstance(input_size, bool) or not isinstance(input_size, int) or not 1 <= input_size <= 4096:
        raise ValueError(f"input_size must be an integer in [1, 4096], got {input_size!r}")
    if not 0.1 <= crop_fraction <= 1.0:
        raise ValueError(f"crop_fraction must be in [0.1, 1.0], got {crop_fraction}")
    mean, std = normalization(in_channels)
    image = image.convert("L" if in_channels == 1 else "RGB")
    width, height = image.size
    short = max(input_size, round(input_size / crop_fraction))
    scale = short / min(width, height)
    new_size = (max(short, round(width * scale)), max(short, round(height * scale)))
    resized = image.resize(new_size, Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (new_size[0] - input_size) // 2, (new_size[1] - input_size) // 2
    cropped = resized.crop((left, top, left + input_size, top + input_size))
    display = np.asarray(cropped, dtype=np.uint8).copy()
    x = torch.from_numpy(display.astype(np.float32) / 255.0)
    x = x.unsqueeze(0) if in_channels == 1 else x.permute(2, 0, 1)  # (C, S, S)
    x = (x - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    return Preprocessed(tensor=x.unsqueeze(0).contiguous(), display=display, mean=mean, std=std)
