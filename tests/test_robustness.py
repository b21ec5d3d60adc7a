"""Property tests: nothing a client sends crashes, hangs or is blamed wrongly (issue 10).

Hypothesis draws AdmissionReview bodies, Kubernetes objects, quantities and snapshots
by mutating real ones (the bundled example review, workloads and two-node cluster): any
field replaced by any JSON value, removed, or given a hostile value (a huge exponent, a
lone surrogate, a deep list). The properties are the webhook's contract:

* ``/validate`` never answers 5xx; a 200 echoes the uid and never says "internal error";
* ``evaluate`` never raises (a wrong shape is an ``INVALID_OBJECT`` reason naming a field);
* a snapshot never stops ``state_from_objects`` and the engine still decides on it;
* a quantity either parses to a value within the API server's bounds or is refused;
* ``check`` exits 0, 1 or 2, with one stderr line for an input error and no traceback.

Examples are bounded (``max_examples``, no deadline flakiness) so the file runs in seconds.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from decimal import Decimal, getcontext
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.engine import shape
from webhook.engine.requests import ObjectError
from webhook.engine.evaluate import evaluate
from webhook.engine.quantity import MAX_VALUE, QuantityError, parse_quantity
from webhook.server.app import create_app
from webhook.state.holder import StateHolder
from webhook.state.snapshot import state_from_objects

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "webhook" / "examples"
REVIEW = json.loads((EXAMPLES / "review.json").read_text())
CLUSTER = json.loads((EXAMPLES / "cluster.json").read_text())["items"]
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HOSTILE = st.sampled_from([
    None, True, 0, -1, 2**31, 2**63, 10**300, 1.5, -0.0, "", "x", "\ud800", "1e9999999", "1e99999999", "-1e400",
    "25%", "abc%", "1Ki", "0.000000000001", [], [None], [[]], {}, {"": None}, [1, "a"], "9" * 500,
    [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]],
])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=8))
JSON = st.one_of(HOSTILE, st.recursive(SCALARS, lambda c: st.lists(c, max_size=3)
                                       | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6))


def paths(doc, prefix=()):
    """Every (path) into ``doc``: dict keys and list indexes."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from paths(value, prefix + (index,))


