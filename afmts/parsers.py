"""JSON parsing for the REST API with input limits: nesting depth and string length are capped
before any serializer sees the data (the body size is capped earlier, in afmts.bodylimit)."""

from __future__ import annotations

import re
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Text no database column can hold (PostgreSQL refuses NUL in text and jsonb; a lone surrogate cannot
# be encoded as UTF-8): refused for every string of a body, keys included.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# No REST payload needs more than a few levels (a model's metadata is the deepest); 32 leaves room.
MAX_DEPTH = 32
# The longest field a payload carries is a task's input (1,000,000 characters, routing/api.py).
MAX_STRING = 1_000_000


def check_limits(data: Any, *, max_depth: int = MAX_DEPTH, max_string: int = MAX_STRING) -> None:
    """Raise ParseError when `data` nests deeper than `max_depth` containers or holds a string (a
    value or a key) longer than `max_string` characters or with a NUL or a lone surrogate. Iterative: a hostile document cannot
    exhaust the stack here."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if UNSTORABLE.search(value):
                raise ParseError("A JSON string holds a NUL character or a lone surrogate (\\u0000, \\ud800-\\udfff).",
                                 code="invalid_string")
            if len(value) > max_string:
                raise ParseError(f"A JSON string is {len(value)} characters long; the limit is {max_string}.",
                                 code="string_too_long")
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth >= max_depth:
            raise ParseError(f"JSON nested deeper than {max_depth} levels.", code="json_too_deep")
        if isinstance(value, dict):
            stack.extend((key, depth) for key in value)
            stack.extend((item, depth + 1) for item in value.values())
        else:
            stack.extend((item, depth + 1) for item in value)


class LimitedJSONParser(JSONParser):
    """DRF's JSON parser with the depth and string limits of `check_limits`. The standard library's
    decoder recurses in C and raises RecursionError near 1,000 levels; that is a 400 here too."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.", code="json_too_deep") from None
        check_limits(data)
        return data


class AnyAsJSONParser(LimitedJSONParser):
    """Reads a body sent without a JSON content type (`curl -d '{...}'`) as JSON anyway: the API
    speaks only JSON, and a 415 for a forgotten header helps nobody."""

    media_type = "*/*"
