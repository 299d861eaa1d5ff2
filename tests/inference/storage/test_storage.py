"""storageUri schemes: local, file://, pvc://, http(s):// (file and archive), s3:// against
a moto server started here, hf:// from a local cache, models:/ needing a tracking server."""

from __future__ import annotations

import functools
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _support.daemon import free_port
from _support.servers import moto_endpoint, s3_bucket

from wonderland.inference.storage import ALLOW_REMOTE_PICKLE, StorageContext, StorageError, fetch

# These tests are about transport and caching; the pickle guard has tests of its own.
TRUSTED = {ALLOW_REMOTE_PICKLE: "true"}


@pytest.fixture
def ctx(tmp_path: Path) -> StorageContext:
    return StorageContext(
        state_dir=tmp_path / "state", namespace="team-a", env={}, annotations=TRUSTED
    )


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A static file server on loopback; yields (base url, its folder, request log)."""
    root = tmp_path / "www"
    root.mkdir()
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            seen.append(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}")

    handler = functools.partial(Handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, seen
    finally:
        server.shutdown()
        server.server_close()


def test_local_path_and_file_uri_are_used_in_place(tmp_path: Path, ctx: StorageContext) -> None:
    model = tmp_path / "iris"
    model.mkdir()
    (model / "model.joblib").write_bytes(b"x")
    assert fetch(str(model), ctx) == model
    assert fetch(f"file://{model}", ctx) == model
    with pytest.raises(StorageError, match="does not exist"):
        fetch(f"file://{tmp_path}/nope", ctx)


def test_pvc_maps_to_a_volume_folder_of_the_namespace(ctx: StorageContext) -> None:
    with pytest.raises(StorageError, match="no volume for PersistentVolumeClaim 'models'"):
        fetch("pvc://models/iris", ctx)
    folder = ctx.state_dir / "volumes" / "team-a" / "models" / "iris"
    folder.mkdir(parents=True)
    (folder / "model.joblib").write_bytes(b"x")
    assert fetch("pvc://models/iris", ctx) == folder
    with pytest.raises(StorageError, match="does not exist"):
        fetch("pvc://models/other", ctx)
    with pytest.raises(StorageError, match="leaves"):
        fetch("pvc://models/../../../etc", ctx)


def test_http_single_file_is_cached_and_revalidated(
    web: tuple[str, Path, list[str]], ctx: StorageContext
) -> None:
    base, root, seen = web
    (root / "model.bst").write_bytes(b"booster" * 1000)
    calls: list[tuple[int, int | None]] = []
    ctx2 = StorageContext(ctx.state_dir, env={}, progress=lambda _u, d, t: calls.append((d, t)))
    first = fetch(f"{base}/model.bst", ctx2)
    assert (first / "model.bst").read_bytes() == b"booster" * 1000
    assert calls and calls[-1] == (7000, 7000)
    second = fetch(f"{base}/model.bst", ctx)
    assert second == first
    assert any(" 304" in line for line in seen), seen  # revalidated, not downloaded again


def test_http_archive_is_unpacked(web: tuple[str, Path, list[str]], ctx: StorageContext) -> None:
    base, root, _ = web
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"weights"
        info = tarfile.TarInfo("model/model.onnx")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (root / "model.tar.gz").write_bytes(buf.getvalue())
    path = fetch(f"{base}/model.tar.gz", ctx)
    assert (path / "model" / "model.onnx").read_bytes() == b"weights"


def test_http_errors_say_what_happened(
    web: tuple[str, Path, list[str]], ctx: StorageContext
) -> None:
    base, _, _ = web
    with pytest.raises(StorageError, match="answered 404"):
        fetch(f"{base}/missing.joblib", ctx)
    with pytest.raises(StorageError, match="cannot download"):
        fetch(f"http://127.0.0.1:{free_port()}/model.joblib", ctx)


def test_unreachable_server_falls_back_to_the_cached_copy(ctx: StorageContext) -> None:
    root = ctx.state_dir.parent / "www2"
    root.mkdir()
    (root / "m.txt").write_text("tree")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    uri = f"http://127.0.0.1:{server.server_address[1]}/m.txt"
    try:
        first = fetch(uri, ctx)
    finally:
        server.shutdown()
        server.server_close()
    assert fetch(uri, ctx) == first


def test_registry_uris_need_a_tracking_server(ctx: StorageContext) -> None:
    with pytest.raises(StorageError, match="MLFLOW_TRACKING_URI is not set"):
        fetch("models:/iris/1", ctx)
    with pytest.raises(StorageError, match="cluster's storage initializer"):
        fetch("gs://bucket/model", ctx)
    with pytest.raises(StorageError, match="unknown scheme 'ftp'"):
        fetch("ftp://host/model", ctx)


def test_hf_from_the_local_cache_only(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    ctx = StorageContext(tmp_path / "state", env={"HF_HUB_CACHE": str(cache)})
    with pytest.raises(StorageError, match="huggingface-cli download org/tiny"):
        fetch("hf://org/tiny", ctx)
    repo = cache / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    assert fetch("hf://org/tiny", ctx) == snap
    assert fetch("hf://org/tiny:abc123", ctx) == snap
    with pytest.raises(StorageError, match="revision 'v2'"):
        fetch("hf://org/tiny:v2", ctx)


# -- S3 against moto in server mode --------------------------------------------------------


s3_endpoint = pytest.fixture(scope="module")(moto_endpoint)
_bucket = s3_bucket


AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


def test_s3_prefix_downloads_once_through_the_kserve_annotations(
    s3_endpoint: str, tmp_path: Path
) -> None:
    _bucket(
        s3_endpoint,
        "models",
        {"iris/v1/model.joblib": b"abc" * 100, "iris/v1/meta/x.json": b"{}", "iris/v10/n": b"n"},
    )
    host = s3_endpoint.removeprefix("http://")
    annotations = {
        "serving.kserve.io/s3-endpoint": host,
        "serving.kserve.io/s3-usehttps": "0",
        "serving.kserve.io/s3-region": "us-east-1",
        **TRUSTED,
    }
    ctx = StorageContext(tmp_path / "state", annotations=annotations, env=AWS_ENV)
    path = fetch("s3://models/iris/v1", ctx)
    assert (path / "model.joblib").read_bytes() == b"abc" * 100
    assert (path / "meta" / "x.json").read_bytes() == b"{}"
    assert not (path / "n").exists()  # iris/v10 is not under iris/v1
    marker = path / "model.joblib"
    mtime = marker.stat().st_mtime_ns
    assert fetch("s3://models/iris/v1", ctx) == path
    assert marker.stat().st_mtime_ns == mtime  # served from the cache


def test_s3_single_object_with_env_endpoint(s3_endpoint: str, tmp_path: Path) -> None:
    _bucket(s3_endpoint, "single", {"xgb/model.bst": b"xgb"})
    ctx = StorageContext(tmp_path / "state", env={**AWS_ENV, "AWS_ENDPOINT_URL": s3_endpoint})
    path = fetch("s3://single/xgb/model.bst", ctx)
    assert (path / "model.bst").read_bytes() == b"xgb"


def test_s3_errors_name_the_bucket_and_the_endpoint(s3_endpoint: str, tmp_path: Path) -> None:
    ctx = StorageContext(tmp_path / "state", env={**AWS_ENV, "AWS_ENDPOINT_URL": s3_endpoint})
    with pytest.raises(StorageError, match="NoSuchBucket"):
        fetch("s3://absent-bucket/model", ctx)
    _bucket(s3_endpoint, "empty", {})
    with pytest.raises(StorageError, match="no objects under s3://empty/model"):
        fetch("s3://empty/model", ctx)
    dead = f"http://127.0.0.1:{free_port()}"
    ctx = StorageContext(tmp_path / "state", env={**AWS_ENV, "AWS_ENDPOINT_URL": dead})
    with pytest.raises(StorageError, match="cannot reach S3"):
        fetch("s3://models/iris", ctx)


def test_cli_pull_prints_the_cached_folder(
    web: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    base, root, _ = web
    (root / "model.joblib").write_bytes(b"m" * 5000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
    env["WONDERLAND_HOME"] = str(tmp_path / "home")
    cmd = [sys.executable, "-m", "wonderland", "storage", "pull"]
    refused = subprocess.run(
        [*cmd, f"{base}/model.joblib"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert f"{ALLOW_REMOTE_PICKLE}" in refused.stderr
    out = subprocess.run(
        [*cmd, "--annotation", f"{ALLOW_REMOTE_PICKLE}=true", f"{base}/model.joblib"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    folder = Path(out.stdout.strip().splitlines()[-1])
    assert folder.is_relative_to(tmp_path / "home")
    assert (folder / "model.joblib").read_bytes() == b"m" * 5000
    bad = subprocess.run(
        [*cmd, "models:/iris/1"],
        env={k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert "MLFLOW_TRACKING_URI is not set" in bad.stderr


def test_errors_never_show_credentials(ctx: StorageContext) -> None:
    port = free_port()
    uri = f"http://user:s3cr3t@127.0.0.1:{port}/model.joblib?X-Amz-Signature=t0k3n"
    with pytest.raises(StorageError) as err:
        fetch(uri, ctx)
    text = str(err.value)
    assert "s3cr3t" not in text and "t0k3n" not in text
    assert f"127.0.0.1:{port}/model.joblib" in text


@pytest.mark.parametrize("name", ["model.joblib", "model.pkl", "model.pt"])
def test_a_remote_pickle_is_refused_unless_the_owner_opts_in(
    web: tuple[str, Path, list[str]], tmp_path: Path, name: str
) -> None:
    base, root, _ = web
    (root / name).write_bytes(b"pickled")
    ctx = StorageContext(tmp_path / "state", env={})
    with pytest.raises(StorageError, match=f"{name} is a pickle.*{ALLOW_REMOTE_PICKLE}"):
        fetch(f"{base}/{name}", ctx)
    trusted = StorageContext(tmp_path / "state", env={}, annotations=TRUSTED)
    assert (fetch(f"{base}/{name}", trusted) / name).read_bytes() == b"pickled"


def test_a_remote_model_in_a_safe_format_needs_no_opt_in(
    web: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    base, root, _ = web
    (root / "model.onnx").write_bytes(b"onnx")
    ctx = StorageContext(tmp_path / "state", env={})
    assert (fetch(f"{base}/model.onnx", ctx) / "model.onnx").read_bytes() == b"onnx"


def test_a_local_pickle_needs_no_opt_in(tmp_path: Path) -> None:
    folder = tmp_path / "iris"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(b"x")
    ctx = StorageContext(tmp_path / "state", env={})
    assert fetch(str(folder), ctx) == folder
