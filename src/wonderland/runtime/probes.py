"""Probes and lifecycle handlers: httpGet, tcpSocket, grpc (as a TCP connect) and exec, as
the kubelet runs them.

``periodSeconds`` unset on a readiness or startup probe means aggressive probing until the
first success (what Knative's queue-proxy does, so a cold start answers as soon as it can),
then the Kubernetes default of 10 s. An exec probe of a container that has its own mount
namespace runs inside it (``nsenter``), with the container's environment.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wonderland.runtime import sandbox

__all__ = ["ProbeSpec", "run_probe"]

PortOf = Callable[[Any], int]


@dataclass(frozen=True)
class ProbeSpec:
    """One probe, with Kubernetes defaults filled in."""

    kind: str  # "http" | "tcp" | "exec"
    port: int = 0
    path: str = "/"
    host: str = "127.0.0.1"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()
    initial_delay: float = 0.0
    period: float = 0.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    enter_pid: int | None = None

    @classmethod
    def from_spec(
        cls,
        probe: Mapping[str, Any] | None,
        serving_port: int,
        *,
        liveness: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        port_of: PortOf | None = None,
        enter_pid: int | None = None,
    ) -> ProbeSpec | None:
        """The probe a container declares (``None`` when it declares none).

        ``port_of`` resolves the probe's ``port`` (a number, or the name of a container
        port); without it every probe goes to ``serving_port``.
        """
        if not probe:
            return None
        default_period = 10.0 if liveness else 0.0
        common: dict[str, Any] = {
            "initial_delay": float(probe.get("initialDelaySeconds") or 0),
            "period": float(probe.get("periodSeconds") or default_period),
            "timeout": float(probe.get("timeoutSeconds") or 1),
            "success_threshold": int(probe.get("successThreshold") or 1),
            "failure_threshold": int(probe.get("failureThreshold") or 3),
            "env": dict(env or {}),
            "cwd": cwd,
            "enter_pid": enter_pid,
        }

        def port(section: Mapping[str, Any]) -> int:
            if port_of is None:
                return serving_port
            return port_of(section.get("port"))

        if probe.get("httpGet") is not None:
            http = probe["httpGet"]
            headers = tuple((h["name"], h["value"]) for h in http.get("httpHeaders") or [])
            return cls(
                "http",
                port=port(http),
                path=http.get("path") or "/",
                host=http.get("host") or "127.0.0.1",
                scheme=http.get("scheme") or "HTTP",
                headers=headers,
                **common,
            )
        if probe.get("exec") is not None:
            command = tuple(probe["exec"].get("command") or ())
            return cls("exec", command=command, **common)
        if probe.get("grpc") is not None:
            return cls("tcp", port=port(probe["grpc"]), **common)
        if probe.get("tcpSocket") is not None:
            tcp = probe["tcpSocket"]
            return cls("tcp", port=port(tcp), host=tcp.get("host") or "127.0.0.1", **common)
        return cls("tcp", port=serving_port, **common)


async def run_probe(probe: ProbeSpec) -> tuple[bool, str]:
    """Run once; (passed, message)."""
    try:
        return await asyncio.wait_for(_run(probe), probe.timeout)
    except TimeoutError:
        return False, f"{probe.kind} probe timed out after {probe.timeout:g}s"
    except OSError as exc:
        target = f"{probe.host}:{probe.port}"
        if probe.kind == "http":
            return False, (
                f'Get "{probe.scheme.lower()}://{target}{probe.path}": dial tcp {target}: '
                f"connect: {exc.strerror or exc}"
            )
        if probe.kind == "tcp":
            return False, f"dial tcp {target}: connect: {exc.strerror or exc}"
        return False, f"{probe.kind} probe failed: {exc.strerror or exc}"


async def _run(probe: ProbeSpec) -> tuple[bool, str]:
    if probe.kind == "tcp":
        _, writer = await asyncio.open_connection(probe.host, probe.port)
        writer.close()
        return True, ""
    if probe.kind == "http":
        ssl: Any = None
        if probe.scheme.upper() == "HTTPS":
            import ssl as ssl_module

            # The kubelet does not verify the certificate of an HTTPS probe.
            ssl = ssl_module.create_default_context()
            ssl.check_hostname = False
            ssl.verify_mode = ssl_module.CERT_NONE
        reader, writer = await asyncio.open_connection(probe.host, probe.port, ssl=ssl)
        try:
            head = [
                f"GET {probe.path} HTTP/1.1",
                f"Host: {probe.host}:{probe.port}",
                "User-Agent: kube-probe/1.32",
                "K-Kubelet-Probe: queue",
                "Connection: close",
            ]
            head += [f"{k}: {v}" for k, v in probe.headers]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            line = await reader.readline()
        finally:
            writer.close()
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            return False, "HTTP probe failed: no status line"
        status = int(parts[1])
        if 200 <= status < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {status}"
    enter = probe.enter_pid

    def into_container() -> None:
        if enter is not None:
            sandbox.join(enter)

    proc = await asyncio.create_subprocess_exec(
        *probe.command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **probe.env} if not probe.env else dict(probe.env),
        cwd=probe.cwd if enter is None else None,
        start_new_session=True,
        preexec_fn=into_container if enter is not None else None,
    )
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        raise
    if proc.returncode == 0:
        return True, ""
    text = out.decode("utf-8", "replace").strip()[-300:]
    return False, f"command {list(probe.command)!r} exited with {proc.returncode}: {text}"
