"""``wonderland up``: the daemon in the foreground.

One daemon per state directory (a lock file says who holds it). It opens the store,
installs the plugins, starts the controllers and services, applies the manifests
given with ``-f``, serves the control API over HTTPS, writes the kubeconfig, and on
SIGTERM/SIGINT (or ``wonderland down``) stops everything in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import IO, Any

from wonderland.api.manifests import Manifest
from wonderland.asgi import QuietServer
from wonderland.errors import ConfigError, InvalidError
from wonderland.settings import Settings

__all__ = ["DaemonLock", "daemon_info", "run"]

log = logging.getLogger("wonderland.daemon")


class DaemonLock:
    """An exclusive lock on ``<state_dir>/daemon.lock``, released when the process dies."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "daemon.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held for the daemon's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(
                f"another wonderland daemon (pid {pid}) is already running on "
                f"{self.path.parent}; stop it with `wonderland down`, or set WONDERLAND_HOME "
                "to another directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def held_by_someone(self) -> bool:
        """True while some daemon holds the lock (for ``down``)."""
        if not self.path.exists():
            return False
        with open(self.path) as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False


def daemon_info(state_dir: Path) -> dict[str, Any] | None:
    """What the running daemon wrote about itself (pid, API URL), or None."""
    try:
        data = json.loads((state_dir / "daemon.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _bind(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.bind, settings.api_port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {settings.bind}:{settings.api_port} for the control API "
            f"({exc.strerror}); set WONDERLAND_API_PORT to a free port (0 picks one)"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.contextmanager
def _locked(state_dir: Path) -> Generator[None, None, None]:
    lock = DaemonLock(state_dir)
    lock.acquire()
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            (state_dir / "daemon.json").unlink()
        lock.release()


def run(settings: Settings, manifests: Sequence[Manifest] = ()) -> int:
    """Run the daemon until SIGTERM/SIGINT or ``wonderland down``; the exit status."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # the daemon's own clients (scrapes every few seconds, MLflow's front) log each request
    # at INFO; keep them to warnings unless the log level is debug
    if logging.root.level > logging.DEBUG:
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    state_dir = settings.state_dir
    if not state_dir.exists():
        state_dir.mkdir(parents=True, mode=0o700)
    with _locked(state_dir):
        try:
            import uvloop

            runner: Any = uvloop.run
        except ImportError:  # pragma: no cover - uvloop is a dependency
            runner = asyncio.run
        runner(_serve(settings, manifests))
    return 0


def _notes(manifests: Sequence[Manifest]) -> list[str]:
    """``NOTES.txt`` files beside the applied manifests (as a Helm chart's), in order."""
    seen: set[Path] = set()
    out: list[str] = []
    for manifest in manifests:
        folder = Path(manifest.source).parent
        if folder in seen:
            continue
        seen.add(folder)
        notes = folder / "NOTES.txt"
        if notes.is_file():
            out.append(notes.read_text().rstrip())
    return out


def _banner(
    settings: Settings,
    server: str,
    results: list[tuple[str, str]],
    info: dict[str, Any],
    notes: Sequence[str] = (),
) -> str:
    home = settings.state_dir
    lines = [f"{ref} {action}" for ref, action in results]
    gateway = info.get("gateway")
    lines += [
        "",
        f"wonderland is up: control API {server}, state in {home}",
    ]
    if gateway:
        lines.append(f"gateway: {gateway}")
    console = info.get("console")
    if isinstance(console, dict) and console.get("state") == "running":
        lines.append(
            f"console: {console['url']} (sign in with the kubeconfig's token; `wonderland console`)"
        )
    elif isinstance(console, dict) and console.get("reason"):
        lines.append(f"console: not served: {console['reason']}")
    db_manager = info.get("katib-db-manager")
    if db_manager:
        lines.append(f"Katib DB manager (get_trial_metrics db_manager_address): {db_manager}")
    mlflow = info.get("mlflow")
    if isinstance(mlflow, dict) and mlflow.get("state"):
        where = mlflow.get("url") or "(not listening)"
        ui = f", UI {mlflow['gateway_url']}" if mlflow.get("gateway_url") else ""
        lines.append(f"MLflow tracking (MLFLOW_TRACKING_URI): {where} [{mlflow['state']}]{ui}")
    monitoring = info.get("monitoring")
    if isinstance(monitoring, dict) and monitoring.get("state") == "running":
        lines.append(f"metrics (Prometheus /metrics, /federate): {monitoring['url']}")
    elif isinstance(monitoring, dict) and monitoring.get("reason"):
        lines.append(f"metrics: not served: {monitoring['reason']}")
    prometheus = info.get("prometheus")
    if isinstance(prometheus, dict) and prometheus.get("state") not in (None, "off"):
        state = prometheus["state"]
        why = f": {prometheus['reason']}" if prometheus.get("reason") else ""
        lines.append(f"Prometheus: {prometheus.get('url') or '(none)'} [{state}{why}]")
    if notes:
        # An example's own NOTES.txt says what to try; {gateway}, {gateway_port}, {domain},
        # {home} and {server} are filled in (plain replacement: curl bodies keep their braces).
        values = {
            "{gateway}": str(gateway or "(no gateway)"),
            "{gateway_port}": str(gateway or ":").rsplit(":", 1)[-1],
            "{domain}": settings.domain,
            "{home}": str(home),
            "{server}": server,
        }
        for text in notes:
            for key, value in values.items():
                text = text.replace(key, value)
            lines += ["", text]
        return "\n".join(lines)
    lines += [
        "Try next, in a second terminal:",
        "  wonderland apply -f examples/quickstart/   # a ConfigMap and a Knative Service",
        "  wonderland get ksvc -w                     # until it is Ready (Ctrl-C)",
        "  wonderland get all",
        f"  kubectl --kubeconfig {home}/kubeconfig get ksvc",
        "  wonderland apply -f examples/training/iris-ddp.yaml   # DDP training (extra: training)",
        "  wonderland apply -f examples/tuning/iris-tune.yaml    # tune it (Katib, Optuna)",
        "  wonderland down                            # or Ctrl-C here",
    ]
    return "\n".join(lines)


async def _serve(settings: Settings, manifests: Sequence[Manifest]) -> None:
    import uvicorn

    from wonderland.control import ControlAPI
    from wonderland.control.sources import (
        ActionRegistry,
        ControlEndpoint,
        PodLogSource,
        ResourceMetricsSource,
    )
    from wonderland.kubeconfig import ensure_certificate, ensure_token, write_kubeconfig
    from wonderland.platform import Platform

    state_dir = settings.state_dir
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    # Claim the API port first, and store the manifests before anything starts, so that a
    # taken port or a refused manifest stops `up` before it starts any replica.
    sock = _bind(settings)
    platform = Platform.open(settings)
    try:
        token = ensure_token(state_dir)
        cert_path, key_path = ensure_certificate(state_dir)
        host, port = sock.getsockname()[:2]
        # Listening on every address: clients on this machine still come in over loopback,
        # which is what the certificate names.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        server_url = f"https://{address}"
        platform.provide(ControlEndpoint, ControlEndpoint(server_url, cert_path.read_bytes()))
        platform.provide(ActionRegistry, ActionRegistry())
        platform.install_plugins()
        results = _apply(platform, manifests)
        await platform.start()

        app = ControlAPI(
            platform.store,
            token,
            address,
            on_shutdown=stop.set,
            logs=platform.get(PodLogSource),  # type: ignore[type-abstract]
            metrics=platform.get(ResourceMetricsSource),  # type: ignore[type-abstract]
            actions=platform.get(ActionRegistry),
        )
        config = uvicorn.Config(
            app,
            ssl_certfile=str(cert_path),
            ssl_keyfile=str(key_path),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = QuietServer(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if serving.done():
            serving.result()
        write_kubeconfig(state_dir, server_url, cert_path.read_bytes(), token)

        def write_info(info: dict[str, Any]) -> None:
            data = {**info, "pid": os.getpid(), "server": server_url}
            tmp = state_dir / f".daemon.json.{os.getpid()}"
            tmp.write_text(json.dumps(data))
            os.replace(tmp, state_dir / "daemon.json")

        write_info(platform.info)
        platform.on_info = write_info
        print(_banner(settings, server_url, results, platform.info, _notes(manifests)), flush=True)
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        platform.on_info = None  # daemon.json goes with the daemon
        print("wonderland is stopping", file=sys.stderr, flush=True)
        # uvicorn reports still-open keep-alive connections as an error when stopping.
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 10)
    finally:
        sock.close()
        await platform.stop()
        platform.store.close()


def _apply(platform: Any, manifests: Sequence[Manifest]) -> list[tuple[str, str]]:
    from wonderland.api import registry

    results: list[tuple[str, str]] = []
    if not manifests:
        return results
    from wonderland.api.manifests import ManifestError
    from wonderland.errors import WonderlandError

    with platform.store.transaction():
        for manifest in manifests:
            try:
                obj, action = platform.store.apply(manifest.obj)
            except InvalidError as exc:
                raise ManifestError([manifest.describe_error(exc)]) from None
            except WonderlandError as exc:
                raise ManifestError([f"{manifest.where()}: {manifest.display}: {exc}"]) from None
            kind = registry.for_object(obj["apiVersion"], obj["kind"])
            ref = f"{kind.singular}.{kind.group}" if kind.group else kind.singular
            results.append((f"{ref}/{obj['metadata']['name']}", action))
    return results
