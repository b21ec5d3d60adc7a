"""The Helm chart, rendered by the real `helm` binary.

helm is found via $HELM, then ${CAPACITY_WEBHOOK_TOOLS:-~/.cache/capacity-webhook/tools}/helm
(built by .ci/build-control-plane), then PATH. Without it these tests skip, unless
CAPACITY_WEBHOOK_E2E_REQUIRED=1, where a missing helm is a failure.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from webhook.engine.model import Reservation
from webhook.engine.requests import Resources
from webhook.server.cli import serve_command
from webhook.state import ledger_api
from webhook.state.live_lister import AWS_NETWORK, KARPENTER, RESOURCES, Resource

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "capacity-webhook"
RELEASE = "cw"
NAMESPACE = "capacity-webhook"
FULLNAME = "cw-capacity-webhook"



def rbac_pair(res: Resource) -> tuple[str, str]:
    return res.rbac


# What webhook/state/live_lister.py lists and watches: the ClusterRole must grant exactly this.
EXPECTED_RBAC = {rbac_pair(r) for r in RESOURCES}
KARPENTER_RBAC = {rbac_pair(r) for r in KARPENTER}
AWS_NETWORK_RBAC = {rbac_pair(r) for r in AWS_NETWORK}


def find_helm() -> str | None:
    env = os.environ.get("HELM")
    if env:
        return env if os.access(env, os.X_OK) else None
    tools = Path(os.environ.get("CAPACITY_WEBHOOK_TOOLS") or Path.home() / ".cache" / "capacity-webhook" / "tools")
    if os.access(tools / "helm", os.X_OK):
        return str(tools / "helm")
    return shutil.which("helm")


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    binary = find_helm()
    if binary is None:
        msg = ("helm not found ($HELM, $CAPACITY_WEBHOOK_TOOLS/helm or PATH); "
               "build it with .ci/build-control-plane")
        if os.environ.get("HELM"):
            msg = f"$HELM={os.environ['HELM']} is not an executable; " + msg
        if os.environ.get("CAPACITY_WEBHOOK_E2E_REQUIRED") == "1":
            pytest.fail(msg + " [CAPACITY_WEBHOOK_E2E_REQUIRED=1]")
        pytest.skip(msg)
    home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ)
    env.update(
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
        KUBECONFIG=str(home / "no-kubeconfig"),
    )

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc

    return run


def set_args(values: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in values.items():
        if isinstance(value, str):
            out += ["--set-string", f"{key}={value}"]
        else:
            out += ["--set-json", f"{key}={json.dumps(value)}"]
    return out


def render(helm: Any, **values: Any) -> list[dict[str, Any]]:
    proc = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *set_args(values))
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in docs}


def webhook_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    vwc = one(docs, "ValidatingWebhookConfiguration")
    assert len(vwc["webhooks"]) == 1
    return vwc["webhooks"][0]


def load_pem_cert(pem: bytes) -> Any:
    x509 = pytest.importorskip("cryptography.x509")
    return x509.load_pem_x509_certificate(pem)


@pytest.fixture(scope="module")
def default_docs(helm: Any) -> list[dict[str, Any]]:
    return render(helm)


# --------------------------------------------------------------------------- lint


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_helm_lint(helm: Any, strict: bool) -> None:
    args = ["lint", str(CHART)] + (["--strict"] if strict else [])
    proc = helm(*args)
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(
    "values",
    [
        {"tls.mode": "certManager"},
        {"tls.mode": "secret", "tls.secretName": "mine", "tls.caBundle": "Zm9v"},
        {"webhook.url": "https://127.0.0.1:8443/validate", "deployment.enabled": False},
    ],
    ids=["certManager", "secret", "url"],
)
def test_helm_lint_strict_other_modes(helm: Any, values: dict[str, Any]) -> None:
    helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *set_args(values))


# --------------------------------------------------------------------------- default (generate) render


def test_default_objects(default_docs: list[dict[str, Any]]) -> None:
    assert kinds(default_docs) >= {
        "Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
        "PodDisruptionBudget", "Secret", "ValidatingWebhookConfiguration", "Pod",
    }
    for doc in default_docs:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


def test_webhook_defaults(default_docs: list[dict[str, Any]]) -> None:
    wh = webhook_of(default_docs)
    assert wh["failurePolicy"] == "Ignore"
    assert wh["timeoutSeconds"] == 3
    assert wh["sideEffects"] == "NoneOnDryRun"     # real admissions write the ledger; dry runs write nothing
    assert wh["admissionReviewVersions"] == ["v1"]
    assert wh["matchPolicy"] == "Equivalent"
    assert len(wh["name"].split(".")) >= 3
    assert wh["clientConfig"]["service"] == {
        "name": FULLNAME, "namespace": NAMESPACE, "path": "/validate", "port": 443,
    }
    assert "url" not in wh["clientConfig"]


def test_namespace_selector_excludes_system_release_and_ignored(default_docs: list[dict[str, Any]]) -> None:
    exprs = webhook_of(default_docs)["namespaceSelector"]["matchExpressions"]
    by_key = {e["key"]: e for e in exprs}
    name_expr = by_key["kubernetes.io/metadata.name"]
    assert name_expr["operator"] == "NotIn"
    assert {"kube-system", NAMESPACE} <= set(name_expr["values"])
    assert by_key["capacity-webhook/ignore"]["operator"] == "DoesNotExist"
    assert "values" not in by_key["capacity-webhook/ignore"]


def test_rules(default_docs: list[dict[str, Any]]) -> None:
    rules = webhook_of(default_docs)["rules"]
    covered: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                covered.setdefault((group, res), set()).update(rule["operations"])
    create_update = {
        ("apps", r) for r in ("deployments", "replicasets", "statefulsets", "daemonsets")
    } | {("batch", "jobs"), ("batch", "cronjobs"), ("", "pods"), ("", "persistentvolumeclaims")}
    for key in create_update:
        assert covered.get(key) == {"CREATE", "UPDATE"}, key
    for res in ("deployments/scale", "replicasets/scale", "statefulsets/scale"):
        assert covered.get(("apps", res)) == {"UPDATE"}, res
    assert set(covered) == create_update | {
        ("apps", f"{r}/scale") for r in ("deployments", "replicasets", "statefulsets")
    }


def test_generate_mode_ca_bundle_signs_serving_cert(default_docs: list[dict[str, Any]]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import padding

    wh = webhook_of(default_docs)
    ca_pem = base64.b64decode(wh["clientConfig"]["caBundle"], validate=True)
    assert ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    ca = load_pem_cert(ca_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True

    secret = one(default_docs, "Secret", f"{FULLNAME}-tls")
    assert secret["type"] == "kubernetes.io/tls"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert set(data) == {"ca.crt", "tls.crt", "tls.key"}
    assert data["ca.crt"] == ca_pem, "Secret ca.crt and webhook caBundle must be the same CA"
    assert b"PRIVATE KEY" in data["tls.key"]
    leaf = load_pem_cert(data["tls.crt"])
    ca.public_key().verify(
        leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(), leaf.signature_hash_algorithm
    )
    sans = set(
        leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    )
    assert f"{FULLNAME}.{NAMESPACE}.svc" in sans

    dep = one(default_docs, "Deployment")
    assert "checksum/tls" in dep["spec"]["template"]["metadata"]["annotations"]


def test_deployment(default_docs: list[dict[str, Any]]) -> None:
    dep = one(default_docs, "Deployment", FULLNAME)
    spec = dep["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == FULLNAME
    (container,) = pod["containers"]
    args = container["args"]
    assert args[0] == "serve"

    def flag(name: str) -> str:
        return args[args.index(name) + 1]

    assert flag("--tls-cert-file") == "/tls/tls.crt"
    assert flag("--tls-private-key-file") == "/tls/tls.key"
    assert flag("--port") == "8443"
    assert flag("--mode") == "warn"
    assert flag("--workers") == "1"
    assert_serve_accepts(args)
    assert container["ports"][0]["containerPort"] == 8443
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert (get["scheme"], get["path"], get["port"]) == ("HTTPS", path, "https")
    res = container["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]

    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["tls"]["mountPath"] == "/tls" and mounts["tls"]["readOnly"] is True
    assert mounts["tmp"]["mountPath"] == "/tmp"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == f"{FULLNAME}-tls"
    assert "emptyDir" in volumes["tmp"]

    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert "priorityClassName" not in pod


def assert_serve_accepts(args: list[str]) -> None:
    """Every ``--flag value`` the chart passes is an option of webhook.server.cli's serve, with a
    value its type accepts (paths excepted: /tls does not exist here)."""
    assert args[0] == "serve" and len(args) % 2 == 1, args
    options = {opt: param for param in serve_command.params for opt in param.opts}
    ctx = click.Context(serve_command)
    for name, value in zip(args[1::2], args[2::2], strict=True):
        assert name in options, f"serve has no option {name}"
        param = options[name]
        if not isinstance(param.type, click.Path):
            param.type.convert(value, param, ctx)  # raises click.BadParameter


def test_every_value_reaches_serve(helm: Any) -> None:
    docs = render(helm, **{"mode": "audit", "staleAfter": 90, "headroomNodes": 2, "reservationTTL": 0,
                           "threads": 16, "logLevel": "debug", "containerPort": 9443})
    args = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert_serve_accepts(args)
    assert dict(zip(args[1::2], args[2::2], strict=True)).items() >= {
        "--mode": "audit", "--stale-after": "90", "--headroom-nodes": "2", "--reservation-ttl": "0",
        "--threads": "16", "--log-level": "debug", "--port": "9443"}.items()


def test_schema_choices_are_serves_choices() -> None:
    """values.schema.json must not allow a mode or log level that `serve` rejects at start-up."""
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]
    choices = {p.name: list(p.type.choices) for p in serve_command.params if isinstance(p.type, click.Choice)}
    assert schema["mode"]["enum"] == choices["mode"]
    assert schema["logLevel"]["enum"] == choices["log_level"]


def test_extra_env_only_when_set(default_docs: list[dict[str, Any]], helm: Any) -> None:
    (container,) = one(default_docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "env" not in container
    env = [{"name": "AWS_REGION", "value": "eu-west-1"}]
    (container,) = one(render(helm, extraEnv=env), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["env"] == env


def test_security_context(default_docs: list[dict[str, Any]]) -> None:
    pod = one(default_docs, "Deployment")["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    sc = pod["containers"][0]["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"


def test_service_and_pdb(default_docs: list[dict[str, Any]]) -> None:
    svc = one(default_docs, "Service", FULLNAME)
    (port,) = svc["spec"]["ports"]
    assert port["port"] == 443 and port["targetPort"] == "https"
    dep = one(default_docs, "Deployment")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    pdb = one(default_docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


def rbac_pairs(role: dict[str, Any]) -> set[tuple[str, str]]:
    pairs = set()
    for rule in role["rules"]:
        assert sorted(rule["verbs"]) == ["list", "watch"], rule  # RawLister only lists and watches
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                pairs.add((group, res))
    return pairs


def test_cluster_role_is_read_only_and_exact(default_docs: list[dict[str, Any]], helm: Any) -> None:
    role = one(default_docs, "ClusterRole")
    pairs = rbac_pairs(role)
    assert not any(res == "secrets" or res == "*" for _, res in pairs)
    assert not any(group == "*" for group, _ in pairs)
    assert pairs == EXPECTED_RBAC | KARPENTER_RBAC | AWS_NETWORK_RBAC

    no_karpenter = one(render(helm, **{"rbac.karpenter": False, "rbac.awsNetwork": False}), "ClusterRole")
    assert rbac_pairs(no_karpenter) == EXPECTED_RBAC

    binding = one(default_docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]


def test_ledger_role_grants_exactly_the_ledger_verbs_on_its_own_object_in_its_namespace(
        default_docs: list[dict[str, Any]]) -> None:
    role = next(d for d in default_docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-ledger"))
    assert role["metadata"]["namespace"] == NAMESPACE
    granted = set()
    for rule in role["rules"]:
        assert rule["apiGroups"] == [ledger_api.GROUP] and rule["resources"] == [ledger_api.PLURAL], rule
        for verb in rule["verbs"]:
            granted.add(verb)
            # get/update only on the ledger object; create cannot be limited by name
            assert rule.get("resourceNames") == (None if verb == "create" else [ledger_api.DEFAULT_NAME]), rule
    assert granted == set(ledger_api.RBAC_VERBS)
    binding = next(d for d in default_docs if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-ledger"))
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    # Every other rule stays read-only (test_cluster_role_is_read_only_and_exact): nothing else writes.
    assert [d["kind"] for d in default_docs].count("Role") == 1


def test_the_chart_ships_the_ledger_crd_the_server_uses() -> None:
    (crd,) = list(yaml.safe_load_all((CHART / "crds" / "capacityledgers.yaml").read_text()))
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{ledger_api.PLURAL}.{ledger_api.GROUP}"
    assert (spec["group"], spec["names"]["kind"], spec["names"]["plural"], spec["scope"]) == \
        (ledger_api.GROUP, ledger_api.KIND, ledger_api.PLURAL, "Namespaced")
    (version,) = spec["versions"]
    assert version["name"] == ledger_api.VERSION and version["served"] and version["storage"]
    entry = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["reservations"]["items"]
    written = ledger_api.to_entry(Reservation(("Deployment", "default", "web"), {"n1": 2}, Resources(100, 2**20, 0),
                                              False, 0.0, {"n1": 1}, 1, "uid-1", branch_eni=True), 1.0e9, "pod/1")
    assert set(written) == set(entry["properties"])      # the schema keeps every field the server writes
    key, held = ledger_api.from_entry(written)
    assert key == ("Deployment", "default", "web")
    # Another replica reading the promise still knows its pods take branch ENIs, not secondary IPs.
    assert (held.uses_ip, held.branch_eni, held.per_node) == (False, True, {"n1": 2})


def test_helm_test_hook_pod(default_docs: list[dict[str, Any]]) -> None:
    pod = one(default_docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    dep = one(default_docs, "Deployment")
    selector = dep["spec"]["selector"]["matchLabels"]
    labels = pod["metadata"].get("labels", {})
    assert not all(labels.get(k) == v for k, v in selector.items()), "test Pod must not match the Service selector"
    (c,) = pod["spec"]["containers"]
    assert c["image"] == dep["spec"]["template"]["spec"]["containers"][0]["image"]
    assert c["args"] == [
        "selftest", "--url", f"https://{FULLNAME}.{NAMESPACE}.svc:443/validate", "--ca-file", "/tls/ca.crt",
    ]
    assert c["securityContext"]["runAsUser"] == 65532
    assert pod["spec"]["volumes"][0]["secret"]["secretName"] == f"{FULLNAME}-tls"


# --------------------------------------------------------------------------- other modes and overrides


def test_generate_mode_makes_a_fresh_ca_without_a_cluster(helm: Any) -> None:
    """Without a cluster, `lookup` finds no Secret to reuse: each render generates a new CA."""
    a = webhook_of(render(helm))["clientConfig"]["caBundle"]
    b = webhook_of(render(helm))["clientConfig"]["caBundle"]
    assert a != b


def test_cert_manager_mode(helm: Any) -> None:
    docs = render(helm, **{"tls.mode": "certManager"})
    vwc = one(docs, "ValidatingWebhookConfiguration")
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/{FULLNAME}-serving"
    assert "caBundle" not in vwc["webhooks"][0]["clientConfig"]
    assert not [d for d in docs if d["kind"] == "Secret"], "cert-manager owns the Secret"
    cert = one(docs, "Certificate", f"{FULLNAME}-serving")
    assert cert["spec"]["secretName"] == f"{FULLNAME}-tls"
    assert f"{FULLNAME}.{NAMESPACE}.svc" in cert["spec"]["dnsNames"]
    assert cert["spec"]["issuerRef"]["name"] == f"{FULLNAME}-ca"
    issuers = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Issuer"}
    assert issuers[f"{FULLNAME}-selfsigned"] == {"selfSigned": {}}
    assert issuers[f"{FULLNAME}-ca"]["ca"]["secretName"] == f"{FULLNAME}-ca"
    assert one(docs, "Certificate", f"{FULLNAME}-ca")["spec"]["isCA"] is True

    custom = render(helm, **{"tls.mode": "certManager",
                             "tls.certManager.issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}})
    assert not [d for d in custom if d["kind"] == "Issuer"]
    (cert,) = [d for d in custom if d["kind"] == "Certificate"]
    assert cert["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer"}


def test_secret_mode(helm: Any) -> None:
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    docs = render(helm, **{"tls.mode": "secret", "tls.secretName": "my-tls", "tls.caBundle": ca})
    assert webhook_of(docs)["clientConfig"]["caBundle"] == ca
    assert not [d for d in docs if d["kind"] in ("Secret", "Certificate", "Issuer")]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["tls"]["secret"]["secretName"] == "my-tls"
    cm = one(docs, "ConfigMap")
    assert cm["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    assert cm["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_secret_mode_requires_name_and_ca(helm: Any) -> None:
    proc = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, "--set", "tls.mode=secret",
                "--set", "tls.secretName=x", check=False)
    assert proc.returncode != 0 and "tls.caBundle" in proc.stderr
    proc = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, "--set", "tls.mode=secret",
                "--set", "tls.caBundle=Zm9v", check=False)
    assert proc.returncode != 0 and "tls.secretName" in proc.stderr


def test_url_mode_without_deployment(helm: Any) -> None:
    url = "https://127.0.0.1:8443/validate"
    docs = render(helm, **{"webhook.url": url, "webhook.caBundle": "Zm9v", "deployment.enabled": False})
    assert not kinds(docs) & {"Deployment", "Service", "PodDisruptionBudget", "Secret", "Pod", "Certificate"}
    cc = webhook_of(docs)["clientConfig"]
    assert cc == {"url": url, "caBundle": "Zm9v"}
    wh = webhook_of(docs)
    assert wh["failurePolicy"] == "Ignore" and wh["timeoutSeconds"] == 3


def test_overrides(helm: Any) -> None:
    docs = render(helm, **{
        "mode": "enforce", "replicaCount": 3, "priorityClassName": "system-cluster-critical",
        "webhook.failurePolicy": "Fail", "webhook.timeoutSeconds": 10,
        "webhook.excludedNamespaces": ["kube-system", "monitoring"],
        "workers": 2, "threads": 4, "extraArgs": ["--foo"],
    })
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--mode") + 1] == "enforce"
    assert args[args.index("--workers") + 1] == "2"
    assert args[-1] == "--foo"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert one(docs, "Deployment")["spec"]["replicas"] == 3
    wh = webhook_of(docs)
    assert wh["failurePolicy"] == "Fail" and wh["timeoutSeconds"] == 10
    names = wh["namespaceSelector"]["matchExpressions"][0]["values"]
    assert set(names) == {"kube-system", "monitoring", NAMESPACE}

    single = render(helm, replicaCount=1)
    assert "PodDisruptionBudget" not in kinds(single), "minAvailable 1 on one pod would block node drains"


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "mode=bogus"],
        ["--set-string", "replicaCount=two"],
        ["--set", "webhook.timeoutSeconds=60"],
        ["--set", "webhook.timeoutSeconds=0"],
        ["--set", "tls.mode=x"],
        ["--set", "webhook.failurePolicy=Maybe"],
        ["--set", "notAValue=1"],
        ["--set", "logLevel=critical"],
    ],
    ids=["mode", "replicaCount", "timeout-high", "timeout-zero", "tls-mode", "failurePolicy", "unknown-key",
         "logLevel-serve-lacks"],
)
def test_bad_values_fail_schema(helm: Any, args: list[str]) -> None:
    proc = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, *args, check=False)
    assert proc.returncode != 0
    assert "schema" in proc.stderr.lower(), proc.stderr


def test_bad_values_file_fails_schema(helm: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"replicaCount": "two", "mode": "bogus"}))
    proc = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(bad), check=False)
    assert proc.returncode != 0
    assert "replicaCount" in proc.stderr and "mode" in proc.stderr


# --------------------------------------------------------------------------- monitoring (issue 14)

DASHBOARD = CHART / "dashboards" / "capacity-webhook.json"


def container_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def test_metrics_http_port_off_by_default(default_docs: list[dict[str, Any]]) -> None:
    container = container_of(default_docs)
    assert "--metrics-port" not in container["args"]
    assert [p["name"] for p in container["ports"]] == ["https"]
    assert [p["name"] for p in one(default_docs, "Service")["spec"]["ports"]] == ["https"]
    assert not kinds(default_docs) & {"ServiceMonitor", "PodMonitor", "NetworkPolicy", "ConfigMap"}


def test_metrics_http_port_reaches_serve_container_and_service(helm: Any) -> None:
    docs = render(helm, **{"metrics.httpPort.enabled": True, "metrics.httpPort.port": 9102})
    container = container_of(docs)
    args = container["args"]
    assert_serve_accepts(args)
    assert args[args.index("--metrics-port") + 1] == "9102"
    ports = {p["name"]: p for p in container["ports"]}
    assert ports["metrics"]["containerPort"] == 9102 and ports["https"]["containerPort"] == 8443
    svc_ports = {p["name"]: p for p in one(docs, "Service")["spec"]["ports"]}
    assert svc_ports["metrics"] == {"name": "metrics", "port": 9102, "targetPort": "metrics", "protocol": "TCP"}
    # Probes stay on the HTTPS port: the metrics port serves nothing but /metrics.
    assert container["readinessProbe"]["httpGet"]["port"] == "https"


def test_service_monitor_https_verifies_the_serving_cert(helm: Any) -> None:
    from cryptography import x509

    docs = render(helm, **{"serviceMonitor.enabled": True, "serviceMonitor.labels": {"release": "prom"}})
    sm = one(docs, "ServiceMonitor", FULLNAME)
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["namespace"] == NAMESPACE and sm["metadata"]["labels"]["release"] == "prom"
    svc = one(docs, "Service")
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["scheme"], endpoint["path"]) == ("https", "https", "/metrics")
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("30s", "10s")
    # The CA Prometheus verifies against is the one in the Secret the pods serve from, and the
    # serverName is one of the serving certificate's SANs.
    tls = endpoint["tlsConfig"]
    secret = one(docs, "Secret", tls["ca"]["secret"]["name"])
    assert tls["ca"]["secret"]["key"] == "ca.crt" and "ca.crt" in secret["data"]
    volumes = {v["name"]: v for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == secret["metadata"]["name"]
    leaf = load_pem_cert(base64.b64decode(secret["data"]["tls.crt"]))
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert tls["serverName"] in sans


def test_service_monitor_plain_http_and_overrides(helm: Any) -> None:
    relabel = [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "host"}]
    docs = render(helm, **{"serviceMonitor.enabled": True, "metrics.httpPort.enabled": True,
                           "serviceMonitor.namespace": "monitoring", "serviceMonitor.interval": "15s",
                           "serviceMonitor.relabelings": relabel,
                           "serviceMonitor.metricRelabelings": [{"action": "drop", "regex": "x"}]})
    sm = one(docs, "ServiceMonitor")
    assert sm["metadata"]["namespace"] == "monitoring"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}, "the Service stays in the release namespace"
    (endpoint,) = sm["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["scheme"]) == ("metrics", "http")
    assert "tlsConfig" not in endpoint
    assert endpoint["interval"] == "15s" and endpoint["relabelings"] == relabel
    assert endpoint["metricRelabelings"] == [{"action": "drop", "regex": "x"}]
    assert "metrics" in {p["name"] for p in one(docs, "Service")["spec"]["ports"]}

    mine = {"ca": {"configMap": {"name": "corp-ca", "key": "ca.crt"}}, "serverName": "webhook.example"}
    (endpoint,) = one(render(helm, **{"serviceMonitor.enabled": True, "serviceMonitor.tlsConfig": mine}),
                      "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["tlsConfig"] == mine


@pytest.mark.parametrize("http_port", [False, True], ids=["https", "http-port"])
def test_pod_monitor_scrapes_a_named_container_port(helm: Any, http_port: bool) -> None:
    docs = render(helm, **{"podMonitor.enabled": True, "metrics.httpPort.enabled": http_port})
    pm = one(docs, "PodMonitor", FULLNAME)
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    template = one(docs, "Deployment")["spec"]["template"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in template["spec"]["containers"][0]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert (endpoint["scheme"], "tlsConfig" in endpoint) == (("http", False) if http_port else ("https", True))
    assert "ServiceMonitor" not in kinds(docs)


@pytest.mark.parametrize("option", ["serviceMonitor.enabled", "podMonitor.enabled"])
def test_monitors_need_the_in_cluster_deployment(helm: Any, option: str) -> None:
    proc = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, "--set", "deployment.enabled=false",
                "--set", "webhook.url=https://10.0.0.5:8443/validate", "--set", f"{option}=true", check=False)
    assert proc.returncode != 0
    assert f"{option} needs deployment.enabled=true" in proc.stderr


def dashboard_metric_names(dashboard: dict[str, Any]) -> set[str]:
    import re

    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    names = set()
    for expr in exprs:
        names |= set(re.findall(r"\b(capacity_webhook_[a-z0-9_]+)", expr))
    return names


def served_metric_families() -> set[str]:
    """The metric family names the real flask app's /metrics serves for a snapshot cluster."""
    from tests import synthetic
    from webhook.server.app import create_app
    from webhook.state.holder import StateHolder
    from webhook.state.snapshot import state_from_objects

    holder = StateHolder(state_from_objects(synthetic.two_t3_medium_cluster()["items"]))
    holder.mark_ready("test")
    client = create_app(holder, mode="warn").test_client()
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u1", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "namespace": "default", "operation": "CREATE", "userInfo": {"username": "a"},
        "object": synthetic.small_web("web", 2), "dryRun": True}}
    assert client.post("/validate", json=review).status_code == 200
    client.post("/validate", data=b"not json", content_type="application/json")
    text = client.get("/metrics").get_data(as_text=True)
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_grafana_dashboard_uses_only_served_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = dashboard_metric_names(dashboard)
    served = served_metric_families()
    missing = set()
    for name in used:
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in served:
                family = name[: -len(suffix)]
        # prometheus_client names a counter family without _total in # TYPE; the samples keep it.
        if family not in served and not (family.endswith("_total") and family[: -len("_total")] in served):
            missing.add(name)
    assert not missing, f"dashboard queries metrics the server does not serve: {sorted(missing)}"
    # What the issue asks the dashboard to show.
    assert {"capacity_webhook_node_free_ip_slots", "capacity_webhook_node_free_pod_slots",
            "capacity_webhook_admission_requests_total", "capacity_webhook_admission_duration_seconds_bucket"} <= used
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert dashboard["uid"] == "capacity-webhook"


