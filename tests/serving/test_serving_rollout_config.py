"""Gradual rollout, readiness probes, cluster config from knative-serving ConfigMaps,
min-scale and h2c revisions."""

from __future__ import annotations

import asyncio
from pathlib import Path

from serving_env import DOMAIN, KSVC, REV, ROUTE, Env, ksvc


async def test_rollout_duration_moves_traffic_gradually(platform_env: Env) -> None:
    env = platform_env
    svc = ksvc("hello", env={"VERSION": "1"})
    svc["metadata"]["annotations"] = {"serving.knative.dev/rollout-duration": "3s"}
    env.apply(svc)
    await env.ready("hello")
    svc2 = ksvc("hello", env={"VERSION": "2"})
    svc2["metadata"]["annotations"] = {"serving.knative.dev/rollout-duration": "3s"}
    env.apply(svc2)
    splits: list[dict[str, int]] = []

    def record() -> bool:
        traffic = env.get(ROUTE, "hello").get("status", {}).get("traffic", [])
        split = {t["revisionName"]: t["percent"] for t in traffic}
        if not splits or splits[-1] != split:
            splits.append(split)
        return split == {"hello-00002": 100}

    await env.wait(record, timeout=30, what="rollout completes")
    middle = [s for s in splits if len(s) == 2]
    assert middle, f"no intermediate split seen: {splits}"
    for s in middle:
        assert s["hello-00001"] + s["hello-00002"] == 100
        assert 0 < s["hello-00002"] < 100
    news = [s["hello-00002"] for s in middle]
    assert news == sorted(news)  # only ever moves towards the new revision


async def test_http_readiness_probe_gates_service_readiness(
    platform_env: Env, tmp_path: Path
) -> None:
    env = platform_env
    ready_file = tmp_path / "ready"
    svc = ksvc("probed", env={"READY_FILE": str(ready_file)})
    svc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {
        "httpGet": {"path": "/ready"},
        "periodSeconds": 0,
    }
    env.apply(svc)
    # nothing to wait on for "not Ready": long enough for the replica to start listening,
    # which is when a revision that ignored its readiness probe would turn Ready
    await asyncio.sleep(1.0)
    assert env.cond(KSVC, "probed").get("status") != "True"
    assert env.cond(REV, "probed-00001").get("reason") == "Deploying"
    ready_file.write_text("")
    await env.ready("probed")
    # curl-able the moment it reports Ready
    r = await env.request(f"probed.default.{DOMAIN}", "/ready")
    assert r.status_code == 200


async def test_config_domain_and_features_configmaps(platform_env: Env) -> None:
    env = platform_env
    env.apply(ksvc("hello"))
    await env.ready("hello")
    env.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config-domain", "namespace": "knative-serving"},
            "data": {"example.test": ""},
        }
    )
    await env.wait(
        lambda: (
            env.get(KSVC, "hello")["status"].get("url")
            == f"http://hello.default.example.test:{env.system.gateway.port}"
        ),
        what="new domain in the URL",
    )
    assert (await env.request("hello.default.example.test")).status_code == 200
    assert (await env.request(f"hello.default.{DOMAIN}")).status_code == 404
    env.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config-features", "namespace": "knative-serving"},
            "data": {"tag-header-based-routing": "Disabled"},
        }
    )
    await env.wait(lambda: not env.system.table.tag_header_routing, what="feature off")
    r = await env.request("hello.default.example.test", headers={"Knative-Serving-Tag": "nope"})
    assert r.status_code == 200  # the header is ignored when the feature is disabled


async def test_min_scale_keeps_replicas_and_status_reports_them(platform_env: Env) -> None:
    env = platform_env
    env.apply(ksvc("steady", annotations={"autoscaling.knative.dev/min-scale": "2"}))
    await env.ready("steady")
    await env.wait(
        lambda: env.get(REV, "steady-00001")["status"].get("actualReplicas") == 2,
        what="two replicas",
    )
    pids = set()
    for _ in range(20):
        pids.add((await env.request(f"steady.default.{DOMAIN}")).json()["pid"])
    assert len(pids) == 2
    assert env.get(REV, "steady-00001")["status"]["desiredReplicas"] == 2


async def test_h2c_port_name_makes_an_http2_revision(platform_env: Env) -> None:
    env = platform_env
    svc = ksvc("grpc")
    svc["spec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"name": "h2c", "containerPort": 8080}
    ]
    env.apply(svc)
    await env.wait(lambda: "default/grpc-00001" in env.system.table.revisions, what="target")
    assert env.system.table.revisions["default/grpc-00001"].h2c is True
    env.apply(ksvc("plain"))
    await env.wait(lambda: "default/plain-00001" in env.system.table.revisions, what="target")
    assert env.system.table.revisions["default/plain-00001"].h2c is False


async def test_image_only_container_is_built_from_the_project_file(
    platform_env: Env, tmp_path: Path
) -> None:
    env = platform_env
    project = tmp_path / "project"
    (project / "web").mkdir(parents=True)
    (project / "wonderland.yaml").write_text(
        "build:\n  artifacts:\n    - image: salaboy/frontend\n      context: ./web\n"
    )
    (project / "web" / "requirements.txt").write_text("")
    (project / "web" / "Procfile").write_text("web: python serve.py\n")
    (project / "web" / "serve.py").write_text(
        "import os\n"
        "from http.server import BaseHTTPRequestHandler, HTTPServer\n"
        "class H(BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = ('built ' + os.environ['K_REVISION']).encode()\n"
        "        self.send_response(200)\n"
        "        self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers()\n"
        "        self.wfile.write(body)\n"
        "HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n"
    )
    env.system.resolver.search_dirs = [project]
    svc = ksvc("frontend")
    svc["spec"]["template"]["spec"]["containers"][0] = {
        "image": "docker.io/salaboy/frontend:v2.0.0"
    }
    env.apply(svc)
    await env.ready("frontend")
    r = await env.request(f"frontend.default.{DOMAIN}")
    assert r.text == "built frontend-00001"


