"""The one request parser: JSON, bounded in size and in nesting, never an unhandled exception."""

from __future__ import annotations

import json
from typing import IO, Any

from rest_framework import exceptions, parsers
from rest_framework.utils import json as drf_json


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, plus: JSON nested deeper than Python's recursion limit
    (``"[" * 3000 + "]" * 3000``) is a parse error (400 ``not_json``) instead of a
    RecursionError. The body's size is bounded before: DRF hands a JSON parser
    ``request.body``, which Django refuses over DATA_UPLOAD_MAX_MEMORY_SIZE (413,
    see :func:`series.errors.exception_handler`)."""

    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: dict | None = None) -> Any:
        raw = stream.read()
        encoding = parsers.get_encoding(parser_context or {})  # text charsets only (ParseError otherwise)
        try:
            text = raw.decode(encoding)
            # Non-strict: NaN, Infinity and 1e999 reach the fields, whose errors name them.
            return json.loads(text, parse_constant=drf_json.strict_constant if self.strict else None)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise exceptions.ParseError(f"JSON parse error - {reason}") from None
