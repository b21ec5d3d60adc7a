"""AdmissionReview ``admission.k8s.io/v1``: reading requests, building responses.

Nothing here decides capacity; this module turns the bytes the kube-apiserver posts
into a ``Review`` (or a ``BadReview`` with a 4xx status and one clear sentence), turns a
``scale`` subresource request into the workload object the engine understands, and
builds the response, including admission warnings the apiserver will accept: at most
120 characters each, no ``Warning:`` prefix (kubectl adds its own), printable ASCII
only (they travel as HTTP ``Warning`` headers), 4 KiB in total.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..fastjson import strict_json_loads
from ..unicode_text import has_lone_surrogate

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency
    orjson = None  # type: ignore[assignment]  # the fallback the checks below test for

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
MAX_BODY_BYTES = 3 * 1024 * 1024
WARNING_LIMIT = 120
WARNINGS_TOTAL = 4096
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
# resource of a scale subresource request -> the kind whose pod template we hold
SCALE_KINDS = {"deployments": "Deployment", "replicasets": "ReplicaSet", "statefulsets": "StatefulSet"}


class BadReview(Exception):
    """A request body that is not an AdmissionReview v1 we can answer (HTTP 4xx)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Review:
    uid: str
    operation: str
    kind: str                      # request.kind.kind: "Deployment", "Scale", ...
    resource: str                  # request.resource.resource: "deployments", ...
    sub_resource: str
    namespace: str
    name: str
    user: str
    dry_run: bool
    obj: dict | None
    old: dict | None

    @property
    def is_scale(self) -> bool:
        return self.sub_resource == "scale"


def annotations_of(obj: Mapping | None) -> Mapping:
    """An object's annotations, or ``{}`` for any shape that has none we can read."""
    meta = (obj or {}).get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def _dict_or_empty(value: object) -> dict:
    """A field that must be an object: anything else a client sends reads as absent."""
    return value if isinstance(value, dict) else {}


def _str_or_empty(value: object) -> str:
    """A field that must be a string: anything else a client sends reads as absent."""
    return value if isinstance(value, str) else ""


