"""PDFs made in the test, good and hostile, so no binary fixture is checked in.

``text_pdf`` writes a valid PDF whose pages each show their number in big Helvetica text (so pages differ),
at a chosen page size and count. The others are the inputs the document library must refuse: not a PDF,
password protected, truncated, a decompression bomb, thousands of pages, a page of absurd size.
"""

from __future__ import annotations

import io
import zlib

# A4 in PDF points (1/72 inch).
A4_LANDSCAPE = (842.0, 595.0)
A4_PORTRAIT = (595.0, 842.0)


def assemble(objects: list[bytes]) -> bytes:
    """A complete PDF from the bodies of objects 1..n (object 1 is the catalogue), with a correct xref."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def _number(value: float) -> bytes:
    return (b"%.2f" % value).rstrip(b"0").rstrip(b".")


def text_pdf(pages: int = 10, size: tuple[float, float] = A4_LANDSCAPE) -> bytes:
    """``pages`` pages of ``size`` points, page n showing "n" (and a frame) in big Helvetica."""
    width, height = size
    font_size = min(width, height) / 3
    # 1 catalogue, 2 page tree, 3 font, then (page, content) pairs.
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    box = b"[0 0 %s %s]" % (_number(width), _number(height))
    for n in range(1, pages + 1):
        content = (
            b"q 0.1 0.3 0.6 RG 4 w 10 10 %s %s re S Q\n"
            b"BT /F1 %s Tf %s %s Td (%d) Tj ET\n"
            b"BT /F1 %s Tf %s %s Td (Page %d of %d) Tj ET"
        ) % (
            _number(width - 20),
            _number(height - 20),
            _number(font_size),
            _number(width * 0.3),
            _number(height * 0.4),
            n,
            _number(font_size / 6),
            _number(width * 0.05),
            _number(height * 0.1),
            n,
            pages,
        )
        page = b"<< /Type /Page /Parent 2 0 R /MediaBox %s /Resources << /Font << /F1 3 0 R >> >> " % box
        objects.append(page + b"/Contents %d 0 R >>" % (5 + 2 * (n - 1)))
        objects.append(stream(content))
    return assemble(objects)


def many_pages_pdf(pages: int = 5000) -> bytes:
    """Thousands of tiny pages sharing one content stream: cheap to make, a few hundred KB."""
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        stream(b"BT /F1 24 Tf 10 40 Td (page) Tj ET"),
    ]
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R >>"
    objects.extend(page for _ in range(pages))
    return assemble(objects)


def huge_page_pdf(side: float = 200_000) -> bytes:
    """One page ``side`` points square (PDF allows 14,400 at most): rendering it would need terabytes."""
    return assemble(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %s %s] /Contents 4 0 R >>"
            % (_number(side), _number(side)),
            stream(b"0 0 1 rg 0 0 100 100 re f"),
        ]
    )


def bomb_pdf(inflated_mib: int = 1025) -> bytes:
    """One page whose content stream is ~1 MB of FlateDecode that inflates to ``inflated_mib`` MiB of zeros.

    Built in milliseconds: a raw deflate block for 1 MiB of zeros, ended with a full flush, is the same
    bytes every time, so the stream is that block repeated, an empty final block, and the Adler-32 of the
    zeros (which is computable: ``a`` stays 1 and ``b`` is the length).
    """
    chunk = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    total = inflated_mib << 20
    adler = ((total % 65521) << 16) | 1
    data = b"\x78\xda" + block * inflated_mib + final + adler.to_bytes(4, "big")
    return assemble(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 842 595] /Contents 4 0 R >>",
            stream(data, b"/Filter /FlateDecode "),
        ]
    )


def encrypted_pdf(user_password: str = "secret", owner_password: str = "owner") -> bytes:
    """``text_pdf`` encrypted with pypdf (RC4, which pypdf writes without extra libraries).

    An empty ``user_password`` makes an owner-password-only PDF, which opens without asking.
    """
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf(pages=2))))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def truncated_pdf() -> bytes:
    """A valid PDF cut off part way, as an interrupted download leaves it."""
    whole = text_pdf(pages=4)
    return whole[: len(whole) * 3 // 5]


def not_a_pdf() -> bytes:
    """Text that is not a PDF, to be uploaded under a .pdf name."""
    return ("見積書の下書き\nThis is a plain text file that someone renamed to .pdf\n" * 50).encode()


def overlong_xref_pdf(pages: int = 3) -> bytes:
    """``text_pdf`` whose cross-reference table announces a 112-digit count, as pdf.js's
    ``filled-background.pdf`` does: pypdf refuses to read a number that long ("stream length of 112 exceeds
    maximum allowed length of 64"), PDFium rebuilds the table from the objects and renders every page."""
    whole = text_pdf(pages)
    start = whole.rfind(b"xref\n0 ")
    end = whole.index(b"\n", start + 5)
    return whole[:start] + b"xref\n0 " + b"9" * 112 + whole[end:]


def attachment_encrypted_pdf(pages: int = 2) -> bytes:
    """``text_pdf`` with an AES-256 security handler (user password "secret") that encrypts only embedded
    files (``/StmF /Identity /StrF /Identity /EFF /StdCF``), as pdf.js's ``encrypted-attachment.pdf``: the
    pages open without a password in PDFium, while pypdf reports the document as not decrypted."""
    import secrets

    from pypdf._encryption import AlgV5

    values = AlgV5.generate_values(6, b"secret", b"owner", secrets.token_bytes(32), 0xFFFFFFFC, True)

    def hexed(name: str) -> bytes:
        value: bytes = values[name]
        return b"<" + value.hex().encode() + b">"

    handler = (
        b"<< /Filter /Standard /V 5 /R 6 /Length 256 /P -4 /O " + hexed("/O") + b" /U " + hexed("/U")
        + b" /OE " + hexed("/OE") + b" /UE " + hexed("/UE") + b" /Perms " + hexed("/Perms")
        + b" /CF << /StdCF << /CFM /AESV3 /Length 32 /AuthEvent /EFOpen >> >>"
        + b" /StmF /Identity /StrF /Identity /EFF /StdCF >>"
    )  # fmt: skip
    base = text_pdf(pages)
    size = 4 + 2 * pages  # objects 1..3 and a (page, content) pair per page, plus the free entry 0
    previous = int(base.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    added = b"%d 0 obj\n" % size + handler + b"\nendobj\n"
    xref = len(base) + len(added)
    file_id = b"<" + secrets.token_hex(16).encode() + b">"
    update = (  # an incremental update: the handler object, its xref section and a trailer naming it
        b"xref\n0 1\n0000000000 65535 f \n%d 1\n%010d 00000 n \n" % (size, len(base))
        + b"trailer\n<< /Size %d /Root 1 0 R /Encrypt %d 0 R /Prev %d /ID [%s %s] >>\n"
        % (size + 1, size, previous, file_id, file_id)
        + b"startxref\n%d\n%%%%EOF\n" % xref
    )
    return base + added + update
