"""Secrets kept out of everything mlbench writes: tags, params, printed lines, error messages and logs.

A storage or tracking URI may carry credentials in its user info (``postgresql://user:pw@host/db``,
``http://user:pw@host``) or in password-like query parameters (``?password=...``, ``&token=...``).
``redact`` masks both in any text, wherever a URI appears in it, so it can be applied to a URI, to an
exception's message, or to a log record; ``RedactingFilter`` does the latter for every logging handler.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
#: Query parameters whose values are masked (compared case-insensitively).
SECRET_PARAMS = ("password", "passwd", "pwd", "token", "secret", "key", "sslpassword")

# scheme://userinfo@ : the user info is everything between "//" and the last "@" before the host's end
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#@\s'\"]+)@")
_SECRET_QUERY = re.compile(
    r"(?P<lead>[?&;](?:" + "|".join(SECRET_PARAMS) + r")=)(?P<value>[^&;#\s'\"]*)", re.IGNORECASE
)


def redact(text: str) -> str:
    """``text`` with the user info and the password-like query values of every URI in it masked."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _SECRET_QUERY.sub(lambda m: m["lead"] + MASK, text)


class RedactingFilter(logging.Filter):
    """Masks secrets in a log record's final message (its arguments merged in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction() -> None:
    """Add a ``RedactingFilter`` to every handler of the root logger (once)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
