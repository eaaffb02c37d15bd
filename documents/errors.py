"""Why a document is refused: one error class per reason, with its code and message.

The worker (``documents.worker``) reports a refusal as its code on one line; the library turns the code back
into the error with :data:`ERRORS` and re-exports the classes.
"""

from __future__ import annotations

from core.errors import N_, InvalidInput


class DocumentError(InvalidInput):
    """A document that cannot be used; ``message`` (a msgid) is what the uploader reads."""

    code = "document_rejected"
    status = 422
    message = N_("This document cannot be used.")


class DocumentTooLarge(DocumentError):
    code = "document_too_large"
    status = 413
    message = N_("The file is too large. Files of up to {max_mb} MB can be uploaded.")


class NotAPdf(DocumentError):
    code = "document_not_pdf"
    status = 415
    message = N_("This file is not a PDF. Please upload a PDF file.")


class DocumentDamaged(DocumentError):
    code = "document_damaged"
    message = N_("This PDF is damaged or incomplete and cannot be opened.")


class PasswordProtected(DocumentError):
    code = "document_password_protected"
    message = N_("This PDF is password protected. Please remove the password and upload it again.")


class TooManyPages(DocumentError):
    code = "document_too_many_pages"
    message = N_("This document has too many pages. Documents of up to {limit} pages can be uploaded.")


class BadPageSize(DocumentError):
    code = "document_page_size"
    message = N_("A page of this document is too large, too small or too narrow to be shown.")


class DocumentUnprocessable(DocumentError):
    code = "document_unprocessable"
    message = N_(
        "This document could not be processed: it needs too much time or memory. "
        "Please try a smaller or simpler file."
    )


class OfficeUnavailable(DocumentError):
    code = "document_office_unavailable"
    status = 415
    message = N_(
        "PowerPoint, Word and Excel files need LibreOffice, which is not installed on this server. "
        "Please upload a PDF."
    )


class ConversionFailed(DocumentError):
    code = "document_conversion_failed"
    message = N_("This file could not be converted to PDF. Please save it as a PDF and upload that.")


class ProcessingInterrupted(DocumentError):
    code = "document_interrupted"
    status = 503
    message = N_("Processing was interrupted because the server stopped. Please upload the file again.")


ERRORS: dict[str, type[DocumentError]] = {
    error.code: error
    for error in (
        DocumentError,
        DocumentTooLarge,
        NotAPdf,
        DocumentDamaged,
        PasswordProtected,
        TooManyPages,
        BadPageSize,
        DocumentUnprocessable,
        OfficeUnavailable,
        ConversionFailed,
        ProcessingInterrupted,
    )
}
