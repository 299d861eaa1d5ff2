"""The demo's four app images: `wonderland build` against `podman build` of the same
Dockerfiles on the same base, side by side in one run, then each pushed to Debian's
docker-registry on this machine.

    python bench/export/registry.py [--base build/debian-base]

Needs docker-registry, podman and a base image layout (`make registry-tools` gives all
three; podman keeps its storage in a temporary folder). Figures:

- build cold (an empty output layout / a fresh podman storage, so podman imports the
  base first, as wonderland copies its blobs) and again with the sources unchanged
  (podman's layer cache);
- push of the four images to fresh repositories of one registry (wonderland: the OCI
  Distribution API with cross-repository mounts; podman push: containers/image);
- the compressed size of the layer each adds to the base, read back from the registry.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from wonderland.export.oci import build_image  # noqa: E402
from wonderland.export.push import push_image  # noqa: E402

APPS = ["frontend", "agenda-service", "c4p-service", "notifications-service"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _registry(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    config = folder / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: bench\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise SystemExit("docker-registry did not start") from None
            time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


def _added_layer_kb(host: str, repo: str, tag: str) -> float:
    """The compressed size of the image's last layer (what the app adds to the base)."""
    manifest = httpx.get(
        f"http://{host}/v2/{repo}/manifests/{tag}",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    ).json()
    return float(manifest["layers"][-1]["size"]) / 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, default=ROOT / "build" / "debian-base")
    args = parser.parse_args()
    base: Path = args.base.resolve()
    if not (base / "index.json").is_file():
        raise SystemExit(f"{base}: no base image layout (make registry-tools builds one)")
    for tool in ("docker-registry", "podman"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (make registry-tools)")
    base_name = json.loads((base / "index.json").read_text())["manifests"][0]["annotations"][
        "org.opencontainers.image.ref.name"
    ]
    apps = ROOT / "examples" / "conference" / "apps"
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        work = Path(tmp)
        registry, host = _registry(work)
        podman = ["podman", "--root", str(work / "podman"), "--runroot", str(work / "run")]
        try:
            rows: dict[str, list[str]] = {}
            ours: list[str] = []
            for label in ("cold", "unchanged"):
                start = time.perf_counter()
                results = [
                    build_image(apps / app, f"w-{app}", work / "images", base, host) for app in APPS
                ]
                ours_s = time.perf_counter() - start
                start = time.perf_counter()
                for app in APPS:
                    subprocess.run(
                        [
                            *podman,
                            "build",
                            "-q",
                            "--from",
                            f"oci:{base}:{base_name}",
                            "-t",
                            f"{host}/p-{app}:bench",
                            str(apps / app),
                        ],
                        check=True,
                        capture_output=True,
                    )
                peer_s = time.perf_counter() - start
                rows[f"build {label}"] = [f"{ours_s:.2f} s", f"{peer_s:.2f} s"]
                ours = [r.ref for r in results]
            start = time.perf_counter()
            pushed: dict[str, str] = {}
            for ref in ours:
                push_image(work / "images", ref, pushed=pushed)
            ours_s = time.perf_counter() - start
            start = time.perf_counter()
            for app in APPS:
                subprocess.run(
                    [*podman, "push", "-q", "--tls-verify=false", f"{host}/p-{app}:bench"],
                    check=True,
                    capture_output=True,
                )
            peer_s = time.perf_counter() - start
            rows["push, 4 fresh repositories"] = [f"{ours_s:.2f} s", f"{peer_s:.2f} s"]
            for app, ref in zip(APPS, ours, strict=True):
                repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
                rows[f"{app}: layer added to the base"] = [
                    f"{_added_layer_kb(host, repo, tag):.1f} kB",
                    f"{_added_layer_kb(host, f'p-{app}', 'bench'):.1f} kB",
                ]
        finally:
            os.killpg(registry.pid, signal.SIGTERM)
            registry.wait(timeout=10)
    print(f"the demo's four apps on {base_name} ({base})")
    print(f"{'':48} {'wonderland build':>18} {'podman build':>14}")
    for name, (mine, peer) in rows.items():
        print(f"{name:48} {mine:>18} {peer:>14}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
