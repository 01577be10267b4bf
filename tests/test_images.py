"""Sample images, upload decoding (every bad upload gets a clean ValueError), and preprocessing."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image, ImageOps
from second_methods import to_display

from densenet_viz.lab import images
from densenet_viz.lab.images import decode_upload, load_sample, preprocess

RNG = np.random.default_rng(0)
PHOTO = Image.fromarray(RNG.integers(0, 256, (60, 90, 3), dtype=np.uint8))

# The file each sample reads inside scikit-image's package (bundled in the wheel: nothing is downloaded).
SAMPLE_FILES = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "camera": "camera.png",
    "coins": "coins.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
}


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR (with a correct CRC) claims width x height: a decompression bomb header."""
    small = encode(Image.new("1", (8, 8)), "PNG")
    length = struct.unpack(">I", small[8:12])[0]
    body = bytearray(small[16 : 16 + length])
    body[0:8] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(body)))
    return small[:16] + bytes(body) + crc + small[16 + length + 4 :]


@pytest.mark.parametrize("name", list(images.SAMPLE_IMAGES))
def test_samples_are_bundled_and_load(name):
    assert (Path(skimage.data.__file__).parent / SAMPLE_FILES[name]).is_file()
    decoded = load_sample(name)
    assert decoded.image.mode in ("RGB", "L")
    assert min(decoded.image.size) >= 100


def test_unknown_sample_is_a_value_error():
    with pytest.raises(ValueError, match="unknown sample"):
        load_sample("lena")


def test_preprocess_shapes_and_imagenet_normalisation():
    solid = Image.new("RGB", (300, 200), (124, 116, 104))
    pre = preprocess(solid, 64, in_channels=3)
    assert pre.tensor.shape == (1, 3, 64, 64) and pre.tensor.dtype == torch.float32
    assert pre.display.shape == (64, 64, 3) and pre.display.dtype == np.uint8
    expected = [(v / 255 - m) / s for v, m, s in zip((124, 116, 104), images.IMAGENET_MEAN, images.IMAGENET_STD,
                                                     strict=True)]
    assert torch.allclose(pre.tensor[0, :, 10, 10], torch.tensor(expected), atol=1e-6)


def test_preprocess_one_channel_uses_mean_and_std_one_half():
    pre = preprocess(Image.new("L", (40, 40), 255), 16, in_channels=1)
    assert pre.tensor.shape == (1, 1, 16, 16) and pre.display.shape == (16, 16)
    assert torch.allclose(pre.tensor, torch.ones(1, 1, 16, 16))  # (1 - 0.5) / 0.5


def test_preprocess_centre_crops_the_long_side():
    wide = np.zeros((100, 300, 3), dtype=np.uint8)
    wide[:, 140:160] = 255  # a white stripe in the middle of a black, wide image
    pre = preprocess(Image.fromarray(wide), 50)
    assert pre.display[:, 25].min() > 200  # the stripe sits in the centre of the crop
    assert pre.display[:, :15].max() == 0 and pre.display[:, -15:].max() == 0


def test_preprocess_crop_fraction_and_upscaling():
    assert preprocess(PHOTO, 224, crop_fraction=0.875).tensor.shape == (1, 3, 224, 224)
    assert preprocess(Image.new("L", (8, 8)), 32, in_channels=1).tensor.shape == (1, 1, 32, 32)


def test_to_display_undoes_the_normalisation():
    pre = preprocess(PHOTO, 48)
    assert np.abs(to_display(pre.tensor, pre.mean, pre.std).astype(int) - pre.display.astype(int)).max() <= 1


@pytest.mark.parametrize("kwargs", [{"in_channels": 4}, {"input_size": 0}, {"crop_fraction": 1.5}])
def test_preprocess_rejects_bad_arguments(kwargs):
    args = {"input_size": 32, "in_channels": 3} | kwargs
    with pytest.raises(ValueError):
        preprocess(PHOTO, **args)


