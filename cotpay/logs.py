"""structlog configuration shared by every process: JSON in production, console in development.

``ESCROW_LOG_FORMAT=json`` selects JSON (the container image's default); anything else renders
for a terminal. Both structlog loggers and stdlib loggers (``workflow.logger``, the SDK, uvicorn)
go through the same processors.

Order context: lines about an order carry ``orderRef``, ``workflowId``, ``cotpayOrderId`` and
``step`` where known. Callers may log them under the names used in the code (``order_ref``,
``workflow_id``, ``id_order``, ``idOrder``, ``cotpay_order_id``); ``order_keys`` renames them,
and ``bind_order`` puts them into structlog's context variables for a whole request or activity.
Stdlib records from ``workflow.logger`` contribute the workflow id of their ``temporal_workflow``
extra and any of the four names passed as ``extra=``.

Secrets never reach a log line: callers log ids and codes, never tokens, keys, passphrases or
payload bodies, and ``redact`` is the last line of defence, after exceptions are rendered: it
masks values under secret-looking keys, and emails, phone numbers, bearer tokens, PEM keys, key
ring entries and URL secrets in any text, nested containers included.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

ORDER_KEYS = ("orderRef", "workflowId", "cotpayOrderId", "step")
_ALIASES = {
    "order_ref": "orderRef",
    "workflow_id": "workflowId",
    "id_order": "cotpayOrderId",
    "idOrder": "cotpayOrderId",
    "cotpay_order_id": "cotpayOrderId",
}
_SECRET_KEYS = re.compile(
    r"(token|secret|password|passphrase|authorization|api[-_]?key|private|x-api-key|email|phone"
    r"|cookie|credential|signature|(?:^|[-_])sig$|(?:^|[-_])keys?$)",
    re.IGNORECASE,
)
_TEXT_SECRETS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"-----BEGIN [A-Z ]*KEY-----.*?(-----END [A-Z ]*KEY-----|$)", re.DOTALL),
        "[key]",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
    (
        re.compile(
            r"(?i)([?&;\s\"']|^)((?:access_?)?token|sig|signature|secret|api_?key|passphrase"
            r"|password)=[^&\s\"';]+"
        ),
        r"\1\2=[redacted]",
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[token]"),
    (re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])"), "[key]"),
    (re.compile(r"[^@\s\"'<>(),;:]+@[^@\s\"'<>(),;:]+\.[A-Za-z]{2,}"), "[email]"),
    (re.compile(r"(?<![0-9])(?:\+?84[1-9][0-9]{8}|0[0-9]{9})(?![0-9])"), "[phone]"),
)
_NOT_SCRUBBED = frozenset({"timestamp", "level", "logger", *ORDER_KEYS})


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        for pattern, replacement in _TEXT_SECRETS:
            value = pattern.sub(replacement, value)
        return value
    if depth > 5:
        return value
    if isinstance(value, Mapping):
        return {
            k: "[redacted]" if _SECRET_KEYS.search(str(k)) else _scrub(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v, depth + 1) for v in value]
    return value


def scrub(text: str) -> str:
    """Mask secrets, email addresses and phone numbers in free text (e.g. an exception message)."""
    return str(_scrub(text))


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key in _NOT_SCRUBBED or key.startswith("_"):
            continue
        if _SECRET_KEYS.search(key):
            event_dict[key] = "[redacted]"
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def order_keys(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Rename the code's snake-case order fields to the names every log line uses."""
    for alias, key in _ALIASES.items():
        if alias in event_dict:
            value = event_dict.pop(alias)
            if value is not None:
                event_dict.setdefault(key, value)
    return event_dict


def record_context(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Order context from a stdlib record (``workflow.logger``, ``activity.logger``)."""
    record = event_dict.get("_record")
    if record is None:
        return event_dict
    for extra in ("temporal_workflow", "temporal_activity"):
        info = getattr(record, extra, None)
        if isinstance(info, Mapping) and info.get("workflow_id"):
            event_dict.setdefault("workflowId", info["workflow_id"])
    for key in ORDER_KEYS:
        value = getattr(record, key, None)
        if value is not None:
            event_dict.setdefault(key, value)
    return event_dict


@contextlib.contextmanager
def bind_order(**fields: Any) -> Iterator[None]:
    """Bind order context (``orderRef=``, ``workflowId=``, ...) for the block; ``None`` skipped."""
    known = {_ALIASES.get(k, k): v for k, v in fields.items() if v is not None}
    with structlog.contextvars.bound_contextvars(**known):
        yield


def configure_logging(
    fmt: str = "console", level: int = logging.INFO, *, stream: TextIO | None = None
) -> None:
    """Configure structlog and the stdlib root logger once, at process start (never at import).

    ``stream`` defaults to ``sys.stderr``.
    """
    out = stream or sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        order_keys,
    ]
    final: list[Any] = [structlog.processors.format_exc_info, redact, renderer]
    structlog.configure(
        processors=[*shared, *final],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, record_context],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; our callers log one line per call themselves.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    logging.getLogger("httpcore").setLevel(max(level, logging.WARNING))
