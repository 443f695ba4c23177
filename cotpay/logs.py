"""structlog configuration shared by every process: JSON in production, console in development.

Secrets never reach a log line: callers log ids and codes, never tokens, keys, passphrases or
payload bodies, and ``redact`` masks known secret fields as a last line of defence.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(
    r"(token|secret|password|passphrase|authorization|api[-_]?key|private|x-api-key|email|phone)",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[^@\s\"']+@[^@\s\"']+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![0-9])0[0-9]{9}(?![0-9])")


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _PHONE.sub("[phone]", _EMAIL.sub("[email]", value))
    return value


def scrub(text: str) -> str:
    """Mask email addresses and phone numbers in free text (e.g. a message put in an exception)."""
    return str(_scrub(text))


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if _SECRET_KEYS.search(key):
            event_dict[key] = "[redacted]"
        elif key not in ("timestamp", "level", "logger"):
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def configure_logging(fmt: str = "console", level: int = logging.INFO) -> None:
    """Configure structlog and the stdlib root logger once, at process start (never at import)."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processor=renderer)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; our callers log one line per call themselves.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    logging.getLogger("httpcore").setLevel(max(level, logging.WARNING))
