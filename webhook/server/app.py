"""The flask app: ``POST /validate``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.

``create_app(holder, ...)`` builds it around a ``StateHolder`` (snapshot or live source);
``AdmissionHandler`` (``admission.py``) holds the admission policy that surrounds the
engine; this module is only the HTTP side: bodies read and bounded (413 past 3 MiB), bad
bodies answered with a 4xx and one clear sentence, every review counted and logged, and a
failure outside the decision allowed with a warning instead of a 500.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..fastjson import dumps_compact
from ..state.ledger import Ledger
from . import logs
# AdmissionHandler, Outcome and internal_error are also importable from here, as before the split.
from .admission import DECISION_BUDGET, LEDGER_TIMEOUT, AdmissionHandler, Outcome, internal_error
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .review import MAX_BODY_BYTES, BadReview, error_body, parse_review, review_response

__all__ = ["AdmissionHandler", "Outcome", "create_app", "internal_error"]

log = logging.getLogger("capacity_webhook.server")
DRAIN_LIMIT = 16 * 1024 * 1024        # read (and discard) an oversized body up to this, so the client sees the 413


def create_app(holder, mode: str = "enforce", stale_after: float = 60.0, reservation_ttl: float = 30.0,
               headroom_nodes: int | None = None, clock: Callable[[], float] = time.monotonic,
               metrics: Metrics | None = None, review_log: logging.Logger | None = None,
               ledger: Ledger | None = None, ledger_timeout: float = LEDGER_TIMEOUT,
               decision_budget: float | None = DECISION_BUDGET) -> Flask:
    """The webhook's WSGI app around ``holder`` (a ``webhook.state.holder.StateHolder``).

    ``headroom_nodes`` (``serve --headroom-nodes``) is set on the state once, here.
    """
    if headroom_nodes is not None:
        with holder.locked() as state:
            state.headroom_nodes = headroom_nodes
    handler = AdmissionHandler(holder, mode, stale_after, reservation_ttl, clock, ledger, ledger_timeout,
                               decision_budget)
    metrics = metrics or Metrics(clock)
    review_log = review_log or logs.review_logger()
    app = Flask("capacity_webhook")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["capacity_webhook"] = {"handler": handler, "metrics": metrics}

    def json_response(body: dict, status: int = 200) -> Response:
        return Response(dumps_compact(body), status=status, mimetype="application/json")

    def read_body() -> bytes:
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            stream = request.environ.get("wsgi.input")
            left = min(length, DRAIN_LIMIT)
            while stream is not None and left > 0:      # let the client finish sending, then answer
                chunk = stream.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
            raise BadReview(413, f"request body is {length} bytes, over the {MAX_BODY_BYTES} byte (3 MiB) limit")
        try:
            return request.get_data(cache=False)
        except RequestEntityTooLarge:
            raise BadReview(413, f"request body is over the {MAX_BODY_BYTES} byte (3 MiB) limit") from None

    @app.post("/validate")
    def validate():
        started = time.perf_counter()
        try:
            review = parse_review(read_body())
        except BadReview as exc:
            metrics.reject(exc.status)
            log.warning("refused request body: %s", exc.message,
                        extra={"review": {"status": exc.status, "remote": request.remote_addr}})
            return json_response(error_body(exc.status, exc.message), exc.status)
        try:
            outcome = handler.decide(review)
            body = review_response(review.uid, outcome.allowed, outcome.warnings, outcome.message,
                                   audit_annotations=outcome.audit)
        except Exception as exc:  # noqa: BLE001 - a bug outside the decision: same path, never a 500
            outcome = internal_error(Outcome(fields={"uid": review.uid, "kind": review.kind,
                                                     "operation": review.operation}), review.uid, exc)
            body = review_response(review.uid, True, outcome.warnings)
        response = json_response(body)
        seconds = time.perf_counter() - started
        verdict = outcome.verdict
        metrics.observe(review.kind, review.operation, verdict, seconds, bool(outcome.fields.get("reserved")))
        if outcome.fields.get("internalError"):
            metrics.internal_error()
        if outcome.fields.get("budgetExceeded"):
            metrics.budget_exceeded()
        fields = dict(outcome.fields, allowed=outcome.allowed, verdict=verdict, latency_ms=round(seconds * 1000, 3))
        if outcome.warnings:
            fields["warnings"] = body["response"].get("warnings", [])
        logs.log_review(review_log, fields)
        return response

    @app.get("/healthz")
    def healthz():
        return Response("ok\n", mimetype="text/plain")

    @app.get("/readyz")
    def readyz():
        if holder.ready:
            return Response(f"ok: {holder.description}\n", mimetype="text/plain")
        return Response("not ready: the cluster state is still loading\n", status=503, mimetype="text/plain")

    @app.get("/metrics")
    def metrics_endpoint():
        return Response(metrics.render(holder, mode=handler.mode, stale_after=stale_after),
                        content_type=METRICS_CONTENT_TYPE)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return json_response(error_body(exc.code or 400, exc.description or exc.name), exc.code or 400)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return json_response(error_body(500, "internal error (see the server log)"), 500)

    return app
