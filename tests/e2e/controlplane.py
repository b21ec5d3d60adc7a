"""A throwaway Kubernetes control plane for the e2e tier.

Runs a real etcd + kube-apiserver on loopback (binaries built from Go modules by
``.ci/build-control-plane``), with no kubelet. kube-scheduler and
kube-controller-manager are started on request (``start_local(scheduler=True,
controller_manager=True)``): the plain e2e fixture runs without them, so the
pods it creates stay exactly where the test put them.
Nodes and pods are modelled the way kwok does it: objects are created through
the API and their ``status`` is written through the status subresources, so the
webhook sees what it would see on a real cluster. With the scheduler running, a
pod it binds gets ``spec.nodeName`` but stays phase Pending (no kubelet).

If ``CAPACITY_WEBHOOK_E2E_KUBECONFIG`` is set, nothing is started: that cluster
(e.g. kind) is used, with that file as the admin kubeconfig, and the webhook
identity becomes a ServiceAccount token bound to the same read-only role.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import yaml

from tests import synthetic
from webhook.state.live_lister import LIVE_RESOURCES

TOOLS_ENV = "CAPACITY_WEBHOOK_TOOLS"
EXTERNAL_KUBECONFIG_ENV = "CAPACITY_WEBHOOK_E2E_KUBECONFIG"
REQUIRED_ENV = "CAPACITY_WEBHOOK_E2E_REQUIRED"
KEEP_ENV = "CAPACITY_WEBHOOK_E2E_KEEP"

REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kubectl", "helm")
SCHEDULER_BINARY = "kube-scheduler"
CONTROLLER_MANAGER_BINARY = "kube-controller-manager"

#: What the controller-manager runs by default here: Deployment -> ReplicaSet -> Pod,
#: nothing that would act on the kwok-style nodes (the node lifecycle controller would
#: taint every node without a kubelet heartbeat NotReady) or delete the test's objects
#: (the garbage collector would remove pods whose owner does not exist).
DEFAULT_CONTROLLERS = ("deployment-controller", "replicaset-controller")

#: Label put on every object the helpers create, for delete_all_test_objects().
TEST_LABEL = "capacity-webhook.e2e/managed"

WEBHOOK_USER = "capacity-webhook"
READER_ROLE = "capacity-webhook-e2e-reader"
EXTERNAL_SA_NAMESPACE = "default"
EXTERNAL_SA_NAME = "capacity-webhook-e2e"

READY_TIMEOUT_S = 60.0

#: What the webhook identity may read: nothing else, in particular no secrets.
def _reader_rules() -> list[dict[str, Any]]:
    """list/watch on exactly what the live source reads (as the chart's ClusterRole grants)."""
    groups: dict[str, list[str]] = {}
    for res in LIVE_RESOURCES:
        group, plural = res.rbac
        groups.setdefault(group, []).append(plural)
    return [{"apiGroups": [g], "resources": sorted(r), "verbs": ["list", "watch"]} for g, r in sorted(groups.items())]


READER_RULES = _reader_rules()

#: Where the webhook keeps its shared reservation ledger (serve --ledger-namespace), and
#: what it may do there: exactly the chart's ledger Role.
LEDGER_NAMESPACE = "capacity-webhook"
LEDGER_CRD = Path(__file__).resolve().parents[2] / "charts" / "capacity-webhook" / "crds" / "capacityledgers.yaml"


def _ledger_objects(subjects: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The ledger's CRD (from the chart), its namespace, and a Role + RoleBinding as the chart's."""
    from webhook.state import ledger_api

    rules = [{"apiGroups": [ledger_api.GROUP], "resources": [ledger_api.PLURAL],
              "resourceNames": [ledger_api.DEFAULT_NAME], "verbs": [v for v in ledger_api.RBAC_VERBS if v != "create"]},
             {"apiGroups": [ledger_api.GROUP], "resources": [ledger_api.PLURAL], "verbs": ["create"]}]
    name = "capacity-webhook-e2e-ledger"
    return [
        yaml.safe_load(LEDGER_CRD.read_text()),
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": LEDGER_NAMESPACE, "labels": {TEST_LABEL: "true"}},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": LEDGER_NAMESPACE, "labels": {TEST_LABEL: "true"}},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": LEDGER_NAMESPACE, "labels": {TEST_LABEL: "true"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": subjects,
        },
    ]



class ControlPlaneUnavailable(Exception):
    """The binaries are not built (the caller decides: skip or fail)."""


class ControlPlaneError(RuntimeError):
    """Starting or talking to the control plane failed."""


class KubectlError(subprocess.CalledProcessError):
    """CalledProcessError whose message includes the command's stderr."""

    def __str__(self) -> str:  # pragma: no cover - formatting only
        cmd = " ".join(str(c) for c in self.cmd)
        return (
            f"command {cmd!r} exited {self.returncode}\n"
            f"stdout: {(self.stdout or '').strip()[-2000:]}\n"
            f"stderr: {(self.stderr or '').strip()[-2000:]}"
        )


def tools_dir() -> Path:
    env = os.environ.get(TOOLS_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "capacity-webhook" / "tools"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def missing_binaries(bin_dir: Path, names: Iterable[str] = REQUIRED_BINARIES) -> list[str]:
    return [n for n in names if not os.access(bin_dir / n, os.X_OK)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _load_prctl():
    # Loaded in the parent: importing/loading ctypes in a forked child is not safe.
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except Exception:  # pragma: no cover - exotic libc
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Kill a child when pytest dies without a teardown (Linux only). SIGKILL:
    on SIGTERM etcd and the apiserver wait on each other for seconds."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


# --------------------------------------------------------------------------- certs


def _write_pki(dirpath: Path) -> dict[str, Path]:
    """CA, apiserver serving cert (SAN 127.0.0.1/localhost) and SA signing key.

    The CA and serving certificate come from the project's own certs/ tooling.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from certs.authority import make_ca, make_serving_cert

    def pem_key(key) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key, ca_cert = make_ca(common_name="capacity-webhook-e2e-ca", days=2)
    srv_key, srv_cert = make_serving_cert(
        ca_key, ca_cert,
        ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        ["127.0.0.1", "::1"], days=1,
    )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    paths = {
        "ca_cert": dirpath / "ca.crt",
        "serving_cert": dirpath / "apiserver.crt",
        "serving_key": dirpath / "apiserver.key",
        "sa_key": dirpath / "sa.key",
        "sa_pub": dirpath / "sa.pub",
    }
    paths["ca_cert"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["serving_cert"].write_bytes(srv_cert.public_bytes(serialization.Encoding.PEM))
    paths["serving_key"].write_bytes(pem_key(srv_key))
    paths["sa_key"].write_bytes(pem_key(sa_key))
    paths["sa_pub"].write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for key in ("serving_key", "sa_key"):
        paths[key].chmod(0o600)
    return paths


def _kubeconfig(server: str, ca_pem: bytes, user: str, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "capacity-webhook-e2e",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": user, "context": {"cluster": "capacity-webhook-e2e", "user": user}}
        ],
        "current-context": user,
        "preferences": {},
    }


# --------------------------------------------------------------------------- the object


@dataclass
class ControlPlane:
    """A running (or borrowed) cluster plus kubectl/helm helpers.

    Attributes: url, ca_file, admin_kubeconfig, webhook_kubeconfig, bin_dir,
    webhook_user (the username the apiserver sees for webhook_kubeconfig),
    admin_token / webhook_token, workdir (temp dir with logs), external.
    """

    url: str
    ca_file: Path | None
    admin_kubeconfig: Path
    webhook_kubeconfig: Path
    bin_dir: Path
    workdir: Path
    webhook_user: str = WEBHOOK_USER
    admin_token: str | None = None
    webhook_token: str | None = None
    external: bool = False
    kubectl_path: Path | None = None
    helm_path: Path | None = None
    _procs: list[tuple[str, subprocess.Popen, Path]] = field(default_factory=list, repr=False)
    _namespaces: set[str] = field(default_factory=set, repr=False)
    #: component name -> its https://127.0.0.1:<port> (kube-scheduler, kube-controller-manager)
    component_urls: dict[str, str] = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------- commands

    def env(self, kubeconfig: os.PathLike | str | None = None) -> dict[str, str]:
        """Environment for a subprocess talking to this cluster."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(kubeconfig or self.admin_kubeconfig)
        env["KUBECACHEDIR"] = str(self.workdir / "kube-cache")
        for var, sub in (
            ("HELM_CACHE_HOME", "helm/cache"),
            ("HELM_CONFIG_HOME", "helm/config"),
            ("HELM_DATA_HOME", "helm/data"),
        ):
            env[var] = str(self.workdir / sub)
        return env

    def _run(
        self,
        exe: Path,
        args: Sequence[Any],
        input: str | bytes | None,
        check: bool,
        kubeconfig: os.PathLike | str | None,
        timeout: float,
    ) -> subprocess.CompletedProcess:
        if isinstance(input, bytes):
            input = input.decode()
        cmd = [str(exe), *[str(a) for a in args]]
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            env=self.env(kubeconfig),
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def kubectl(
        self,
        *args: Any,
        input: str | bytes | None = None,
        check: bool = True,
        kubeconfig: os.PathLike | str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        """Run the real kubectl (admin kubeconfig unless `kubeconfig` is given)."""
        return self._run(self.kubectl_path, args, input, check, kubeconfig, timeout)

    def helm(
        self,
        *args: Any,
        input: str | bytes | None = None,
        check: bool = True,
        kubeconfig: os.PathLike | str | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess:
        """Run the real helm (admin kubeconfig unless `kubeconfig` is given)."""
        return self._run(self.helm_path, args, input, check, kubeconfig, timeout)

    def install_chart_for(self, release: str, namespace: str, server: Any, chart: os.PathLike | str) -> None:
        """Register a webhook server running outside the cluster, the way a platform team would:
        ``helm install`` of the chart in url mode (no in-cluster Deployment), enforcing."""
        self.helm("install", release, str(chart), "-n", namespace, "--create-namespace",
                  "--set", f"webhook.url={server.url('/validate')}",
                  "--set", f"webhook.caBundle={server.bundle.ca_bundle}",
                  "--set", "deployment.enabled=false", "--set", "mode=enforce")

    @contextlib.contextmanager
    def enforcing_webhook(self, directory: Path, chart: os.PathLike | str, ttl: float) -> Iterator[Any]:
        """A real ``webhook.server`` on loopback that reads this API server, registered by the
        chart in url mode and enforcing; stopped and uninstalled afterwards."""
        from tests.server_fixture import WebhookProcess

        server = WebhookProcess(directory, None, "--kubeconfig", str(self.webhook_kubeconfig), "--mode", "enforce",
                                "--reservation-ttl", str(ttl), "--stale-after", "60")
        try:
            server.start(timeout=60)
            self.install_chart_for("cw", "capacity-webhook", server, chart)
            yield server
        finally:
            server.stop()
            self.helm("uninstall", "cw", "-n", "capacity-webhook", check=False)

    def kubectl_json(self, *args: Any, **kw: Any) -> Any:
        """`kubectl <args> -o json`, parsed."""
        return json.loads(self.kubectl(*args, "-o", "json", **kw).stdout)

    def apply(self, manifest: Any, **kw: Any) -> subprocess.CompletedProcess:
        """kubectl apply -f - with a dict, a list of dicts, or YAML/JSON text."""
        if isinstance(manifest, (dict, list)):
            items = manifest if isinstance(manifest, list) else [manifest]
            text = yaml.safe_dump_all(items)
        else:
            text = manifest
        return self.kubectl("apply", "-f", "-", input=text, **kw)

    def can_i(self, verb: str, resource: str, *, kubeconfig=None, namespace: str | None = None) -> bool:
        """`kubectl auth can-i` as the identity in `kubeconfig` (default: webhook)."""
        args = ["auth", "can-i", verb, resource]
        if namespace:
            args += ["-n", namespace]
        proc = self.kubectl(*args, check=False, kubeconfig=kubeconfig or self.webhook_kubeconfig)
        answer = proc.stdout.strip()
        if answer not in ("yes", "no"):
            raise KubectlError(proc.returncode, ["kubectl", *args], proc.stdout, proc.stderr)
        return answer == "yes"

    # ---------------------------------------------------------------- modelling

    def ensure_namespace(self, name: str) -> None:
        if name in self._namespaces:
            return
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": {TEST_LABEL: "true"}},
            }
        )
        self._namespaces.add(name)

    def create_node(
        self,
        name: str,
        instance_type: str = "t3.medium",
        zone: str = "us-east-1a",
        allocatable: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, Any]] | None = None,
        capacity: Mapping[str, str] | None = None,
        ready: bool = True,
    ) -> dict[str, Any]:
        """Create a Node the way kwok does: the object from tests.synthetic, then its status.

        Returns the Node as read back from the API server.
        """
        node = synthetic.node(name, instance_type, zone, allocatable=allocatable,
                              labels={**(labels or {}), TEST_LABEL: "true"}, taints=taints or (), ready=ready)
        if capacity is not None:
            node["status"]["capacity"] = dict(capacity)
        want_taints = node["spec"].get("taints", [])
        self.kubectl("create", "-f", "-", input=json.dumps(synthetic.as_manifest(node)))
        # The TaintNodesByCondition admission plugin adds node.kubernetes.io/not-ready
        # on create; with no node controller nothing removes it. Set what was asked.
        self.kubectl("patch", "node", name, "--type=merge", "-p", json.dumps({"spec": {"taints": want_taints or None}}))
        self.kubectl("patch", "node", name, "--subresource=status", "--type=merge",
                     "-p", json.dumps({"status": node["status"]}))
        return self.kubectl_json("get", "node", name)

    def create_pod(
        self,
        namespace: str,
        name: str,
        node: str | None,
        requests: Mapping[str, str] | None = None,
        host_network: bool = False,
        labels: Mapping[str, str] | None = None,
        phase: str | None = "Running",
        limits: Mapping[str, str] | None = None,
        tolerations: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Create a Pod bound to `node` (spec.nodeName), then set its status.phase.

        `phase=None` leaves the status alone (e.g. to model a Pending pod with
        node=None). Returns the Pod as read back from the API server.
        """
        self.ensure_namespace(namespace)
        extra = {"terminationGracePeriodSeconds": 0}
        if tolerations:
            extra["tolerations"] = [dict(t) for t in tolerations]
        spec = synthetic.pod_spec([synthetic.container("app", "registry.k8s.io/pause:3.10", requests, limits)],
                                  host_network=host_network, **extra)
        pod = synthetic.pod(name, namespace, node, spec, phase=phase, labels={**(labels or {}), TEST_LABEL: "true"})
        self.kubectl("create", "-f", "-", input=json.dumps(synthetic.as_manifest(pod)))
        if phase:   # what a kubelet would report; qosClass is the API server's own
            status = {k: v for k, v in pod["status"].items() if k != "qosClass"}
            self.kubectl("patch", "pod", name, "-n", namespace, "--subresource=status", "--type=merge",
                         "-p", json.dumps({"status": status}))
        return self.kubectl_json("get", "pod", name, "-n", namespace)

    def create_motivating_cluster(self, nodes: Sequence[tuple[str, str, int]]) -> None:
        """The README's two-t3.medium example, for real: the aws-node DaemonSet and, on each
        ``(name, zone, ip_pods)`` node, its aws-node pod, a host-network kube-proxy and
        ``ip_pods`` coredns-like pods that take pod IPs (5 and 4 leave 10 + 11 = 21 slots)."""
        self.apply([synthetic.as_manifest(synthetic.aws_node())])
        aws_node = self.kubectl_json("get", "daemonset", "aws-node", "-n", "kube-system")
        for name, zone, ip_pods in nodes:
            self.create_node(name, "t3.medium", zone)
            short = name.split(".")[0]
            self.create_daemon_pod(aws_node, name)
            self.create_pod("kube-system", f"kube-proxy-{short}", name, {"cpu": "100m"}, host_network=True)
            for i in range(ip_pods):
                self.create_pod("kube-system", f"coredns-{short}-{i}", name, {"cpu": "100m", "memory": "70Mi"})

    def create_daemon_pod(self, daemonset: Mapping[str, Any], node: str) -> None:
        """The DaemonSet's pod on ``node``, owned by it as the DaemonSet controller would make it.

        That controller does not run here; a DaemonSet without its pod on a node is room the
        engine counts as still owed, so the modelled cluster must look like a real one.
        """
        name = daemonset["metadata"]["name"]
        namespace = daemonset["metadata"]["namespace"]
        template = daemonset["spec"]["template"]
        pod = synthetic.pod(f"{name}-{node.split('.')[0]}", namespace, node, template["spec"],
                            labels={**template["metadata"]["labels"], TEST_LABEL: "true"})
        manifest = synthetic.as_manifest(pod)
        manifest["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": name,
                                                    "uid": daemonset["metadata"]["uid"], "controller": True}]
        self.kubectl("create", "-f", "-", input=json.dumps(manifest))
        self.kubectl("patch", "pod", manifest["metadata"]["name"], "-n", namespace, "--subresource=status",
                     "--type=merge", "-p", '{"status": {"phase": "Running"}}')

    def delete_all_test_objects(self) -> None:
        """Delete what the helpers created (labelled TEST_LABEL), and workloads
        in namespaces made through ensure_namespace().

        Namespaces themselves are kept: without a namespace controller they
        would stay Terminating forever on the fixture's own apiserver.
        Pods are force-deleted (no kubelet to confirm a graceful delete).
        """
        sel = f"{TEST_LABEL}=true"
        self.kubectl(
            "delete", "pods", "--all-namespaces", "-l", sel,
            "--grace-period=0", "--force", "--wait=false", "--ignore-not-found",
            check=False,
        )
        for ns in sorted(self._namespaces):
            self.kubectl(
                "delete",
                "deployments,statefulsets,daemonsets,replicasets,limitranges",
                "--all", "-n", ns, "--ignore-not-found", "--wait=false",
                check=False,
            )
            self.kubectl(
                "delete", "pods", "--all", "-n", ns,
                "--grace-period=0", "--force", "--wait=false", "--ignore-not-found",
                check=False,
            )
            self._delete_without_finalizers("persistentvolumeclaims", namespace=ns)
        self._delete_without_finalizers("persistentvolumes", selector=sel)
        self.kubectl("delete", "nodes", "-l", sel, "--ignore-not-found", "--wait=false", check=False)

    def _delete_without_finalizers(self, resource: str, namespace: str | None = None,
                                   selector: str | None = None) -> None:
        args = ["get", resource, "-o", "name"]
        if namespace:
            args += ["-n", namespace]
        if selector:
            args += ["-l", selector]
        names = self.kubectl(*args, check=False).stdout.split()
        ns_args = ["-n", namespace] if namespace else []
        for obj in names:
            self.kubectl("patch", obj, *ns_args, "--type=merge",
                         "-p", '{"metadata":{"finalizers":null}}', check=False)
            self.kubectl("delete", obj, *ns_args, "--ignore-not-found", "--wait=false", check=False)

    # ---------------------------------------------------------------- components

    def start_scheduler(self, config: Mapping[str, Any] | None = None,
                        ready_timeout: float = READY_TIMEOUT_S, args: Sequence[str] = ()) -> None:
        """Start the real kube-scheduler against this apiserver and wait for /healthz.

        ``config`` is a KubeSchedulerConfiguration (defaults: the default profile);
        ``args`` are extra flags (``--feature-gates`` is a flag, not configuration).
        Leader election is off: one scheduler, no lease to wait for.
        """
        if self.external:
            return          # a borrowed cluster runs its own scheduler
        self._require(SCHEDULER_BINARY)
        port = free_port()
        cfg = {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
               "clientConnection": {"kubeconfig": str(self.admin_kubeconfig), "qps": 200, "burst": 400},
               "leaderElection": {"leaderElect": False}}
        cfg.update(copy.deepcopy(dict(config or {})))
        cfg_path = self.workdir / "kube-scheduler.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        self._start_component(SCHEDULER_BINARY, port, [
            f"--config={cfg_path}",
            *self._serving_flags(SCHEDULER_BINARY, port),
            *args,
        ], ready_timeout)

    def start_controller_manager(self, controllers: Sequence[str] = DEFAULT_CONTROLLERS,
                                 ready_timeout: float = READY_TIMEOUT_S) -> None:
        """Start the real kube-controller-manager running only ``controllers``."""
        if self.external:
            return
        self._require(CONTROLLER_MANAGER_BINARY)
        port = free_port()
        self._start_component(CONTROLLER_MANAGER_BINARY, port, [
            f"--kubeconfig={self.admin_kubeconfig}",
            f"--controllers={','.join(controllers)}",
            "--leader-elect=false",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--concurrent-deployment-syncs=2",
            "--concurrent-replicaset-syncs=2",
            *self._serving_flags(CONTROLLER_MANAGER_BINARY, port),
        ], ready_timeout)

    def _require(self, binary: str) -> None:
        if missing_binaries(self.bin_dir, (binary,)):
            raise ControlPlaneUnavailable(
                f"control plane binaries not built ({binary} missing in {self.bin_dir}): "
                "run .ci/build-control-plane"
            )

    def _serving_flags(self, name: str, port: int) -> list[str]:
        # Delegated authn/authz through the apiserver, so /metrics answers the admin token.
        return [
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / (name + '-certs')}",
            f"--authentication-kubeconfig={self.admin_kubeconfig}",
            f"--authorization-kubeconfig={self.admin_kubeconfig}",
            "--v=1",
        ]

    def _start_component(self, name: str, port: int, args: list[str], ready_timeout: float) -> None:
        proc = _spawn(self, name, [str(self.bin_dir / name), *args])
        url = f"https://127.0.0.1:{port}"
        _wait_http(f"{url}/healthz", proc, self.workdir / f"{name}.log", name, ready_timeout,
                   ctx=_loopback_self_signed_ctx())
        self.component_urls[name] = url

    def component_metrics(self, name: str = SCHEDULER_BINARY, prefix: str = "") -> dict[str, float]:
        """A component's Prometheus metrics, ``'name{labels}' -> value`` (admin token);
        ``prefix`` keeps only the series whose name starts with it."""
        url = self.component_urls.get(name)
        if not url:
            raise ControlPlaneError(f"{name} was not started by this fixture")
        req = urllib.request.Request(f"{url}/metrics")
        req.add_header("Authorization", f"Bearer {self.admin_token}")
        with urllib.request.urlopen(req, timeout=10, context=_loopback_self_signed_ctx()) as resp:
            text = resp.read().decode(errors="replace")
        values: dict[str, float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#") or not line.startswith(prefix):
                continue
            key, _, value = line.rpartition(" ")
            try:
                values[key] = float(value)
            except ValueError:
                continue
        return values

    def scheduler_queue(self) -> dict[str, int]:
        """Pods in the scheduler's queues: active, backoff, unschedulable, gated.

        active + backoff == 0 means the scheduler has nothing left to try until a
        cluster event moves a pod back (the settle signal, instead of a sleep).
        """
        metrics = self.component_metrics(SCHEDULER_BINARY, "scheduler_pending_pods")
        return {q: int(metrics.get(f'scheduler_pending_pods{{queue="{q}"}}', 0))
                for q in ("active", "backoff", "unschedulable", "gated")}

    # ---------------------------------------------------------------- lifecycle

    def stop(self) -> None:
        # One at a time, apiserver first: an apiserver whose etcd is already
        # gone takes much longer to shut down.
        for _name, proc, _log in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._procs.clear()
        if not env_flag(KEEP_ENV):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- {n} ({log}):\n{_tail(log, lines)}" for n, _p, log in self._procs)


# --------------------------------------------------------------------------- startup


def _spawn(cp: ControlPlane, name: str, cmd: list[str]) -> subprocess.Popen:
    log = cp.workdir / f"{name}.log"
    fh = open(log, "wb")
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )
    finally:
        fh.close()
    cp._procs.append((name, proc, log))
    return proc


def _loopback_self_signed_ctx() -> ssl.SSLContext:
    """TLS to a component this fixture started on 127.0.0.1 (its serving cert is self-signed)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _wait_http(url: str, proc: subprocess.Popen, log: Path, what: str, timeout: float,
               ctx: ssl.SSLContext | None = None, token: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ControlPlaneError(
                f"{what} exited with code {proc.returncode} before it was ready\n"
                f"--- last lines of {log}:\n{_tail(log)}"
            )
        req = urllib.request.Request(url)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
                body = resp.read().decode(errors="replace")
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}: {body[:300]}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}: {e.read().decode(errors='replace')[:500]}"
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.2)
    raise ControlPlaneError(
        f"{what} not ready after {timeout:.0f}s at {url} ({last})\n"
        f"--- last lines of {log}:\n{_tail(log)}"
    )


def _rbac_objects(subjects: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": READER_ROLE, "labels": {TEST_LABEL: "true"}},
            "rules": copy.deepcopy(READER_RULES),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": READER_ROLE, "labels": {TEST_LABEL: "true"}},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": READER_ROLE,
            },
            "subjects": subjects,
        },
    ]


