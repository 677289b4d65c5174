"""deploy/k8s (Kustomize base, dev and production overlays), checked offline.

No cluster runs on the development and CI machines, so what `kubectl apply -k`
would create is proved here statically, for every overlay:

* `kubectl kustomize` renders it;
* kubernetes-validate (strict: unknown fields refused) accepts every object against
  the API of TARGET_KUBERNETES;
* the KEDA objects (ScaledObject, TriggerAuthentication) validate against KEDA's
  published schema (npm @kubernetes-models/keda, deploy/k8s/tools/install.sh);
* a policy: every workload runs under the restricted Pod Security profile, with
  requests and limits, the probes of docker-compose.yml's healthchecks, one
  PodDisruptionBudget, NetworkPolicies on both ends; the isolation pairs compose
  proves hold (export servers <- render workers only, datagen <- points workers and
  the admin, PostgreSQL <- its users, ...); each worker scales on its own queue, the
  export servers with the render workers in deploy/sizing's ratio; beat is one pod;
  no Secret value is in the repository.

Each check is shown to refuse a broken object: the tests named *_refuses_* mutate a
rendered object and expect the check to name the problem.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.test_compose import SECRETS, load_yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["dev", "production"]
TOOLS = K8S / "tools"
KEDA_VALIDATOR = TOOLS / "validate-keda.mjs"
KEDA_MODELS = TOOLS / "node_modules" / "@kubernetes-models" / "keda"
CREATE_SECRET = K8S / "create-secret"
SIZING = ROOT / "deploy" / "sizing"
COMPOSE_FILE = ROOT / "docker-compose.yml"

# The Kubernetes version the manifests target (README, Scaling, Kubernetes).
TARGET_KUBERNETES = "1.34.0"
NAMESPACE = "function-dashboard"
SECRET_NAME = "function-dashboard-secrets"
NAME_LABEL = "app.kubernetes.io/name"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
KEDA_API = "keda.sh/v1alpha1"
# Its image's entrypoint and Erlang VM write outside its data directory.
WRITABLE_ROOT = {"rabbitmq"}
# Each worker Deployment on its own queue; the export servers on the render workers' queue.
SCALED_ON = {"worker-points": "points", "worker-render": "render", "worker-persist": "persist", "exporter": "render"}
# compose's TCP forwarder to RabbitMQ's UI: on a cluster, kubectl port-forward svc/rabbitmq 15672.
# compose's `ops` Prometheus: a cluster has its own monitoring (README, Kubernetes).
COMPOSE_ONLY = {"rabbitmq-ui", "prometheus"}
# Who may open a connection to whom (docker-compose.yml's networks and users), by port.
ISOLATION = {
    ("exporter", 7801): {"worker-render"},
    ("datagen", 8001): {"worker-points", "admin"},
    ("postgres", 5432): {"bootstrap", "datagen", "admin", "worker-persist"},
    ("rabbitmq", 5672): {
        *("admin", "worker-points", "worker-render", "worker-persist", "beat", "flower"),
        "keda-operator",
    },
    ("rabbitmq", 15672): {"flower"},
    ("redis", 6379): {"admin", "worker-points", "worker-render", "worker-persist", "beat", "flower"},
    ("flower", 5555): set(),
    ("admin", 8000): "anyone",
}

Obj = dict[str, Any]


# ---------------------------------------------------------------- rendering


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is missing: it renders deploy/k8s (apt-get install -y kubectl, any version >= 1.27)")
    return path


def render(overlay: str) -> list[Obj]:
    """The objects `kubectl apply -k deploy/k8s/overlays/<overlay>` would send."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"kubectl kustomize {overlay} failed:\n{done.stderr}"
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Obj]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


def by_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: Iterable[Obj], kind: str, name: str) -> Obj:
    found = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(objects: Iterable[Obj]) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: Obj) -> Obj:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: Obj) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


# ---------------------------------------------------------------- the checks


