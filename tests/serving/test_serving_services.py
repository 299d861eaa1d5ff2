"""Knative Serving conformance behaviours, ported: services, revisions, routes, traffic."""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import os
from pathlib import Path
from typing import Any

import pytest
from serving_env import APP, CFG, DOMAIN, KSVC, REV, ROUTE, Env, ksvc

from wonderland.errors import InvalidError, NotFoundError
from wonderland.serving.validation import ServingChecks, register_checks
from wonderland.store import Store

HOST = f"hello.default.{DOMAIN}"


async def test_create_service_revision_route_and_url(platform_env: Env) -> None:
    env = platform_env
    env.apply(ksvc("hello", env={"GREETING": "hi"}))
    svc = await env.ready("hello")
    st = svc["status"]
    assert st["url"] == f"http://{HOST}:{env.system.gateway.port}"  # the gateway's port
    assert st["address"]["url"] == "http://hello.default.svc.cluster.local"
    assert st["latestCreatedRevisionName"] == st["latestReadyRevisionName"] == "hello-00001"
    assert st["traffic"] == [
        {"revisionName": "hello-00001", "latestRevision": True, "percent": 100}
    ]
    types = {c["type"]: c["status"] for c in st["conditions"]}
    assert types == {"Ready": "True", "ConfigurationsReady": "True", "RoutesReady": "True"}
    rev = env.get(REV, "hello-00001")
    labels = rev["metadata"]["labels"]
    assert labels["serving.knative.dev/service"] == "hello"
    assert labels["serving.knative.dev/configuration"] == "hello"
    assert labels["serving.knative.dev/configurationGeneration"] == "1"
    assert rev["status"]["actualReplicas"] == 1
    route = env.get(ROUTE, "hello")
    rtypes = {c["type"] for c in route["status"]["conditions"]}
    assert {"Ready", "AllTrafficAssigned", "IngressReady", "CertificateProvisioned"} <= rtypes
    r = await env.request(HOST)
    data = r.json()
    assert r.status_code == 200
    assert data["env"]["K_SERVICE"] == "hello" and data["env"]["K_REVISION"] == "hello-00001"
    assert data["env"]["K_CONFIGURATION"] == "hello" and data["env"]["GREETING"] == "hi"
    # the cluster-local name works too (replicas use it through their HTTP proxy setting)
    r2 = await env.request("hello.default.svc.cluster.local")
    assert r2.status_code == 200
    assert data["env"]["http_proxy"] == env.url


async def test_update_creates_a_new_revision_without_failed_requests(platform_env: Env) -> None:
    env = platform_env
    env.apply(ksvc("hello", env={"VERSION": "1"}))
    await env.ready("hello")
    failures: list[int] = []
    seen: set[str] = set()
    stop = asyncio.Event()

    async def prober() -> None:
        import httpx

        async with httpx.AsyncClient(base_url=env.url, timeout=60) as client:
            while not stop.is_set():
                r = await client.get("/", headers={"Host": HOST})
                if r.status_code != 200:
                    failures.append(r.status_code)
                else:
                    seen.add(r.json()["env"]["VERSION"])

    task = asyncio.create_task(prober())
    try:
        env.apply(ksvc("hello", env={"VERSION": "2"}))  # new image/env: a new revision
        await env.wait(
            lambda: (
                env.get(KSVC, "hello")["status"].get("latestReadyRevisionName") == "hello-00002"
            ),
            what="second revision ready",
        )
        await env.ready("hello")
        # labels and annotations on the Service do not make a revision
        svc = env.get(KSVC, "hello")
        body = copy.deepcopy(svc)
        body["metadata"]["labels"] = {"team": "blue"}
        body["metadata"]["annotations"] = {"note": "x"}
        del body["status"]
        env.store.update(body)
        await env.wait(lambda: env.get(CFG, "hello")["metadata"].get("labels", {}).get("team"))
        await asyncio.sleep(0.3)  # no event for "no revision is made": give one its chance
        await env.wait(lambda: "2" in seen)
    finally:
        stop.set()
        await task
    assert failures == []
    assert env.get(CFG, "hello")["status"]["latestCreatedRevisionName"] == "hello-00002"
    rev = env.get(REV, "hello-00002")
    assert "team" not in rev["metadata"].get("labels", {})  # config metadata does not propagate
    assert "note" not in rev["metadata"].get("annotations", {})
    r = await env.request(HOST)
    assert r.json()["env"]["VERSION"] == "2"


