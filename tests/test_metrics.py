"""``/metrics`` as Prometheus reads it: parsed with prometheus_client's own text parser."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from webhook.server.app import create_app
from webhook.state.holder import StateHolder
from webhook.state.snapshot import state_from_objects

EXAMPLES = Path(__file__).resolve().parents[1] / "webhook" / "examples"
REVIEW = json.loads((EXAMPLES / "review.json").read_text())
CLUSTER = json.loads((EXAMPLES / "cluster.json").read_text())["items"]


def scrape(client) -> dict:
    text = client.get("/metrics").get_data(as_text=True)
    families = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f"family {family.name} printed twice"
        families[family.name] = family
    return families


def test_every_family_parses_with_its_type_and_samples():
    holder = StateHolder(state_from_objects(copy.deepcopy(CLUSTER)))
    holder.mark_ready("example")
    client = create_app(holder, mode="warn").test_client()
    for kind in ("Deployment", "Widget"):
        body = copy.deepcopy(REVIEW)
        body["request"]["kind"]["kind"] = body["request"]["object"]["kind"] = kind
        assert client.post("/validate", json=body).status_code == 200
    assert client.post("/validate", data=b"not json").status_code == 400
    families = scrape(client)
    types = {name: f.type for name, f in families.items()}
    assert types == {
        "capacity_webhook_admission_requests": "counter", "capacity_webhook_invalid_requests": "counter",
        "capacity_webhook_admission_duration_seconds": "histogram", "capacity_webhook_reservations_made": "counter",
        "capacity_webhook_internal_errors": "counter", "capacity_webhook_decision_budget_exceeded": "counter",
        "capacity_webhook_info": "gauge", "capacity_webhook_state_ready": "gauge",
        "capacity_webhook_state_stale_seconds": "gauge", "capacity_webhook_reservations": "gauge",
        "capacity_webhook_node_free_ip_slots": "gauge", "capacity_webhook_node_free_pod_slots": "gauge"}
    requests = {(s.labels["kind"], s.labels["operation"], s.labels["verdict"]): s.value
                for s in families["capacity_webhook_admission_requests"].samples if s.name.endswith("_total")}
    assert requests == {("Deployment", "CREATE", "warn"): 1, ("other", "CREATE", "allow"): 1}
    invalid = [s for s in families["capacity_webhook_invalid_requests"].samples if s.name.endswith("_total")]
    assert [(s.labels, s.value) for s in invalid] == [({"code": "400"}, 1)]
    histogram = families["capacity_webhook_admission_duration_seconds"].samples
    count = next(s.value for s in histogram if s.name.endswith("_count"))
    inf = next(s.value for s in histogram if s.name.endswith("_bucket") and s.labels["le"] == "+Inf")
    assert count == inf == 2
    nodes = {s.labels["node"] for s in families["capacity_webhook_node_free_ip_slots"].samples}
    assert nodes == {o["metadata"]["name"] for o in CLUSTER if o["kind"] == "Node"}


def test_kinds_a_client_makes_up_add_no_series():
    holder = StateHolder(state_from_objects(copy.deepcopy(CLUSTER)))
    holder.mark_ready("example")
    client = create_app(holder, mode="audit").test_client()
    body = copy.deepcopy(REVIEW)
    for n in range(200):
        body["request"]["kind"]["kind"] = f"Kind{n}"
        client.post("/validate", json=body)
    samples = scrape(client)["capacity_webhook_admission_requests"].samples
    assert {s.labels["kind"] for s in samples} == {"other"}