def schema_errors(objects: Iterable[Obj], version: str = TARGET_KUBERNETES) -> list[str]:
    """kubernetes-validate, strict, on every object that is not KEDA's."""
    errors = []
    for obj in objects:
        if obj.get("apiVersion") == KEDA_API:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(part) for part in error.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: no schema: {error}")
    return errors


def keda_check(objects: Iterable[Obj], directory: Path) -> subprocess.CompletedProcess[str]:
    """KEDA's schema (deploy/k8s/tools/validate-keda.mjs) on the KEDA objects."""
    if not (KEDA_MODELS / "package.json").is_file():
        pytest.fail("KEDA's schemas are missing: run deploy/k8s/tools/install.sh (make test does)")
    path = directory / "keda-objects.json"
    path.write_text(json.dumps([obj for obj in objects if obj.get("apiVersion") == KEDA_API]))
    return subprocess.run(["node", str(KEDA_VALIDATOR), str(path)], capture_output=True, text=True, timeout=60)


CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
MEMORY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
MEMORY_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
MEMORY_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(resource: str, value: Any) -> float:
    """A cpu quantity in cores or a memory quantity in bytes."""
    text = str(value)
    if resource == "cpu":
        match = CPU.match(text)
        assert match, f"cpu quantity {text!r}"
        return float(match[1]) / (1000 if match[2] else 1)
    match = MEMORY.match(text)
    assert match, f"memory quantity {text!r}"
    return int(match[1]) * MEMORY_UNITS[match[2]]


def container_errors(where: str, container: Obj, writable_root: bool) -> list[str]:
    errors = []
    security = container.get("securityContext", {})
    if security.get("allowPrivilegeEscalation") is not False:
        errors.append(f"{where}: allowPrivilegeEscalation must be false")
    if security.get("privileged"):
        errors.append(f"{where}: privileged")
    capabilities = security.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []):
        errors.append(f"{where}: capabilities must drop ALL")
    if capabilities.get("add"):
        errors.append(f"{where}: adds capabilities {capabilities['add']}")
    if security.get("runAsNonRoot") is False or security.get("runAsUser") == 0:
        errors.append(f"{where}: runs as root")
    if not writable_root and security.get("readOnlyRootFilesystem") is not True:
        errors.append(f"{where}: readOnlyRootFilesystem must be true")
    resources = container.get("resources", {})
    for resource in ("cpu", "memory"):
        request = resources.get("requests", {}).get(resource)
        limit = resources.get("limits", {}).get(resource)
        if request is None or limit is None:
            errors.append(f"{where}: {resource} needs a request and a limit")
        elif quantity(resource, request) > quantity(resource, limit):
            errors.append(f"{where}: {resource} request {request} above its limit {limit}")
    image = container.get("image", "")
    if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
        errors.append(f"{where}: image {image!r} needs a tag other than latest")
    return errors