async def test_traffic_split_tags_and_tag_header(platform_env: Env) -> None:
    env = platform_env
    env.apply(ksvc("hello", env={"COLOR": "blue"}))
    await env.ready("hello")
    env.apply(
        ksvc(
            "hello",
            env={"COLOR": "green"},
            traffic=[
                {"revisionName": "hello-00001", "percent": 50, "tag": "blue"},
                {"latestRevision": True, "percent": 50, "tag": "green"},
            ],
        )
    )
    await env.wait(
        lambda: (
            len(env.get(KSVC, "hello")["status"].get("traffic", [])) == 2
            and env.get(KSVC, "hello")["status"].get("latestReadyRevisionName") == "hello-00002"
        ),
        what="two traffic targets",
    )
    svc = await env.ready("hello")
    traffic = {t["tag"]: t for t in svc["status"]["traffic"]}
    assert traffic["blue"]["url"] == f"http://blue-hello.default.{DOMAIN}:{env.system.gateway.port}"
    assert traffic["green"]["revisionName"] == "hello-00002"
    assert traffic["green"]["latestRevision"] is True and traffic["blue"]["latestRevision"] is False
    assert (await env.request(f"blue-hello.default.{DOMAIN}")).json()["env"]["COLOR"] == "blue"
    assert (await env.request(f"green-hello.default.{DOMAIN}")).json()["env"]["COLOR"] == "green"
    r = await env.request(HOST, headers={"Knative-Serving-Tag": "blue"})
    assert r.json()["env"]["COLOR"] == "blue"
    colors = [(await env.request(HOST)).json()["env"]["COLOR"] for _ in range(60)]
    assert colors.count("blue") >= 10 and colors.count("green") >= 10


async def test_route_with_configuration_name_targets(platform_env: Env) -> None:
    env = platform_env
    env.apply(ksvc("hello"))
    await env.ready("hello")
    env.apply(
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Route",
            "metadata": {"name": "front", "namespace": "default"},
            "spec": {"traffic": [{"configurationName": "hello", "percent": 100, "tag": "cfg"}]},
        }
    )
    await env.wait(lambda: env.cond(ROUTE, "front").get("status") == "True", what="route ready")
    route = env.get(ROUTE, "front")
    assert route["status"]["url"] == f"http://front.default.{DOMAIN}:{env.system.gateway.port}"
    assert route["status"]["traffic"][0]["revisionName"] == "hello-00001"
    r = await env.request(f"front.default.{DOMAIN}")
    assert r.json()["env"]["K_REVISION"] == "hello-00001"
    assert (await env.request(f"cfg-front.default.{DOMAIN}")).status_code == 200


