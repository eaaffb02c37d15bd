"""名刺 images: the card's photo and extra images, checked and re-encoded before they reach storage.

An uploaded image is untrusted: a 155 KB PNG can declare 40 megapixels and cost the decoder gigabytes. So it
is never decoded in the server. The server checks its magic bytes and hands it to a child process
(``python -m web.card_images``, under :func:`core.sandbox.apply_limits`: 512 MiB of address space, 10 s of
CPU), at most :data:`WORKERS` at a time. The child reads the dimensions from the header and refuses more
than :data:`IMAGE_MAX_PIXELS` before decoding a pixel, then decodes (JPEGs at a reduced scale straight from
the DCT) and re-encodes a JPEG of at most 1024 px, which drops all metadata (EXIF, GPS, ICC profiles,
comments). ``web.cards`` takes the uploads and serves the files.

Child protocol: the image on standard input; exit 0 with the JPEG on standard output, or exit 2 with the
refusal's code on standard output. Anything else (killed by a limit, a crash) refuses the image as broken.
"""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

from PIL import Image, ImageOps

from core import sandbox
from core.errors import N_, InvalidInput
from core.storage import check_key

IMAGE_MAX_BYTES = 5 * 1024 * 1024
IMAGE_MAX_SIDE = 1024
VCARD_PHOTO_SIDE = 400  # the vCard carries a smaller copy; address books show a thumbnail
IMAGE_MAX_PIXELS = 16_000_000  # a 12-megapixel phone photo fits; refused from the header, before decoding
WORKER_MEMORY_MB = 512
WORKER_CPU_SECONDS = 10
WORKER_TIMEOUT = 30.0  # wall clock, a safety net: the CPU limit ends a busy child first
WORKERS = 2  # image children at once per server process; more uploads wait their turn


class ImageTooLarge(InvalidInput):
    code = "image_too_large"
    status = 413
    message = N_("The image is too large. Images of up to {max_mb} MB can be uploaded.")


class ImageTooManyPixels(InvalidInput):
    code = "image_too_many_pixels"
    message = N_("The image has too many pixels. Images of up to {max_mp} megapixels can be uploaded.")


class NotAnImage(InvalidInput):
    code = "not_an_image"
    status = 415
    message = N_("This file is not a JPEG, PNG or WebP image.")


class BrokenImage(InvalidInput):
    code = "broken_image"
    message = N_("This image could not be read. It may be damaged; please try another file.")


_REFUSALS: dict[str, type[InvalidInput]] = {
    error.code: error for error in (ImageTooManyPixels, NotAnImage, BrokenImage)
}


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.4g}"


def megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.4g}"


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


def too_many_pixels() -> ImageTooManyPixels:
    return ImageTooManyPixels(max_mp=megapixels(IMAGE_MAX_PIXELS))


def reencode(data: bytes, max_side: int = IMAGE_MAX_SIDE) -> bytes:
    """A clean JPEG of at most ``max_side`` px; raises NotAnImage / ImageTooManyPixels / BrokenImage.

    Decodes: call it in the image worker for uploads (:func:`reencode_sandboxed`); in the server only on
    JPEGs it made itself (the vCard's smaller photo)."""
    kind = sniff(data[:16])
    if kind is None:
        raise NotAnImage()
    Image.MAX_IMAGE_PIXELS = IMAGE_MAX_PIXELS  # Pillow's own guard agrees with ours
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as image:
            # Only the header has been read: refuse by the declared size before decoding anything.
            if image.width * image.height > IMAGE_MAX_PIXELS:
                raise too_many_pixels()
            if kind == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale when that still covers max_side
                image.draft("RGB", (max_side, max_side))
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
    except (NotAnImage, ImageTooManyPixels, BrokenImage):
        raise
    except Image.DecompressionBombError as exc:
        raise too_many_pixels() from exc
    except (OSError, ValueError, SyntaxError, MemoryError) as exc:
        raise BrokenImage() from exc


_slots: asyncio.Semaphore | None = None


def _worker_slots() -> asyncio.Semaphore:
    global _slots
    if _slots is None:
        _slots = asyncio.Semaphore(WORKERS)
    return _slots


async def reencode_sandboxed(data: bytes, max_side: int = IMAGE_MAX_SIDE) -> bytes:
    """:func:`reencode` in the image worker: the server never decodes an uploaded image itself."""
    if sniff(data[:16]) is None:
        raise NotAnImage()
    async with _worker_slots():
        try:
            done = await sandbox.run("web.card_images", ["--max-side", str(max_side)], data, WORKER_TIMEOUT)
        except sandbox.TimedOut as exc:
            raise BrokenImage() from exc
    if done.status == 0 and done.stdout:
        return done.stdout
    refusal = _REFUSALS.get(done.stdout.decode("ascii", "replace").strip()) if done.status == 2 else None
    if refusal is ImageTooManyPixels:
        raise too_many_pixels()
    raise (refusal or BrokenImage)()


def main(argv: list[str] | None = None) -> int:
    """The image worker: limits first, then one image from standard input (see the module docstring)."""
    arguments = argv if argv is not None else sys.argv[1:]
    max_side = int(arguments[arguments.index("--max-side") + 1]) if "--max-side" in arguments else 1024
    sandbox.apply_limits(WORKER_MEMORY_MB, WORKER_CPU_SECONDS)
    data = sys.stdin.buffer.read(IMAGE_MAX_BYTES + 1)
    try:
        if len(data) > IMAGE_MAX_BYTES:
            raise BrokenImage()
        jpeg = reencode(data, max_side)
    except (NotAnImage, ImageTooManyPixels, BrokenImage) as refused:
        sys.stdout.write(refused.code)
        return 2
    sys.stdout.buffer.write(jpeg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