def workload_errors(workload: Obj) -> list[str]:
    name = f"{workload['kind']}/{workload['metadata']['name']}"
    spec = pod_spec(workload)
    errors = []
    app = pod_labels(workload).get(NAME_LABEL)
    if app != workload["metadata"]["name"]:
        errors.append(f"{name}: its pods need the label {NAME_LABEL}: {workload['metadata']['name']}")
    security = spec.get("securityContext", {})
    if security.get("runAsNonRoot") is not True:
        errors.append(f"{name}: runAsNonRoot must be true")
    if security.get("runAsUser") == 0:
        errors.append(f"{name}: runAsUser 0")
    if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        errors.append(f"{name}: seccompProfile must be RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        errors.append(f"{name}: automountServiceAccountToken must be false (no pod talks to the API)")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        errors.append(f"{name}: shares a host namespace")
    for volume in spec.get("volumes", []):
        if "hostPath" in volume:
            errors.append(f"{name}: hostPath volume {volume['name']}")
    for container in containers(workload):
        where = f"{name} container {container['name']}"
        errors += container_errors(where, container, workload["metadata"]["name"] in WRITABLE_ROOT)
        if workload["kind"] != "Job":
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe not in container:
                    errors.append(f"{where}: no {probe}")
    return errors


def selects(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions); {} selects everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


class Pod:
    def __init__(self, name: str, namespace: str, labels: dict[str, str], ports: Iterable[int] = ()) -> None:
        self.name, self.namespace, self.labels, self.ports = name, namespace, labels, set(ports)

    def __repr__(self) -> str:
        return f"{self.namespace}/{self.name}"


def namespace_labels(namespace: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": namespace}


# Pods of other namespaces that the stack meets: KEDA's operator, DNS and anyone else.
OUTSIDERS = [
    Pod("keda-operator", "keda", {NAME_LABEL: "keda-operator", "app": "keda-operator"}),
    Pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, [53]),
    Pod("anyone", "elsewhere", {"app": "anyone"}),
]


def stack_pods(objects: Iterable[Obj]) -> list[Pod]:
    pods = []
    for workload in workloads(objects):
        ports = [port["containerPort"] for c in containers(workload) for port in c.get("ports", [])]
        namespace = workload["metadata"].get("namespace", "default")
        pods.append(Pod(workload["metadata"]["name"], namespace, pod_labels(workload), ports))
    return pods


def peer_matches(peer: Obj, policy_namespace: str, pod: Pod) -> bool:
    if "ipBlock" in peer:
        return pod.namespace != policy_namespace  # an address range: anything outside the namespace
    if "namespaceSelector" in peer:
        in_namespace = selects(peer["namespaceSelector"], namespace_labels(pod.namespace))
    else:
        in_namespace = pod.namespace == policy_namespace
    return in_namespace and ("podSelector" not in peer or selects(peer["podSelector"], pod.labels))


def port_matches(rule: Obj, port: int) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(entry.get("port") in (None, port) for entry in ports)


def policy_types(policy: Obj) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))


def allows(policies: list[Obj], direction: str, local: Pod, remote: Pod, port: int) -> bool:
    """Whether the NetworkPolicies let `local` take (Ingress) or open (Egress) a connection."""
    field, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    applying = [
        policy
        for policy in policies
        if policy["metadata"].get("namespace", "default") == local.namespace
        and direction in policy_types(policy)
        and selects(policy["spec"]["podSelector"], local.labels)
    ]
    if not applying:
        return True  # not isolated in that direction
    for policy in applying:
        for rule in policy["spec"].get(field) or []:
            if not port_matches(rule, port):
                continue
            if not rule.get(peers) or any(peer_matches(p, local.namespace, remote) for p in rule[peers]):
                return True
    return False


def reachable(policies: list[Obj], source: Pod, target: Pod, port: int) -> bool:
    return allows(policies, "Egress", source, target, port) and allows(policies, "Ingress", target, source, port)


def clients(objects: list[Obj], server: str, port: int) -> set[str]:
    pods = stack_pods(objects)
    target = next(pod for pod in pods if pod.name == server)
    policies = by_kind(objects, "NetworkPolicy")
    return {pod.name for pod in pods + OUTSIDERS if pod is not target and reachable(policies, pod, target, port)}


def network_errors(objects: list[Obj]) -> list[str]:
    errors = []
    policies = by_kind(objects, "NetworkPolicy")
    pods = stack_pods(objects)
    for pod in pods:
        for direction in ("Ingress", "Egress"):
            if not any(
                direction in policy_types(policy) and selects(policy["spec"]["podSelector"], pod.labels)
                for policy in policies
            ):
                errors.append(f"{pod}: no {direction} NetworkPolicy selects it")
    for (server, port), allowed in ISOLATION.items():
        found = clients(objects, server, port)
        if allowed == "anyone":
            if "anyone" not in found:
                errors.append(f"{server}:{port} must be reachable from outside the namespace")
        elif found != allowed:
            errors.append(f"{server}:{port} reachable from {sorted(found)}, must be exactly {sorted(allowed)}")
    exporter = next(pod for pod in pods if pod.name == "exporter")
    for target in pods + OUTSIDERS:
        for port in target.ports or {443}:
            if target is not exporter and reachable(policies, exporter, target, port):
                errors.append(f"exporter reaches {target}:{port}: the export servers must reach nothing")
    return errors