def test_grafana_dashboard_config_map(helm: Any, default_docs: list[dict[str, Any]]) -> None:
    assert "ConfigMap" not in kinds(default_docs)
    docs = render(helm, **{"grafanaDashboard.enabled": True, "grafanaDashboard.namespace": "grafana",
                           "grafanaDashboard.annotations": {"grafana_folder": "Kubernetes"}})
    cm = one(docs, "ConfigMap", f"{FULLNAME}-dashboard")
    assert cm["metadata"]["namespace"] == "grafana"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Kubernetes"}
    assert json.loads(cm["data"]["capacity-webhook.json"]) == json.loads(DASHBOARD.read_text())


# --------------------------------------------------------------------------- matchConditions


def test_match_conditions(helm: Any, default_docs: list[dict[str, Any]]) -> None:
    assert "matchConditions" not in webhook_of(default_docs)
    conditions = [{"name": "not-nodes", "expression": "!request.userInfo.username.startsWith('system:node:')"},
                  {"name": "no-dry-run", "expression": "!request.dryRun"}]
    wh = webhook_of(render(helm, **{"webhook.matchConditions": conditions}))
    assert wh["matchConditions"] == conditions


@pytest.mark.parametrize("conditions", [
    [{"name": "x"}],
    [{"expression": "true"}],
    [{"name": "bad name!", "expression": "true"}],
    [{"name": f"c{i}", "expression": "true"} for i in range(65)],
], ids=["no-expression", "no-name", "bad-name", "over-64"])
def test_bad_match_conditions_fail_schema(helm: Any, conditions: list[dict[str, str]]) -> None:
    proc = helm("template", RELEASE, str(CHART), "-n", NAMESPACE,
                "--set-json", f"webhook.matchConditions={json.dumps(conditions)}", check=False)
    assert proc.returncode != 0 and "schema" in proc.stderr.lower(), proc.stderr


