"""Secrets kept out of everything mlbench writes: tags, params, printed lines, error messages and logs.

A storage or tracking URI may carry credentials in its user info (``postgresql://user:pw@host/db``,
``http://user:pw@host``) or in password-like query parameters (``?password=...``, ``&token=...``).
They are found by parsing the URI with the parser its driver uses, not by a pattern of what a password
looks like: SQLAlchemy's ``make_url`` for database URLs (what MLflow's and Optuna's SQL stores hand to the
driver) and ``urllib.parse.urlsplit`` for ``http(s)://`` (what MLflow's REST client hands to requests).
Whatever that parser reads as the user name, the password or the value of a query parameter named in
:data:`SECRET_PARAMS` is masked, however it is spelt (``/``, ``@``, ``%2F``, spaces...). Two margins on top
of the parsers, both masking more, never less: an ``@`` that SQLAlchemy leaves in the host (a password
holding an unencoded ``@``) extends the masked user info to it, and for HTTP everything up to the last
``@`` before the query is masked (urllib ends the user info at the first ``/``, so a password holding
one would otherwise show as the path).

``redact(text)`` masks every URI in a text: first the URIs mlbench was given (:func:`remember`: the
``--tracking-uri``, ``--storage`` and ``MLFLOW_TRACKING_URI`` values), by their exact spelling, and their
secrets wherever else they appear (secrets of at least :data:`MIN_LOOSE_SECRET` characters; a shorter
one only inside its URI, since masking ``pw`` everywhere would garble every message); then any other
``scheme://...`` run of characters up to a space or a quote, parsed as above. Where the parser refuses
the text, a pattern masks the user info and password-like parameters as a fallback (the only pattern
left, for text that is not a URI any driver would read). ``RedactingFilter`` applies ``redact`` to
every log record.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, urlsplit

MASK = "***"
#: Query parameters whose values are masked (compared case-insensitively).
SECRET_PARAMS = ("password", "passwd", "pwd", "token", "secret", "key", "sslpassword")
#: A remembered secret this long or longer is masked wherever it appears, not only inside its URI.
MIN_LOOSE_SECRET = 4
HTTP_SCHEMES = ("http", "https")

# a URI inside a text: a scheme, "://", then anything up to a space, a quote or an angle bracket
_URI_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
# the fallback for what no parser reads: "scheme://userinfo@" and "?password=..." by pattern
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#@\s'\"]+)@")
_SECRET_QUERY = re.compile(
    r"(?P<lead>[?&;](?:" + "|".join(SECRET_PARAMS) + r")=)(?P<value>[^&;#\s'\"]*)", re.IGNORECASE
)

#: URIs given to this process, by spelling: (masked form, secrets to mask anywhere).
_remembered: dict[str, tuple[str, tuple[str, ...]]] = {}


def _query_spans(uri: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the values of password-like parameters in ``uri[start:end]`` (a query, ``&``-separated)."""
    spans = []
    pos = start
    for item in uri[start:end].split("&"):
        key, sep, _ = item.partition("=")
        if sep and unquote(key).strip().lower() in SECRET_PARAMS:
            value_start = pos + len(key) + 1
            spans.append((value_start, pos + len(item)))
        pos += len(item) + 1
    return spans


def _http_spans(uri: str, start: int) -> list[tuple[int, int]]:
    parts = urlsplit(uri)
    spans = []
    query_at = uri.find("?", start)
    fragment_at = uri.find("#", start)
    head_end = min(i for i in (query_at, fragment_at, len(uri)) if i >= 0)
    last_at = uri.rfind("@", start, head_end)
    userinfo = parts.netloc.rpartition("@")[0]
    if last_at >= 0 or userinfo:
        spans.append((start, max(last_at, start + len(userinfo))))
    if query_at >= 0:
        spans += _query_spans(uri, query_at + 1, fragment_at if fragment_at > query_at else len(uri))
    return spans


def _database_spans(uri: str, start: int) -> list[tuple[int, int]]:
    from sqlalchemy.engine import make_url

    url = make_url(uri)  # raises on what SQLAlchemy (and so the driver) cannot read
    spans = []
    end = start
    if url.username is not None or url.password is not None:
        # the "@" that closes the user info as the parser read it: the first one whose left side unquotes to it
        for at in (i for i, ch in enumerate(uri) if ch == "@" and i >= start):
            user, sep, password = uri[start:at].partition(":")
            if unquote(user) == (url.username or "") and (unquote(password) if sep else None) == url.password:
                end = at
                break
        else:
            end = uri.find("@", start)
        host_end = min(i for i in (uri.find("/", end + 1), uri.find("?", end + 1), len(uri)) if i >= 0)
        end = max(end, uri.rfind("@", end + 1, host_end))  # an "@" the parser left in the host
        spans.append((start, end))
    query_at = uri.find("?", end)
    if query_at >= 0 and url.query:
        spans += _query_spans(uri, query_at + 1, len(uri))
    return spans


def _secret_spans(uri: str) -> list[tuple[int, int]]:
    """Character spans of ``uri`` that hold secrets, as its driver's parser reads the URI (ValueError if it cannot)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise ValueError("not a URI")
    if "@" not in rest and "?" not in rest:
        return []  # no user info and no query for either parser to find (and no parser to import)
    start = len(scheme) + 3
    if scheme.lower() in HTTP_SCHEMES:
        return _http_spans(uri, start)
    try:
        return _database_spans(uri, start)
    except Exception as exc:  # SQLAlchemy's ArgumentError and friends: not a URL it reads
        raise ValueError(str(exc)) from exc


def mask_uri(uri: str) -> str:
    """``uri`` with its user info and password-like query values replaced by ``***``."""
    try:
        spans = sorted(_secret_spans(uri))
    except ValueError:
        return _by_pattern(uri)
    out, pos = [], 0
    for a, b in spans:
        if a < pos:
            continue
        out += [uri[pos:a], MASK]
        pos = b
    out.append(uri[pos:])
    return "".join(out)


def _secrets_of(uri: str) -> tuple[str, ...]:
    """The secret values in ``uri`` (raw and unquoted), for masking them outside the URI too."""
    found = []
    try:
        spans = _secret_spans(uri)
    except ValueError:
        return ()
    for a, b in spans:
        raw = uri[a:b]
        found.append(raw)
        user, sep, password = raw.partition(":")
        if sep and a == len(uri.partition("://")[0]) + 3:  # the user info: the password is the secret
            found.append(password)
    found += [unquote(s) for s in found]
    return tuple(sorted({s for s in found if s and s != MASK}, key=len, reverse=True))


def remember(uri: str | None) -> None:
    """Mask this URI (as spelt) and its secrets in every later :func:`redact`."""
    if uri and "://" in uri and uri not in _remembered:
        _remembered[uri] = (mask_uri(uri), _secrets_of(uri))


def _by_pattern(text: str) -> str:
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _SECRET_QUERY.sub(lambda m: m["lead"] + MASK, text)


def redact(text: str) -> str:
    """``text`` with the user info and the password-like query values of every URI in it masked."""
    if not text:
        return text
    for uri in sorted(_remembered, key=len, reverse=True):
        masked, secrets = _remembered[uri]
        text = text.replace(uri, masked)
        for secret in secrets:
            if len(secret) >= MIN_LOOSE_SECRET:
                text = text.replace(secret, MASK)
    return _URI_IN_TEXT.sub(lambda m: mask_uri(m.group(0)), text)


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