def _bad_uploads() -> dict[str, tuple[bytes, str]]:
    png, jpeg = encode(PHOTO, "PNG"), encode(PHOTO, "JPEG")
    corrupt = bytearray(png)
    idat = png.index(b"IDAT")
    corrupt[idat + 8 : idat + 40] = bytes(32)  # zero the start of the compressed pixel data
    return {
        "zero bytes": (b"", "empty"),
        "over the size limit": (b"\0" * (images.MAX_UPLOAD_BYTES + 1), "limit is 20 MiB"),
        "not an image": (b"just some text, not pixels\n" * 10, "not an image"),
        "a GIF": (encode(PHOTO, "GIF"), "GIF image, which is not supported"),
        "truncated PNG": (png[: len(png) // 2], "truncated or corrupt"),
        "truncated JPEG": (jpeg[: len(jpeg) * 2 // 3], "truncated or corrupt"),
        "corrupt PNG data": (bytes(corrupt), "truncated or corrupt"),
        "bomb header 100000x100000": (png_claiming(100_000, 100_000), "decompression bomb"),
        "bomb header 7000x7000": (png_claiming(7000, 7000), "limit is 16,777,216 pixels"),
        "bomb 1-bit 6400x6400 compressed": (encode(Image.new("1", (6400, 6400)), "PNG"), "limit is 16,777,216 pixels"),
        "a strip 100000x10": (png_claiming(100_000, 10), "up to 20:1"),
        "a strip 3x60000": (png_claiming(3, 60_000), "up to 20:1"),
        "signature and header only": (png[:33], "corrupt"),
    }


@pytest.mark.parametrize("case", list(_bad_uploads()))
def test_every_bad_upload_gets_a_clean_value_error(case):
    data, words = _bad_uploads()[case]
    with pytest.raises(ValueError, match=words) as info:
        decode_upload(data, "upload.png")
    assert "upload.png" in str(info.value)


def test_bomb_is_refused_before_decoding():
    data = encode(Image.new("1", (6400, 6400)), "PNG")
    assert len(data) < 100_000  # a small file...
    with pytest.raises(ValueError, match="40,960,000 pixels"):  # ...refused from its header alone
        decode_upload(data)


def test_messages_say_what_is_allowed():
    with pytest.raises(ValueError, match="PNG, JPEG, WebP or BMP"):
        decode_upload(b"%PDF-1.4 not an image")
    with pytest.raises(ValueError):
        decode_upload("not bytes")  # type: ignore[arg-type]


def _convertible() -> dict[str, tuple[bytes, str, str]]:
    sixteen = Image.fromarray(np.array([[0, 257 * 100, 65535]] * 3, dtype=np.uint16))
    rgba = PHOTO.convert("RGBA")
    rgba.putpixel((0, 0), (10, 20, 30, 0))  # fully transparent: must become white
    palette = PHOTO.convert("P")
    return {
        "16-bit grayscale PNG": (encode(sixteen, "PNG"), "L", "16-bit"),
        "grayscale PNG": (encode(PHOTO.convert("L"), "PNG"), "L", ""),
        "RGBA PNG": (encode(rgba, "PNG"), "RGB", "transparency"),
        "LA PNG": (encode(PHOTO.convert("LA"), "PNG"), "L", "transparency"),
        "CMYK JPEG": (encode(PHOTO.convert("CMYK"), "JPEG"), "RGB", "CMYK"),
        "palette PNG": (encode(palette, "PNG"), "RGB", "palette"),
        "palette PNG with transparency": (encode(palette, "PNG", transparency=0), "RGB", "transparency on white"),
        "1-bit PNG": (encode(PHOTO.convert("1"), "PNG"), "L", "1-bit"),
        "JPEG": (encode(PHOTO, "JPEG"), "RGB", ""),
        "BMP": (encode(PHOTO, "BMP"), "RGB", ""),
        "WebP": (encode(PHOTO, "WEBP"), "RGB", ""),
    }


@pytest.mark.parametrize("case", list(_convertible()))
def test_convertible_uploads_become_8_bit_rgb_or_gray(case):
    data, mode, note = _convertible()[case]
    for channels in (1, 3):
        pre = images.prepare_upload(data, case, 32, channels)
        assert pre.tensor.shape == (1, channels, 32, 32)
        assert pre.display.shape == ((32, 32) if channels == 1 else (32, 32, 3)) and pre.display.dtype == np.uint8
        assert note in " ".join(pre.notes)
    gray = (pre.display == pre.display[..., :1]).all()  # a grayscale source shows equal R, G and B
    assert gray == (mode == "L")


def test_sixteen_bit_values_are_scaled_not_clipped():
    sixteen = Image.fromarray(np.array([[0, 257 * 100, 65535]] * 3, dtype=np.uint16))
    # a 3x3 image at input 3: resized to its own size, so the display holds the converted values as they are
    assert images.prepare_upload(encode(sixteen, "PNG"), "s.png", 3, 1).display.tolist() == [[0, 100, 255]] * 3
    # round to nearest: 128 / 257 rounds down, 129 / 257 up (a float division rounds the same)
    odd = Image.fromarray(np.array([[128, 129, 257 * 200 + 128]] * 3, dtype=np.uint16))
    assert images.prepare_upload(encode(odd, "PNG"), "o.png", 3, 1).display.tolist() == [[0, 1, 200]] * 3


def test_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    assert images.prepare_upload(encode(rgba, "PNG"), "t.png", 4).display[0, 0].tolist() == [255, 255, 255]


def _whole_then_crop(data: bytes, size: int, channels: int, crop: float) -> np.ndarray:
    """The pixels of the pipeline before decoding was bounded: decode everything, EXIF-rotate, convert the whole
    image, resize its shorter side to size / crop, then take the centre square."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    if image.mode.startswith("I;16"):
        scaled = np.round(np.asarray(image).astype(np.float64) / 257.0)  # the float way: round(v / 257)
        image = Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8))
    elif image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    image = image.convert("L" if channels == 1 else "RGB")
    short = max(size, round(size / crop))
    scale = short / min(image.size)
    new = (max(short, round(image.size[0] * scale)), max(short, round(image.size[1] * scale)))
    resized = image.resize(new, Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)))


def _ordinary_uploads() -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    photo = Image.fromarray(rng.integers(0, 256, (1512, 2016, 3), dtype=np.uint8))  # a phone photo, 3 MP
    rotated = photo.getexif()
    rotated[0x0112] = 6  # "rotate 90° clockwise to display", as phones store a portrait shot
    return {
        "phone JPEG": encode(photo, "JPEG", quality=90),
        "EXIF-rotated JPEG": encode(photo.resize((1008, 756)), "JPEG", exif=rotated.tobytes()),
        "16-bit PNG": encode(Image.fromarray(rng.integers(0, 65536, (300, 451), dtype=np.uint16)), "PNG"),
        "RGBA PNG": encode(Image.fromarray(rng.integers(0, 256, (480, 640, 4), dtype=np.uint8)), "PNG"),
        "palette PNG": encode(photo.resize((320, 240)).convert("P"), "PNG"),
        "3:1 panorama": encode(photo.resize((1800, 600)), "PNG"),
    }


@pytest.mark.parametrize("case", list(_ordinary_uploads()))
def test_ordinary_uploads_give_the_pixels_of_resizing_the_whole_image(case):
    data = _ordinary_uploads()[case]
    for size, channels, crop in ((224, 3, 0.875), (224, 1, 1.0), (512, 3, 1.0), (1024, 3, 0.875)):
        shown = images.prepare_upload(data, case, size, channels, crop).display
        np.testing.assert_array_equal(shown, _whole_then_crop(data, size, channels, crop), err_msg=f"{case} {size}")
    if case == "EXIF-rotated JPEG":
        assert Image.open(io.BytesIO(data)).size == (1008, 756)  # stored landscape, shown portrait:
        assert images.decode_upload(data).image.size == (756, 1008)


def test_a_long_strip_costs_what_its_crop_costs():
    """20:1, the longest allowed: at input 1024 resizing the whole would make 21 MP; only the centre is resampled,
    within one grey level of the whole-image result."""
    strip = Image.fromarray(np.random.default_rng(2).integers(0, 256, (100, 2000), dtype=np.uint8))
    data = encode(strip, "PNG")
    shown = images.prepare_upload(data, "strip.png", 1024, 1).display
    assert shown.shape == (1024, 1024)
    assert np.abs(shown.astype(int) - _whole_then_crop(data, 1024, 1, 1.0).astype(int)).max() <= 2