async def test_byo_revision_name_and_generate_name(platform_env: Env) -> None:
    env = platform_env
    svc = ksvc("hello")
    svc["spec"]["template"]["metadata"] = {"name": "hello-first"}
    env.apply(svc)
    st = (await env.ready("hello"))["status"]
    assert st["latestReadyRevisionName"] == "hello-first"
    gen = ksvc("x")
    del gen["metadata"]["name"]
    gen["metadata"]["generateName"] = "gen-"
    created = env.store.create(gen)
    assert created["metadata"]["name"].startswith("gen-")
    await env.ready(created["metadata"]["name"])


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (
            lambda s: s["spec"].update(traffic=[{"latestRevision": True, "percent": 90}]),
            "sum to 90",
        ),
        (
            lambda s: s["spec"].update(traffic=[{"revisionName": "hello-09999", "percent": 100}]),
            "does not exist",
        ),
        (
            lambda s: s["spec"].update(
                traffic=[
                    {"latestRevision": True, "percent": 50, "tag": "a"},
                    {"latestRevision": True, "percent": 50, "tag": "a"},
                ]
            ),
            'Multiple definitions for "a"',
        ),
        (
            lambda s: s["spec"]["template"]["spec"]["containers"][0].update(
                env=[{"name": "PORT", "value": "1"}]
            ),
            '"PORT" is a reserved environment variable',
        ),
        (
            lambda s: s["spec"]["template"]["spec"]["containers"][0].update(
                ports=[{"containerPort": 8012}]
            ),
            "8012 is a reserved port",
        ),
        (
            lambda s: s["spec"]["template"]["spec"]["containers"][0].update(
                ports=[{"containerPort": 8080}, {"containerPort": 8081}]
            ),
            "more than one container port",
        ),
        (
            lambda s: s["spec"]["template"]["spec"]["containers"].append(
                {"name": "side", "command": ["sleep", "1000"]}
            ),
            "expected exactly one container with a port, got neither",
        ),
        (
            lambda s: s["spec"]["template"]["spec"].update(
                volumes=[{"name": "cache", "emptyDir": {}}]
            ),
            'volume with name "cache" not mounted',
        ),
        (
            lambda s: (
                s["spec"]["template"]["spec"].update(
                    volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]
                ),
                s["spec"]["template"]["spec"]["containers"][0].update(
                    volumeMounts=[{"name": "data", "mountPath": "/data"}]
                ),
            ),
            "Persistent volume claim support is disabled",
        ),
        (
            lambda s: (
                s["spec"]["template"]["spec"].update(
                    volumes=[{"name": "cfg", "configMap": {"name": "c"}}]
                ),
                s["spec"]["template"]["spec"]["containers"][0].update(
                    volumeMounts=[{"name": "cfg", "mountPath": "/etc/cfg"}]
                ),
            ),
            "volume mount should be readOnly for this type of volume",
        ),
        (
            lambda s: s["spec"]["template"].update(metadata={"name": "other-1"}),
            'must have prefix "hello-"',
        ),
        (
            lambda s: s["spec"]["template"].update(
                metadata={"annotations": {"autoscaling.knative.dev/min-scale": "-1"}}
            ),
            "min-scale",
        ),
    ],
)
async def test_invalid_services_are_rejected_at_apply(
    platform_env: Env, mutate: Any, needle: str
) -> None:
    svc = ksvc("hello")
    mutate(svc)
    with pytest.raises(InvalidError, match=needle):
        platform_env.apply(svc)


async def test_error_conditions_exit_and_missing_image(platform_env: Env) -> None:
    env = platform_env
    env.apply(ksvc("crash", env={"EXIT_CODE": "5", "EXIT_MESSAGE": "Failed to start: no db"}))
    await env.wait(lambda: env.cond(KSVC, "crash").get("status") == "False", what="crash fails")
    rev_ready = env.cond(REV, "crash-00001")
    assert rev_ready["reason"] == "ExitCode5"
    assert rev_ready["message"].startswith("Container failed with: ")
    assert "no db" in rev_ready["message"]
    cfg_ready = env.cond(CFG, "crash")
    assert cfg_ready["reason"] == "RevisionFailed"
    assert 'Revision "crash-00001" failed with message' in cfg_ready["message"]
    assert env.cond(KSVC, "crash", "ConfigurationsReady")["status"] == "False"

    bad = ksvc("noimage")
    bad["spec"]["template"]["spec"]["containers"][0] = {"image": "example.com/does-not-exist:v1"}
    env.apply(bad)
    await env.wait(lambda: env.cond(REV, "noimage-00001").get("status") == "False", what="fail")
    cond = env.cond(REV, "noimage-00001")
    assert cond["reason"] == "ContainerMissing"
    assert "Unable to fetch image" in cond["message"]