def scaling_errors(objects: list[Obj]) -> list[str]:
    errors = []
    scaled = by_kind(objects, "ScaledObject")
    auths = {obj["metadata"]["name"] for obj in by_kind(objects, "TriggerAuthentication")}
    targets: dict[str, list[Obj]] = {}
    for obj in scaled:
        targets.setdefault(obj["spec"]["scaleTargetRef"]["name"], []).append(obj)
    for deployment, queue in SCALED_ON.items():
        found = targets.get(deployment, [])
        if len(found) != 1:
            errors.append(f"Deployment/{deployment}: {len(found)} ScaledObjects (needs one)")
            continue
        triggers = found[0]["spec"]["triggers"]
        queues = [t["metadata"].get("queueName") for t in triggers if t["type"] == "rabbitmq"]
        if queues != [queue]:
            errors.append(f"ScaledObject for {deployment} scales on queues {queues}, must be [{queue!r}]")
        for trigger in triggers:
            if trigger.get("authenticationRef", {}).get("name") not in auths:
                errors.append(f"ScaledObject for {deployment}: its trigger names no TriggerAuthentication")
        if "replicas" in named(objects, "Deployment", deployment)["spec"]:
            errors.append(f"Deployment/{deployment} sets replicas: KEDA owns them, an apply would reset them")
    for name in targets:
        if name not in SCALED_ON:
            errors.append(f"{name} is scaled by KEDA but is no worker or export server")
    beat = named(objects, "Deployment", "beat")
    if beat["spec"].get("replicas") != 1:
        errors.append("Deployment/beat: replicas must be exactly 1")
    if beat["spec"].get("strategy", {}).get("type") != "Recreate":
        errors.append("Deployment/beat: strategy must be Recreate (never two beats at once)")
    return errors


def policy_errors(objects: list[Obj]) -> list[str]:
    """Everything the README and issue 22 promise of the manifests, as a list of problems."""
    errors = []
    namespaces = by_kind(objects, "Namespace")
    if [ns["metadata"]["name"] for ns in namespaces] != [NAMESPACE]:
        errors.append(f"one Namespace {NAMESPACE} expected")
    for ns in namespaces:
        if ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") != "restricted":
            errors.append(f"Namespace/{ns['metadata']['name']}: pod-security.kubernetes.io/enforce must be restricted")
    for obj in objects:
        if obj["kind"] != "Namespace" and obj["metadata"].get("namespace") != NAMESPACE:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: not in namespace {NAMESPACE}")
        if obj["kind"] == "Secret":
            errors.append(f"Secret/{obj['metadata']['name']}: a Secret's values never go in the repository")
    for workload in workloads(objects):
        errors += workload_errors(workload)
        for container in containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] != SECRET_NAME:
                    errors.append(f"{workload['metadata']['name']}: secret {ref['name']} is not {SECRET_NAME}")
    budgets = by_kind(objects, "PodDisruptionBudget")
    for workload in workloads(objects):
        if workload["kind"] == "Job":
            continue
        covering = [pdb for pdb in budgets if selects(pdb["spec"]["selector"], pod_labels(workload))]
        if len(covering) != 1:
            errors.append(f"{workload['kind']}/{workload['metadata']['name']}: {len(covering)} PodDisruptionBudgets")
    errors += network_errors(objects)
    errors += scaling_errors(objects)
    return errors


