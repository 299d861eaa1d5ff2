"""Readiness and liveness probes: httpGet, tcpSocket and exec, as the kubelet runs them.

Knative's default is a TCP probe on the serving port; ``periodSeconds`` 0 (or unset for
readiness) means aggressive probing while the replica starts.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProbeSpec", "run_probe"]


@dataclass(frozen=True)
class ProbeSpec:
    """One probe, with Kubernetes defaults filled in."""

    kind: str  # "http" | "tcp" | "exec"
    port: int = 0
    path: str = "/"
    host: str = "127.0.0.1"
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()
    initial_delay: float = 0.0
    period: float = 0.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None

    @classmethod
    def from_spec(
        cls,
        probe: Mapping[str, Any] | None,
        serving_port: int,
        *,
        liveness: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> ProbeSpec | None:
        """The probe a container declares; readiness defaults to TCP on the serving port.

        A probe port that names the container port is mapped to the replica's own port.
        """
        if not probe:
            return None if liveness else cls("tcp", port=serving_port)
        default_period = 10.0 if liveness else 0.0
        common: dict[str, Any] = {
            "initial_delay": float(probe.get("initialDelaySeconds") or 0),
            "period": float(probe.get("periodSeconds") or default_period),
            "timeout": float(probe.get("timeoutSeconds") or 1),
            "success_threshold": int(probe.get("successThreshold") or 1),
            "failure_threshold": int(probe.get("failureThreshold") or 3),
            "env": dict(env or {}),
            "cwd": cwd,
        }
        if probe.get("httpGet") is not None:
            http = probe["httpGet"]
            headers = tuple((h["name"], h["value"]) for h in http.get("httpHeaders") or [])
            return cls(
                "http",
                port=serving_port,
                path=http.get("path") or "/",
                headers=headers,
                **common,
            )
        if probe.get("exec") is not None:
            command = tuple(probe["exec"].get("command") or ())
            return cls("exec", command=command, **common)
        return cls("tcp", port=serving_port, **common)


async def run_probe(probe: ProbeSpec) -> tuple[bool, str]:
    """Run once; (passed, message)."""
    try:
        return await asyncio.wait_for(_run(probe), probe.timeout)
    except TimeoutError:
        return False, f"{probe.kind} probe timed out after {probe.timeout:g}s"
    except OSError as exc:
        return False, f"{probe.kind} probe failed: {exc.strerror or exc}"


async def _run(probe: ProbeSpec) -> tuple[bool, str]:
    if probe.kind == "tcp":
        _, writer = await asyncio.open_connection(probe.host, probe.port)
        writer.close()
        return True, ""
    if probe.kind == "http":
        reader, writer = await asyncio.open_connection(probe.host, probe.port)
        try:
            head = [
                f"GET {probe.path} HTTP/1.1",
                f"Host: {probe.host}:{probe.port}",
                "User-Agent: kube-probe/1.30",
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
            return False, "HTTP probe got no status line"
        status = int(parts[1])
        if 200 <= status < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {status}"
    proc = await asyncio.create_subprocess_exec(
        *probe.command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **probe.env},
        cwd=probe.cwd,
        start_new_session=True,
    )
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        raise
    if proc.returncode == 0:
        return True, ""
    text = out.decode("utf-8", "replace").strip()[-300:]
    return False, f"exec probe exited with {proc.returncode}: {text}"
