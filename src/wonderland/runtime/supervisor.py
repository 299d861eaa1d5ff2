"""The process supervisor: a revision's replicas as local processes.

Each replica gets its own port (``PORT``), the runtime contract variables, stdin at EOF,
stdout/stderr in ``<state_dir>/logs/<namespace>/<revision>/<replica>.log``, readiness
and liveness probes, restarts (with back-off) when it dies, and SIGTERM then SIGKILL
after the grace period when it is stopped. Companion processes (sidecars) from
:mod:`wonderland.runtime.companions` start beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wonderland.runtime import companions
from wonderland.runtime.env import POD_NAME_PLACEHOLDER, expand
from wonderland.runtime.probes import ProbeSpec, run_probe

__all__ = ["Replica", "ReplicaTemplate", "Supervisor"]

log = logging.getLogger("wonderland.runtime")

AGGRESSIVE_PROBE_PERIOD = 0.01  # while starting: the first-request latency of a cold start
READY_PROBE_PERIOD = 1.0


def _die_with_parent() -> None:
    """In the child before exec: die when the daemon dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ReplicaTemplate:
    """Everything needed to start replicas of one revision."""

    namespace: str
    revision: str
    service: str
    configuration: str
    argv: list[str]
    env: dict[str, str]
    cwd: str | None = None
    readiness: Mapping[str, Any] | None = None
    liveness: Mapping[str, Any] | None = None
    startup: Mapping[str, Any] | None = None
    port_name: str = ""
    grace_period: float = 30.0
    progress_deadline: float = 600.0
    revision_object: dict[str, Any] = field(default_factory=dict)
    # the revision's other containers, run beside the app like companions
    sidecars: list[companions.CompanionProcess] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.revision}"