# ---------------------------------------------------------------- rendering and schemas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_every_compose_service(rendered: dict[str, list[Obj]], overlay: str) -> None:
    names = {w["metadata"]["name"] for w in workloads(rendered[overlay])}
    compose_services = set(load_yaml(COMPOSE_FILE)["services"]) - COMPOSE_ONLY
    assert names == compose_services, f"compose services without a workload: {compose_services - names}"
    assert named(rendered[overlay], "Job", "bootstrap")["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    kinds = {obj["kind"] for obj in rendered[overlay]}
    assert {"StatefulSet", "Deployment", "Job", "NetworkPolicy", "PodDisruptionBudget", "ScaledObject"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_validate_accepts_every_object(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    assert schema_errors(objects) == []
    validated = [obj for obj in objects if obj["apiVersion"] != KEDA_API]
    assert len(validated) + len(by_kind(objects, "ScaledObject")) + len(by_kind(objects, "TriggerAuthentication")) == (
        len(objects)
    ), "an object is of a kind neither check knows"
    assert len(validated) > 40


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagePolicy="Always"), id="field"),
        pytest.param(lambda d: d["spec"].update(replicas="2"), id="type"),
        pytest.param(lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"), id="required"),
    ],
)
def test_the_schema_check_refuses_a_broken_object(rendered: dict[str, list[Obj]], mutate: Callable) -> None:
    broken = copy.deepcopy(named(rendered["dev"], "Deployment", "datagen"))
    mutate(broken)
    errors = schema_errors([broken])
    assert len(errors) == 1 and errors[0].startswith("Deployment/datagen"), errors


