"""Structured JSON logs: one object per line, one line per AdmissionReview.

Every record (the server's own, gunicorn's, the reloader's) is printed as JSON with
``ts``, ``level``, ``logger`` and ``msg``; a review line adds the fields passed as
``extra={"review": {...}}``: uid, kind, namespace, name, operation, user, verdict,
pending, reasons (codes), latency_ms, dryRun, and why a check was skipped.
"""

from __future__ import annotations

import datetime as _dt
import logging

from ..fastjson import dumps_compact

REVIEW_LOGGER = "capacity_webhook.review"
LEVELS = ("debug", "info", "warning", "error")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        review = getattr(record, "review", None)
        if isinstance(review, dict):
            entry.update(review)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return dumps_compact(entry, default=str).decode("utf-8")


def logging_config(level: str = "info") -> dict:
    """A ``logging.config.dictConfig`` (and gunicorn ``logconfig_dict``): JSON lines on stdout.

    gunicorn's access log is dropped: the review line is the access log of ``/validate``,
    and probe/scrape requests would only add noise.
    """
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.stdout"}},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
            REVIEW_LOGGER: {"level": "INFO", "handlers": [], "propagate": True},
        },
    }


def configure(level: str = "info") -> None:
    import logging.config

    logging.config.dictConfig(logging_config(level))


def review_logger() -> logging.Logger:
    return logging.getLogger(REVIEW_LOGGER)


def log_review(logger: logging.Logger, fields: dict) -> None:
    """Write the one line of a review (warning level for denies and internal errors)."""
    level = logging.WARNING if fields.get("verdict") == "deny" or fields.get("error") else logging.INFO
    if logger.isEnabledFor(level):
        # logger.log() would first walk the stack for the caller's file and line (findCaller), a
        # fifth of the line's cost per review; the JSON line prints neither.
        logger.handle(logger.makeRecord(logger.name, level, "(unknown file)", 0, "admission review", (), None,
                                        extra={"review": fields}))