class Replica:
    """One running instance of a revision (a "pod")."""

    def __init__(self, supervisor: Supervisor, template: ReplicaTemplate, name: str) -> None:
        self.supervisor = supervisor
        self.template = template
        self.name = name
        self.port = free_port()
        self.state = "starting"  # starting | ready | failed | stopping | stopped
        self.ready = False
        self.ever_ready = False
        self.restarts = 0
        self.message = ""
        self.reason = ""
        self.process: asyncio.subprocess.Process | None = None
        self.companion_procs: list[asyncio.subprocess.Process] = []
        self.started_at = time.monotonic()
        self.ready_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.log_path = supervisor.log_dir(template) / f"{name}.log"

    # -- lifecycle --
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        self.state = "stopping"
        self._set_ready(False)
        drainer = self.supervisor.drainer
        if drainer is not None and self.ever_ready:
            # no new requests reach it now; let the ones in flight finish first
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    drainer(self.template.key, self.name), self.template.grace_period
                )
        procs = [p for p in [self.process, *self.companion_procs] if p is not None]
        await _terminate(procs[:1], self.template.grace_period)
        await _terminate(procs[1:], self.template.grace_period)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.state = "stopped"

    def _set_ready(self, ready: bool) -> None:
        if ready != self.ready:
            self.ready = ready
            if ready:
                self.ever_ready = True
                self.ready_at = time.monotonic()
            self.supervisor._changed(self.template.key)

    async def _run(self) -> None:
        backoff = 1.0
        while not self._stopping:
            try:
                code = await self._run_once()
            except Exception as exc:  # a bad template (missing ConfigMap, bad env) or spawn error
                self.state = "failed"
                self.reason = "StartFailed"
                self.message = str(exc)
                log.warning("replica %s could not start: %s", self.name, exc)
                self.supervisor._changed(self.template.key)
                code = None
            if self._stopping:
                return
            if code is not None:
                self.state = "failed"
                self.reason = f"ExitCode{code}"
                self.message = f"Container failed with: {self._log_tail()}".rstrip()
                log.warning("replica %s exited with %s", self.name, code)
                self.supervisor._changed(self.template.key)
            self.restarts += 1
            await asyncio.sleep(0 if self.ever_ready and self.restarts < 3 else backoff)
            backoff = min(backoff * 2, 30.0)

    async def _run_once(self) -> int | None:
        tpl = self.template
        env = self.supervisor.replica_env(tpl, self)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.companion_procs = await self._start_companions(env)
        argv = [expand(a, env) for a in tpl.argv]
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                cwd=tpl.cwd,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.state = "starting"
        self.started_at = time.monotonic()
        proc = self.process
        readiness = ProbeSpec.from_spec(tpl.readiness, self.port, env=env, cwd=tpl.cwd)
        startup = (
            ProbeSpec.from_spec(tpl.startup, self.port, env=env, cwd=tpl.cwd)
            if tpl.startup
            else None
        )
        liveness = ProbeSpec.from_spec(tpl.liveness, self.port, liveness=True, env=env, cwd=tpl.cwd)
        exit_wait = asyncio.ensure_future(proc.wait())
        watchers = [asyncio.ensure_future(self._readiness(readiness, startup))]
        if liveness is not None:
            watchers.append(asyncio.ensure_future(self._liveness(liveness)))
        try:
            done, _ = await asyncio.wait(
                [exit_wait, *watchers], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in watchers:
                w.cancel()
        self._set_ready(False)
        if exit_wait in done:
            await _terminate(self.companion_procs, 2.0)
            return proc.returncode
        # liveness failed or progress deadline passed: kill and report
        await _terminate([proc, *self.companion_procs], tpl.grace_period)
        exit_wait.cancel()
        return None

    async def _startup(self, probe: ProbeSpec) -> bool:
        """The startupProbe: readiness is not probed until it passes; False to restart."""
        if probe.initial_delay:
            await asyncio.sleep(probe.initial_delay)
        deadline = time.monotonic() + self.template.progress_deadline
        failures = 0
        while True:
            ok, msg = await run_probe(probe)
            if ok:
                return True
            failures += 1
            if (probe.period and failures >= probe.failure_threshold) or (
                time.monotonic() > deadline
            ):
                self.reason = "StartupProbeFailed"
                self.message = msg
                return False
            await asyncio.sleep(probe.period or AGGRESSIVE_PROBE_PERIOD)

    async def _readiness(self, probe: ProbeSpec | None, startup: ProbeSpec | None = None) -> None:
        assert probe is not None
        tpl = self.template
        if startup is not None and not await self._startup(startup):
            return
        if probe.initial_delay:
            await asyncio.sleep(probe.initial_delay)
        deadline = time.monotonic() + tpl.progress_deadline
        period = probe.period or AGGRESSIVE_PROBE_PERIOD
        last = ""
        while True:
            ok, msg = await run_probe(probe)
            if ok:
                break
            last = msg
            if time.monotonic() > deadline:
                self.state = "failed"
                self.reason = "ProgressDeadlineExceeded"
                self.message = (
                    f"Initial scale was never achieved: the replica did not become ready "
                    f"within {tpl.progress_deadline:g}s ({last})"
                )
                self.supervisor._changed(tpl.key)
                return
            await asyncio.sleep(period)
        self.state = "ready"
        self.reason = ""
        self.message = ""
        self._set_ready(True)
        failures = successes = 0
        while True:
            await asyncio.sleep(probe.period or READY_PROBE_PERIOD)
            ok, msg = await run_probe(probe)
            if ok:
                failures = 0
                successes += 1
                if not self.ready and successes >= probe.success_threshold:
                    self._set_ready(True)
            else:
                successes = 0
                failures += 1
                if failures >= probe.failure_threshold and self.ready:
                    log.info("replica %s is not ready: %s", self.name, msg)
                    self._set_ready(False)

    async def _liveness(self, probe: ProbeSpec) -> None:
        if probe.initial_delay:
            await asyncio.sleep(probe.initial_delay)
        failures = 0
        while True:
            await asyncio.sleep(probe.period or 10.0)
            if not self.ever_ready:
                continue
            ok, msg = await run_probe(probe)
            failures = 0 if ok else failures + 1
            if failures >= probe.failure_threshold:
                log.warning("replica %s failed its liveness probe: %s; restarting", self.name, msg)
                self.reason = "LivenessProbeFailed"
                self.message = msg
                return

    async def _start_companions(self, env: dict[str, str]) -> list[asyncio.subprocess.Process]:
        procs: list[asyncio.subprocess.Process] = []
        for spec in self.supervisor.companion_specs.get(self.name, []):
            path = self.log_path.with_name(f"{self.name}.{spec.name}.log")
            with path.open("ab") as out:
                proc = await asyncio.create_subprocess_exec(
                    *spec.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    cwd=spec.cwd,
                    env={
                        k: v.replace(POD_NAME_PLACEHOLDER, self.name)
                        for k, v in {**self.supervisor.base_env(), **spec.env}.items()
                    },
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            procs.append(proc)
            if spec.ready_port:
                probe = ProbeSpec("tcp", port=spec.ready_port)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and proc.returncode is None:
                    if (await run_probe(probe))[0]:
                        break
                    await asyncio.sleep(0.05)
        return procs

    def _log_tail(self) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 2000))
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-5:])

    def __repr__(self) -> str:
        return f"Replica({self.name}, port={self.port}, state={self.state})"


async def _terminate(procs: list[asyncio.subprocess.Process], grace: float) -> None:
    """SIGTERM to each process group, SIGKILL after ``grace`` seconds."""
    alive = [p for p in procs if p.returncode is None]
    for p in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGTERM)
    if not alive:
        return
    try:
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in alive)), grace)
    except TimeoutError:
        for p in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
        await asyncio.gather(*(p.wait() for p in alive), return_exceptions=True)
    # whatever the app left behind in its group goes too
    for p in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)