async def test_grpc_service_through_the_gateway(platform_env: Env) -> None:
    import sys

    from grpc import aio

    env = platform_env
    app = str(Path(__file__).with_name("grpc_app.py"))
    svc = ksvc("grpc")
    svc["spec"]["template"]["spec"]["containers"][0] = {
        "image": "grpc-app",
        "command": [sys.executable, app],
        "ports": [{"name": "h2c", "containerPort": 8080}],
    }
    env.apply(svc)
    await env.ready("grpc")
    gateway = env.url.removeprefix("http://")
    options = [("grpc.default_authority", f"grpc.default.{DOMAIN}")]
    async with aio.insecure_channel(gateway, options=options) as channel:
        reply = await channel.unary_unary("/test.Echo/Echo")(b"ping", timeout=30)
    assert reply == b"ping@grpc-00001"


async def test_load_scales_a_revision_up(platform_env: Env) -> None:
    env = platform_env
    env.apply(ksvc("busy", containerConcurrency=1))
    await env.ready("busy")
    host = f"busy.default.{DOMAIN}"
    # 6 requests of 3 s each against containerConcurrency 1 (target 0.7 per replica)
    load = [asyncio.create_task(env.request(host, "/sleep/3")) for _ in range(6)]
    await env.wait(
        lambda: env.get(REV, "busy-00001")["status"].get("actualReplicas", 0) >= 2,
        timeout=30,
        what="a scale-up",
    )
    assert env.get(REV, "busy-00001")["status"]["desiredReplicas"] >= 2
    results = await asyncio.gather(*load)
    assert [r.status_code for r in results] == [200] * 6


async def test_route_updates_under_a_prober_never_fail(platform_env: Env) -> None:
    import httpx

    env = platform_env
    env.apply(ksvc("hello", env={"V": "1"}))
    await env.ready("hello")
    env.apply(ksvc("hello", env={"V": "2"}))
    await env.wait(
        lambda: env.get(KSVC, "hello")["status"].get("latestReadyRevisionName") == "hello-00002",
        what="second revision",
    )
    failures: list[int] = []
    stop = asyncio.Event()

    async def prober() -> None:
        async with httpx.AsyncClient(base_url=env.url, timeout=60) as client:
            while not stop.is_set():
                r = await client.get("/", headers={"Host": f"hello.default.{DOMAIN}"})
                if r.status_code != 200:
                    failures.append(r.status_code)

    task = asyncio.create_task(prober())
    try:
        for split in ((100, 0), (50, 50), (0, 100), (20, 80), (100, 0)):
            svc = ksvc(
                "hello",
                env={"V": "2"},
                traffic=[
                    {"revisionName": "hello-00001", "percent": split[0]},
                    {"revisionName": "hello-00002", "percent": split[1]},
                ],
            )
            env.apply(svc)
            want = {"hello-00001": split[0], "hello-00002": split[1]}
            await env.wait(
                lambda want=want: (
                    {  # type: ignore[misc]
                        t["revisionName"]: t["percent"]
                        for t in env.get(ROUTE, "hello")["status"].get("traffic", [])
                    }
                    == want
                ),
                what=f"split {split}",
            )
            await asyncio.sleep(0.2)  # traffic runs at this split for a while before the next
    finally:
        stop.set()
        await task
    assert failures == []


async def test_platform_restart_brings_services_back(tmp_path: Path) -> None:
    from wonderland import serving, workloads
    from wonderland.platform import Platform
    from wonderland.settings import Settings

    settings = Settings(home=tmp_path / "home", gateway_port=0, api_port=0)
    for round_ in range(2):
        platform = Platform.open(settings)
        workloads.install(platform)
        system = serving.install(platform)
        await platform.start()
        env = Env(platform, system)
        try:
            if round_ == 0:
                env.apply(ksvc("hello"))
            await env.ready("hello")
            r = await env.request(f"hello.default.{DOMAIN}")
            assert r.status_code == 200 and r.json()["env"]["K_REVISION"] == "hello-00001"
        finally:
            await platform.stop()
            platform.store.close()


async def test_initial_scale_zero_is_ready_without_replicas(platform_env: Env) -> None:
    env = platform_env
    env.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config-autoscaler", "namespace": "knative-serving"},
            "data": {"allow-zero-initial-scale": "true"},
        }
    )
    await env.wait(lambda: env.system.config.autoscaler.allow_zero_initial_scale, what="config")
    env.apply(ksvc("lazy", annotations={"autoscaling.knative.dev/initial-scale": "0"}))
    await env.ready("lazy")
    rev = env.get(REV, "lazy-00001")
    assert rev["status"]["actualReplicas"] == 0
    assert env.cond(REV, "lazy-00001", "Active")["reason"] == "NoTraffic"
    r = await env.request(f"lazy.default.{DOMAIN}")  # the first request wakes it
    assert r.status_code == 200