def _type_name(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _object(request: dict, key: str, required: bool) -> dict | None:
    value = request.get(key)
    if value is None:
        if required:
            raise BadReview(400, f"request.{key} is missing: a {request.get('operation')} review carries the object")
        return None
    if not isinstance(value, dict):
        raise BadReview(400, f"request.{key} must be a JSON object, got {_type_name(value)}")
    return value


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


_REFUSED = object()


def _strict_fast(body: bytes):
    """orjson: strict UTF-8, no lone surrogates, no NaN/Infinity; ``_REFUSED`` on anything else."""
    if orjson is None:
        return _REFUSED
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _REFUSED


def _strict_slow(body: bytes):
    """The standard library, made as strict as orjson, for the clear error message (or a deep body)."""
    try:
        text = body.decode("utf-8")          # strict: also refuses UTF-8-encoded surrogates
    except UnicodeDecodeError as exc:
        raise BadReview(400, f"request body is not UTF-8 text (invalid byte at offset {exc.start})") from None
    try:
        document = strict_json_loads(text)     # no NaN, inf, 1e400
    except json.JSONDecodeError as exc:
        raise BadReview(400, f"request body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError):
        raise BadReview(400, "request body is not JSON (numbers beyond a double such as 1e400, numbers over 4,300 "
                             "digits, NaN and Infinity are not JSON values; nesting is limited)") from None
    if _ESCAPED_SURROGATE.search(text) and has_lone_surrogate(document):
        raise BadReview(400, "request body is not valid Unicode: it has a lone UTF-16 surrogate escape "
                             "(\\ud800-\\udfff)")
    return document


def parse_review(body: bytes) -> Review:
    """Read and check one AdmissionReview body (raises ``BadReview``)."""
    if not body or not body.strip():
        raise BadReview(400, f"request body is empty: POST an {API_VERSION} {KIND}")
    document = _strict_fast(body)
    if document is _REFUSED:
        document = _strict_slow(body)
    if not isinstance(document, dict):
        raise BadReview(400, f"request body must be an {KIND} object, got {_type_name(document)}")
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if kind != KIND:
        raise BadReview(400, f"kind must be {KIND}, got {kind!r}")
    if api_version != API_VERSION:
        raise BadReview(400, f"apiVersion must be {API_VERSION}, got {api_version!r} "
                             f"(set admissionReviewVersions: [\"v1\"] in the webhook configuration)")
    request = document.get("request")
    if request is None:
        raise BadReview(400, f"{KIND} has no request: the apiserver sends one in every review")
    if not isinstance(request, dict):
        raise BadReview(400, f"request must be a JSON object, got {_type_name(request)}")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview(400, "request.uid is missing: the response must echo it")
    operation = request.get("operation")
    if operation not in OPERATIONS:
        raise BadReview(400, f"request.operation must be one of {', '.join(OPERATIONS)}, got {operation!r}")
    obj = _object(request, "object", required=operation in ("CREATE", "UPDATE"))
    old = _object(request, "oldObject", required=False)
    kind_ref = _dict_or_empty(request.get("kind"))
    resource_ref = _dict_or_empty(request.get("resource"))
    user_info = _dict_or_empty(request.get("userInfo"))
    namespace = _str_or_empty(request.get("namespace"))
    name = _str_or_empty(request.get("name"))
    review_kind = _str_or_empty(kind_ref.get("kind"))
    for item in (obj, old):
        if item is None:
            continue
        # The apiserver sends complete objects; fill what a hand-made review may omit.
        if not item.get("kind") and review_kind:
            item["kind"] = review_kind
        meta = item.get("metadata")
        if meta is None:
            meta = item["metadata"] = {}
        if isinstance(meta, dict) and namespace and not meta.get("namespace"):
            meta["namespace"] = namespace
        if isinstance(meta, dict) and name and not meta.get("name"):
            meta["name"] = name
    if not name and obj is not None and isinstance(obj.get("metadata"), dict):
        name = obj["metadata"].get("name") or obj["metadata"].get("generateName") or ""
    return Review(
        uid=uid, operation=operation, kind=review_kind,
        resource=_str_or_empty(resource_ref.get("resource")),
        sub_resource=_str_or_empty(request.get("subResource")),
        namespace=namespace or "default", name=str(name),
        user=_str_or_empty(user_info.get("username")),
        dry_run=request.get("dryRun") is True,
        obj=obj, old=old,
    )


# ---- the scale subresource ------------------------------------------------------------
class ScaleError(ValueError):
    """A Scale object whose replicas cannot be read (the engine's INVALID_OBJECT case)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def scale_replicas(scale: Mapping | None, path: str) -> int | None:
    """``spec.replicas`` of an ``autoscaling/v1`` Scale (omitted means 0: it is ``omitempty``)."""
    if scale is None:
        return None
    spec = scale.get("spec")
    if spec is None:
        return 0
    if not isinstance(spec, dict):
        raise ScaleError(f"{path}.spec", f"must be an object, got {_type_name(spec)}")
    value = spec.get("replicas", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ScaleError(f"{path}.spec.replicas", f"must be a non-negative integer, got {value!r}")
    return value


def scale_target_key(review: Review) -> tuple[str, str, str] | None:
    kind = SCALE_KINDS.get(review.resource)
    return (kind, review.namespace, review.name) if kind else None


def scale_objects(review: Review, stored: Mapping) -> tuple[dict, dict]:
    """The stored workload with the Scale's new and old replicas, as a regular UPDATE pair.

    The pod template is the one held in the cluster state (a Scale carries none), so the
    engine sees an update that keeps the template: only the added pods need room.
    """
    new_replicas = scale_replicas(review.obj, "request.object")
    old_replicas = scale_replicas(review.old, "request.oldObject")
    stored_spec = stored.get("spec") or {}
    if old_replicas is None:
        old_replicas = stored_spec.get("replicas", 1)
    new = dict(stored, spec=dict(stored_spec, replicas=new_replicas))
    old = dict(stored, spec=dict(stored_spec, replicas=old_replicas))
    return new, old


# ---- responses ---------------------------------------------------------------------------
_WARNING_PREFIX = re.compile(r"^\s*warning\s*:\s*", re.IGNORECASE)
_TRANSLITERATE = str.maketrans({"\u2026": "...", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                                "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00a0": " ", "\u2192": "->",
                                "\u00d7": "x", "\t": " ", "\n": " ", "\r": " "})
_UNSAFE = re.compile(r"[^\x20-\x7e]")
_SPACES = re.compile(r" {2,}")


def sanitize_warning(text: object, limit: int = WARNING_LIMIT) -> str:
    """One admission warning: a single line of printable ASCII, at most ``limit`` characters."""
    line = str(text).translate(_TRANSLITERATE)
    line = unicodedata.normalize("NFKD", line)
    line = "".join(ch for ch in line if not unicodedata.combining(ch))
    line = _SPACES.sub(" ", _UNSAFE.sub("?", line)).strip()
    while True:
        stripped = _WARNING_PREFIX.sub("", line, count=1)
        if stripped == line:
            break
        line = stripped.strip()
    if len(line) > limit:
        line = line[: limit - 3].rstrip() + "..."
    return line


def sanitize_warnings(items: Iterable[object], total: int = WARNINGS_TOTAL) -> list[str]:
    """Clean, de-duplicate and cap the list so its total stays within ``total`` bytes."""
    cleaned: list[str] = []
    for item in items:
        line = sanitize_warning(item)
        if line and line not in cleaned:
            cleaned.append(line)
    kept: list[str] = []
    used = 0
    for index, line in enumerate(cleaned):
        rest = len(cleaned) - index - 1
        reserve = 40 if rest else 0          # room for the "N more" line if others follow
        if used + len(line) + reserve > total:
            kept.append(f"{len(cleaned) - index} more warnings not shown")
            break
        kept.append(line)
        used += len(line)
    return kept


def review_response(uid: str, allowed: bool, warnings: Iterable[object] = (), message: str | None = None,
                    code: int = 403, audit_annotations: Mapping[str, str] | None = None) -> dict:
    """The AdmissionReview the apiserver expects back (``uid`` echoed)."""
    response: dict = {"uid": uid, "allowed": bool(allowed)}
    if not allowed:
        response["status"] = {"code": code, "reason": "Forbidden" if code == 403 else "BadRequest",
                              "message": message or "denied by capacity-webhook"}
    clean = sanitize_warnings(warnings)
    if clean:
        response["warnings"] = clean
    if audit_annotations:
        response["auditAnnotations"] = {k: str(v)[:1024] for k, v in audit_annotations.items()}
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def error_body(status: int, message: str) -> dict:
    """The body of a 4xx for a request that is not a review we can answer."""
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status, "message": message}