def start_local(bin_dir: Path | None = None, workdir: Path | None = None,
                ready_timeout: float = READY_TIMEOUT_S, *, scheduler: bool = False,
                controller_manager: bool = False, scheduler_config: Mapping[str, Any] | None = None,
                controllers: Sequence[str] = DEFAULT_CONTROLLERS,
                apiserver_args: Sequence[str] = (), scheduler_args: Sequence[str] = ()) -> ControlPlane:
    """Start etcd + kube-apiserver on loopback and return a ready ControlPlane.

    ``scheduler`` / ``controller_manager`` also start those components (their
    binaries are then required too); ``apiserver_args`` / ``scheduler_args`` are
    appended to those components' flags (list flags such as --disable-admission-plugins
    add up).
    """
    bin_dir = Path(bin_dir or tools_dir())
    wanted = [*REQUIRED_BINARIES, *([SCHEDULER_BINARY] if scheduler else []),
              *([CONTROLLER_MANAGER_BINARY] if controller_manager else [])]
    missing = missing_binaries(bin_dir, wanted)
    if missing:
        raise ControlPlaneUnavailable(
            f"control plane binaries not built ({', '.join(missing)} missing in {bin_dir}): "
            "run .ci/build-control-plane"
        )
    workdir = Path(workdir or tempfile.mkdtemp(prefix="capacity-webhook-e2e-"))
    workdir.mkdir(parents=True, exist_ok=True)
    pki = _write_pki(workdir)

    admin_token = secrets.token_hex(16)
    webhook_token = secrets.token_hex(16)
    tokens = workdir / "tokens.csv"
    tokens.write_text(
        f'{admin_token},admin,admin-uid,"system:masters"\n'
        f"{webhook_token},{WEBHOOK_USER},{WEBHOOK_USER}-uid\n"
    )
    tokens.chmod(0o600)

    api_port = free_port()
    url = f"https://127.0.0.1:{api_port}"
    ca_pem = pki["ca_cert"].read_bytes()
    admin_kc = workdir / "admin.kubeconfig"
    webhook_kc = workdir / "webhook.kubeconfig"
    admin_kc.write_text(yaml.safe_dump(_kubeconfig(url, ca_pem, "admin", admin_token)))
    webhook_kc.write_text(yaml.safe_dump(_kubeconfig(url, ca_pem, WEBHOOK_USER, webhook_token)))
    admin_kc.chmod(0o600)
    webhook_kc.chmod(0o600)

    cp = ControlPlane(
        url=url,
        ca_file=pki["ca_cert"],
        admin_kubeconfig=admin_kc,
        webhook_kubeconfig=webhook_kc,
        bin_dir=bin_dir,
        workdir=workdir,
        admin_token=admin_token,
        webhook_token=webhook_token,
        kubectl_path=bin_dir / "kubectl",
        helm_path=bin_dir / "helm",
    )
    try:
        etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        etcd = _spawn(
            cp,
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=e2e",
                f"--data-dir={workdir / 'etcd-data'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=e2e=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        _wait_http(f"{etcd_url}/health", etcd, workdir / "etcd.log", "etcd", ready_timeout)

        apiserver = _spawn(
            cp,
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--etcd-servers={etcd_url}",
                f"--tls-cert-file={pki['serving_cert']}",
                f"--tls-private-key-file={pki['serving_key']}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                f"--service-account-issuer={url}",
                f"--service-account-key-file={pki['sa_pub']}",
                f"--service-account-signing-key-file={pki['sa_key']}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                "--profiling=false",
                f"--cert-dir={workdir / 'apiserver-certs'}",
                "--v=1",
                *apiserver_args,
            ],
        )
        ctx = ssl.create_default_context(cafile=str(pki["ca_cert"]))
        _wait_http(
            f"{url}/readyz", apiserver, workdir / "kube-apiserver.log", "kube-apiserver",
            ready_timeout, ctx=ctx, token=admin_token,
        )
        subjects = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": WEBHOOK_USER}]
        cp.apply(_rbac_objects(subjects) + _ledger_objects(subjects))
        cp.kubectl("wait", "--for=condition=established", "--timeout=30s", "crd/capacityledgers.capacity-webhook.io")
        if scheduler:
            cp.start_scheduler(scheduler_config, ready_timeout, scheduler_args)
        if controller_manager:
            cp.start_controller_manager(controllers, ready_timeout)
    except BaseException:
        cp.stop()
        raise
    return cp