@st.composite
def mutated(draw, original, rounds=3):
    """``original`` with 1-3 fields replaced, removed or added."""
    doc = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, rounds))):
        all_paths = [p for p in paths(doc) if p]
        if not all_paths:
            break
        path = draw(st.sampled_from(all_paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = copy.deepcopy(draw(JSON))
        elif action == "remove" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(st.text(max_size=6))] = copy.deepcopy(draw(JSON))
    return doc


def _workloads():
    import yaml

    return [d for d in yaml.safe_load_all((EXAMPLES / "workloads.yaml").read_text()) if d]


WORKLOADS = _workloads() + [REVIEW["request"]["object"]]


# ---- AdmissionReview bodies -------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    holder = StateHolder(state_from_objects(copy.deepcopy(CLUSTER)))
    holder.mark_ready("example cluster")
    app = create_app(holder, mode="enforce", reservation_ttl=0)
    return app.test_client(), app.extensions["capacity_webhook"]["metrics"]


def _post(client, data: bytes):
    test_client, metrics = client
    before = metrics.internal_errors
    response = test_client.post("/validate", data=data, content_type="application/json")
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    assert metrics.internal_errors == before, "an internal error (see the log) was reported"
    return response


@SETTINGS
@given(mutated(REVIEW, rounds=4))
def test_mutated_reviews_never_5xx_nor_internal_errors(client, body):
    try:
        data = json.dumps(body).encode("utf-8")
    except UnicodeEncodeError:      # a lone surrogate: send it as the JSON escape a client would
        data = json.dumps(body, ensure_ascii=True).encode()
    response = _post(client, data)
    if response.status_code == 200:
        answer = response.get_json()["response"]
        assert answer["uid"] == body["request"]["uid"]
        assert not any("internal error" in w for w in answer.get("warnings", []))
    else:
        assert response.get_json()["message"]


@SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_arbitrary_bytes_get_4xx(client, data):
    response = _post(client, data)
    assert response.status_code in (200, 400, 413)


@pytest.mark.parametrize("raw", [b'{"kind": "\\ud800"}', b"\xed\xa0\x80", b"\xff\xfe", b"[" * 100_000,
                                 b"1" * 5000, b'{"apiVersion": NaN}', b'{"apiVersion": 1e400}'])
def test_bodies_that_are_not_valid_json_text_get_400(client, raw):
    assert _post(client, raw).status_code == 400


def test_lone_surrogate_kind_is_refused_and_metrics_stay_parseable(client):
    from prometheus_client.parser import text_string_to_metric_families

    body = copy.deepcopy(REVIEW)
    body["request"]["kind"]["kind"] = "\ud800"
    assert _post(client, json.dumps(body).encode()).status_code == 400
    for kind in ("Deployment", "NotAKind-1", "NotAKind-2"):
        body["request"]["kind"]["kind"] = kind
        body["request"]["object"]["kind"] = kind
        assert _post(client, json.dumps(body).encode()).status_code == 200
    text = client[0].get("/metrics").get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    kinds = {s.labels["kind"] for s in families["capacity_webhook_admission_requests"].samples}
    assert kinds <= {"Deployment", "other"} and "other" in kinds


# ---- objects straight into the engine ----------------------------------------------------
@SETTINGS
@given(st.sampled_from(range(len(WORKLOADS))).flatmap(lambda i: mutated(WORKLOADS[i])),
       st.sampled_from(["enforce", "warn", "audit"]))
def test_mutated_objects_are_decided_or_named_invalid(obj, mode):
    state = state_from_objects(copy.deepcopy(CLUSTER))
    verdict = evaluate(state, obj, None, mode)                 # must not raise
    problem = shape.problem(obj)
    if problem is not None:
        assert verdict.codes == ["INVALID_OBJECT"] and problem.field in verdict.reasons[0].message


@SETTINGS
@given(st.sampled_from(range(len(WORKLOADS + CLUSTER))).flatmap(lambda i: mutated((WORKLOADS + CLUSTER)[i])))
def test_the_quick_shape_walk_agrees_with_the_one_that_names_fields(obj):
    """``check_object`` walks objects with ``_valid`` (no paths) and names a field only when it fails."""
    schema = shape.SCHEMAS.get(obj.get("kind") if isinstance(obj.get("kind"), str) else "", shape._ANY_OBJECT)
    try:
        shape._check(obj, schema, "")
        named = None
    except ObjectError as exc:
        named = exc.field
    assert shape._valid(obj, schema) == (named is None)
    if isinstance(obj.get("kind"), str):
        problem = shape.problem(obj)
        assert (problem.field if problem is not None else None) == named


def _skeleton(schema):
    """A well-formed value with every field of ``schema`` present."""
    if isinstance(schema, dict):
        return {key: _skeleton(sub) for key, sub in schema.items()}
    if isinstance(schema, shape.ListOf):
        return [_skeleton(schema.item)]
    if isinstance(schema, shape.MapOf):
        return {"k": _skeleton(schema.value)}
    return {shape.STR: "s", shape.BOOL: True, shape.INT: 2**40, shape.INT32: 7, shape.NUMBER: 1.5,
            shape.QUANTITY: "1Gi", shape.INT_OR_STR: "25%", shape.ANY: {"a": None}}[schema]


@pytest.mark.parametrize("kind", sorted(shape.SCHEMAS))
def test_every_field_of_every_schema_is_judged_alike_by_both_shape_walks(kind):
    """Each field of the skeleton replaced by each wrong (or right) JSON value: the quick walk
    passes exactly the objects the path-naming walk passes."""
    schema = shape.SCHEMAS[kind]
    skeleton = _skeleton(schema)
    assert shape._valid(skeleton, schema)
    values = [None, True, False, 0, -1, 2**31, -(2**31) - 1, 2**63, 1.5, "x", [], [None], [1, "a"], {}, {"": None},
              {"a": "b"}, {"a": 1}, [{}]]
    for path in [p for p in paths(skeleton) if p]:
        parent = skeleton
        for step in path[:-1]:
            parent = parent[step]
        original = parent[path[-1]]
        for value in values:
            parent[path[-1]] = value            # in place, put back below
            try:
                shape._check(skeleton, schema, "")
                passes = True
            except ObjectError:
                passes = False
            assert shape._valid(skeleton, schema) == passes, (kind, path, value)
        parent[path[-1]] = original


@SETTINGS
@given(mutated(WORKLOADS[-1]), mutated(WORKLOADS[-1]))
def test_mutated_updates_are_decided(new, old):
    state = state_from_objects(copy.deepcopy(CLUSTER))
    evaluate(state, new, old, "enforce")


@pytest.mark.parametrize("owner_refs", ["x", 3, [None], {"a": 1}, [{"controller": "yes"}], [[]]])
def test_malformed_owner_references_are_invalid_objects_naming_the_field(client, owner_refs):
    body = copy.deepcopy(REVIEW)
    body["request"]["object"]["metadata"]["ownerReferences"] = owner_refs
    answer = _post(client, json.dumps(body).encode()).get_json()["response"]
    assert answer["allowed"] is True
    assert any("INVALID_OBJECT" in w or "metadata.ownerReferences" in w for w in answer["warnings"]), answer


# ---- snapshots ---------------------------------------------------------------------------
@SETTINGS
@given(st.lists(st.sampled_from(range(len(CLUSTER))).flatmap(lambda i: mutated(CLUSTER[i], rounds=2)),
                min_size=1, max_size=6))
def test_mutated_snapshots_load_and_decide(broken):
    state = state_from_objects(copy.deepcopy(CLUSTER) + broken)
    for obj in WORKLOADS:
        evaluate(state, copy.deepcopy(obj), None, "enforce")


# ---- quantities ----------------------------------------------------------------------------
NUMBER = st.builds(lambda sign, whole, frac, tail: f"{sign}{whole}{frac}{tail}",
                   st.sampled_from(["", "+", "-"]), st.text("0123456789", max_size=25),
                   st.one_of(st.just(""), st.text("0123456789", max_size=25).map(lambda d: "." + d)),
                   st.one_of(st.sampled_from(["", "m", "k", "M", "G", "T", "P", "E", "n", "u", "Ki", "Mi", "Gi", "Ti",
                                              "Pi", "Ei"]),
                             st.integers(-2**64, 2**64).map(lambda e: f"e{e}")))


def oracle(text: str) -> Fraction | None:
    """The quantity rules re-derived with Decimal from apimachinery's ParseQuantity: the exact value,
    a non-zero one rounded up to a whole nano-unit, capped at 2^63-1; the exponent of "e<N>" an int64
    used as an int32 scale (it wraps around, and so does taking the fraction's digits off it)."""
    getcontext().prec = 200
    body, mult = text, Decimal(1)
    for suffix, power in (("Ki", 10), ("Mi", 20), ("Gi", 30), ("Ti", 40), ("Pi", 50), ("Ei", 60)):
        if body.endswith(suffix):
            body, mult = body[:-2], Decimal(2) ** power
            break
    else:
        if "e" in body:
            body, exp = body.split("e")
            decimals = len(body.split(".")[1]) if "." in body else 0
            wrapped = decimals - ((decimals - int(exp) + 2**31) % 2**32 - 2**31)
            if abs(wrapped) > 300:      # beyond Decimal's comfortable range: only the bound matters
                return None
            mult = Decimal(10) ** wrapped
        elif body and body[-1] in "mkMGTPEnu":
            mult = Decimal(10) ** {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
                                   "E": 18}[body[-1]]
            body = body[:-1]
    digits = body.lstrip("+-")
    value = Decimal(body[:len(body) - len(digits)] + "0" + digits + ("0" if digits.endswith(".") else "")) * mult
    if value == 0:
        return Fraction(0)
    nanos = (abs(value) * 10**9).to_integral_value(rounding="ROUND_CEILING")
    magnitude = min(Fraction(int(nanos), 10**9), Fraction(MAX_VALUE))
    return magnitude * (1 if value > 0 else -1)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(NUMBER)
def test_quantities_are_bounded_and_exact_where_they_matter(text):
    started = time.perf_counter()
    try:
        value = parse_quantity(text)
    except QuantityError:
        value = None
    assert time.perf_counter() - started < 1.0          # exact 10^9999999 took 16 s; the bound is cheap
    if not text:
        assert value is None             # ErrFormatWrong; every other string of this shape parses
        return
    if "e" in text and not -2**63 <= int(text.split("e")[1]) < 2**63:
        assert value is None             # the exponent must parse as an int64: ErrSuffix
        return
    number = text.split("e")[0] if "e" in text else text.rstrip("mkMGTPEnuKi")
    if not any(c.isdigit() for c in number) and (
            text.endswith(("Pi", "Ei")) or ("e" in text and (int(text.split("e")[1]) + 2**31) % 2**32 - 2**31 < -9)):
        assert value is None             # no digits on ParseQuantity's inf.Dec path: ErrNumeric
        return
    assert value is not None and abs(value) <= MAX_VALUE
    expected = oracle(text)
    if expected is not None and abs(expected) < 10**18:
        assert value == expected, (text, value, expected)


@pytest.mark.parametrize("text", ["1e9999999", "1e99999999", "-1e400", "1" * 4000, "0." + "0" * 4000 + "1"])
def test_huge_quantities_cost_nothing(text):
    started = time.perf_counter()
    value = parse_quantity(text)
    assert time.perf_counter() - started < 1.0 and abs(value) <= MAX_VALUE


# ---- check ---------------------------------------------------------------------------------
def run_check(tmp_path: Path, text: str, timeout: float = 60) -> subprocess.CompletedProcess:
    manifest = tmp_path / "in.yaml"
    manifest.write_text(text, encoding="utf-8", errors="surrogatepass")
    return subprocess.run([sys.executable, "-m", "webhook.cli", "check", "--cluster", str(EXAMPLES / "cluster.json"),
                           "-f", str(manifest), "-o", "json"], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, resources: {requests: {cpu: 100m, memory: %s}}}]
