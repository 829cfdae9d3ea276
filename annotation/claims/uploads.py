"""Limits on claim uploads and claim files, read from the settings (docs/datasets.md#limits).

The readers in files.py take their limits as a `ReadLimits` and know nothing of Django; this
module builds one from the settings, checks uploads before anything is stored, and refuses a
request too large to read at all.
"""
from __future__ import annotations

from pathlib import PurePath

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.html import escape

from annotation.claims.files import ClaimFileError, ReadLimits, file_format


class UploadTooLarge(ClaimFileError):
    """An upload over a size limit: answered 413 rather than 400."""


def read_limits() -> ReadLimits:
    """The limits every import reads claim files with, from the settings."""
    return ReadLimits(
        line_bytes=settings.FRAMELAB_MAX_LINE_BYTES,
        claim_chars=settings.FRAMELAB_MAX_CLAIM_CHARS,
        csv_field_chars=settings.FRAMELAB_MAX_CSV_FIELD_CHARS,
        decompressed_bytes=settings.FRAMELAB_MAX_DECOMPRESSED_BYTES,
        compression_ratio=settings.FRAMELAB_MAX_COMPRESSION_RATIO,
    )


def uploads_check(files) -> None:
    """Refuses uploaded files of an unknown type or over the size limits, before any is stored.

    Django has them in memory or in a temporary file by now, which the request limit (checked
    from Content-Length by `UploadSizeLimitMiddleware`) bounds.
    """
    per_file = settings.FRAMELAB_MAX_UPLOAD_FILE_BYTES
    per_request = settings.FRAMELAB_MAX_UPLOAD_REQUEST_BYTES
    for upload in files:
        if file_format(PurePath(upload.name)) is None:
            raise ClaimFileError(path=upload.name, line=None, problem="unknown file type",
                                 accepted="FrameRef .jsonl, .parquet or .csv files")
        if upload.size > per_file:
            raise UploadTooLarge(
                path=upload.name, line=None,
                problem=f"the file is {upload.size:,} bytes, more than the {per_file:,} bytes an "
                        f"uploaded file may hold (FRAMELAB_MAX_UPLOAD_FILE_BYTES)")
    total = sum(upload.size for upload in files)
    if total > per_request:
        raise UploadTooLarge(
            path=", ".join(upload.name for upload in files), line=None,
            problem=f"the files are {total:,} bytes together, more than the {per_request:,} bytes "
                    f"one upload may hold (FRAMELAB_MAX_UPLOAD_REQUEST_BYTES)")


class UploadSizeLimitMiddleware:
    """Answers 413 to a request whose body is larger than FRAMELAB_MAX_UPLOAD_REQUEST_BYTES,
    from its Content-Length, before Django reads (and spools to disk) a byte of it.

    A reverse proxy in front should refuse such bodies too (nginx: client_max_body_size), so
    that they never reach a web process at all.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.FRAMELAB_MAX_UPLOAD_REQUEST_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads no body without a valid length
        if length <= limit:
            return self.get_response(request)
        message = (f"the upload is {length:,} bytes, more than the {limit:,} bytes one upload "
                   f"may hold (FRAMELAB_MAX_UPLOAD_REQUEST_BYTES)")
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": message}, status=413)
        page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
                f"<title>Upload too large</title></head><body><h1>Upload too large</h1>"
                f"<p>{escape(message)}.</p><p>Nothing was stored. Upload fewer or smaller files "
                f"(a .gz file is much smaller), or import them with <code>manage.py "
                f"import_claims</code> on the server.</p></body></html>")
        return HttpResponse(page, status=413)
