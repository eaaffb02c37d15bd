"""Images made in the test: an image bomb (few bytes on disk, many pixels) and a good photo."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int = 6320) -> bytes:
    """An RGB PNG of ``side`` × ``side`` black pixels: 120 MB of pixels in about 120 KB, made row by row
    without ever holding the pixels (the issue's 155 KB, 6,320 × 6,320 case)."""
    row = b"\x00" + bytes(side * 3)  # filter type 0, then the row's pixels
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def photo(size: tuple[int, int] = (1600, 1200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 90, 160)).save(out, "JPEG", quality=90)
    return out.getvalue()
