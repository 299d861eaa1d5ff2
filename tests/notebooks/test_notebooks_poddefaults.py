"""Kubeflow's PodDefault webhook at pod creation: what a matching PodDefault adds, the
conflicts that refuse a pod (with the webhook's message), and a Job's pods getting them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.daemon import wait_until

from wonderland.errors import AdmissionDeniedError, InvalidError
from wonderland.notebooks import defaults, poddefaults
from wonderland.platform import Platform
from wonderland.runtime.kubelet import Kubelet
from wonderland.runtime.logs import LogOptions
from wonderland.settings import Settings
from wonderland.store import Store
from wonderland.workloads import admission

Obj = dict[str, Any]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "state")
    admission.install(opened.admission)
    poddefaults.install(opened.admission)
    try:
        yield opened
    finally:
        opened.close()


def poddefault(
    name: str, selector: Obj | None = None, namespace: str = "default", **spec: Any
) -> Obj:
    return {
        "apiVersion": "kubeflow.org/v1alpha1",
        "kind": "PodDefault",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": selector or {"matchLabels": {name: "true"}}, **spec},
    }


def pod(name: str, labels: Obj, namespace: str = "default", **container: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "python:3.12", **container}]},
    }


def env_of(obj: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in obj["spec"]["containers"][0].get("env", [])}


def test_matching_poddefault_adds_env_volumes_labels_and_records_itself(store: Store) -> None:
    made_pd = store.create(
        poddefault(
            "add-data",
            env=[{"name": "DATA_DIR", "value": "/data"}],
            envFrom=[{"configMapRef": {"name": "settings"}}],
            volumes=[{"name": "data", "emptyDir": {}}],
            volumeMounts=[{"name": "data", "mountPath": "/data"}],
            labels={"team": "ml"},
            annotations={"note": "from a default"},
            tolerations=[{"key": "gpu", "operator": "Exists"}],
            serviceAccountName="runner",
            args=["--fast"],
        )
    )
    made = store.create(
        pod("p", {"add-data": "true"}, env=[{"name": "OWN", "value": "1"}], command=["true"])
    )
    container = made["spec"]["containers"][0]
    assert env_of(made) == {"OWN": "1", "DATA_DIR": "/data"}
    assert container["envFrom"] == [{"configMapRef": {"name": "settings"}}]
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert container["command"] == ["true"] and container["args"] == ["--fast"]
    assert made["spec"]["volumes"][0]["name"] == "data"
    assert made["spec"]["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert made["spec"]["serviceAccountName"] == "runner"
    meta = made["metadata"]
    assert meta["labels"] == {"add-data": "true", "team": "ml"}
    assert meta["annotations"]["note"] == "from a default"
    rv = made_pd["metadata"]["resourceVersion"]
    assert meta["annotations"]["poddefault.admission.kubeflow.org/poddefault-add-data"] == rv


def test_pods_that_do_not_match_or_opt_out_are_left_alone(store: Store) -> None:
    store.create(poddefault("add-env", env=[{"name": "A", "value": "1"}]))
    store.create(poddefault("other-ns", {"matchLabels": {"x": "y"}}, namespace="team", env=[]))
    plain = store.create(pod("plain", {"app": "x"}))
    assert env_of(plain) == {}
    excluded = pod("excluded", {"add-env": "true"})
    excluded["metadata"]["annotations"] = {"poddefault.admission.kubeflow.org/exclude": "true"}
    assert env_of(store.create(excluded)) == {}
    # a PodDefault of another namespace never applies
    elsewhere = store.create(pod("elsewhere", {"x": "y"}))
    assert "annotations" not in elsewhere["metadata"] or not any(
        k.startswith("poddefault.") for k in elsewhere["metadata"]["annotations"]
    )


def test_two_poddefaults_setting_one_env_differently_refuse_the_pod(store: Store) -> None:
    selector = {"matchLabels": {"role": "notebook"}}
    store.create(poddefault("a", selector, env=[{"name": "REGION", "value": "eu"}]))
    store.create(poddefault("b", selector, env=[{"name": "REGION", "value": "us"}]))
    with pytest.raises(AdmissionDeniedError) as caught:
        store.create(pod("nb", {"role": "notebook"}))
    message = str(caught.value)
    assert message.startswith(
        'admission webhook "admission-webhook-deployment.kubeflow.org" denied the request: '
        "conflict occurred while applying poddefaults: a,b on pod: nb err: "
        "merging env for b has a conflict on REGION"
    )
    assert '"value":"us"' in message and '"value":"eu"' in message
    assert store.list("pods", "default")[0] == []


def test_the_same_value_twice_is_no_conflict_but_the_pods_own_differing_value_is(
    store: Store,
) -> None:
    selector = {"matchLabels": {"role": "job"}}
    store.create(poddefault("a", selector, env=[{"name": "MODE", "value": "x"}]))
    store.create(poddefault("b", selector, env=[{"name": "MODE", "value": "x"}]))
    assert env_of(store.create(pod("ok", {"role": "job"}))) == {"MODE": "x"}
    with pytest.raises(AdmissionDeniedError, match="merging env for a has a conflict on MODE"):
        store.create(pod("own", {"role": "job"}, env=[{"name": "MODE", "value": "mine"}]))
    store.create(poddefault("c", selector, volumeMounts=[{"name": "v2", "mountPath": "/data"}]))
    mounts = pod("mounts", {"role": "job"}, volumeMounts=[{"name": "v1", "mountPath": "/data"}])
    mounts["spec"]["volumes"] = [{"name": "v1", "emptyDir": {}}]
    with pytest.raises(AdmissionDeniedError, match="conflict on mount path /data"):
        store.create(mounts)


def test_a_poddefault_with_a_field_the_crd_does_not_have_is_refused(store: Store) -> None:
    bad = poddefault("bad", envs=[{"name": "A", "value": "1"}])
    with pytest.raises(InvalidError, match=r"spec\.envs"):
        store.create(bad)
    no_selector = poddefault("bad")
    del no_selector["spec"]["selector"]
    with pytest.raises(InvalidError, match=r"spec\.selector"):
        store.create(no_selector)


def test_shipped_defaults_give_mlflow_and_the_api_to_pods_that_opt_in(store: Store) -> None:
    defaults.ensure_shipped(store, "http://127.0.0.1:9999")
    defaults.ensure_shipped(store, "http://127.0.0.1:5000")  # ours follow the tracking URI
    made = store.create(pod("nb", {"access-mlflow": "true", "access-kube-api": "true"}))
    assert env_of(made) == {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    assert made["spec"]["automountServiceAccountToken"] is True
    # one a user took over (no managed-by label) stays as the user wrote it
    mine = store.get(poddefaults.PODDEFAULTS, "default", "access-mlflow")
    mine["metadata"]["labels"] = {}
    mine["spec"]["env"][0]["value"] = "http://mlflow.example"
    store.update(mine)
    defaults.ensure_shipped(store, "http://127.0.0.1:5000")
    kept = store.get(poddefaults.PODDEFAULTS, "default", "access-mlflow")
    assert kept["spec"]["env"][0]["value"] == "http://mlflow.example"
    assert store.admission.has_mutations("pods")


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    settings = Settings(home=tmp_path / "home", gateway_port=0, api_port=0, backoff_seconds=0.2)
    platform = Platform.open(settings)
    platform.install_plugins(("wonderland.notebooks", "wonderland.workloads"))
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()
        platform.store.close()


def job(name: str, labels: Obj, command: str) -> Obj:
    container = {"name": "main", "image": "python:3.12", "command": ["sh", "-c", command]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }


async def test_a_jobs_pod_runs_with_the_poddefault_and_a_conflict_is_a_failed_create(
    platform: Platform,
) -> None:
    store = platform.store
    store.create(poddefault("greet", env=[{"name": "GREETING", "value": "hello"}]))
    store.create(job("hi", {"greet": "true"}, "echo $GREETING"))

    def finished_pod() -> Obj | None:
        items, _ = store.list("pods", "default", {"batch.kubernetes.io/job-name": "hi"})
        done = [p for p in items if (p.get("status") or {}).get("phase") == "Succeeded"]
        return done[0] if done else None

    done: Obj = await wait_until(finished_pod, 60, "the job's pod to succeed")
    log = platform.require(Kubelet).read_log(
        "default", done["metadata"]["name"], None, False, LogOptions()
    )
    assert log.decode().strip() == "hello"

    store.create(
        poddefault(
            "greet-too",
            {"matchLabels": {"greet": "true"}},
            env=[{"name": "GREETING", "value": "hi"}],
        )
    )
    store.create(job("clash", {"greet": "true"}, "true"))

    def refusal() -> str | None:
        items, _ = store.list("events", "default")
        for event in items:
            if event["involvedObject"]["name"] == "clash" and event["reason"] == "FailedCreate":
                return str(event["message"])
        return None

    message: str = await wait_until(refusal, 30, "the job's FailedCreate event")
    assert "conflict occurred while applying poddefaults: greet,greet-too" in message