def attach_external(kubeconfig: Path, bin_dir: Path | None = None) -> ControlPlane:
    """Use an existing cluster (e.g. kind) whose admin kubeconfig is `kubeconfig`.

    kubectl and helm come from the tools dir, else from PATH. The webhook
    identity is a ServiceAccount token bound to the same read-only ClusterRole.
    """
    kubeconfig = Path(kubeconfig).expanduser().resolve()
    if not kubeconfig.is_file():
        raise ControlPlaneError(f"{EXTERNAL_KUBECONFIG_ENV}={kubeconfig} is not a file")
    bin_dir = Path(bin_dir or tools_dir())

    def find(tool: str) -> Path:
        cand = bin_dir / tool
        if os.access(cand, os.X_OK):
            return cand
        found = shutil.which(tool)
        if not found:
            raise ControlPlaneUnavailable(
                f"control plane binaries not built ({tool} not in {bin_dir} nor on PATH): "
                "run .ci/build-control-plane"
            )
        return Path(found)

    workdir = Path(tempfile.mkdtemp(prefix="capacity-webhook-e2e-ext-"))
    cfg = yaml.safe_load(kubeconfig.read_text()) or {}
    ctx_name = cfg.get("current-context")
    ctx = next((c["context"] for c in cfg.get("contexts", []) if c.get("name") == ctx_name), {})
    cluster = next(
        (c["cluster"] for c in cfg.get("clusters", []) if c.get("name") == ctx.get("cluster")), {}
    )
    url = cluster.get("server", "")
    ca_pem: bytes | None = None
    ca_file: Path | None = None
    if cluster.get("certificate-authority-data"):
        ca_pem = base64.b64decode(cluster["certificate-authority-data"])
    elif cluster.get("certificate-authority"):
        ca_pem = (kubeconfig.parent / cluster["certificate-authority"]).read_bytes()
    if ca_pem:
        ca_file = workdir / "ca.crt"
        ca_file.write_bytes(ca_pem)

    cp = ControlPlane(
        url=url,
        ca_file=ca_file,
        admin_kubeconfig=kubeconfig,
        webhook_kubeconfig=workdir / "webhook.kubeconfig",
        bin_dir=bin_dir,
        workdir=workdir,
        external=True,
        webhook_user=f"system:serviceaccount:{EXTERNAL_SA_NAMESPACE}:{EXTERNAL_SA_NAME}",
        kubectl_path=find("kubectl"),
        helm_path=find("helm"),
    )
    cp.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": EXTERNAL_SA_NAME, "namespace": EXTERNAL_SA_NAMESPACE,
                             "labels": {TEST_LABEL: "true"}},
            },
            *_rbac_objects(
                [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                     "name": WEBHOOK_USER},
                    {"kind": "ServiceAccount", "name": EXTERNAL_SA_NAME,
                     "namespace": EXTERNAL_SA_NAMESPACE},
                ]
            ),
        ]
    )
    cp.apply(_ledger_objects([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": WEBHOOK_USER},
                              {"kind": "ServiceAccount", "name": EXTERNAL_SA_NAME,
                               "namespace": EXTERNAL_SA_NAMESPACE}]))
    cp.kubectl("wait", "--for=condition=established", "--timeout=30s", "crd/capacityledgers.capacity-webhook.io")
    token = cp.kubectl(
        "create", "token", EXTERNAL_SA_NAME, "-n", EXTERNAL_SA_NAMESPACE, "--duration=2h"
    ).stdout.strip()
    cp.webhook_token = token
    wk = _kubeconfig(url, ca_pem or b"", EXTERNAL_SA_NAME, token)
    if not ca_pem:
        wk["clusters"][0]["cluster"].pop("certificate-authority-data")
        if cluster.get("insecure-skip-tls-verify"):
            wk["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    cp.webhook_kubeconfig.write_text(yaml.safe_dump(wk))
    cp.webhook_kubeconfig.chmod(0o600)
    return cp


def start_from_env(**local_options: Any) -> ControlPlane:
    """The external cluster if CAPACITY_WEBHOOK_E2E_KUBECONFIG is set, else a local one
    (started with ``local_options``, see start_local)."""
    ext = os.environ.get(EXTERNAL_KUBECONFIG_ENV)
    if ext:
        return attach_external(Path(ext))
    return start_local(**local_options)
