"""`wonderland build`: dependency layers, the model server's image, ksvc/NAME and --all
targets, and .dockerignore. pip runs for real, offline, on wheels built here."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support.wheels import make_wheel, server_wheel

from wonderland import __version__
from wonderland.cli import main
from wonderland.export.sources import source_digest, source_files

ROOT = Path(__file__).resolve().parents[2]
CONFERENCE = ROOT / "examples" / "conference"
RUNTIME = CONFERENCE / "cluster" / "kserve" / "clusterservingruntime-wonderland-model-server.yaml"


def _json(layout: Path, digest: str) -> Any:
    return json.loads((layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes())


def _image(layout: Path, ref: str) -> tuple[dict[str, Any], dict[str, Any]]:
    index = json.loads((layout / "index.json").read_text())
    (entry,) = [
        m
        for m in index["manifests"]
        if m["annotations"]["org.opencontainers.image.ref.name"] == ref
    ]
    manifest = _json(layout, entry["digest"])
    return manifest, _json(layout, manifest["config"]["digest"])


def _members(layout: Path, layer: dict[str, Any]) -> dict[str, bytes]:
    blob = (layout / "blobs" / "sha256" / layer["digest"].removeprefix("sha256:")).read_bytes()
    out = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            out[member.name] = handle.read() if handle else b""
    return out


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    make_wheel(folder, "tinypkg", "1.0", script="tinypkg")
    make_wheel(folder, "otherpkg", "2.0")
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One layer cache for the module: the same wheels give the same layers, so a layer
    that one test made is taken from the cache by the next (pip runs once for it)."""
    return tmp_path_factory.mktemp("layers")


def _app(tmp_path: Path, requirements: str) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "Procfile").write_text("web: tinypkg\n")
    (app / "app.py").write_text("print('hello')\n")
    (app / "requirements.txt").write_text(requirements)
    return app


