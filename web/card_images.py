"""名刺 images: the card's photo and extra images, checked and re-encoded before they reach storage.

An image is checked by its magic bytes and by opening it with Pillow, and re-encoded to a JPEG of at most
1024 px, which drops all metadata (EXIF, GPS, ICC profiles, comments). ``web.cards`` takes the uploads and
serves the files.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps

from core.errors import N_, InvalidInput
from core.storage import check_key

IMAGE_MAX_BYTES = 5 * 1024 * 1024
IMAGE_MAX_SIDE = 1024
VCARD_PHOTO_SIDE = 400  # the vCard carries a smaller copy; address books show a thumbnail
IMAGE_MAX_PIXELS = 40_000_000  # refuse decompression bombs before decoding


class ImageTooLarge(InvalidInput):
    code = "image_too_large"
    status = 413
    message = N_("The image is too large. Images of up to {max_mb} MB can be uploaded.")


class NotAnImage(InvalidInput):
    code = "not_an_image"
    status = 415
    message = N_("This file is not a JPEG, PNG or WebP image.")


class BrokenImage(InvalidInput):
    code = "broken_image"
    message = N_("This image could not be read. It may be damaged; please try another file.")


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.4g}"


def card_key(user_id: int, name: str) -> str | None:
    """Where a card image named ``name`` (``photo-<hex>.jpg``, from the card's row) is stored; None for a name
    that is no file name (an old or tampered row)."""
    key = f"cards/{int(user_id)}/{Path(name).name}"
    try:
        return check_key(key)
    except ValueError:
        return None


def sniff(head: bytes) -> str | None:
    """The image format by its magic bytes: JPEG, PNG or WebP; anything else is None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def reencode(data: bytes, max_side: int = IMAGE_MAX_SIDE) -> bytes:
    """A clean JPEG of at most ``max_side`` px; raises NotAnImage / BrokenImage."""
    kind = sniff(data[:16])
    if kind is None:
        raise NotAnImage()
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as image:
            if image.width * image.height > IMAGE_MAX_PIXELS:
                raise BrokenImage()
            image.load()
            upright = ImageOps.exif_transpose(image)  # phones store rotation in EXIF, which is dropped
            if upright.mode in ("RGBA", "LA", "PA") or (
                upright.mode == "P" and "transparency" in upright.info
            ):
                rgba = upright.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                upright = flat
            else:
                upright = upright.convert("RGB")
            upright.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            # Only the pixels go on: Pillow would carry a JPEG comment (and more) over from ``info``.
            clean = Image.frombytes("RGB", upright.size, upright.tobytes())
            out = io.BytesIO()
            clean.save(out, "JPEG", quality=85, optimize=True)
            return out.getvalue()
    except (NotAnImage, BrokenImage):
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise BrokenImage() from exc