async def test_env_from_configmap_and_secret_and_downward_api(platform_env: Env) -> None:
    env = platform_env
    env.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "default"},
            "data": {"LEVEL": "debug"},
        }
    )
    env.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pw", "namespace": "default"},
            "data": {"password": base64.b64encode(b"s3cret").decode()},
        }
    )
    svc = ksvc("hello")
    svc["spec"]["template"]["spec"]["containers"][0].update(
        envFrom=[{"configMapRef": {"name": "cfg"}}],
        env=[
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        workingDir=os.path.dirname(__file__),
    )
    env.apply(svc)
    await env.ready("hello")
    data = (await env.request(HOST)).json()
    assert data["env"]["LEVEL"] == "debug" and data["env"]["PW"] == "s3cret"
    assert data["env"]["POD_NAME"].startswith("hello-00001-deployment-")
    assert data["env"]["POD_NS"] == "default"
    assert data["cwd"] == os.path.dirname(__file__)


async def test_revision_timeout_and_single_threaded(platform_env: Env) -> None:
    env = platform_env
    env.apply(ksvc("slow", timeoutSeconds=1, containerConcurrency=1))
    await env.ready("slow")
    host = f"slow.default.{DOMAIN}"
    assert (await env.request(host, "/sleep/0.2")).status_code == 200
    late = await env.request(host, "/sleep/2")
    assert late.status_code == 504
    results = await asyncio.gather(*(env.request(host, "/sleep/0.1") for _ in range(5)))
    assert all(r.status_code == 200 for r in results)


@pytest.mark.parametrize("field", ["idleTimeoutSeconds", "responseStartTimeoutSeconds"])
async def test_idle_and_response_start_timeouts_bound_the_first_byte(
    platform_env: Env, field: str
) -> None:
    # Knative's queue-proxy: 504 when nothing came by the first of timeoutSeconds,
    # responseStartTimeoutSeconds and idleTimeoutSeconds
    env = platform_env
    name = "idle" if field == "idleTimeoutSeconds" else "start"
    env.apply(ksvc(name, timeoutSeconds=300, **{field: 1}))
    await env.ready(name)
    host = f"{name}.default.{DOMAIN}"
    assert (await env.request(host, "/sleep/0.2")).status_code == 200
    assert (await env.request(host, "/sleep/2")).status_code == 504


async def test_delete_removes_children_route_and_processes(platform_env: Env) -> None:
    env = platform_env
    env.apply(ksvc("hello"))
    await env.ready("hello")
    pid = (await env.request(HOST)).json()["pid"]
    env.store.delete(KSVC, "default", "hello")
    await env.wait(lambda: _gone(pid), what="replica stopped")
    assert (await env.request(HOST)).status_code == 404
    with pytest.raises(Exception, match="not found"):
        env.get(REV, "hello-00001")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_missing_configmap_waits_until_it_is_applied(platform_env: Env) -> None:
    env = platform_env
    svc = ksvc("hello")
    svc["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "level"}}}
    ]
    env.apply(svc)
    await env.wait(
        lambda: env.cond(REV, "hello-00001").get("reason") == "CreateContainerConfigError",
        what="waiting for the ConfigMap",
    )
    assert 'configmap "later" not found' in env.cond(REV, "hello-00001")["message"]
    env.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "later", "namespace": "default"},
            "data": {"level": "info"},
        }
    )
    await env.ready("hello")
    assert (await env.request(HOST)).json()["env"]["LEVEL"] == "info"


async def test_scale_down_lets_requests_in_flight_finish(platform_env: Env) -> None:
    env = platform_env
    env.apply(ksvc("slow", annotations={"autoscaling.knative.dev/min-scale": "2"}))
    await env.ready("slow")
    key = "default/slow-00001"
    await env.wait(lambda: len(env.system.supervisor.ready_endpoints(key)) == 2, what="2 ready")
    host = f"slow.default.{DOMAIN}"

    async def post() -> Any:
        import httpx

        async with httpx.AsyncClient(base_url=env.url, timeout=60) as client:
            # POST is not retried by the gateway: it must finish where it started
            return await client.post("/sleep/1.5", headers={"Host": host})

    pending = [asyncio.create_task(post()) for _ in range(2)]
    target = env.system.table.revisions[key]
    await env.wait(lambda: all(e.in_flight for e in target.endpoints), what="both busy")
    env.system.scale(key, 0)  # as the autoscaler would, while both replicas are busy
    results = await asyncio.gather(*pending)
    assert [r.status_code for r in results] == [200, 200]