def test_the_schema_check_refuses_an_object_it_has_no_schema_for() -> None:
    errors = schema_errors([{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}])
    assert len(errors) == 1 and "no schema" in errors[0], errors


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_objects_validate_against_kedas_schema(
    rendered: dict[str, list[Obj]], overlay: str, tmp_path: Path
) -> None:
    done = keda_check(rendered[overlay], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validate-keda: 5 valid, 0 invalid" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(lambda o: o["spec"].update(minReplicaCount="1"), "/spec/minReplicaCount", id="type"),
        pytest.param(lambda o: o["spec"]["triggers"][0].pop("type"), "missingProperty", id="required"),
        pytest.param(lambda o: o["spec"].pop("scaleTargetRef"), "scaleTargetRef", id="target"),
        pytest.param(lambda o: o.update(apiVersion="keda.sh/v2"), "not a KEDA", id="api"),
    ],
)
def test_the_keda_check_refuses_a_broken_scaled_object(
    rendered: dict[str, list[Obj]], tmp_path: Path, mutate: Callable, expected: str
) -> None:
    broken = copy.deepcopy(named(rendered["dev"], "ScaledObject", "worker-render"))
    mutate(broken)
    broken["apiVersion"] = broken.get("apiVersion", KEDA_API)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps([broken]))
    done = subprocess.run(["node", str(KEDA_VALIDATOR), str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout
    assert "invalid ScaledObject/worker-render" in done.stdout and expected in done.stdout, done.stdout


# ---------------------------------------------------------------- the policy


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_meets_the_policy(rendered: dict[str, list[Obj]], overlay: str) -> None:
    assert policy_errors(rendered[overlay]) == []


def container_of(objects: list[Obj], workload: str) -> Obj:
    return next(w for w in workloads(objects) if w["metadata"]["name"] == workload)["spec"]["template"]["spec"][
        "containers"
    ][0]


def deployment_spec(objects: list[Obj], name: str) -> Obj:
    return named(objects, "Deployment", name)["spec"]


def edit_policy(objects: list[Obj], name: str, edit: Callable[[Obj], Any]) -> None:
    edit(named(objects, "NetworkPolicy", name)["spec"])


BROKEN: list[Any] = [
    ("probe", lambda o: container_of(o, "worker-render").pop("readinessProbe"), "worker-render container"),
    ("limits", lambda o: container_of(o, "datagen")["resources"].pop("limits"), "cpu needs a request and a limit"),
    (
        "request-over-limit",
        lambda o: container_of(o, "admin")["resources"]["requests"].update(memory="4Gi"),
        "memory request 4Gi above its limit",
    ),
    (
        "escalation",
        lambda o: container_of(o, "exporter")["securityContext"].update(allowPrivilegeEscalation=True),
        "Deployment/exporter container exporter: allowPrivilegeEscalation must be false",
    ),
    (
        "capabilities",
        lambda o: container_of(o, "beat")["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
        "capabilities must drop ALL",
    ),
    (
        "read-write-root",
        lambda o: container_of(o, "postgres")["securityContext"].update(readOnlyRootFilesystem=False),
        "StatefulSet/postgres container postgres: readOnlyRootFilesystem must be true",
    ),
    (
        "root",
        lambda o: named(o, "Job", "bootstrap")["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot"),
        "Job/bootstrap: runAsNonRoot must be true",
    ),
    (
        "seccomp",
        lambda o: deployment_spec(o, "flower")["template"]["spec"]["securityContext"].pop("seccompProfile"),
        "Deployment/flower: seccompProfile must be RuntimeDefault",
    ),
    ("latest", lambda o: container_of(o, "redis").update(image="redis:latest"), "needs a tag other than latest"),
    (
        "pod-security-label",
        lambda o: by_kind(o, "Namespace")[0]["metadata"]["labels"].pop("pod-security.kubernetes.io/enforce"),
        "enforce must be restricted",
    ),
    ("secret-value", lambda o: o.append(secret_object()), "a Secret's values never go in the repository"),
    ("pdb", lambda o: o.remove(named(o, "PodDisruptionBudget", "worker-points")), "worker-points: 0 PodDisruption"),
    (
        "no-default-deny",
        lambda o: o.remove(named(o, "NetworkPolicy", "default-deny")),
        "exporter: no Egress NetworkPolicy selects it",
    ),
    (
        "exporter-open-to-points",
        lambda o: (
            edit_policy(o, "exporter-ingress", lambda s: s["ingress"][0]["from"].append(pod_peer("worker-points"))),
            edit_policy(o, "worker-points-egress", lambda s: s["egress"].append(egress_rule("exporter", 7801))),
        ),
        "exporter:7801 reachable from ['worker-points', 'worker-render']",
    ),
    (
        "datagen-opened-on-one-end-only",
        lambda o: edit_policy(o, "datagen-ingress", lambda s: s["ingress"][0].update({"from": [{"podSelector": {}}]})),
        "",  # still closed: no other pod's egress reaches it; the next case opens both ends
    ),
    (
        "database-open-to-render",
        lambda o: (
            edit_policy(o, "postgres-ingress", lambda s: s["ingress"][0].update({"from": [{"podSelector": {}}]})),
            edit_policy(o, "worker-render-egress", lambda s: s["egress"].append(egress_rule("postgres", 5432))),
        ),
        "postgres:5432 reachable from ['admin', 'bootstrap', 'datagen', 'worker-persist', 'worker-render']",
    ),
    (
        "exporter-reaches-out",
        lambda o: o.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "exporter-egress", "namespace": NAMESPACE},
                "spec": {
                    "podSelector": {"matchLabels": {NAME_LABEL: "exporter"}},
                    "policyTypes": ["Egress"],
                    "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
                },
            }
        ),
        "the export servers must reach nothing",
    ),
    ("beat-two", lambda o: deployment_spec(o, "beat").update(replicas=2), "beat: replicas must be exactly 1"),
    (
        "beat-rolling",
        lambda o: deployment_spec(o, "beat").update(strategy={"type": "RollingUpdate"}),
        "strategy must be Recreate",
    ),
    (
        "replicas-under-keda",
        lambda o: deployment_spec(o, "worker-render").update(replicas=3),
        "Deployment/worker-render sets replicas",
    ),
    (
        "wrong-queue",
        lambda o: named(o, "ScaledObject", "worker-persist")["spec"]["triggers"][0]["metadata"].update(
            queueName="points"
        ),
        "ScaledObject for worker-persist scales on queues ['points']",
    ),
    (
        "exporter-not-scaled",
        lambda o: o.remove(named(o, "ScaledObject", "exporter")),
        "Deployment/exporter: 0 ScaledObjects",
    ),
]


