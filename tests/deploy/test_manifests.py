"""The Kubernetes manifests: valid against a current Kubernetes schema (offline, strict:
unknown fields refused), and consistent with the configuration the gateway reads: the files
the example configuration names are the files the volumes project, the ports the gateway
binds are the ports the probes, the Service and the NetworkPolicy use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from essc_gateway.app import LIVENESS_SERVICE
from essc_gateway.config import GatewayConfig

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes" / "gateway.yaml"
KUBERNETES = "1.33.0"


def documents() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(MANIFESTS.read_text())}


def test_the_manifests_validate_against_kubernetes_offline() -> None:
    tool = Path(sys.executable).parent / "kubernetes-validate"
    checked = subprocess.run(  # noqa: S603 - a fixed tool on our own file
        [str(tool), "--kubernetes-version", KUBERNETES, "--strict", str(MANIFESTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    kinds = set(documents())
    assert kinds == {
        "ServiceAccount", "ConfigMap", "StatefulSet", "Service", "PodDisruptionBudget",
        "HorizontalPodAutoscaler", "NetworkPolicy",
    }  # fmt: skip


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _projected_files(deployment: dict[str, Any], container: dict[str, Any]) -> set[str]:
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    files = set()
    for volume in deployment["spec"]["template"]["spec"]["volumes"]:
        for source in volume.get("projected", {}).get("sources", []):
            for kind in ("configMap", "secret"):
                for item in source.get(kind, {}).get("items", []):
                    files.add(f"{mounts[volume['name']]}/{item['path']}")
    return files


def test_the_configuration_names_the_files_the_volumes_project() -> None:
    manifests = documents()
    deployment, container = manifests["StatefulSet"], _container(manifests["StatefulSet"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    example = json.loads((ROOT / "deploy" / "config.example.json").read_text())
    assert json.loads(manifests["ConfigMap"]["data"]["config.json"]) == example
    files = _projected_files(deployment, container)
    assert env["ESSC_CONFIG"] in files
    assert env["ESSC_EVIDENCE_KEY_FILE"] in files
    assert set(example["tls"].values()) <= files


def test_the_ports_the_gateway_binds_are_the_ones_probed_and_served() -> None:
    manifests = documents()
    container = _container(manifests["StatefulSet"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "grpc-mtls": int(env["ESSC_PORT"]),
        "health": int(env["ESSC_HEALTH_PORT"]),
        "metrics": int(env["ESSC_METRICS_PORT"]),
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["health"]
    # Readiness follows the store and the HSM (the server as a whole); liveness asks the
    # name that stays SERVING through their outages, so that no outage restarts every pod.
    assert container["readinessProbe"]["grpc"].get("service", "") == ""
    assert container["livenessProbe"]["grpc"]["service"] == LIVENESS_SERVICE
    service_ports = {p["targetPort"] for p in manifests["Service"]["spec"]["ports"]}
    assert service_ports <= set(ports)
    allowed = {
        p["port"] for rule in manifests["NetworkPolicy"]["spec"]["ingress"] for p in rule["ports"]
    }
    assert allowed == {ports["grpc-mtls"], ports["metrics"]}


def test_the_pods_are_locked_down_and_drain_before_they_stop() -> None:
    deployment = documents()["StatefulSet"]
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["updateStrategy"]["type"] == "RollingUpdate"
    assert spec["podManagementPolicy"] == "Parallel"  # replicas share the store
    assert documents()["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = _container(deployment)
    assert container["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(container["resources"]) == {"requests", "limits"}
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain = GatewayConfig.__dataclass_fields__["shutdown_grace"].default
    assert pod["terminationGracePeriodSeconds"] > pause + drain  # type: ignore[operator]


def test_held_records_are_on_a_volume_that_outlives_the_pod() -> None:
    manifests = documents()
    statefulset = manifests["StatefulSet"]
    container = _container(statefulset)
    env = {e["name"]: e.get("value") for e in container["env"]}
    [state] = [m for m in container["volumeMounts"] if m["mountPath"] == env["ESSC_STATE_DIR"]]
    claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
    assert state["name"] in claims
    assert state["name"] not in {
        v["name"] for v in statefulset["spec"]["template"]["spec"]["volumes"]
    }
    assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    assert manifests["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
