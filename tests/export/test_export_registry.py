"""`wonderland build --push` against a real registry: Debian's docker-registry on a free
port, the images read back with skopeo, on a base image made from Debian packages
(tools/debian_base.py, mmdebstrap). `make registry-tools` installs the tools and builds
the base into build/debian-base; without it the base is built once per session here.
Skipped where the tools are missing, except under CI=true, where that fails. Where podman
can run a container, the model server's image serves the iris model in one (skipped,
with why, where it cannot)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from _support.daemon import free_port, kill_group, wait_for
from _support.wheels import make_wheel, server_wheel

from wonderland.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFERENCE = ROOT / "examples" / "conference"
FRONTEND = CONFERENCE / "apps" / "frontend"
USER, PASSWORD = "alice", "s3cret-Pa55"

pytestmark = pytest.mark.slow


def _need(reason: str) -> None:
    """Skip with ``reason`` on a developer's machine; under CI=true a missing piece fails."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the registry tests must run; `make registry-tools`)")
    pytest.skip(f"{reason}; `make registry-tools` installs it")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        _need(f"{name} is not installed")
    assert found is not None
    return found


@pytest.fixture(scope="session")
def debian_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OCI layout of a Debian bookworm with python3: build/debian-base (`make
    registry-tools`), else made here once per session with mmdebstrap."""
    built = ROOT / "build" / "debian-base"
    if (built / "index.json").is_file():
        return built
    _tool("mmdebstrap")
    out = tmp_path_factory.mktemp("debian") / "base"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "debian_base.py"), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        _need(f"mmdebstrap could not make the base image here: {proc.stderr[-800:]}")
    return out


Registry = Callable[..., str]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """Start docker-registry on a free port (its config and storage in tmp, its own
    process group) with the ``auth`` section given; the address ``127.0.0.1:PORT``."""
    binary = _tool("docker-registry")
    procs: list[subprocess.Popen[bytes]] = []

    def start(auth: str = "") -> str:
        port = free_port()
        folder = tmp_path / f"registry-{port}"
        folder.mkdir()
        config = folder / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n"
            f"http:\n  addr: 127.0.0.1:{port}\n  secret: {secrets.token_hex(8)}\n{auth}"
        )
        log = folder / "registry.log"
        with log.open("wb") as sink:
            procs.append(
                subprocess.Popen(
                    [binary, "serve", str(config)],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

        def answers() -> bool:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
            except httpx.HTTPError:
                return False
            return True

        wait_for(answers, what=f"docker-registry on {port}", log=log)
        return f"127.0.0.1:{port}"

    try:
        yield start
    finally:
        for proc in procs:
            kill_group(proc)


def _skopeo(*args: str) -> Any:
    proc = subprocess.run(
        [_tool("skopeo"), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else proc.stdout


def _built_and_pushed(out: str) -> dict[str, tuple[str, str]]:
    """ref -> (digest build reported, digest push reported)."""
    built: dict[str, str] = {}
    pushed: dict[str, str] = {}
    for line in out.splitlines():
        words = line.split()
        if words[0] == "pushed":
            pushed[words[1]] = words[2]
        else:
            built[words[0]] = words[1]
    assert set(built) == set(pushed), out
    return {ref: (built[ref], pushed[ref]) for ref in built}


def test_the_demo_images_read_back_from_a_registry_with_skopeo(
    tmp_path: Path,
    debian_base: Path,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(ROOT)
    host = registry()
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tinypkg", "1.0", script="tinypkg")
    make_wheel(wheels, "otherpkg", "2.0")
    args = [
        "build",
        "--all",
        "-f",
        str(CONFERENCE),
        "--base",
        str(debian_base),
        "--registry",
        host,
        "--push",
        "-o",
        str(tmp_path / "images"),
        "--wheel",
        str(server_wheel(wheels)),
        "--find-links",
        str(wheels),
        "--no-index",
        "--cache",
        str(tmp_path / "cache"),
    ]
    assert main(args) == 0
    first, progress = capsys.readouterr()
    # The apps' FROM python:3.12-slim builds onto the layout's only image, and says so.
    assert "base python:3.12-slim from " in progress
    assert ": its only image, debian-python3:bookworm" in progress
    images = _built_and_pushed(first)
    assert len(images) == 5  # the four apps and the model server
    # The base's layer is sent once; the other repositories mount it.
    assert first.count(", 1 mounted from another repository)") == 4, first
    for ref, (built, pushed) in images.items():
        assert built == pushed
        remote = _skopeo("inspect", "--tls-verify=false", f"docker://{ref}")
        assert remote["Digest"] == built, ref
        config = _skopeo("inspect", "--tls-verify=false", "--config", f"docker://{ref}")
        image = config["config"]
        assert (config["os"], config["architecture"]) == ("linux", "amd64")
        # the base's environment (a Debian with python3.11) carries over
        assert {"LANG=C.UTF-8", "PYTHON_VERSION=3.11"} <= set(image["Env"]), ref
        if "/model-server:" in ref:
            assert image["Entrypoint"] == ["wonderland", "serve"]
            assert "--http_port=8080" in image["Cmd"] and "--grpc_port=8081" in image["Cmd"]
            assert image["ExposedPorts"] == {"8080/tcp": {}, "8081/tcp": {}}
            assert image["User"] == "1000"
            assert "PYTHONPATH=/opt/python/site-packages" in image["Env"]
            assert image["Labels"]["dev.wonderland.extras"] == "sklearn"
        else:
            # what the apps' Dockerfiles say
            assert "Entrypoint" not in image and image["Cmd"] == ["python", "app.py"]
            assert {"BIND_ADDRESS=0.0.0.0", "PYTHONUNBUFFERED=1"} <= set(image["Env"])
            assert image["ExposedPorts"] == {"8080/tcp": {}}
            assert image["WorkingDir"] == "/app" and "User" not in image
    # A pulled copy is the same image, byte for byte.
    frontend = next(ref for ref in images if "/conference-frontend:" in ref)
    _skopeo(
        "copy", "--src-tls-verify=false", f"docker://{frontend}", f"oci:{tmp_path / 'pulled'}:x"
    )
    (entry,) = json.loads((tmp_path / "pulled" / "index.json").read_text())["manifests"]
    assert entry["digest"] == images[frontend][0]
    # Pushed again: the registry has every blob, only the manifests are put.
    assert main(args) == 0
    again = capsys.readouterr().out
    assert again.count("(0 blob(s) sent,") == 5, again


def _push_frontend(tmp_path: Path, base: Path, host: str, *extra: str) -> int:
    args = ["build", str(FRONTEND), "-o", str(tmp_path / "images"), "--base", str(base)]
    return main([*args, "--registry", host, "--push", "-q", *extra])


def _clean_auth_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """No auth file of this machine's user is read."""
    for name in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))