def pod_peer(name: str) -> Obj:
    return {"podSelector": {"matchLabels": {NAME_LABEL: name}}}


def egress_rule(name: str, port: int) -> Obj:
    return {"to": [pod_peer(name)], "ports": [{"protocol": "TCP", "port": port}]}


def secret_object() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME, "namespace": NAMESPACE},
        "stringData": {"REDIS_PASSWORD": "committed-by-mistake"},
    }


@pytest.mark.parametrize(("mutate", "expected"), [pytest.param(m, e, id=i) for i, m, e in BROKEN])
def test_the_policy_refuses_a_broken_object(rendered: dict[str, list[Obj]], mutate: Callable, expected: str) -> None:
    objects = copy.deepcopy(rendered["dev"])
    assert policy_errors(objects) == []
    mutate(objects)
    errors = policy_errors(objects)
    if not expected:
        assert errors == [], "a policy opened on one end only must not open the path"
        return
    assert any(expected in error for error in errors), errors


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_isolation_matches_compose(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    assert clients(objects, "exporter", 7801) == {"worker-render"}
    assert clients(objects, "datagen", 8001) == {"worker-points", "admin"}
    assert clients(objects, "postgres", 5432) == {"bootstrap", "datagen", "admin", "worker-persist"}
    assert "keda-operator" in clients(objects, "rabbitmq", 5672)
    assert "anyone" not in clients(objects, "rabbitmq", 5672) | clients(objects, "redis", 6379)
    assert clients(objects, "flower", 5555) == set()


# ---------------------------------------------------------------- compose parity


def compose_probe(service: Obj) -> list[str]:
    """docker-compose.yml's healthcheck as an exec command ($$ is compose's escaped $)."""
    test = service["healthcheck"]["test"]
    command = list(test[1:]) if test[0] == "CMD" else ["sh", "-c", test[1]]
    return [str(part).replace("$$", "$") for part in command]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_run_the_compose_healthchecks(rendered: dict[str, list[Obj]], overlay: str) -> None:
    services = load_yaml(COMPOSE_FILE)["services"]
    checked = []
    for workload in workloads(rendered[overlay]):
        name = workload["metadata"]["name"]
        healthcheck = services[name].get("healthcheck", {})
        if healthcheck.get("disable"):
            continue
        container = container_of(rendered[overlay], name)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["exec"]["command"] == compose_probe(services[name]), f"{name} {probe}"
        # As quick to turn ready as compose's start_period allows.
        start_period = int(str(healthcheck["start_period"]).rstrip("s"))
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] == start_period, name
        checked.append(name)
    assert len(checked) == 11


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_run_the_compose_commands(rendered: dict[str, list[Obj]], overlay: str) -> None:
    services = load_yaml(COMPOSE_FILE)["services"]
    for workload in workloads(rendered[overlay]):
        name = workload["metadata"]["name"]
        if "command" in services[name] and services[name]["command"][0] == "deploy/run":
            # compose's command replaces the image's CMD and keeps its ENTRYPOINT (the export
            # server's tini): so do a container's args.
            container = container_of(rendered[overlay], name)
            assert "command" not in container, name
            assert container["args"] == list(services[name]["command"]), name


# ---------------------------------------------------------------- sizing and secrets


def sizing() -> dict[str, int]:
    constants = dict(re.findall(r"^([A-Z_]+)=(\d+)$", SIZING.read_text(), re.MULTILINE))
    done = subprocess.run(
        [str(SIZING)], env={**os.environ, "EXPORTER_INSTANCES": "1"}, capture_output=True, text=True, check=True
    )
    printed = dict(line.split("=", 1) for line in done.stdout.split())
    # One export server gets RENDER_PER_INSTANCE render processes.
    return {"per_core": int(constants["INSTANCES_PER_CORE"]), "mb": int(constants["MB_PER_INSTANCE"])} | {
        "render_per_instance": int(printed["RENDER_CONCURRENCY"])
    }


