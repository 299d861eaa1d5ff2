"""One container of a pod: its instances, probes, hooks, memory watchdog and stop.

A :class:`ContainerRunner` keeps what ``containerStatuses`` shows about a container (its
``state``, ``lastState``, ``restartCount``, ``ready``, ``started``) and runs one instance at
a time (:meth:`ContainerRunner.run_instance`): the process with its log, the postStart hook,
the startup, readiness and liveness probes, and, where no cgroup enforces it, the memory
watchdog. The pod worker decides when an instance starts again; the runner reports how the
last one ended (``Completed``, ``Error``, ``OOMKilled``, ``StartError``, with the exit code
and, for ``FallbackToLogsOnError``, the tail of its log as the message).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from wonderland.api.schemas.core import Container
from wonderland.runtime import cgroups, containers
from wonderland.runtime.logs import ContainerLog, LogOptions, read_lines
from wonderland.runtime.probes import ProbeSpec, run_probe
from wonderland.runtime.scheduler import container_limits
from wonderland.runtime.spawner import Spawner
from wonderland.timefmt import format_time

__all__ = ["ContainerHost", "ContainerRunner", "now"]

Obj = dict[str, Any]

AGGRESSIVE_PROBE_PERIOD = 0.01
DEFAULT_PROBE_PERIOD = 10.0
READY_PROBE_PERIOD = 1.0
TERMINATION_LOG_LINES = 80
TERMINATION_LOG_BYTES = 2048
_SIGNALS = {s.name: s for s in signal.Signals}


def now() -> str:
    """A status timestamp (seconds, as the API server stores them)."""
    return format_time()[:19] + "Z"


class ContainerHost(Protocol):
    """What a container runner needs from its pod worker."""

    grace: float

    @property
    def spawner(self) -> Spawner | None: ...

    def event(self, type: str, reason: str, message: str) -> None: ...

    def publish(self) -> None: ...

    def readiness_changed(self) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...

    def log_path(self, container: str, instance: int) -> Path: ...


def _last(state: Obj) -> Obj:
    return dict(state) if "terminated" in state else {}


@dataclass
class ContainerRunner:
    """One container of the pod: its current instance and its history."""

    spec: Container
    kind: str  # "init" | "sidecar" | "app"
    restart_count: int = 0
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    proc: containers.ContainerProcess | None = None
    log: ContainerLog | None = None
    previous_log: ContainerLog | None = None
    cgroup: cgroups.ContainerCgroup | None = None
    started_mono: float = 0.0
    backoff: float = 0.0
    done: bool = False  # will not run again (finished under its restart policy)
    liveness_failed: str = ""
    killed_for_memory: bool = False
    stopping: bool = False
    env: dict[str, str] = field(default_factory=dict)
    enter_pid: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name or ""

    def status(self) -> Obj:
        out: Obj = {
            "name": self.name,
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.spec.image or "",
            "imageID": "",
            "started": self.started,
        }
        if self.proc is not None:
            out["containerID"] = f"wonderland://{self.proc.pid}"
        return out

    def waiting(self, reason: str, message: str = "") -> None:
        self.state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}

    # -- ports -------------------------------------------------------------------------

    def port_of(self, value: Any) -> int:
        """A probe's or hook's ``port``: a number or the name of one of its ports."""
        ports = self.spec.ports or []
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        for port in ports:
            if port.name and port.name == value:
                return port.containerPort
        return ports[0].containerPort if ports else 0

    def _probe(self, probe: Any, cwd: str | None, liveness: bool = False) -> ProbeSpec | None:
        if probe is None:
            return None
        return ProbeSpec.from_spec(
            probe.model_dump(exclude_none=True),
            self.port_of(None),
            liveness=liveness,
            env=self.env,
            cwd=cwd,
            port_of=self.port_of,
            enter_pid=self.enter_pid,
        )

    # -- one instance ------------------------------------------------------------------

    async def run_instance(self, host: ContainerHost, launch: containers.Launch) -> int:
        """Start the process and wait for it to end; its exit code (128 when it could not
        start, as a runtime reports a ``StartError``)."""
        if self.log is not None:
            self.previous_log = self.log
            self._prune_logs(host)
        self.log = ContainerLog(host.log_path(self.name, self.restart_count))
        self.log.open()
        self.env = launch.env
        started_at = now()
        try:
            proc = await containers.launch(launch, self.log, host.spawner)
        except containers.StartError as exc:
            self.log.note(str(exc))
            await self.log.close()
            self.last_state = _last(self.state) or self.last_state
            self.state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": str(exc),
                    "startedAt": "1970-01-01T00:00:00Z",
                    "finishedAt": now(),
                }
            }
            host.event("Warning", "Failed", f"Error: {exc}")
            host.publish()
            self._drop_cgroup()
            return 128
        self.proc = proc
        group_file = containers.record_group(host.log_path(self.name, 0).parent, proc.pid)
        self.enter_pid = proc.pid if launch.mounts is not None else None
        self.started_mono = time.monotonic()
        self.liveness_failed = ""
        self.killed_for_memory = False
        self.stopping = False
        self.started = False
        self.last_state = _last(self.state) or self.last_state
        self.state = {"running": {"startedAt": started_at}}
        host.event("Normal", "Created", f"Created container: {self.name}")
        host.event("Normal", "Started", f"Started container {self.name}")
        lifecycle = self.spec.lifecycle
        if lifecycle is not None and lifecycle.postStart is not None:
            ok, msg = await self._handler(
                lifecycle.postStart.model_dump(exclude_none=True), launch.cwd
            )
            if not ok:
                host.event("Warning", "FailedPostStartHook", f"PostStartHook failed: {msg}")
                await containers.terminate_group(proc, 2.0, cgroup=self.cgroup)
        watchers = [
            host.spawn(
                self._probe_loop(
                    host,
                    self._probe(self.spec.startupProbe, launch.cwd),
                    self._probe(self.spec.readinessProbe, launch.cwd),
                )
            )
        ]
        liveness = self._probe(self.spec.livenessProbe, launch.cwd, liveness=True)
        if liveness is not None:
            watchers.append(host.spawn(self._liveness(host, liveness)))
        memory_limit = container_limits(self.spec).get("memory")
        if self.cgroup is not None and not self.cgroup.enforced and memory_limit:
            watchers.append(host.spawn(self._watchdog(host, memory_limit)))
        watchers.append(host.spawn(self._kill_on_liveness(host)))
        host.publish()
        try:
            code = await proc.wait()
        finally:
            for w in watchers:
                w.cancel()
        containers.signal_group(proc.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill_all()
        containers.forget_group(group_file)
        await self.log.close()
        oom = self.killed_for_memory or bool(self.cgroup and self.cgroup.oom_killed())
        exit_code = 128 - code if code < 0 else code
        if oom:
            reason, exit_code = "OOMKilled", 137
        else:
            reason = "Completed" if exit_code == 0 else "Error"
        terminated: Obj = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": started_at,
            "finishedAt": now(),
            "containerID": f"wonderland://{proc.pid}",
        }
        if code < 0:
            terminated["signal"] = -code
        message = self._termination_message(exit_code)
        if message:
            terminated["message"] = message
        self.state = {"terminated": terminated}
        self.ready = False
        self._drop_cgroup()
        host.publish()
        return exit_code

    def _drop_cgroup(self) -> None:
        # Removing a cgroup can take the kernel milliseconds (v1 memory cgroups most), so
        # it happens off the event loop; each instance has its own cgroup, so a restart
        # never waits for the old one to go.
        if self.cgroup is not None:
            cg = self.cgroup
            self.cgroup = None
            asyncio.get_running_loop().run_in_executor(None, _remove_quietly, cg)

    def _prune_logs(self, host: ContainerHost) -> None:
        """Keep the current and the previous instance's log, as the kubelet does."""
        folder = host.log_path(self.name, 0).parent
        keep = {self.restart_count, self.restart_count - 1}
        with contextlib.suppress(OSError):
            for entry in folder.iterdir():
                stem = entry.name.split(".", 1)[0]
                if stem.isdigit() and int(stem) not in keep:
                    entry.unlink()

    def _termination_message(self, exit_code: int) -> str:
        if self.liveness_failed:
            return self.liveness_failed
        if self.spec.terminationMessagePolicy != "FallbackToLogsOnError" or exit_code == 0:
            return ""
        if self.log is None:
            return ""
        text = read_lines(self.log.files(), LogOptions(tail_lines=TERMINATION_LOG_LINES))
        return text[-TERMINATION_LOG_BYTES:].decode("utf-8", "replace")

    async def _handler(self, handler: Obj, cwd: str | None) -> tuple[bool, str]:
        if "sleep" in handler:
            await asyncio.sleep(float(handler["sleep"].get("seconds") or 0))
            return True, ""
        spec = ProbeSpec.from_spec(
            {**handler, "timeoutSeconds": 30},
            0,
            env=self.env,
            cwd=cwd,
            port_of=self.port_of,
            enter_pid=self.enter_pid,
        )
        if spec is None:
            return True, ""
        return await run_probe(spec)

    # -- probes ------------------------------------------------------------------------

    async def _probe_loop(
        self, host: ContainerHost, startup: ProbeSpec | None, readiness: ProbeSpec | None
    ) -> None:
        if startup is not None:
            if startup.initial_delay:
                await asyncio.sleep(startup.initial_delay)
            failures = 0
            while True:
                ok, msg = await run_probe(startup)
                if ok:
                    break
                failures += 1
                if startup.period and failures >= startup.failure_threshold:
                    host.event("Warning", "Unhealthy", f"Startup probe failed: {msg}")
                    self.liveness_failed = (
                        f"Container {self.name} failed startup probe, will be restarted"
                    )
                    return
                await asyncio.sleep(startup.period or AGGRESSIVE_PROBE_PERIOD)
        self.started = True
        if readiness is None:
            self.ready = self.kind != "init"
            host.readiness_changed()
            return
        host.readiness_changed()
        if readiness.initial_delay:
            await asyncio.sleep(readiness.initial_delay)
        failures = successes = 0
        ever = False
        last_msg = ""
        while True:
            ok, msg = await run_probe(readiness)
            if ok:
                failures = 0
                successes += 1
                if not self.ready and (successes >= readiness.success_threshold or not ever):
                    ever = True
                    self.ready = True
                    host.readiness_changed()
            else:
                successes = 0
                failures += 1
                if ever and msg != last_msg:
                    host.event("Warning", "Unhealthy", f"Readiness probe failed: {msg}")
                last_msg = msg
                if self.ready and failures >= readiness.failure_threshold:
                    self.ready = False
                    host.readiness_changed()
            # unset: Knative's aggressive probing until ready, then a steady pace
            await asyncio.sleep(
                readiness.period or (READY_PROBE_PERIOD if ever else AGGRESSIVE_PROBE_PERIOD)
            )

    async def _liveness(self, host: ContainerHost, probe: ProbeSpec) -> None:
        if probe.initial_delay:
            await asyncio.sleep(probe.initial_delay)
        failures = 0
        while True:
            await asyncio.sleep(probe.period or DEFAULT_PROBE_PERIOD)
            if not self.started:
                continue
            ok, msg = await run_probe(probe)
            failures = 0 if ok else failures + 1
            if not ok:
                host.event("Warning", "Unhealthy", f"Liveness probe failed: {msg}")
            if failures >= probe.failure_threshold:
                self.liveness_failed = (
                    f"Container {self.name} failed liveness probe, will be restarted"
                )
                return

    async def _kill_on_liveness(self, host: ContainerHost) -> None:
        while not self.liveness_failed:
            await asyncio.sleep(0.2)
        host.event("Normal", "Killing", self.liveness_failed)
        if self.proc is not None:
            await containers.terminate_group(self.proc, host.grace, self.stop_signal(), self.cgroup)

    async def _watchdog(self, host: ContainerHost, limit: int) -> None:
        proc = self.proc
        while proc is not None and proc.returncode is None:
            await asyncio.sleep(cgroups.WATCHDOG_PERIOD)
            _, used = cgroups.tree_usage(proc.pid)
            if used > limit:
                self.killed_for_memory = True
                host.event(
                    "Warning",
                    "OOMKilling",
                    f"Memory limit reached: container {self.name} used {used} bytes of its "
                    f"{limit} byte limit; killed",
                )
                containers.signal_group(proc.pid, signal.SIGKILL)
                return

    # -- stopping ----------------------------------------------------------------------

    def stop_signal(self) -> int:
        lifecycle = self.spec.lifecycle
        name = lifecycle.stopSignal if lifecycle and lifecycle.stopSignal else "SIGTERM"
        return int(_SIGNALS.get(name, signal.SIGTERM))

    async def stop(self, host: ContainerHost, deadline: float) -> None:
        """preStop, the stop signal, SIGKILL at ``deadline`` (a monotonic time)."""
        proc = self.proc
        if proc is None or proc.returncode is not None or self.stopping:
            return
        self.stopping = True
        self.ready = False
        host.event("Normal", "Killing", f"Stopping container {self.name}")
        lifecycle = self.spec.lifecycle
        if lifecycle is not None and lifecycle.preStop is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._handler(
                        lifecycle.preStop.model_dump(exclude_none=True), self.spec.workingDir
                    ),
                    max(deadline - time.monotonic(), 0.1),
                )
        await containers.terminate_group(
            proc, max(deadline - time.monotonic(), 0.0), self.stop_signal(), self.cgroup
        )


def _remove_quietly(cgroup: cgroups.ContainerCgroup) -> None:
    with contextlib.suppress(Exception):
        cgroup.remove()
