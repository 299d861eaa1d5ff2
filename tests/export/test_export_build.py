"""`wonderland build`: OCI image layouts of app folders, with no container daemon."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import socket
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from wonderland.cli import main
from wonderland.export.oci import ImageBuildError, build_image, parse_dockerfile
from wonderland.export.push import push_image
from wonderland.export.sources import source_digest

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "examples" / "conference" / "apps" / "frontend"


def _blob(layout: Path, digest: str) -> bytes:
    data = (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    return data


def _json(layout: Path, digest: str) -> Any:
    return json.loads(_blob(layout, digest))


def test_the_frontend_image_follows_its_dockerfile_on_the_base(
    tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "images"
    args = [
        "build",
        str(FRONTEND),
        "-o",
        str(out),
        "--base",
        str(base),
        "--registry",
        "localhost:5001",
    ]
    assert main(args) == 0
    line = capsys.readouterr().out.strip()
    ref = f"localhost:5001/frontend:{source_digest(FRONTEND)[:16]}"
    assert line.startswith(f"{ref} sha256:") and "(built, 2 layer(s)" in line
    index = json.loads((out / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": ref}
    manifest = _json(out, entry["digest"])
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ] * 2
    config = _json(out, manifest["config"]["digest"])
    assert config["config"]["Env"] == [
        "PATH=/usr/local/bin:/usr/bin",
        "LANG=C.UTF-8",
        "BIND_ADDRESS=0.0.0.0",
        "PYTHONUNBUFFERED=1",
    ]
    assert config["config"]["Cmd"] == ["python", "app.py"]
    assert config["config"]["WorkingDir"] == "/app"
    assert config["config"]["ExposedPorts"] == {"8080/tcp": {}}
    app_layer = gzip.decompress(_blob(out, manifest["layers"][1]["digest"]))
    assert config["rootfs"]["diff_ids"][1] == "sha256:" + hashlib.sha256(app_layer).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(app_layer)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert {"app/app.py", "app/index.html", "app/Procfile"} <= set(members)
    assert all(m.mtime == 0 and m.uid == 0 for m in members.values())
    # Unchanged: nothing is built again.
    assert main([*args, "-q"]) == 0
    assert "(unchanged," in capsys.readouterr().out


def test_the_same_source_gives_the_same_image(tmp_path: Path, base: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(FRONTEND, app)
    first = build_image(app, "frontend", tmp_path / "a", base)
    again = build_image(app, "frontend", tmp_path / "b", base)
    assert (first.ref, first.manifest_digest) == (again.ref, again.manifest_digest)
    (app / "app.py").write_text((app / "app.py").read_text() + "\n# changed\n")
    changed = build_image(app, "frontend", tmp_path / "a", base)
    assert changed.ref != first.ref and changed.manifest_digest != first.manifest_digest
    refs = [
        m["annotations"]["org.opencontainers.image.ref.name"]
        for m in json.loads((tmp_path / "a" / "index.json").read_text())["manifests"]
    ]
    assert refs == [first.ref, changed.ref]


def test_what_needs_a_container_runtime_is_refused_with_the_line() -> None:
    with pytest.raises(ImageBuildError) as err:
        parse_dockerfile(
            "FROM python:3.12-slim\nWORKDIR /app\nRUN apt-get update && pip install flask\n",
            "Dockerfile",
        )
    assert str(err.value).startswith(
        "Dockerfile:3: RUN apt-get update && pip install flask: only `RUN pip install` "
        "(requirements, -r FILE) is built without a container runtime (buildah or podman)"
    )
    with pytest.raises(ImageBuildError, match=r"pip's --index-url is not supported"):
        parse_dockerfile("FROM x\nRUN pip install --index-url U flask\n", "Dockerfile")
    with pytest.raises(ImageBuildError, match=r"Dockerfile:2: RUN pip install \.: \.: a local"):
        parse_dockerfile("FROM x\nRUN pip install .\n", "Dockerfile")
    with pytest.raises(
        ImageBuildError, match=r"Dockerfile:2: COPY src/ \*.py /app/: only `COPY \. DEST`"
    ):
        parse_dockerfile("FROM python:3.12-slim\nCOPY src/ *.py /app/\n", "Dockerfile")
    recipe = parse_dockerfile(
        'FROM python:3.12-slim\nWORKDIR /srv\nCOPY . .\nENV A=1 B="two words"\nUSER 1000\n'
        "ENTRYPOINT python -m app\n",
        "Dockerfile",
    )
    assert (recipe.workdir, recipe.env, recipe.user) == (
        "/srv",
        {"A": "1", "B": "two words"},
        "1000",
    )
    assert recipe.entrypoint == ["/bin/sh", "-c", "python -m app"]


def test_a_missing_base_says_how_to_get_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", str(FRONTEND), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "the base image python:3.12-slim is needed: give --base DIR" in err
    assert "skopeo copy docker://python:3.12-slim oci:DIR:3.12-slim" in err
    assert main(["build", "no/such-image", "-o", str(tmp_path / "out")]) == 1
    assert "no build.artifacts entry names it" in capsys.readouterr().err


def test_an_image_name_builds_under_the_name_export_gives_it(
    tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "images"
    image = "wonderland/conference-frontend"
    args = [
        "build",
        image,
        "-o",
        str(out),
        "--base",
        str(base),
        "--registry",
        "localhost:5001",
        "-q",
    ]
    assert main(args) == 0
    ref = capsys.readouterr().out.split()[0]
    exported = ROOT / "examples" / "conference" / "cluster" / "serving" / "service-frontend.yaml"
    assert f"image: {ref}\n" in exported.read_text()


def test_a_tar_output_is_an_oci_archive_built_onto_again(
    tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "images.tar"
    args = ["build", str(FRONTEND), "-o", str(archive), "--base", str(base), "-q"]
    assert main(args) == 0
    first = archive.read_bytes()
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    assert "oci-layout" in names and len(index["manifests"]) == 1
    assert main(args) == 0
    assert "(unchanged," in capsys.readouterr().out.splitlines()[-1]
    assert archive.read_bytes() == first


class _Registry:
    """An OCI Distribution registry in memory (no registry runs here): blobs by digest,
    manifests by tag and digest, the upload flow of ``POST`` then ``PUT ?digest=``."""

    def __init__(self, challenge: str | None = None) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}
        self.puts = 0
        self.challenge = challenge

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.challenge:
            return httpx.Response(
                401,
                headers={"WWW-Authenticate": self.challenge},
                json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            )
        path, method = request.url.path, request.method
        if "/blobs/uploads/" in path and method == "POST":
            return httpx.Response(202, headers={"Location": "/upload/1"})
        if path.startswith("/upload/") and method == "PUT":
            data = request.read()
            digest = request.url.params["digest"]
            assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
            self.blobs[digest] = data
            self.puts += 1
            return httpx.Response(201)
        if "/blobs/" in path and method == "HEAD":
            return httpx.Response(200 if path.rsplit("/", 1)[-1] in self.blobs else 404)
        if "/manifests/" in path and method == "PUT":
            data = request.read()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            self.manifests[path.rsplit("/", 1)[-1]] = self.manifests[digest] = data
            return httpx.Response(201, headers={"Docker-Content-Digest": digest})
        return httpx.Response(404)


def test_a_pushed_image_reads_back_by_digest(tmp_path: Path, base: Path) -> None:
    built = build_image(FRONTEND, "frontend", tmp_path / "images", base, "localhost:5001")
    registry = _Registry()
    pushed = push_image(tmp_path / "images", built.ref, httpx.MockTransport(registry))
    assert pushed.digest == built.manifest_digest
    assert (pushed.uploaded, pushed.skipped) == (3, 0)  # two layers and the config
    manifest = json.loads(registry.manifests[built.manifest_digest])
    assert registry.manifests[built.ref.rsplit(":", 1)[1]] == registry.manifests[pushed.digest]
    config = json.loads(registry.blobs[manifest["config"]["digest"]])
    assert config["config"]["Cmd"] == ["python", "app.py"]
    again = push_image(tmp_path / "images", built.ref, httpx.MockTransport(registry))
    assert (again.uploaded, again.skipped, registry.puts) == (0, 3, 3)


def test_a_registry_that_wants_credentials_is_a_clear_error(
    tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "no-auth.json"))
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    built = build_image(FRONTEND, "frontend", tmp_path / "images", base, "registry.example")
    registry = _Registry(challenge='Basic realm="registry"')
    with pytest.raises(ImageBuildError) as err:
        push_image(tmp_path / "images", built.ref, httpx.MockTransport(registry))
    assert str(err.value).startswith("the registry registry.example refused the push of frontend:")
    assert "(HTTP 401: authentication required); it wants credentials: log in first" in (
        str(err.value)
    )


def test_push_needs_a_registry_that_answers(
    tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["build", str(FRONTEND), "-o", str(tmp_path / "o"), "--base", str(base), "--push"]
    assert main(args) == 1
    assert "--push needs --registry REG" in capsys.readouterr().err
    no_push = [a for a in args if a != "--push"]
    assert main([*no_push, "--registry", "localhost:5001", "--creds", "u:p"]) == 1
    assert "--creds is for --push and a --base from a registry: add --push" in (
        capsys.readouterr().err
    )
    assert main([*args, "--registry", f"localhost:{port}"]) == 1
    err = capsys.readouterr().err
    assert f"push to http://localhost:{port} failed" in err
    assert "is the registry running there?" in err


def test_a_base_in_a_registry_is_told_from_a_folder() -> None:
    from wonderland.export.pull import looks_like_image

    assert looks_like_image("registry.example/python:3.12-slim")
    assert looks_like_image("127.0.0.1:5000/team/base@sha256:" + "0" * 64)
    assert looks_like_image("localhost/base:1")
    assert not looks_like_image("base")  # a folder
    assert not looks_like_image("images/base")  # a folder: no registry host
    assert not looks_like_image("registry.example/python")  # no tag: a folder name
