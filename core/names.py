"""Display names of uploaded files (documents, files sent in meetings): what the browser says a file was
called, made safe to show and to offer back as a download name. Never used as a path.

- Folders are dropped (``C:\\Users\\me\\提案書.pdf`` → ``提案書.pdf``), whitespace becomes single spaces, NFC.
- Control and format characters go (bidi overrides such as U+202E can disguise ``fdp.exe`` as ``exe.pdf``),
  except the zero width joiner inside an emoji sequence (👨‍👩‍👧) and the tag characters of a flag (🏴󠁧󠁢󠁳󠁣󠁴󠁿),
  which are part of the picture.
- At most :data:`NAME_MAX_BYTES` bytes of UTF-8 (255: what file systems take for a name, so the download
  saves under it). A longer name is shortened before its extension, which is kept, and only between whole
  characters as people see them (grapheme clusters): an emoji sequence, a base and its combining marks
  (が written as か + ゛), a flag, stay whole or go whole.
"""

from __future__ import annotations

import unicodedata

NAME_MAX_BYTES = 255
EXTENSION_MAX_BYTES = 32  # past this, what follows the last dot is not an extension worth keeping
ZWJ = "\u200d"
_BLACK_FLAG = "\U0001f3f4"


def _is_tag(ch: str) -> bool:
    return 0xE0020 <= ord(ch) <= 0xE007F


def _is_emoji_like(ch: str) -> bool:
    """Pictographs and the marks that belong to them (skin tones, variation selectors, keycap)."""
    cp = ord(ch)
    return (
        unicodedata.category(ch) == "So" or 0x1F3FB <= cp <= 0x1F3FF or 0xFE00 <= cp <= 0xFE0F or cp == 0x20E3
    )


def _visible(text: str) -> str:
    """Drop control and format characters (Unicode category C), but keep a ZWJ between two pictographs and
    the tag characters that spell a subdivision flag."""
    kept: list[str] = []
    for index, ch in enumerate(text):
        if unicodedata.category(ch)[0] != "C":
            kept.append(ch)
        elif ch == ZWJ:
            following = text[index + 1 : index + 2]
            if kept and _is_emoji_like(kept[-1]) and following and _is_emoji_like(following):
                kept.append(ch)
        elif _is_tag(ch) and kept and (kept[-1] == _BLACK_FLAG or _is_tag(kept[-1])):
            kept.append(ch)
    return "".join(kept)


def _joins(cluster: str, ch: str) -> bool:
    """Whether ``ch`` continues the grapheme cluster ``cluster`` (a close approximation of UAX #29)."""
    cp = ord(ch)
    if unicodedata.category(ch)[0] == "M" or ch == ZWJ or _is_tag(ch):
        return True
    if 0x1F3FB <= cp <= 0x1F3FF or 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF:
        return True
    if cluster.endswith(ZWJ):
        return True
    regional = 0x1F1E6 <= cp <= 0x1F1FF
    return regional and len(cluster) == 1 and 0x1F1E6 <= ord(cluster) <= 0x1F1FF  # a flag is two of them


def graphemes(text: str) -> list[str]:
    """``text`` split into what a person sees as single characters."""
    clusters: list[str] = []
    for ch in text:
        if clusters and _joins(clusters[-1], ch):
            clusters[-1] += ch
        else:
            clusters.append(ch)
    return clusters


def _cut(text: str, max_bytes: int) -> str:
    """The longest start of ``text`` of whole grapheme clusters within ``max_bytes`` of UTF-8."""
    out, size = [], 0
    for cluster in graphemes(text):
        size += len(cluster.encode())
        if size > max_bytes:
            break
        out.append(cluster)
    return "".join(out)


def shorten(name: str, max_bytes: int = NAME_MAX_BYTES) -> str:
    """``name`` within ``max_bytes`` of UTF-8, its extension kept, cut only between whole characters."""
    if len(name.encode()) <= max_bytes:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem.strip() and 0 < len(extension.encode()) <= EXTENSION_MAX_BYTES and " " not in extension:
        return _cut(stem, max_bytes - len(extension.encode()) - 1).rstrip() + "." + extension
    return _cut(name, max_bytes).rstrip()


def display_name(raw: str, fallback: str, max_bytes: int = NAME_MAX_BYTES) -> str:
    """A safe display name from what the browser sent; ``fallback`` when nothing sensible is left."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(" " if ch.isspace() else ch for ch in name)
    name = " ".join(_visible(name).split())
    name = shorten(name, max_bytes).strip()
    return name if name.strip(".") else fallback