"""


@pytest.mark.parametrize("text, code", [
    ("apiVersion: v1\nkind: Namespace\nmetadata: [a, b]\n", 2),
    ("apiVersion: v1\nkind: List\nitems: {a: 1}\n", 2),
    ('{"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "\\ud800"}}', 2),
    ("[" * 100_000, 2),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: n}\ndata: {a: " + "9" * 5000 + "}\n", 2),
    (DEPLOYMENT % '"1e400"', 1),
    (DEPLOYMENT % '"1e99999999"', 1),
    ("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: {a: 1}}\nspec: {}\n", 0),
    (DEPLOYMENT.replace("{labels: {app: web}}", "{labels: [a]}") % "1Gi", 0),
])
def test_check_keeps_its_exit_code_contract(tmp_path, text, code):
    result = run_check(tmp_path, text)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    if code == 2:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ---- over budget, and bugs ---------------------------------------------------------------
def _app(**kwargs):
    holder = StateHolder(state_from_objects(copy.deepcopy(CLUSTER)))
    holder.mark_ready("example cluster")
    app = create_app(holder, mode="enforce", **kwargs)
    return holder, app.test_client(), app.extensions["capacity_webhook"]["metrics"]


def test_a_decision_over_its_budget_is_allowed_with_a_warning_and_releases_the_lock():
    holder, client, metrics = _app(decision_budget=0.0)
    answer = client.post("/validate", json=REVIEW).get_json()["response"]      # 30 replicas: a deny in time
    assert answer["allowed"] is True
    assert answer["warnings"] == ["capacity-webhook could not decide within 0 s: the capacity check was skipped"]
    assert metrics.budget_exceeded_count == 1 and metrics.internal_errors == 0
    assert holder.lock.acquire(blocking=False)
    holder.lock.release()
    _, in_time, _ = _app()
    assert in_time.post("/validate", json=REVIEW).get_json()["response"]["allowed"] is False


def test_a_bug_in_the_engine_is_an_internal_error_not_the_objects_fault(monkeypatch, caplog):
    import webhook.server.admission as admission_module

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(admission_module, "evaluate", broken)
    _, client, metrics = _app()
    response = client.post("/validate", json=REVIEW)
    answer = response.get_json()["response"]
    assert response.status_code == 200 and answer["allowed"] is True
    assert answer["warnings"] == [
        "capacity-webhook internal error: the capacity check was skipped (see the server log)"
    ]
    assert metrics.internal_errors == 1
    logged = [r for r in caplog.records if r.getMessage().startswith("internal error while deciding")]
    assert logged and logged[0].exc_info and logged[0].exc_info[0] is KeyError


def test_the_engine_no_longer_turns_its_own_errors_into_invalid_object(monkeypatch):
    import webhook.engine.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module, "demand_of", lambda obj: {}["bug"])
    state = state_from_objects(copy.deepcopy(CLUSTER))
    with pytest.raises(KeyError):
        evaluate(state, WORKLOADS[0], None, "enforce")


def test_a_deep_list_under_an_unknown_field_is_an_invalid_object_not_a_recursion_error(client):
    body = copy.deepcopy(REVIEW)
    spec = body["request"]["object"]["spec"]["template"]["spec"]
    spec["tolerations"] = [{"operator": "Exists", "extra": "DEEP"}]
    data = json.dumps(body).encode().replace(b'"DEEP"', b"[" * 600 + b"]" * 600)   # parses; 1,000+ would not
    answer = _post(client, data).get_json()["response"]
    assert answer["allowed"] is True and "nested more than 64 levels deep" in answer["warnings"][0]
