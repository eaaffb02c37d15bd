"""The document library (資料): uploads, validation, page rendering in a sandboxed subprocess, storage.

A document is a PDF (office files are converted with LibreOffice when it is installed) validated with pypdf
and rendered page by page with pypdfium2 to images at two widths. Hostile files are handled in a worker
process with time and memory limits, so they cannot hurt the server. The node rendering a document holds a
lease on it in the database (``documents.leases``), so that several nodes never render one twice and a
document left processing by a node that died is taken over. Must not import ``web``, ``signaling``
or ``media``.
"""