def env_value(container: Obj, name: str) -> str:
    return next(env["value"] for env in container["env"] if env["name"] == name)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_export_servers_scale_with_the_render_workers_in_the_sizing_ratio(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objects = rendered[overlay]
    rule = sizing()
    concurrency = int(env_value(container_of(objects, "worker-render"), "RENDER_CONCURRENCY"))
    render = named(objects, "ScaledObject", "worker-render")["spec"]
    exporter = named(objects, "ScaledObject", "exporter")["spec"]
    render_value = float(render["triggers"][0]["metadata"]["value"])
    exporter_value = float(exporter["triggers"][0]["metadata"]["value"])
    # Export servers per render worker pod: RENDER_CONCURRENCY / RENDER_PER_INSTANCE.
    assert exporter_value == render_value * rule["render_per_instance"] / concurrency
    assert exporter["maxReplicaCount"] * rule["render_per_instance"] == render["maxReplicaCount"] * concurrency
    assert exporter["minReplicaCount"] * rule["render_per_instance"] == render["minReplicaCount"] * concurrency
    # An export server's requests are the rule's share of a node: 1/INSTANCES_PER_CORE core, MB_PER_INSTANCE.
    requests = container_of(objects, "exporter")["resources"]["requests"]
    assert quantity("cpu", requests["cpu"]) == 1 / rule["per_core"]
    assert quantity("memory", requests["memory"]) == rule["mb"] * 2**20


def test_create_secret_gives_every_key_the_manifests_name(rendered: dict[str, list[Obj]], tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets.env"
    env = {**os.environ, "SECRETS_FILE": str(secrets_file), "DRY_RUN": "1"}
    first = subprocess.run([str(CREATE_SECRET)], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    secret = yaml.safe_load(first.stdout)
    assert schema_errors([secret]) == []
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == (SECRET_NAME, NAMESPACE)
    keys = set(secret["data"])
    assert keys >= SECRETS, f"compose's secrets missing: {SECRETS - keys}"
    for overlay, objects in rendered.items():
        referenced = {
            env["valueFrom"]["secretKeyRef"]["key"]
            for w in workloads(objects)
            for c in containers(w)
            for env in c.get("env", [])
            if "secretKeyRef" in env.get("valueFrom", {})
        }
        referenced |= {
            ref["key"] for auth in by_kind(objects, "TriggerAuthentication") for ref in auth["spec"]["secretTargetRef"]
        }
        assert referenced <= keys, f"{overlay}: keys no Secret has: {referenced - keys}"
    assert secrets_file.stat().st_mode & 0o077 == 0, "the secrets file must be its owner's only"
    # A second run changes no value (the volumes keep the passwords they were made with).
    again = subprocess.run([str(CREATE_SECRET)], env=env, capture_output=True, text=True, timeout=60)
    assert yaml.safe_load(again.stdout)["data"] == secret["data"]
    assert "added" not in again.stderr


def test_the_secrets_file_is_never_committed() -> None:
    done = subprocess.run(["git", "check-ignore", "-q", "deploy/k8s/secrets.env"], cwd=ROOT)
    assert done.returncode == 0, "deploy/k8s/secrets.env must be gitignored"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_composes_images_and_the_dockerfile_targets(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """Upstream images as compose pins them; ours named after the build target (README: images to push)."""
    services = load_yaml(COMPOSE_FILE)["services"]
    for workload in workloads(rendered[overlay]):
        name = workload["metadata"]["name"]
        image = container_of(rendered[overlay], name)["image"]
        service = services[name]
        if "image" in service:
            assert image == service["image"], name
            continue
        build = service["build"]
        target = build.get("target") or Path(build["dockerfile"]).parent.name  # exporter/Dockerfile: exporter
        repository, tag = image.rsplit(":", 1)
        if overlay == "dev":
            assert (repository, tag) == (f"function-dashboard-{target}", "dev"), name
        else:
            assert repository.endswith(f"/{target}") and tag != "dev", name