@pytest.mark.slow
def test_requirements_become_a_layer_that_an_unchanged_file_takes_from_the_cache(
    tmp_path: Path, base: Path, wheels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _app(tmp_path, "# what the app needs\ntinypkg==1.0\n")
    out, cache = tmp_path / "images", tmp_path / "cache"
    args = ["build", str(app), "-o", str(out), "--base", str(base), "--cache", str(cache)]
    pip = ["--find-links", str(wheels), "--no-index"]
    assert main([*args, *pip]) == 0
    captured = capsys.readouterr()
    assert "requirements.txt: pip install --target (1 requirement(s), Python 3.12" in (captured.err)
    ref = captured.out.split()[0]
    assert "(built, 3 layer(s)" in captured.out
    manifest, config = _image(out, ref)
    deps = _members(out, manifest["layers"][1])
    assert b"VERSION = '1.0'" in deps["opt/python/site-packages/tinypkg/__init__.py"]
    script = deps["opt/python/bin/tinypkg"]
    assert script.startswith(b"#!/usr/bin/env python3\n") and b".venv" not in script
    env = dict(item.split("=", 1) for item in config["config"]["Env"])
    assert env["PYTHONPATH"] == "/opt/python/site-packages"
    assert env["PATH"] == "/opt/python/bin:/usr/local/bin:/usr/bin"
    assert config["config"]["Cmd"] == ["/bin/sh", "-c", "tinypkg"]
    assert [h["created_by"] for h in config["history"]] == [
        "pip install --target /opt/python (" + ref + " requirements.txt)",
        "wonderland build (the app folder)",
    ]
    # The source changes, the requirements do not: the layer comes from the cache (pip
    # would fail now: its wheels are gone).
    shutil.rmtree(wheels)
    (app / "app.py").write_text("print('changed')\n")
    assert main([*args, *pip]) == 0
    captured = capsys.readouterr()
    assert "requirements.txt: cached layer" in captured.err
    changed = captured.out.split()[0]
    assert changed != ref
    assert _image(out, changed)[0]["layers"][1] == manifest["layers"][1]
    # A requirement pip cannot find: what pip said and what to do.
    (app / "requirements.txt").write_text("nosuchpkg==9\n")
    assert main([*args, *pip]) == 1
    err = capsys.readouterr().err
    assert "pip could not install the dependencies for Python 3.12 on linux/amd64" in err
    assert "nosuchpkg" in err and "--find-links DIR" in err


def test_a_dockerfile_that_pip_installs_its_requirements_gets_their_layer(
    tmp_path: Path, base: Path, wheels: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _app(tmp_path, "tinypkg==1.0\n")
    (app / "Dockerfile").write_text(
        "FROM python:3.12-slim\nWORKDIR /srv\nCOPY requirements.txt /tmp/\n"
        "RUN python -m pip install --upgrade pip && \\\n"
        "    pip install --no-cache-dir -r /tmp/requirements.txt otherpkg\n"
        'COPY . .\nCMD ["tinypkg"]\n'
    )
    out = tmp_path / "images"
    args = ["build", str(app), "-o", str(out), "--base", str(base), "--cache", str(cache)]
    pip = ["--find-links", str(wheels), "--no-index"]
    assert main([*args, *pip]) == 0
    captured = capsys.readouterr()
    assert "not installed" not in captured.err
    ref = captured.out.split()[0]
    manifest, config = _image(out, ref)
    assert len(manifest["layers"]) == 3
    deps = _members(out, manifest["layers"][1])
    assert "opt/python/site-packages/tinypkg/__init__.py" in deps
    assert "opt/python/site-packages/otherpkg/__init__.py" in deps
    files = _members(out, manifest["layers"][2])
    assert files["tmp/requirements.txt"] == b"tinypkg==1.0\n" and "srv/app.py" in files
    env = dict(item.split("=", 1) for item in config["config"]["Env"])
    assert env["PYTHONPATH"] == "/opt/python/site-packages"
    assert env["PATH"].startswith("/opt/python/bin:")
    # Any other RUN, and a requirements file the Dockerfile did not copy: the line.
    dockerfile = app / "Dockerfile"
    dockerfile.write_text("FROM python:3.12-slim\nRUN apt-get install -y gcc\n")
    assert main([*args, *pip]) == 1
    err = capsys.readouterr().err
    assert "Dockerfile:2: RUN apt-get install -y gcc: only `RUN pip install`" in err
    dockerfile.write_text("FROM python:3.12-slim\nWORKDIR /x\nRUN pip install -r req.txt\n")
    assert main([*args, *pip]) == 1
    err = capsys.readouterr().err
    assert "Dockerfile:3: RUN pip install -r req.txt: /x/req.txt is not a file the " in err
    assert "COPY it first" in err
    # With no RUN pip install, the requirements are not installed, and the build says so.
    dockerfile.write_text("FROM python:3.12-slim\nCOPY . /app\nCMD python app.py\n")
    assert main([*args, *pip]) == 0
    assert "requirements.txt is not installed: the Dockerfile has no `RUN pip" in (
        capsys.readouterr().err
    )


def test_a_local_path_in_requirements_is_refused_with_what_to_do(
    tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _app(tmp_path, "-e ../lib\n")
    assert main(["build", str(app), "-o", str(tmp_path / "o"), "--base", str(base)]) == 1
    err = capsys.readouterr().err
    assert "requirements.txt: -e ../lib: a local path is not built into a dependency layer" in err
    assert "pip wheel PATH -w wheels/" in err


@pytest.mark.slow
def test_the_model_server_image_is_the_one_the_export_names(
    tmp_path: Path, base: Path, wheels: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = server_wheel(wheels)
    out = tmp_path / "images"
    args = [
        "build",
        "--model-server",
        "--extras",
        "sklearn",
        "--wheel",
        str(wheel),
        "--registry",
        "localhost:5001",
        "-o",
        str(out),
        "--base",
        str(base),
        "--cache",
        str(cache),
        "--find-links",
        str(wheels),
        "--no-index",
    ]
    assert main(args) == 0
    ref = capsys.readouterr().out.split()[0]
    runtime = yaml.safe_load(RUNTIME.read_text())
    (container,) = runtime["spec"]["containers"]
    assert ref == container["image"] == f"localhost:5001/model-server:{__version__}-sklearn"
    manifest, config = _image(out, ref)
    assert len(manifest["layers"]) == 3
    deps = _members(out, manifest["layers"][1])
    assert {
        "opt/python/site-packages/tinypkg/__init__.py",
        "opt/python/site-packages/otherpkg/__init__.py",
    } <= set(deps)
    package = _members(out, manifest["layers"][2])
    assert "opt/python/site-packages/wonderland/__init__.py" in package
    assert package["opt/python/bin/wonderland"].startswith(b"#!/usr/bin/env python3\n")
    assert not any(name.startswith("opt/python/site-packages/tinypkg") for name in package)
    image = config["config"]
    # KServe's contract: the runtime's command and args run the server on these ports.
    assert image["Entrypoint"] == container["command"] == ["wonderland", "serve"]
    assert "--model_dir=/mnt/models" in image["Cmd"] and "--http_port=8080" in image["Cmd"]
    assert image["ExposedPorts"] == {"8080/tcp": {}, "8081/tcp": {}}
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert {"--http_port=8080", "--grpc_port=8081", "--model_dir=/mnt/models"} <= set(
        container["args"]
    )
    # runAsNonRoot needs a numeric user in the image.
    assert image["User"] == "1000" and container["securityContext"]["runAsNonRoot"] is True
    assert image["Labels"]["dev.wonderland.extras"] == "sklearn"
    assert main(args) == 0
    assert "(unchanged," in capsys.readouterr().out
    # An extra that does not exist is named with the ones that do.
    assert main([*args[:3], "gpu", *args[4:]]) == 1
    assert "--extras gpu: no extra gpu; the extras are: all, huggingface" in (
        capsys.readouterr().err
    )


def test_ksvc_and_all_build_what_the_manifests_name(
    tmp_path: Path,
    base: Path,
    wheels: Path,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "images"
    common = ["-o", str(out), "--base", str(base), "--registry", "localhost:5001", "-q"]
    assert main(["build", "ksvc/frontend", "-f", str(CONFERENCE), *common]) == 0
    (ref,) = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    exported = (CONFERENCE / "cluster" / "serving" / "service-frontend.yaml").read_text()
    assert f"image: {ref}\n" in exported
    assert main(["build", "ksvc/nosuch", "-f", str(CONFERENCE), *common]) == 1
    assert "ksvc/nosuch: no Service named nosuch in the manifests read" in (capsys.readouterr().err)
    pip = ["--find-links", str(wheels), "--no-index", "--cache", str(cache)]
    wheel = ["--wheel", str(server_wheel(wheels))]
    assert main(["build", "--all", "-f", str(CONFERENCE), *common, *pip, *wheel]) == 0
    refs = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    # Every image the export names: the four apps and the model server (sklearn-iris has
    # no runtime; its format's extra goes into the image).
    cluster = "\n".join(p.read_text() for p in (CONFERENCE / "cluster").rglob("*.yaml"))
    named = {line.split("image: ")[1] for line in cluster.splitlines() if "image: " in line}
    assert set(refs) == named and len(refs) == 5
    # isvc/NAME: the model server that serves it, unchanged now.
    assert main(["build", "isvc/sklearn-iris", "-f", str(CONFERENCE), *common, *pip, *wheel]) == 0
    assert capsys.readouterr().out.startswith(f"localhost:5001/model-server:{__version__}-sklearn ")
    _, config = _image(out, f"localhost:5001/model-server:{__version__}-sklearn")
    assert config["config"]["Labels"]["dev.wonderland.extras"] == "sklearn"


def test_dockerignore_leaves_files_out_of_the_image_and_its_digest(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "data" / "keep").mkdir(parents=True)
    (app / "notes").mkdir()
    for rel in ("app.py", "secret.env", "data/big.bin", "data/keep/small.txt", "notes/a.md"):
        (app / rel).write_text(rel)
    before = source_digest(app)
    (app / ".dockerignore").write_text(
        "# comments and blank lines are skipped\n\n*.env\ndata\n!data/keep\n**/*.md\n"
    )
    names = [p.relative_to(app).as_posix() for p in source_files(app)]
    assert names == [".dockerignore", "app.py", "data/keep/small.txt"]
    digest = source_digest(app)
    assert digest != before
    (app / "secret.env").write_text("changed")
    (app / "notes" / "a.md").write_text("changed")
    assert source_digest(app) == digest
    (app / "app.py").write_text("changed")
    assert source_digest(app) != digest


def test_func_name_builds_the_function_under_the_name_export_gives_it(
    tmp_path: Path,
    base: Path,
    wheels: Path,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from wonderland.export import PROFILES, SourceObject, export_objects
    from wonderland.export.sources import function_images
    from wonderland.export.targets import plan_builds

    monkeypatch.chdir(tmp_path)
    assert main(["func", "create", "hello"]) == 0
    folder = tmp_path / "hello"
    (folder / "pyproject.toml").write_text('[project]\nname = "f"\ndependencies = ["tinypkg"]\n')
    (folder / ".func" / "wonderland").mkdir(parents=True)  # the local build: not the source
    (folder / ".func" / "wonderland" / "x").write_text("local")
    capsys.readouterr()
    pip = ["--find-links", str(wheels), "--no-index", "--cache", str(cache)]
    wheel = ["--wheel", str(server_wheel(wheels))]
    args = ["build", "func", "hello", "-o", str(tmp_path / "images"), "--base", str(base)]
    assert main([*args, "--registry", "localhost:5001", *pip, *wheel]) == 0
    ref = capsys.readouterr().out.split()[0]
    manifest, config = _image(tmp_path / "images", ref)
    # base, the package's dependencies, the package, the function's requirements, its folder
    assert len(manifest["layers"]) == 5
    assert "opt/python/site-packages/tinypkg/__init__.py" in _members(
        tmp_path / "images", manifest["layers"][3]
    )
    files = _members(tmp_path / "images", manifest["layers"][4])
    assert "function/func.yaml" in files and not any(".func" in name for name in files)
    image = config["config"]
    assert image["Entrypoint"] == ["python", "-m", "wonderland.functions.host", "/function"]
    assert "LISTEN_ADDRESS=0.0.0.0:8080" in image["Env"] and image["User"] == "1000"
    # The Service `func deploy` makes here runs the host from this machine's environment;
    # the export names the image this build made and drops the local command.
    service = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": "hello",
            "annotations": {"function.knative.dev/source": str(folder)},
        },
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "image": "dev.local/hello:latest",
                            "command": ["/home/u/.func/bin/python", "-m", "x"],
                            "args": ["--invoke", "http", str(folder)],
                            "workingDir": str(folder),
                        }
                    ]
                }
            }
        },
    }
    tree = export_objects(
        [SourceObject(service, "the platform")],
        PROFILES["cluster"],
        function_images([service]),
        "localhost:5001",
    )
    (path,) = [p for p in tree.manifests if "service-hello" in p]
    (container,) = yaml.safe_load(tree.files[path])["spec"]["template"]["spec"]["containers"]
    assert container == {"image": ref}
    assert "`wonderland build func hello` from" in tree.files["EXPORT-NOTES.md"]
    # --all on the platform's objects builds it as a function, not as an app folder.
    plan = plan_builds([SourceObject(service, "the platform")], [], [tmp_path], everything=True)
    assert (plan.functions, plan.apps) == ([(folder, "hello")], [])
    assert main(["build", "func", "nosuch", "-o", str(tmp_path / "images")]) == 1
    assert "func nosuch: no func.yaml named nosuch under" in capsys.readouterr().err