# --------------------------------------------------------------------------- NetworkPolicy

API_SERVER = [{"ipBlock": {"cidr": "10.0.0.0/16"}}]
MONITORING = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def ingress_by_port(policy: dict[str, Any]) -> dict[str, list[dict[str, Any]] | None]:
    out = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            out[port["port"]] = rule.get("from")
    return out


def test_network_policy_lets_only_the_api_server_reach_validate(helm: Any) -> None:
    docs = render(helm, **{"networkPolicy.enabled": True, "networkPolicy.apiServer": API_SERVER,
                           "networkPolicy.metricsFrom": MONITORING, "metrics.httpPort.enabled": True})
    policy = one(docs, "NetworkPolicy", FULLNAME)
    template = one(docs, "Deployment")["spec"]["template"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress"], "egress to the API server and AWS stays open"
    rules = ingress_by_port(policy)
    assert set(rules) == {"https", "metrics"}
    assert set(rules) <= {p["name"] for p in template["spec"]["containers"][0]["ports"]}
    test_pod = one(docs, "Pod")
    https_from = rules["https"]
    assert API_SERVER[0] in https_from and MONITORING[0] not in https_from
    (pod_peer,) = [p for p in https_from if "podSelector" in p]
    assert pod_peer["podSelector"]["matchLabels"].items() <= test_pod["metadata"]["labels"].items(), \
        "helm test must still reach the Service"
    assert rules["metrics"] == MONITORING


def test_network_policy_without_http_port_and_without_tests(helm: Any) -> None:
    docs = render(helm, **{"networkPolicy.enabled": True, "networkPolicy.apiServer": API_SERVER,
                           "networkPolicy.metricsFrom": MONITORING, "tests.enabled": False})
    rules = ingress_by_port(one(docs, "NetworkPolicy"))
    # Scrapers must use the HTTPS port then: they are let in there, nobody else.
    assert rules == {"https": API_SERVER + MONITORING}
    open_metrics = render(helm, **{"networkPolicy.enabled": True, "networkPolicy.apiServer": API_SERVER,
                                   "metrics.httpPort.enabled": True, "tests.enabled": False})
    assert ingress_by_port(one(open_metrics, "NetworkPolicy")) == {"https": API_SERVER, "metrics": None}


def test_network_policy_needs_api_server_peers(helm: Any) -> None:
    proc = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, "--set", "networkPolicy.enabled=true", check=False)
    assert proc.returncode != 0 and "networkPolicy.apiServer" in proc.stderr and "EKS" in proc.stderr
    proc = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, "--set", "networkPolicy.enabled=true",
                "--set-json", 'networkPolicy.apiServer=[{"ipBlock":{}}]', check=False)
    assert proc.returncode != 0 and "schema" in proc.stderr.lower()


