"""One image file and pixel values: the one rule by which every frame becomes uint8 RGB.

`to_uint8`: uint8 values as they are; 16-bit values (16-bit PNG and TIFF files, uint16
arrays and tensors) their high byte, `v >> 8`, as PIL reads 48-bit RGB PNGs; float values
(float TIFF files, float arrays and tensors) must lie in [0, 1] and are scaled by 255 and
rounded. Floats outside [0, 1] (or not finite) are a ValueError naming the file or frame:
their scale (0-255? HDR?) would be a guess. Image files are read as a viewer shows them
(`open_image`: EXIF orientation applied, decompression bombs refused).
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps

FLOAT_RULE = "floats are read as 0-1; give values in [0, 1] or uint8 values 0-255"

# what PIL raises for files it cannot decode (SyntaxError: some broken PNG chunks)
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


def open_image(path: str | os.PathLike) -> Image.Image:
    """The image file at `path`, decoded, as a viewer shows it: turned by its EXIF
    orientation as `PIL.ImageOps.exif_transpose` does (JPEG, PNG, TIFF, WebP), in the
    file's own mode (`I;16`, `F`, `P` ... as PIL reads it).

    FileNotFoundError when there is no such file; ValueError naming the file when it
    cannot be decoded, or when it has more pixels than `PIL.Image.MAX_IMAGE_PIXELS`
    (PIL's guard against decompression bombs; raise it to read larger images)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such image file: {path}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(_bomb_message(path, e)) from None
    except _DECODE_ERRORS as e:
        raise ValueError(f"cannot read image {path}: {_one_line(e)}") from None
    return img


def _bomb_message(path: str | os.PathLike, e: Exception) -> str:
    found = re.search(r"\((\d+) pixels\)", str(e))  # PIL: "Image size (N pixels) exceeds ..."
    size = f"{int(found[1]):,} pixels" if found else "too many pixels"
    return (
        f"{path} is an image of {size}, more than the {Image.MAX_IMAGE_PIXELS:,} that "
        "PIL.Image.MAX_IMAGE_PIXELS allows (a guard against decompression bombs); raise it "
        "to read this image"
    )


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """An image file as uint8 RGB `[3, H, W]`, as a viewer shows it (`open_image`), its
    values by the rule of `to_uint8`."""
    return image_tensor(open_image(path), f"image {path}")


def image_tensor(img: Image.Image, what: str = "the image") -> torch.Tensor:
    """A PIL image as uint8 RGB `[3, H, W]`: 16-bit (`I;16`, `I`) and float (`F`) images
    by the rule of `to_uint8`, every other mode as PIL converts it to RGB. `what` names
    the image in errors."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        return to_uint8(_grey_values(img, what), what).repeat(3, 1, 1)
    try:
        rgb = img.convert("RGB")
    except ValueError as e:
        raise ValueError(f"cannot read {what}: {_one_line(e)}") from None
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)


def _grey_values(img: Image.Image, what: str) -> torch.Tensor:
    """The `[1, H, W]` values of a 16-bit or float greyscale image: uint16 or float32.
    Mode `I` (32-bit integers: older PILs read 16-bit PNGs so) must hold 16-bit values."""
    values = np.asarray(img)
    if img.mode == "I" and values.size and (values.min() < 0 or values.max() > 0xFFFF):
        raise ValueError(
            f"{what} holds 32-bit integers from {values.min()} to {values.max()}; integer "
            "images are read as 8-bit or 16-bit (values 0 to 65535)"
        )
    kind = np.float32 if img.mode == "F" else np.uint16
    return torch.from_numpy(values.astype(kind))[None]


def to_uint8(pixels: torch.Tensor | np.ndarray, what: str = "the frame") -> torch.Tensor:
    """Pixel values as uint8, shape kept: uint8 as they are, uint16 their high byte
    (`v >> 8`), floats in [0, 1] times 255 rounded (half to even). ValueError naming
    `what` for floats outside [0, 1] or not finite; TypeError for other dtypes."""
    if isinstance(pixels, np.ndarray):
        pixels = torch.from_numpy(np.array(pixels, pixels.dtype.newbyteorder("=")))  # a copy
    if pixels.dtype == torch.uint8:
        return pixels
    if pixels.dtype == torch.uint16:
        return (pixels.to(torch.int32) >> 8).to(torch.uint8)
    if pixels.dtype.is_floating_point:
        values = pixels.to(torch.float64)
        _check_unit_range(values, what)
        return values.mul(255).round().to(torch.uint8)
    dtype = str(pixels.dtype).removeprefix("torch.")
    raise TypeError(f"{what} has {dtype} values; a frame holds uint8, uint16 or float values")


def _check_unit_range(values: torch.Tensor, what: str) -> None:
    """ValueError unless every one of the float `values` lies in [0, 1]."""
    if values.numel() == 0:
        return
    if not torch.isfinite(values).all():
        raise ValueError(f"{what} has float values that are not finite (NaN or inf): {FLOAT_RULE}")
    lo, hi = values.min().item(), values.max().item()
    if lo < 0 or hi > 1:
        raise ValueError(f"{what} has float values from {lo:.4g} to {hi:.4g}: {FLOAT_RULE}")


def _readable(dtype: torch.dtype | np.dtype) -> bool:
    """Whether `to_uint8` reads values of `dtype`."""
    if isinstance(dtype, torch.dtype):
        return dtype in (torch.uint8, torch.uint16) or dtype.is_floating_point
    return (dtype.kind == "f" and dtype.itemsize <= 8) or dtype in (np.uint8, np.uint16)


def _one_line(e: BaseException) -> str:
    """An error's message on one line (for the messages that quote it)."""
    return " ".join(str(e).split())
