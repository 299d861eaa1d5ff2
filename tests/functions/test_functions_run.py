"""`wonderland func run` and the replica entry point, as real processes on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from pathlib import Path

import httpx
import pytest

from wonderland.functions.create import create_function
from wonderland.functions.host import listen_addresses

from .conftest import WONDERLAND, free_port, running, stop_group

pytestmark = pytest.mark.e2e


def test_run_serves_the_http_template_with_health_lifecycle_and_errors(tmp_path: Path) -> None:
    created = create_function(tmp_path / "hello")
    func_py = created.root / "function" / "func.py"
    func_py.write_text(
        func_py.read_text().replace(
            '        logging.info("OK: Request Received")\n',
            '        logging.info("OK: Request Received")\n'
            "        if scope['path'] == '/fail':\n"
            "            raise ValueError('bad order id')\n",
        )
    )
    (created.root / "func.yaml").write_text(
        (created.root / "func.yaml").read_text()
        + "run:\n  envs:\n  - name: GREETING\n    value: '{{ env:TEST_GREETING }}'\n"
    )
    port = free_port()
    argv = [
        *WONDERLAND,
        "func",
        "run",
        "--path",
        str(created.root),
        "--address",
        f"127.0.0.1:{port}",
    ]
    base = f"http://127.0.0.1:{port}"
    with running(argv, f"{base}/health/readiness", env={"TEST_GREETING": "hi"}) as proc:
        assert httpx.get(f"{base}/").text == "OK"
        ready = httpx.get(f"{base}/health/readiness")
        assert (ready.status_code, ready.text) == (200, "Ready")
        assert httpx.get(f"{base}/health/liveness").text == "Alive"
        failed = httpx.get(f"{base}/fail")
        assert failed.status_code == 500
        assert "ValueError: bad order id" in failed.text
        assert httpx.get(f"{base}/").status_code == 200  # still up
        output = stop_group(proc, signal.SIGTERM)
    # a graceful exit (uvicorn re-raises the signal once shut down)
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "Function starting" in output
    assert "Function stopping" in output  # stop() ran on SIGTERM


def test_run_exposes_func_yaml_envs_to_start(tmp_path: Path) -> None:
    created = create_function(tmp_path / "envy")
    (created.root / "function" / "func.py").write_text(
        textwrap.dedent(
            """
            def new():
                return F()

            class F:
                def start(self, cfg):
                    self.greeting = cfg["GREETING"] + "/" + cfg["EXTRA"]

                async def handle(self, scope, receive, send):
                    await send({"type": "http.response.start", "status": 200, "headers": []})
                    await send({"type": "http.response.body", "body": self.greeting.encode()})
            """
        )
    )
    (created.root / "func.yaml").write_text(
        (created.root / "func.yaml").read_text()
        + "run:\n  envs:\n  - name: GREETING\n    value: '{{ env:TEST_GREETING }}'\n"
    )
    port = free_port()
    argv = [
        *WONDERLAND,
        "func",
        "run",
        "-p",
        str(created.root),
        "--address",
        f"127.0.0.1:{port}",
        "-e",
        "EXTRA=x",
    ]
    base = f"http://127.0.0.1:{port}"
    with running(argv, f"{base}/health/readiness", env={"TEST_GREETING": "hola"}) as proc:
        assert httpx.get(f"{base}/").text == "hola/x"
        stop_group(proc)


def test_run_serves_cloudevents_and_legacy_functions(tmp_path: Path) -> None:
    ev = create_function(tmp_path / "ev", template="cloudevents").root
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [*WONDERLAND, "func", "run", "-p", str(ev), "--address", f"127.0.0.1:{port}"]
    with running(argv, f"{base}/health/readiness") as proc:
        reply = httpx.post(
            base,
            json={"a": 1},
            headers={"ce-specversion": "1.0", "ce-id": "7", "ce-type": "t", "ce-source": "/s"},
        )
        assert reply.json()["id"] == "response-7"
        stop_group(proc)

    old = tmp_path / "old"
    old.mkdir()
    (old / "func.yaml").write_text(
        "specVersion: 0.35.0\nname: old\nruntime: python\ncreated: 2023-01-01T00:00:00Z\n"
    )
    (old / "func.py").write_text(
        "from parliament import Context\n\n"
        "def main(context: Context):\n"
        "    return 'legacy ' + context.request.method, 200\n"
    )
    (old / "requirements.txt").write_text("parliament-functions==0.1.0\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [*WONDERLAND, "func", "run", "-p", str(old), "--address", f"127.0.0.1:{port}"]
    with running(argv, f"{base}/health/liveness") as proc:
        assert httpx.post(base, content=b"").text == "legacy POST"
        stop_group(proc)


def test_host_binds_PORT_from_the_runtime_contract(tmp_path: Path) -> None:
    root = create_function(tmp_path / "contract").root
    port = free_port()
    argv = [*WONDERLAND[:1], "-m", "wonderland.functions.host", str(root)]
    with running(argv, f"http://127.0.0.1:{port}/health/readiness", env={"PORT": str(port)}) as p:
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "OK"
        stop_group(p)


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("empty", "no func.yaml here"),
        ("bad-yaml", "deploy.colour: unknown field"),
        ("go", "runtime: 'go' is not supported"),
        ("no-code", "no function found"),
        ("missing-env", "needs the environment variable NOPE_NOT_SET"),
        ("volumes", "run.volumes: mounting Secrets, ConfigMaps and volumes is not supported"),
    ],
)
def test_run_rejects_folders_that_are_not_runnable(
    tmp_path: Path, setup: str, expected: str
) -> None:
    root = tmp_path / "f"
    root.mkdir()
    head = "specVersion: 0.36.0\nname: f\ncreated: 2025-01-01T00:00:00Z\n"
    if setup == "bad-yaml":
        (root / "func.yaml").write_text(head + "runtime: python\ndeploy:\n  colour: red\n")
    elif setup == "go":
        (root / "func.yaml").write_text(head + "runtime: go\n")
    elif setup == "no-code":
        (root / "func.yaml").write_text(head + "runtime: python\n")
    elif setup == "volumes":
        root.rmdir()
        create_function(root)
        (root / "func.yaml").write_text(
            (root / "func.yaml").read_text()
            + "run:\n  volumes:\n  - secret: db\n    path: /etc/db\n"
        )
    elif setup == "missing-env":
        root.rmdir()
        create_function(root)
        (root / "func.yaml").write_text(
            (root / "func.yaml").read_text()
            + "run:\n  envs:\n  - name: X\n    value: '{{ env:NOPE_NOT_SET }}'\n"
        )
    proc = subprocess.run(
        [*WONDERLAND, "func", "run", "-p", str(root), "--address", f"127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_listen_address_parsing() -> None:
    assert listen_addresses({}) == [("127.0.0.1", 8080)]
    assert listen_addresses({"PORT": "9000"}) == [("127.0.0.1", 9000)]
    assert listen_addresses({"LISTEN_ADDRESS": "[::]:8080,0.0.0.0:8080", "PORT": "1"}) == [
        ("::", 8080),
        ("0.0.0.0", 8080),
    ]
    with pytest.raises(Exception, match="not supported"):
        listen_addresses({"LISTEN_ADDRESS": "unix:///tmp/s"})


def test_invoke_calls_a_running_function_over_http_and_as_a_cloudevent(tmp_path: Path) -> None:
    ev = create_function(tmp_path / "ev", template="cloudevents").root
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [*WONDERLAND, "func", "run", "-p", str(ev), "--address", f"127.0.0.1:{port}"]
    with running(argv, f"{base}/health/readiness") as proc:
        result = subprocess.run(
            [*WONDERLAND, "func", "invoke", "-p", str(ev), "--target", base, "--id", "e-1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # func.yaml says invoke: cloudevent, so a CloudEvent is sent and one comes back
        assert result.returncode == 0, result.stderr
        assert "id: response-e-1" in result.stdout
        assert "type: function.response" in result.stdout
        assert '{"message": "OK"}' in result.stdout
        plain = subprocess.run(
            [*WONDERLAND, "func", "invoke", "-p", str(ev), "--target", base, "-f", "http"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert plain.returncode == 1  # a plain request is a 400 for a CloudEvents function
        assert "expects a CloudEvent" in plain.stdout
        stop_group(proc)


def test_invoke_without_a_platform_says_what_to_do(tmp_path: Path) -> None:
    root = create_function(tmp_path / "lonely").root
    env = {"WONDERLAND_HOME": str(tmp_path / "nowhere")}
    result = subprocess.run(
        [*WONDERLAND, "func", "invoke", "-p", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )
    assert result.returncode == 1
    assert "no running platform found" in result.stderr
    deploy = subprocess.run(
        [*WONDERLAND, "func", "deploy", "-p", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )
    assert deploy.returncode == 1
    assert "wonderland up" in deploy.stderr