def test_every_new_option_lints_strict(helm: Any) -> None:
    helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *set_args({
        "metrics.httpPort.enabled": True, "serviceMonitor.enabled": True, "podMonitor.enabled": True,
        "grafanaDashboard.enabled": True, "networkPolicy.enabled": True, "networkPolicy.apiServer": API_SERVER,
        "webhook.matchConditions": [{"name": "a", "expression": "true"}]}))


# --------------------------------------------------------------------------- NOTES.txt in every mode


@pytest.fixture(scope="module")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart whose NOTES.txt is rendered as a manifest.

    Helm renders NOTES only on install/upgrade, and even `helm install --dry-run=client`
    needs a reachable cluster. So the copy moves NOTES.txt out of templates/ and renders it
    with `tpl` in a template: the same engine, context and helpers; `helm template` prints it.
    """
    chart = tmp_path_factory.mktemp("notes") / "capacity-webhook"
    shutil.copytree(CHART, chart)
    (chart / "notes-source.txt").write_text((CHART / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "zz-notes.yaml").write_text(
        'kind: RenderedNotes\ntext: {{ tpl (.Files.Get "notes-source.txt") . | toJson }}\n')
    return chart


def render_notes(helm: Any, chart: Path, values: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    proc = helm("template", RELEASE, str(chart), "--namespace", NAMESPACE, *set_args(values))
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    (notes,) = [d["text"] for d in docs if d["kind"] == "RenderedNotes"]
    return notes, [d for d in docs if d["kind"] != "RenderedNotes"]


URL = "https://10.0.0.5:8443/validate"
CA_SECRET = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
NOTES_MODES = {
    "generate": {},
    "generate-enforce": {"mode": "enforce"},
    "generate-audit-no-tests": {"mode": "audit", "tests.enabled": False},
    "certManager": {"tls.mode": "certManager"},
    "secret": {"tls.mode": "secret", "tls.secretName": "my-tls", "tls.caBundle": CA_SECRET},
    "url": {"webhook.url": URL, "deployment.enabled": False},
    "url-ca": {"webhook.url": URL, "deployment.enabled": False, "webhook.caBundle": CA_SECRET, "mode": "audit"},
    "monitoring": {"metrics.httpPort.enabled": True, "serviceMonitor.enabled": True,
                   "grafanaDashboard.enabled": True, "networkPolicy.enabled": True,
                   "networkPolicy.apiServer": API_SERVER},
}


@pytest.mark.parametrize("name", list(NOTES_MODES))
def test_notes_are_true_for_every_mode(helm: Any, notes_chart: Path, name: str) -> None:
    import re

    values = NOTES_MODES[name]
    notes, docs = render_notes(helm, notes_chart, values)
    external = "webhook.url" in values
    mode = values.get("mode", "warn")

    steps = [int(n) for n in re.findall(r"^(\d+)\. ", notes, flags=re.MULTILINE)]
    assert steps == list(range(1, len(steps) + 1)) and steps, f"steps must be numbered from 1:\n{notes}"
    assert "kubectl create --dry-run=server" in notes
    assert "capacity-webhook/ignore" in notes and "capacity-webhook/skip" in notes

    # Every object the NOTES name exists in the release.
    rendered = {(d["kind"], d["metadata"]["name"]) for d in docs}
    issued = {d["spec"]["secretName"] for d in docs if d["kind"] == "Certificate"}
    for secret in re.findall(r"Secret (\S+?)[;.,]?(?:\s|$)", notes):
        assert ("Secret", secret) in rendered or secret in issued or secret == values.get("tls.secretName"), \
            f"NOTES name Secret {secret}, which this release does not render:\n{notes}"
    for deploy in re.findall(r"deploy/(\S+)", notes):
        assert ("Deployment", deploy) in rendered
    assert ("helm test" in notes) == (("Pod", f"{FULLNAME}-selftest") in rendered)

    if external:
        assert URL in notes
        assert "Default mode" not in notes and "--set mode=" not in notes and "helm upgrade" not in notes
        assert "default: enforce" in notes, "say that the external server enforces by its own default"
        assert "Secret" not in notes
        assert "rollout status" not in notes
        assert ("webhook.caBundle" in notes) and (("trust roots" in notes) != ("webhook.caBundle" in values))
    else:
        assert f"Default mode: {mode}" in notes
        assert ("--set mode=enforce" in notes) == (mode != "enforce")
        assert f"deploy/{FULLNAME}" in notes
    if name == "monitoring":
        assert "http://<pod>:9090/metrics" in notes and f"ServiceMonitor {NAMESPACE}/{FULLNAME}" in notes
        assert f"NetworkPolicy {FULLNAME}" in notes and f"{NAMESPACE}/{FULLNAME}-dashboard" in notes


# --------------------------------------------------------------------------- check predicts the selectors

SELECTOR_VALUES = {
    "defaults": {},
    "excluded list with a repeat": {"webhook": {"excludedNamespaces": ["monitoring", NAMESPACE, "kube-system"]}},
    "no excluded list": {"webhook": {"excludedNamespaces": []}},
    "custom namespaceSelector": {"webhook": {"namespaceSelector": {
        "matchLabels": {"capacity": "checked"},
        "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "staging"]},
                             {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["legacy"]}]}}},
    "objectSelector": {"webhook": {"excludedNamespaces": ["kube-system", "monitoring"], "objectSelector": {
        "matchExpressions": [{"key": "capacity-webhook/opt-out", "operator": "DoesNotExist"}]}}},
    "both selectors": {"webhook": {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
                                   "objectSelector": {"matchLabels": {"tier": "web"}}}},
}


@pytest.mark.parametrize("case", SELECTOR_VALUES, ids=list(SELECTOR_VALUES))
def test_check_uses_the_selectors_the_chart_renders(helm: Any, tmp_path: Path, case: str) -> None:
    """`check --chart-values FILE --release-namespace NS` evaluates exactly the namespaceSelector
    and objectSelector that `helm template -f FILE -n NS` registers, and then skips exactly the
    objects those selectors keep from the webhook."""
    from webhook.check import options_for
    from webhook.cli import _chart_settings
    from webhook.policy import namespace_labels, selector_matches

    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(SELECTOR_VALUES[case]))
    proc = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(values))
    rendered = webhook_of([d for d in yaml.safe_load_all(proc.stdout) if d])
    options = options_for(_chart_settings([str(CHART / "values.yaml"), str(values)]), release_namespace=NAMESPACE)
    assert options.namespace_selector_in_effect() == rendered["namespaceSelector"]
    assert (options.object_selector or {}) == rendered.get("objectSelector", {})

    # The same decisions from the real `check` over namespaces x object labels.
    namespaces = {"default": {}, "kube-system": {}, NAMESPACE: {}, "monitoring": {}, "legacy": {"capacity": "checked"},
                  "team-a": {"capacity": "checked", "env": "prod", "team": "a"},
                  "team-b": {"capacity": "checked", "env": "dev"},
                  "quiet": {"capacity-webhook/ignore": "", "team": "q"}}
    object_labels = [{}, {"tier": "web"}, {"capacity-webhook/opt-out": "1", "tier": "web"}]
    objects = []
    for ns in namespaces:
        for i, labels in enumerate(object_labels):
            objects.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                            "metadata": {"name": f"data-{i}", "namespace": ns, "labels": labels},
                            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    cluster = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns, **labels}}}
        for ns, labels in namespaces.items()]}
    (tmp_path / "cluster.json").write_text(json.dumps(cluster))
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump_all(objects))
    done = subprocess.run([sys.executable, "-m", "webhook.cli", "check", "--cluster", str(tmp_path / "cluster.json"),
                           "-f", str(tmp_path / "claims.yaml"), "--chart-values", str(CHART / "values.yaml"),
                           "--chart-values", str(values), "--release-namespace", NAMESPACE, "-o", "json",
                           "--fail-on", "never"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    skipped = {(r["namespace"], r["name"]) for r in json.loads(done.stdout)["results"] if r.get("skipped")}
    sent = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects
            if selector_matches(rendered["namespaceSelector"], namespace_labels(o["metadata"]["namespace"],
                                                                                 namespaces[o["metadata"]["namespace"]]))
            and selector_matches(rendered.get("objectSelector"), o["metadata"]["labels"])}
    assert skipped == {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects} - sent
    assert sent and skipped or case == "defaults"
