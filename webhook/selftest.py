"""``capacity-webhook selftest``: prove a running webhook answers admission reviews.

Used by the chart's ``helm test`` hook Pod and handy by hand::

    capacity-webhook selftest --url https://capacity-webhook.capacity-webhook.svc:443/validate \\
        --ca-file /tls/ca.crt

It POSTs one dry-run ``admission.k8s.io/v1`` AdmissionReview (a 1-replica Deployment
asking for 10m CPU) and checks that the answer is a well-formed AdmissionReview that
echoes the request uid and carries a boolean ``allowed``. The verdict itself (allowed
or denied) does not matter: a deny is still a healthy webhook.

HTTP with the standard library (urllib + ssl), no ``requests``; the AdmissionReview
apiVersion and kind are the server's own (:mod:`webhook.server.review`). The server
certificate is always verified against ``--ca-file`` (hostname included); there is
deliberately no ``--insecure``.

Exit codes: 0 well-formed answer, 1 no/invalid answer, 2 usage error.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import click

from .server.review import API_VERSION, KIND

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2


def build_review(uid: str, namespace: str = "default") -> dict[str, Any]:
    """A dry-run CREATE of a tiny Deployment, as the API server would send it."""
    name = "capacity-webhook-selftest"
    labels = {"app.kubernetes.io/name": name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "pause",
                            "image": "registry.k8s.io/pause:3.9",
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ]
                },
            },
        },
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "request": {
            "uid": uid,
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": name,
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:capacity-webhook:selftest", "groups": ["system:authenticated"]},
            "object": deployment,
            "oldObject": None,
            "dryRun": True,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "dryRun": ["All"]},
        },
    }


def check_response(body: Any, uid: str) -> tuple[bool, str]:
    """Return (ok, one-line description) for a decoded AdmissionReview answer."""
    if not isinstance(body, dict):
        return False, "response is not a JSON object"
    if body.get("kind") != KIND:
        return False, f"response kind is {body.get('kind')!r}, want {KIND!r}"
    if body.get("apiVersion") != API_VERSION:
        return False, f"response apiVersion is {body.get('apiVersion')!r}, want {API_VERSION!r}"
    resp = body.get("response")
    if not isinstance(resp, dict):
        return False, "response.response is missing"
    if resp.get("uid") != uid:
        return False, f"response uid {resp.get('uid')!r} does not echo request uid {uid!r}"
    allowed = resp.get("allowed")
    if not isinstance(allowed, bool):
        return False, f"response.allowed is {allowed!r}, want a boolean"
    if allowed:
        verdict = "allowed"
    else:
        status = resp.get("status") or {}
        message = status.get("message") if isinstance(status, dict) else None
        verdict = "denied" + (f" ({_one_line(message)})" if message else "")
    warnings = resp.get("warnings") or []
    if warnings:
        verdict += f", {len(warnings)} warning(s): {_one_line(str(warnings[0]))}"
    return True, verdict


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_selftest(url: str, ca_file: str, namespace: str = "default", timeout: float = 5.0) -> tuple[int, str]:
    """POST the review; return (exit code, the one line to print)."""
    uid = str(uuid.uuid4())
    payload = json.dumps(build_review(uid, namespace)).encode()
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        return EXIT_USAGE, f"selftest: cannot load CA file {ca_file}: {exc}"
    request = urllib.request.Request(
        url,
        data=payload,
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            status = resp.status
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        return EXIT_FAIL, f"selftest: FAIL {url}: HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", exc)
        return EXIT_FAIL, f"selftest: FAIL {url}: {_one_line(str(reason))}"
    if status != 200:
        return EXIT_FAIL, f"selftest: FAIL {url}: HTTP {status}"
    try:
        body = json.loads(raw)
    except ValueError:
        return EXIT_FAIL, f"selftest: FAIL {url}: response is not JSON"
    ok, detail = check_response(body, uid)
    if not ok:
        return EXIT_FAIL, f"selftest: FAIL {url}: {detail}"
    return EXIT_OK, f"selftest: OK {url}: dry-run Deployment {detail}"


def _validate_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme != "https" or not parsed.hostname:
        raise click.BadParameter("must be an https:// URL, e.g. https://svc.ns.svc:443/validate")
    return value


@click.command("selftest")
@click.option("--url", required=True, callback=_validate_url, help="Webhook endpoint, e.g. https://svc.ns.svc:443/validate.")
@click.option(
    "--ca-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, readable=True),
    help="PEM CA bundle the server certificate must chain to.",
)
@click.option("--namespace", default="default", show_default=True, help="Namespace of the dry-run Deployment.")
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds.")
def selftest_command(url: str, ca_file: str, namespace: str, timeout: float) -> None:
    """POST a dry-run AdmissionReview to a running webhook and check the answer."""
    code, line = run_selftest(url, ca_file, namespace=namespace, timeout=timeout)
    click.echo(line, err=code != EXIT_OK)
    click.get_current_context().exit(code)


if __name__ == "__main__":  # pragma: no cover
    selftest_command()
