"""The log line format, with control characters escaped in every message: a request path such as
`/x%0A2026-11-26 16:40:00,000 INFO ...` must not write a second, forged log line (or a NUL) into the log."""

from __future__ import annotations

import logging
import re

# C0 and C1 control characters, DEL, and the Unicode line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    return _UNSAFE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class EscapingFormatter(logging.Formatter):
    """Escapes the message; a traceback appended after it keeps its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


class TracebacksOnly(logging.Filter):
    """For Django's request logger: an answered 4xx/5xx is already our request log line, so only an unhandled
    error, with its traceback, gets a line of its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is not None
