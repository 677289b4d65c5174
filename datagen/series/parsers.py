"""The one request parser: JSON, bounded in size and in nesting, never an unhandled exception."""

from __future__ import annotations

import json
from typing import IO, Any

from django.conf import settings
from rest_framework import exceptions, parsers
from rest_framework.utils import json as drf_json


class BodyTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "too_large"
    default_detail = "the body is too large"


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, plus: a body over DATA_UPLOAD_MAX_MEMORY_SIZE is 413, and JSON
    nested deeper than Python's recursion limit (``"[" * 3000 + "]" * 3000``) is a parse
    error (400 ``not_json``) instead of a RecursionError."""

    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: dict | None = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise BodyTooLarge(f"the body is larger than {limit} bytes")
        encoding = parsers.get_encoding(parser_context or {})  # text charsets only (ParseError otherwise)
        try:
            text = raw.decode(encoding)
            # Non-strict: NaN, Infinity and 1e999 reach the fields, whose errors name them.
            return json.loads(text, parse_constant=drf_json.strict_constant if self.strict else None)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise exceptions.ParseError(f"JSON parse error - {reason}") from None