def _htpasswd_registry(registry: Registry, tmp_path: Path) -> str:
    """A registry that takes only USER with PASSWORD (Basic auth from an htpasswd file)."""
    users = tmp_path / "htpasswd"
    users.write_bytes(
        subprocess.run(
            [_tool("htpasswd"), "-Bbn", USER, PASSWORD], capture_output=True, check=True
        ).stdout
    )
    return registry(f"auth:\n  htpasswd:\n    realm: wonderland\n    path: {users}\n")


def test_a_registry_with_htpasswd_takes_the_credentials_podman_saved(
    tmp_path: Path,
    debian_base: Path,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _clean_auth_env(monkeypatch, tmp_path / "home")
    host = _htpasswd_registry(registry, tmp_path)
    # No credentials: the image, the registry and what to do.
    assert _push_frontend(tmp_path, debian_base, host) == 1
    err = capsys.readouterr().err
    assert f"the registry {host} refused the push of frontend:" in err
    assert "(HTTP 401" in err and f"log in first (`podman login {host}`" in err
    assert "--creds USER:PASSWORD" in err
    # Wrong ones: whose were refused.
    assert _push_frontend(tmp_path, debian_base, host, "--creds", f"{USER}:wrong") == 1
    err = capsys.readouterr().err
    assert f"the credentials of --creds (user {USER}) were refused" in err
    # --creds
    assert _push_frontend(tmp_path, debian_base, host, "--creds", f"{USER}:{PASSWORD}") == 0
    ref, digest = capsys.readouterr().out.split()[:2]
    # The auth file `podman login` writes, found through REGISTRY_AUTH_FILE.
    auth = tmp_path / "auth.json"
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    auth.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    (tmp_path / "images").rename(tmp_path / "first")
    assert _push_frontend(tmp_path, debian_base, host) == 0
    assert capsys.readouterr().out.split()[:2] == [ref, digest]
    remote = _skopeo(
        "inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", f"docker://{ref}"
    )
    assert remote["Digest"] == digest
    # docker's ~/.docker/config.json, its key with a scheme, when no other file names it.
    monkeypatch.delenv("REGISTRY_AUTH_FILE")
    docker = tmp_path / "home" / ".docker" / "config.json"
    docker.parent.mkdir(parents=True)
    docker.write_text(json.dumps({"auths": {f"http://{host}/v1/": {"auth": token}}}))
    assert _push_frontend(tmp_path, debian_base, host) == 0


def test_the_base_comes_from_the_users_registry(
    tmp_path: Path,
    debian_base: Path,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _clean_auth_env(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    host = _htpasswd_registry(registry, tmp_path)
    base_ref = f"{host}/mirror/debian-python3:bookworm"
    _skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"{USER}:{PASSWORD}",
        f"oci:{debian_base}:debian-python3:bookworm",
        f"docker://{base_ref}",
    )
    app = tmp_path / "app"
    shutil.copytree(FRONTEND, app)
    args = ["build", str(app), "-o", str(tmp_path / "images"), "--base", base_ref]
    # The pull wants credentials too: the image, the registry and what to do.
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"the registry {host} refused the pull of mirror/debian-python3:bookworm" in err
    assert f"log in first (`podman login {host}`" in err
    auth = tmp_path / "auth.json"
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    auth.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    assert main([*args, "--registry", host, "--push"]) == 0
    captured = capsys.readouterr()
    assert "2 blob(s) pulled" in captured.err  # the config and the one layer
    ref, digest = captured.out.split()[:2]
    local = json.loads((debian_base / "index.json").read_text())["manifests"][0]
    local_manifest = json.loads(
        (debian_base / "blobs" / "sha256" / local["digest"].split(":")[1]).read_bytes()
    )
    remote = _skopeo(
        "inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", f"docker://{ref}"
    )
    assert remote["Digest"] == digest
    assert remote["Layers"][0] == local_manifest["layers"][0]["digest"]
    # A changed source: the cache holds the base, only its manifest is asked for.
    (app / "app.py").write_text((app / "app.py").read_text() + "\n# changed\n")
    assert main(args) == 0
    assert "0 blob(s) pulled" in capsys.readouterr().err


class _TokenServer:
    """A registry token server (the Docker token flow): Basic credentials in, a JWT
    signed with a key whose certificate docker-registry trusts out, granting what the
    ``scope`` asks for."""

    def __init__(self, folder: Path, service: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wonderland test tokens")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .sign(self.key, hashes.SHA256())
        )
        self.cert_file = folder / "token.crt"
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.service = service
        self.issuer = "wonderland-test-issuer"
        self.asked: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                sent = self.headers.get("Authorization", "")
                wanted = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                server.asked.append(sent.split(" ")[0] or "anonymous")
                if sent != wanted:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": server.token(query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.http.server_address[1]}/token"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def token(self, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": USER,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}

        def part(doc: dict[str, Any]) -> str:
            raw = json.dumps(doc, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        signing = f"{part(header)}.{part(claims)}"
        signature = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def test_a_registry_with_a_token_server_gives_a_bearer_token_for_the_credentials(
    tmp_path: Path,
    debian_base: Path,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _clean_auth_env(monkeypatch, tmp_path / "home")
    tokens = _TokenServer(tmp_path, "wonderland-registry")
    try:
        host = registry(
            f"auth:\n  token:\n    realm: {tokens.realm}\n    service: {tokens.service}\n"
            f"    issuer: {tokens.issuer}\n    rootcertbundle: {tokens.cert_file}\n"
        )
        assert _push_frontend(tmp_path, debian_base, host) == 1
        err = capsys.readouterr().err
        assert f"its token server {tokens.realm}: it wants credentials" in err
        assert _push_frontend(tmp_path, debian_base, host, "--creds", f"{USER}:{PASSWORD}") == 0
        ref, digest = capsys.readouterr().out.split()[:2]
        # One token for the whole push (pull and push), asked for with the credentials.
        assert tokens.asked == ["anonymous", "Basic"]
        # Read back with skopeo, through the same token server.
        remote = _skopeo(
            "inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", f"docker://{ref}"
        )
        assert remote["Digest"] == digest
    finally:
        tokens.close()


RUNTIME = CONFERENCE / "cluster" / "kserve" / "clusterservingruntime-wonderland-model-server.yaml"
# podman's default limits (nofile 1048576) are above what a container here may set
_LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.fixture(scope="module")
def podman_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """podman with its storage in tmp; reset (and its overlay unmounted) when done."""
    binary = _tool("podman")
    root = tmp_path_factory.mktemp("podman")
    # podman refuses a runroot longer than 50 characters, which pytest's tmp paths under
    # xdist are: the runroot gets a short folder of its own
    runroot = tempfile.mkdtemp(prefix="wl-podman-", dir="/tmp")
    storage = [binary, "--root", str(root / "storage"), "--runroot", runroot]
    try:
        yield storage
    finally:
        subprocess.run([*storage, "system", "reset", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(runroot, ignore_errors=True)
        overlay = root / "storage" / "overlay"
        if os.path.ismount(overlay):
            subprocess.run(["umount", str(overlay)], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def podman(debian_base: Path, podman_storage: list[str]) -> list[str]:
    """podman and the OCI runtime that runs a container here (crun, else runc: crun
    refuses a host with cgroup v1 and v2 controllers both); the test skips, with why,
    where none does."""
    why: list[str] = []
    for runtime in ([], ["--runtime", "runc"]):
        command = [*podman_storage, *runtime, "run", "--rm", "--network=none", *_LIMITS]
        image = f"oci:{debian_base}:debian-python3:bookworm"
        proc = subprocess.run(
            [*command, image, "python", "-c", "print('ran')"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode == 0 and proc.stdout.strip() == "ran":
            return [*podman_storage, *runtime]
        why.append((proc.stderr.strip().splitlines() or ["?"])[-1])
    pytest.skip(f"podman cannot run a container on this machine: {'; '.join(why)}")


def _config_of(layout: Path, ref: str) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    (entry,) = [
        m
        for m in index["manifests"]
        if m["annotations"]["org.opencontainers.image.ref.name"] == ref
    ]

    def blob(digest: str) -> Any:
        return json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes())

    config: dict[str, Any] = blob(blob(entry["digest"])["config"]["digest"])["config"]
    return config


def test_an_image_has_the_config_podman_build_gives_the_same_dockerfile(
    tmp_path: Path, debian_base: Path, podman_storage: list[str]
) -> None:
    from wonderland.export.oci import build_image

    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "src" / "main.py").write_text("print('hi')\n")
    (app / "settings.toml").write_text("x = 1\n")
    (app / "Dockerfile").write_text(
        "FROM python:3.12-slim\n"
        "WORKDIR /srv\n"
        "COPY settings.toml /etc/app/\n"
        "COPY . code\n"
        "WORKDIR /srv/code\n"
        'ENV MODE=prod GREETING="hello there"\n'
        "ENV OLD form with spaces\n"
        'LABEL team=conference "org.example.tier"=web\n'
        "EXPOSE 9000 9001/udp\n"
        "USER 1000:1000\n"
        "ENTRYPOINT python -m src.main\n"
    )
    folders = [FRONTEND.parent / name for name in ("frontend", "agenda-service")] + [app]
    for folder in folders:
        built = build_image(folder, "cmp", tmp_path / "images", debian_base)
        ours = _config_of(tmp_path / "images", built.ref)
        tag = f"localhost/cmp-{folder.name}:peer"
        peer_build = [
            *podman_storage,
            "build",
            "-q",
            "--from",
            f"oci:{debian_base}:debian-python3:bookworm",
        ]
        proc = subprocess.run(
            [*peer_build, "-t", tag, str(folder)], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        inspect = subprocess.run(
            [*podman_storage, "image", "inspect", tag], capture_output=True, text=True
        )
        peer = json.loads(inspect.stdout)[0]["Config"]
        for key in ("Env", "Cmd", "Entrypoint", "WorkingDir", "ExposedPorts", "User"):
            assert ours.get(key) == peer.get(key), (folder.name, key)
        mine = {k: v for k, v in ours.get("Labels", {}).items() if "image.revision" not in k}
        theirs = {k: v for k, v in (peer.get("Labels") or {}).items() if "buildah" not in k}
        assert mine == theirs, folder.name
        # The files: the same paths at the same places.
        mounted = subprocess.run(
            [*podman_storage, "image", "mount", tag], capture_output=True, text=True
        )
        if mounted.returncode == 0:
            rootfs = Path(mounted.stdout.strip())
            try:
                if folder == app:
                    assert (rootfs / "etc/app/settings.toml").read_text() == "x = 1\n"
                    assert (rootfs / "srv/code/src/main.py").is_file()
                else:
                    assert (rootfs / "app" / "app.py").read_bytes() == (
                        folder / "app.py"
                    ).read_bytes()
            finally:
                subprocess.run([*podman_storage, "image", "unmount", tag], capture_output=True)


def test_the_model_server_image_serves_the_iris_model_in_a_container(
    tmp_path: Path, debian_base: Path, podman: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    import joblib
    import yaml

    # The real package and its sklearn dependencies (pip reaches the package index; the
    # default layer cache keeps them for the next run).
    out = tmp_path / "images"
    args = ["build", "--model-server", "--extras", "sklearn", "--base", str(debian_base)]
    assert main([*args, "-o", str(out), "-q"]) == 0
    ref = capsys.readouterr().out.split()[0]
    models = tmp_path / "model"
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "inference" / "train.py"), str(models)],
        check=True,
        capture_output=True,
    )
    # What KServe runs: the exported runtime's command and arguments, on free ports of
    # this machine's network.
    (container,) = yaml.safe_load(RUNTIME.read_text())["spec"]["containers"]
    http, grpc = free_port(), free_port()
    ports = {"--http_port": str(http), "--grpc_port": str(grpc), "--host": "127.0.0.1"}
    runtime_args = [
        "=".join([key, ports.get(key, value.replace("{{.Name}}", "sklearn-iris"))])
        for key, _, value in (arg.partition("=") for arg in container["args"])
    ]
    name = f"wonderland-test-{secrets.token_hex(4)}"
    run = [*podman, "run", "-d", "--rm", "--name", name, "--network=host", *_LIMITS]
    run += ["-v", f"{models}:/mnt/models:ro", f"oci:{out}:{ref}", *runtime_args]
    started = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stderr
    try:
        url = f"http://127.0.0.1:{http}/v2"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        logs = tmp_path / "container.log"

        def still_running() -> bool:
            if ready():
                return True
            state = subprocess.run([*podman, "logs", name], capture_output=True, text=True)
            logs.write_text(state.stdout + state.stderr)
            return False

        wait_for(still_running, timeout=90, what="the model server in podman", log=logs)
        body = json.loads((ROOT / "examples" / "inference" / "iris-input-v2.json").read_text())
        answer = httpx.post(f"{url}/models/sklearn-iris/infer", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        (output,) = answer.json()["outputs"]
        expected = joblib.load(models / "model.joblib").predict(body["inputs"][0]["data"])
        assert output["data"] == expected.tolist()
        # The contract of the image: a user that is not root.
        who = subprocess.run([*podman, "exec", name, "id", "-u"], capture_output=True, text=True)
        assert who.stdout.strip() == "1000"
    finally:
        subprocess.run([*podman, "rm", "-f", "-t", "2", name], capture_output=True, timeout=120)