async def test_held_requests_fail_fast_when_the_revision_cannot_start(
    platform_env: Env, tmp_path: Path
) -> None:
    env = platform_env
    crash = tmp_path / "crash"
    env.apply(ksvc("flaky", env={"CRASH_FILE": str(crash)}))
    await env.ready("flaky")
    key = "default/flaky-00001"
    rt = env.system.runtimes[key]
    rt.scaler.desired = 0
    env.system.scale(key, 0)
    await env.wait(lambda: not env.system.supervisor.replicas(key), what="at zero")
    crash.write_text("")
    r = await env.request(f"flaky.default.{DOMAIN}")
    assert r.status_code == 503
    assert "could not start a replica" in r.text and "found" in r.text


async def test_multiple_containers_run_the_others_as_sidecars(platform_env: Env) -> None:
    import socket
    import sys

    import httpx

    env = platform_env
    svc = ksvc("multi")
    spec = svc["spec"]["template"]["spec"]
    spec["containers"][0]["ports"] = [{"containerPort": 8080}]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        side_port = sock.getsockname()[1]
    # the sidecar is the same test app on a port of its own
    spec["containers"].append(
        {
            "name": "helper",
            "command": [
                sys.executable,
                "-c",
                f"import os, runpy; os.environ['PORT'] = '{side_port}'; "
                f"runpy.run_path({APP!r}, run_name='__main__')",
            ],
            "env": [{"name": "ROLE", "value": "helper"}],
        }
    )
    env.apply(svc)
    await env.ready("multi")
    names = [c["name"] for c in env.get(REV, "multi-00001")["spec"]["containers"]]
    assert names == ["user-container", "helper"]
    assert (await env.request(f"multi.default.{DOMAIN}")).status_code == 200
    async with httpx.AsyncClient(timeout=30) as client:

        async def answer() -> httpx.Response | None:
            try:
                return await client.get(f"http://127.0.0.1:{side_port}/")
            except httpx.TransportError:
                return None

        side = await env.wait(answer, 15, "the helper container to answer")
    assert side.json()["env"]["ROLE"] == "helper"


async def test_generate_name_for_configuration_and_route(platform_env: Env) -> None:
    env = platform_env
    cfg = env.store.create(
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Configuration",
            "metadata": {"generateName": "cfg-", "namespace": "default"},
            "spec": {"template": ksvc("x")["spec"]["template"]},
        }
    )
    name = cfg["metadata"]["name"]
    assert name.startswith("cfg-")
    await env.wait(lambda: env.cond(CFG, name).get("status") == "True", what="configuration")
    assert env.get(CFG, name)["status"]["latestReadyRevisionName"] == f"{name}-00001"
    route = env.store.create(
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Route",
            "metadata": {"generateName": "rt-", "namespace": "default"},
            "spec": {"traffic": [{"configurationName": name, "percent": 100}]},
        }
    )
    rname = route["metadata"]["name"]
    await env.wait(lambda: env.cond(ROUTE, rname).get("status") == "True", what="route")
    r = await env.request(f"{rname}.default.{DOMAIN}")
    assert r.json()["env"]["K_REVISION"] == f"{name}-00001"
    assert r.json()["env"]["K_CONFIGURATION"] == name


async def test_controllers_record_events(platform_env: Env) -> None:
    env = platform_env
    env.apply(ksvc("hello"))
    await env.ready("hello")
    items, _ = env.store.list("events", "default")
    messages = {(e["involvedObject"]["kind"], e["reason"], e["message"]) for e in items}
    assert ("Service", "Created", 'Created Configuration "hello"') in messages
    assert ("Service", "Created", 'Created Route "hello"') in messages
    assert ("Configuration", "Created", 'Created Revision "hello-00001"') in messages


async def test_deleted_pinned_revision_answers_503_at_once(platform_env: Env) -> None:
    env = platform_env
    env.apply(ksvc("hello", env={"V": "1"}))
    await env.ready("hello")
    env.apply(
        ksvc("hello", env={"V": "2"}, traffic=[{"revisionName": "hello-00001", "percent": 100}])
    )
    await env.wait(
        lambda: env.get(KSVC, "hello")["status"].get("latestReadyRevisionName") == "hello-00002",
        what="second revision",
    )
    env.store.delete(REV, "default", "hello-00001")
    await env.wait(
        lambda: env.cond(ROUTE, "hello").get("reason") == "RevisionMissing", what="route says so"
    )
    r = await env.request(HOST)
    assert r.status_code == 503 and "was deleted" in r.text