class Supervisor:
    """Runs replicas per revision; ``on_change(key)`` fires when readiness or failure
    changes for revision ``namespace/name``."""

    def __init__(
        self,
        state_dir: Path,
        gateway_url: str = "",
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.gateway_url = gateway_url
        self.on_change = on_change
        self.revisions: dict[str, list[Replica]] = {}
        self.templates: dict[str, ReplicaTemplate] = {}
        self.companion_specs: dict[str, list[companions.CompanionProcess]] = {}
        self._companion_env: dict[str, dict[str, str]] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        # drainer(revision_key, replica_name): returns once no request is in flight on it
        self.drainer: Callable[[str, str], Awaitable[None]] | None = None

    def log_dir(self, template: ReplicaTemplate) -> Path:
        return self.state_dir / "logs" / template.namespace / template.revision

    def base_env(self) -> dict[str, str]:
        env = {
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
            "PYTHONUNBUFFERED": "1",
        }
        if self.gateway_url:
            env.update(
                HTTP_PROXY=self.gateway_url,
                http_proxy=self.gateway_url,
                # gRPC (grpcio) reads grpc_proxy, then https_proxy, then http_proxy, and
                # tunnels with HTTP CONNECT, which the gateway answers for routed hosts
                grpc_proxy=self.gateway_url,
                NO_PROXY="127.0.0.1,localhost,::1",
                no_proxy="127.0.0.1,localhost,::1",
            )
        return env

    def replica_env(self, tpl: ReplicaTemplate, replica: Replica) -> dict[str, str]:
        env = self.base_env()
        if "VIRTUAL_ENV" in tpl.env:
            env["PATH"] = str(Path(tpl.env["VIRTUAL_ENV"]) / "bin") + os.pathsep + env["PATH"]
        env.update(tpl.env)
        for k, v in env.items():
            if POD_NAME_PLACEHOLDER in v:
                env[k] = v.replace(POD_NAME_PLACEHOLDER, replica.name)
        env.update(
            PORT=str(replica.port),
            K_SERVICE=tpl.service,
            K_CONFIGURATION=tpl.configuration,
            K_REVISION=tpl.revision,
        )
        env.update(self._companion_env.get(replica.name, {}))
        return env

    # -- scaling --
    def replicas(self, key: str) -> list[Replica]:
        return list(self.revisions.get(key, []))

    def ready_endpoints(self, key: str) -> list[tuple[str, int, str]]:
        return [("127.0.0.1", r.port, r.name) for r in self.revisions.get(key, []) if r.ready]

    def failure(self, key: str) -> tuple[str, str] | None:
        """(reason, message) when no replica is ready and one has failed."""
        reps = self.revisions.get(key, [])
        if any(r.ready for r in reps):
            return None
        for r in reps:
            if r.state == "failed":
                return r.reason, r.message
        return None

    def scale(self, template: ReplicaTemplate, count: int) -> None:
        """Start or stop replicas so that ``count`` run; returns at once."""
        key = template.key
        self.templates[key] = template
        reps = self.revisions.setdefault(key, [])
        while len(reps) < count:
            name = f"{template.revision}-deployment-{secrets.token_hex(4)}"
            replica = Replica(self, template, name)
            self._prepare_companions(template, replica)
            reps.append(replica)
            replica.start()
        if len(reps) > count:
            # stop the ones not ready first, then the newest
            order = sorted(reps, key=lambda r: (r.ready, -(r.started_at)))
            victims = order[: len(reps) - count]
            for victim in victims:
                reps.remove(victim)
                self._stop_later(victim)
            self._changed(key)

    def _prepare_companions(self, template: ReplicaTemplate, replica: Replica) -> None:
        specs: list[companions.CompanionProcess] = list(template.sidecars)
        extra: dict[str, str] = {}
        info = companions.ReplicaInfo(
            namespace=template.namespace,
            revision=template.revision,
            service=template.service,
            replica=replica.name,
            app_port=replica.port,
            app_env=dict(template.env),
            log_dir=self.log_dir(template),
            gateway_url=self.gateway_url,
        )
        for name, factory in companions.factories():
            try:
                result = factory(template.revision_object, info)
            except Exception:
                log.exception("replica companion %s failed for %s", name, replica.name)
                continue
            if result is not None:
                specs.extend(result.processes)
                extra.update(result.app_env)
        self.companion_specs[replica.name] = specs
        self._companion_env[replica.name] = extra

    def _stop_later(self, replica: Replica) -> None:
        task = asyncio.get_running_loop().create_task(replica.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        self.companion_specs.pop(replica.name, None)
        self._companion_env.pop(replica.name, None)

    async def stop_revision(self, key: str) -> None:
        reps = self.revisions.pop(key, [])
        self.templates.pop(key, None)
        await asyncio.gather(*(r.stop() for r in reps), return_exceptions=True)

    def _changed(self, key: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(key)
            except Exception:
                log.exception("runtime change handler failed for %s", key)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        keys = list(self.revisions)
        await asyncio.gather(*(self.stop_revision(k) for k in keys), return_exceptions=True)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