async def test_volumes_reach_the_replica_at_their_mount_paths(platform_env: Env) -> None:
    env = platform_env
    env.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": "default"},
            "data": {"mode": "blue"},
        }
    )
    mounts = [
        {"name": "config", "mountPath": "/etc/app", "readOnly": True},
        {"name": "cache", "mountPath": "/var/cache/app"},
    ]
    volumes = [
        {"name": "config", "configMap": {"name": "app-config"}},
        {"name": "cache", "emptyDir": {}},
    ]
    env.apply(ksvc("vols", container={"volumeMounts": mounts}, volumes=volumes))
    await env.ready("vols")
    host = f"vols.default.{DOMAIN}"
    assert (await env.request(host, "/file/etc/app/mode")).text == "blue"
    assert (await env.request(host, "/write/var/cache/app/x=cached")).status_code == 200
    assert (await env.request(host, "/file/var/cache/app/x")).text == "cached"
    refused = await env.request(host, "/write/etc/app/mode=red")
    assert refused.status_code == 403 and "Read-only file system" in refused.text
    assert not Path("/etc/app").exists()


async def test_claims_mount_once_config_features_allow_them(platform_env: Env) -> None:
    env = platform_env
    env.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config-features", "namespace": "knative-serving"},
            "data": {
                "kubernetes.podspec-persistent-volume-claim": "enabled",
                "kubernetes.podspec-persistent-volume-write": "enabled",
            },
        }
    )
    env.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "models", "namespace": "default"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    svc = ksvc(
        "claim",
        container={"volumeMounts": [{"name": "m", "mountPath": "/models"}]},
        volumes=[{"name": "m", "persistentVolumeClaim": {"claimName": "models"}}],
    )
    await env.wait(lambda: _applies(env, svc), what="config-features to allow claims")
    await env.ready("claim")
    host = f"claim.default.{DOMAIN}"
    assert (await env.request(host, "/write/models/weights=v1")).status_code == 200
    assert (await env.request(host, "/file/models/weights")).text == "v1"


def _applies(env: Env, obj: dict[str, Any]) -> bool:
    try:
        env.apply(obj)
    except InvalidError:
        return False
    return True


async def test_a_revision_whose_pod_does_not_fit_says_why(platform_env: Env) -> None:
    env = platform_env
    gpu = {"resources": {"limits": {"nvidia.com/gpu": "1"}}}
    env.apply(ksvc("gpu", container=gpu, annotations={"autoscaling.knative.dev/min-scale": "1"}))
    await env.wait(
        lambda: env.cond(REV, "gpu-00001").get("reason") == "Unschedulable",
        what="the revision to say Unschedulable",
    )
    message = env.cond(REV, "gpu-00001")["message"]
    assert message == "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."


def test_each_platforms_route_check_looks_up_its_own_revisions(tmp_path: Path) -> None:
    """The unknown-revision check of one platform reads that platform's store, not the
    store of whichever platform was installed last in the process."""
    stores = [Store.open(tmp_path / name) for name in ("a", "b")]
    try:
        for store in stores:
            checks = ServingChecks(revision_exists=functools.partial(_has_revision, store))
            register_checks(store.admission, checks)
        a, b = stores
        a.create(
            {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Revision",
                "metadata": {"name": "hello-00001"},
                "spec": {"containers": [{"image": "app"}]},
            }
        )
        route = {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Route",
            "metadata": {"name": "hello"},
            "spec": {"traffic": [{"revisionName": "hello-00001", "percent": 100}]},
        }
        assert a.create(copy.deepcopy(route))["spec"]["traffic"][0]["percent"] == 100
        with pytest.raises(InvalidError, match='revision "hello-00001" does not exist'):
            b.create(route)
    finally:
        for store in stores:
            store.close()


def _has_revision(store: Store, namespace: str, name: str) -> bool:
    try:
        store.get(REV, namespace, name)
    except NotFoundError:
        return False
    return True
