"""The dataset and model initializers as a TrainJob's pods run them: a real
``python -m wonderland.training.initializers`` process per case, fed by a Hugging Face
cache laid out here as huggingface_hub lays it out, a moto S3 server, a loopback HTTP
server, local folders and a PersistentVolumeClaim's folder in the state directory."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import signal
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from _support.servers import moto_endpoint, s3_bucket

# Each test runs the initializer program as a process, as a TrainJob's initializer does.
pytestmark = pytest.mark.e2e

PROGRAM = [sys.executable, "-m", "wonderland.training.initializers"]
# The variables upstream's initializers read, and what else steers where files come from:
# none may leak in from the environment the tests run in.
_OWN_VARS = (
    "STORAGE_URI",
    "IGNORE_PATTERNS",
    "ACCESS_TOKEN",
    "ENDPOINT",
    "ACCESS_KEY_ID",
    "SECRET_ACCESS_KEY",
    "REGION",
    "ROLE_ARN",
    "POD_NAMESPACE",
)
_OWN_PREFIXES = ("WONDERLAND_", "HF_", "HUGGINGFACE_", "AWS_", "XDG_CACHE_HOME")


def run(
    kind: str,
    dest: Path | None,
    env: Mapping[str, str],
    *,
    home: Path,
    args: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """One initializer process, as the kubelet starts it (plus --dest)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in _OWN_VARS and not k.startswith(_OWN_PREFIXES)
    }
    base.update(
        HOME=str(home),
        # no instance metadata service to wait for, no ~/.aws of the machine
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        WONDERLAND_HOME=str(home / "state"),
    )
    base.update(env)
    cmd = [*PROGRAM, kind, *args]
    if dest is not None:
        cmd += ["--dest", str(dest)]
    return subprocess.run(cmd, env=base, capture_output=True, text=True, timeout=60, check=False)


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` by its ``/``-separated path; none may be a symlink."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        assert not path.is_symlink(), f"{path} is a symlink into the source"
        if path.is_file():
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def leftovers(folder: Path) -> list[str]:
    """Staging or swapped-out folders an initializer left next to its destination."""
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def hf_cache_repo(
    cache: Path,
    repo_type: str,
    repo: str,
    files: Mapping[str, bytes],
    *,
    commit: str = "0" * 40,
    ref: str = "main",
) -> Path:
    """A repository as huggingface_hub caches it: blobs by digest, a snapshot per commit of
    relative symlinks into them, refs/<branch> holding the commit. Returns the snapshot."""
    folder = cache / f"{repo_type}s--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / ref).write_text(commit)
    snapshot = folder / "snapshots" / commit
    for rel, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


# -- hf:// from the local cache -----------------------------------------------------------


def test_hf_dataset_is_copied_from_the_cache_without_ignored_files(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    hf_cache_repo(
        cache,
        "dataset",
        "org/reviews",
        {
            "train.csv": b"text,label\ngood,1\n",
            "data/test-00000-of-00001.parquet": b"PAR1",
            "README.md": b"# reviews",
            ".gitattributes": b"*.parquet filter=lfs",
        },
    )
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    stale = workspace / ".dataset.partial-999999999-abcdef"  # a killed run's staging
    (stale / "half").mkdir(parents=True)
    proc = run(
        "dataset",
        workspace / "dataset",
        {
            "STORAGE_URI": "hf://org/reviews",
            "HF_HUB_CACHE": str(cache),
            "IGNORE_PATTERNS": "*.md, .gitattributes",
        },
        home=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert tree(workspace / "dataset") == {
        "train.csv": b"text,label\ngood,1\n",
        "data/test-00000-of-00001.parquet": b"PAR1",
    }
    assert leftovers(workspace) == []
    assert "Starting dataset initialization" in proc.stderr
    assert "Downloading dataset: org/reviews" in proc.stderr
    assert "Skipping ignored file: README.md" in proc.stderr
    assert f"Dataset has been downloaded: 2 files, 22 bytes in {workspace / 'dataset'}" in (
        last_line(proc)
    )


def test_hf_model_keeps_upstreams_allow_list_and_a_second_run_replaces_the_first(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "hub"
    files = {
        "config.json": b"{}",
        "model.safetensors": b"weights",
        "tokenizer.model": b"spm",
        "merges.txt": b"a b",
        "sub/generation_config.json": b"{}",
        "pytorch_model.bin": b"pickled",
        "flax_model.msgpack": b"flax",
        "README.md": b"card",
        "onnx/model.onnx": b"onnx",
    }
    hf_cache_repo(cache, "model", "org/tiny", files)
    dest = tmp_path / "workspace" / "model"
    env = {"STORAGE_URI": "hf://org/tiny", "HF_HOME": str(tmp_path)}  # HF_HOME/hub
    proc = run("model", dest, env, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(tree(dest)) == [
        "config.json",
        "merges.txt",
        "model.safetensors",
        "sub/generation_config.json",
        "tokenizer.model",
    ]
    assert "Starting pre-trained model initialization" in proc.stderr
    assert "Left out 4 files that the model allow patterns" in proc.stderr

    # IGNORE_PATTERNS narrows it further; the new tree replaces the old one whole
    proc = run("model", dest, {**env, "IGNORE_PATTERNS": "tokenizer.*,sub/"}, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(tree(dest)) == ["config.json", "merges.txt", "model.safetensors"]
    assert leftovers(dest.parent) == []

    # a revision is a branch or tag in refs/, or a commit
    hf_cache_repo(
        cache, "model", "org/tiny", {"config.json": b'{"v": 2}'}, commit="1" * 40, ref="v2"
    )
    proc = run("model", dest, {**env, "STORAGE_URI": "hf://org/tiny:v2"}, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert tree(dest) == {"config.json": b'{"v": 2}'}
    assert f"commit {'1' * 40}" in proc.stderr


def test_hf_repo_absent_from_the_cache_says_what_to_run(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    dest = tmp_path / "workspace" / "dataset"
    proc = run(
        "dataset",
        dest,
        {"STORAGE_URI": "hf://org/absent", "HF_HUB_CACHE": str(cache)},
        home=tmp_path,
    )
    assert proc.returncode == 1
    line = last_line(proc)
    assert "ERROR" in line
    assert "org/absent is not in the cache" in line
    assert "`hf download org/absent --repo-type dataset`" in line
    assert str(cache) in line
    assert not dest.exists()
    assert leftovers(dest.parent) == []

    # a model whose weights are only a pickle: upstream's allow list leaves nothing
    hf_cache_repo(cache, "model", "org/old", {"pytorch_model.bin": b"pickled"})
    proc = run(
        "model", dest, {"STORAGE_URI": "hf://org/old", "HF_HUB_CACHE": str(cache)}, home=tmp_path
    )
    assert proc.returncode == 1
    assert "has weights only as pytorch_model.bin" in proc.stderr
    assert "nothing to copy, its only file is left out (1 by the model allow patterns" in (
        last_line(proc)
    )


def test_a_failed_copy_leaves_the_previous_tree_untouched(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    snapshot = hf_cache_repo(
        cache, "dataset", "org/broken", {"a.csv": b"a", "b.csv": b"b", "c.csv": b"c"}
    )
    (snapshot / "b.csv").resolve().unlink()  # an interrupted `hf download`
    dest = tmp_path / "workspace" / "dataset"
    dest.mkdir(parents=True)
    (dest / "previous.csv").write_bytes(b"old")
    proc = run(
        "dataset",
        dest,
        {"STORAGE_URI": "hf://org/broken", "HF_HUB_CACHE": str(cache)},
        home=tmp_path,
    )
    assert proc.returncode == 1
    assert "b.csv is in the cached snapshot of org/broken but its content" in last_line(proc)
    assert "--force-download" in last_line(proc)
    assert tree(dest) == {"previous.csv": b"old"}  # a.csv was copied, then taken back
    assert leftovers(dest.parent) == []


def test_a_volume_mounted_at_the_destination_is_filled_in_place(tmp_path: Path) -> None:
    """A runtime may mount a volume at /workspace/model itself; nothing can be renamed
    onto a mount point, so the tree is staged inside it and moved in at the end."""
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("no mount namespaces here (unshare -Urm is refused)")
    cache = tmp_path / "hub"
    hf_cache_repo(cache, "model", "org/tiny", {"config.json": b"{}", "model.safetensors": b"w"})
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "stale.json").write_bytes(b"old")
    dest = tmp_path / "workspace" / "model"
    dest.mkdir(parents=True)
    script = f'mount --bind "{volume}" "{dest}" && exec "$@"'  # the pod's view
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _OWN_VARS and not k.startswith(_OWN_PREFIXES)
    }
    env.update(HOME=str(tmp_path), STORAGE_URI="hf://org/tiny", HF_HUB_CACHE=str(cache))
    proc = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", script, "sh", *PROGRAM, "model", "--dest", str(dest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert tree(volume) == {"config.json": b"{}", "model.safetensors": b"w"}
    assert tree(dest) == {}  # outside the namespace the mount point stays empty


# -- s3:// against moto -------------------------------------------------------------------


s3_endpoint = pytest.fixture(scope="module")(moto_endpoint)
_bucket = s3_bucket


SECRET = "s3cr3t-value"


def test_s3_dataset_lands_below_the_prefix_without_ignored_keys(
    s3_endpoint: str, tmp_path: Path
) -> None:
    _bucket(
        s3_endpoint,
        "data",
        {
            "reviews/v1/train/part-0.csv": b"a,b\n",
            "reviews/v1/test/part-0.csv": b"c,d\n",
            "reviews/v1/debug.log": b"noise",
            "reviews/v10/other.csv": b"not under reviews/v1",
        },
    )
    dest = tmp_path / "workspace" / "dataset"
    proc = run(
        "dataset",
        dest,
        {
            "STORAGE_URI": "s3://data/reviews/v1",
            "ENDPOINT": s3_endpoint,
            "ACCESS_KEY_ID": "test",
            "SECRET_ACCESS_KEY": SECRET,
            "REGION": "us-east-1",
            "IGNORE_PATTERNS": "*.log",
        },
        home=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert tree(dest) == {"train/part-0.csv": b"a,b\n", "test/part-0.csv": b"c,d\n"}
    assert "Downloading files from S3 bucket: data, prefix: reviews/v1" in proc.stderr
    assert "Skipping ignored file: reviews/v1/debug.log" in proc.stderr
    assert f"Downloading reviews/v1/train/part-0.csv to {dest}/train/part-0.csv" in proc.stderr
    assert "Dataset has been downloaded: 2 files, 8 bytes" in last_line(proc)
    assert SECRET not in proc.stderr


def test_s3_model_through_an_assumed_role_keeps_every_file(
    s3_endpoint: str, tmp_path: Path
) -> None:
    _bucket(s3_endpoint, "models", {"llm/config.json": b"{}", "llm/model.pt": b"pickled"})
    dest = tmp_path / "workspace" / "model"
    proc = run(
        "model",
        dest,
        {
            "STORAGE_URI": "s3://models/llm/",
            "ENDPOINT": s3_endpoint,
            "ACCESS_KEY_ID": "test",
            "SECRET_ACCESS_KEY": SECRET,
            "ROLE_ARN": "arn:aws:iam::123456789012:role/trainer",
            "AWS_ENDPOINT_URL_STS": s3_endpoint,  # moto answers STS too
        },
        home=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    # upstream's program applies no default IGNORE_PATTERNS to s3:// models
    assert tree(dest) == {"config.json": b"{}", "model.pt": b"pickled"}
    assert "model.pt is a pickle: loading one runs any code it carries" in proc.stderr


def test_s3_errors_name_the_variables_to_fix(s3_endpoint: str, tmp_path: Path) -> None:
    dest = tmp_path / "workspace" / "dataset"
    server = {"ENDPOINT": s3_endpoint, "ACCESS_KEY_ID": "test", "SECRET_ACCESS_KEY": SECRET}

    proc = run("dataset", dest, {"STORAGE_URI": "s3://absent-bucket/x", **server}, home=tmp_path)
    assert proc.returncode == 1
    assert "NoSuchBucket" in last_line(proc)
    assert "ACCESS_KEY_ID/SECRET_ACCESS_KEY" in last_line(proc)
    assert SECRET not in proc.stderr

    _bucket(s3_endpoint, "empty", {})
    proc = run("dataset", dest, {"STORAGE_URI": "s3://empty/none", **server}, home=tmp_path)
    assert proc.returncode == 1
    assert "no objects under s3://empty/none" in last_line(proc)

    proc = run(
        "dataset", dest, {"STORAGE_URI": "s3://empty/none", "ENDPOINT": s3_endpoint}, home=tmp_path
    )
    assert proc.returncode == 1
    assert "no S3 credentials; set ACCESS_KEY_ID and SECRET_ACCESS_KEY" in last_line(proc)

    proc = run(
        "dataset",
        dest,
        {"STORAGE_URI": "s3://empty/none", "ENDPOINT": s3_endpoint, "ACCESS_KEY_ID": "test"},
        home=tmp_path,
    )
    assert proc.returncode == 1
    assert "ACCESS_KEY_ID is set but SECRET_ACCESS_KEY is not" in last_line(proc)
    assert not dest.exists()
    assert leftovers(dest.parent) == []


# -- http(s)://, file://, paths, pvc:// ---------------------------------------------------


class _Web:
    """A static file server on loopback; ``stall`` holds one path's response mid-body."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.stall_path = ""
        self.stalled = threading.Event()
        self.release = threading.Event()
        web = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != web.stall_path:
                    super().do_GET()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(10 << 20))
                self.end_headers()
                self.wfile.write(b"x" * 65536)
                self.wfile.flush()
                web.stalled.set()
                web.release.wait(30)

        handler = functools.partial(Handler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[_Web]:
    root = tmp_path / "www"
    root.mkdir()
    site = _Web(root)
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.release.set()
        site.server.shutdown()
        site.server.server_close()


def _tar_gz(members: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_http_archive_is_unpacked_and_a_single_file_is_kept_by_name(
    web: _Web, tmp_path: Path
) -> None:
    (web.root / "reviews.tar.gz").write_bytes(
        _tar_gz({"reviews/train.jsonl": b'{"t": 1}\n', "reviews/NOTES.md": b"notes"})
    )
    (web.root / "model.safetensors").write_bytes(b"weights")
    workspace = tmp_path / "workspace"
    proc = run(
        "dataset",
        workspace / "dataset",
        {"STORAGE_URI": f"{web.url}/reviews.tar.gz", "IGNORE_PATTERNS": "*.md"},
        home=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert tree(workspace / "dataset") == {"reviews/train.jsonl": b'{"t": 1}\n'}
    assert str(tmp_path / "state" / "models") in proc.stderr  # the download cache

    proc = run(
        "model", workspace / "model", {"STORAGE_URI": f"{web.url}/model.safetensors"}, home=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert tree(workspace / "model") == {"model.safetensors": b"weights"}

    proc = run(
        "model", workspace / "model", {"STORAGE_URI": f"{web.url}/missing.bin"}, home=tmp_path
    )
    assert proc.returncode == 1
    assert "the server answered 404" in last_line(proc)
    assert tree(workspace / "model") == {"model.safetensors": b"weights"}


def test_sigterm_mid_download_exits_143_and_leaves_nothing(web: _Web, tmp_path: Path) -> None:
    web.stall_path = "/big.tar"
    dest = tmp_path / "workspace" / "dataset"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _OWN_VARS and not k.startswith(_OWN_PREFIXES)
    }
    env.update(
        HOME=str(tmp_path),
        WONDERLAND_HOME=str(tmp_path / "state"),
        STORAGE_URI=f"{web.url}/big.tar",
    )
    proc = subprocess.Popen(
        [*PROGRAM, "dataset", "--dest", str(dest)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert web.stalled.wait(30), "the initializer never started the download"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert "Stopped by SIGTERM; the dataset was not written" in err.strip().splitlines()[-1]
    assert not dest.exists()
    assert leftovers(dest.parent) == []
    assert not list((tmp_path / "state" / "models" / "tmp").iterdir())


def test_local_paths_and_pvc_claims_are_copied(tmp_path: Path) -> None:
    source = tmp_path / "data" / "iris"
    source.mkdir(parents=True)
    (source / "iris.csv").write_bytes(b"5.1,3.5\n")
    (source / "nested").mkdir()
    (source / "nested" / "extra.csv").write_bytes(b"x")
    workspace = tmp_path / "workspace"

    proc = run("dataset", workspace / "a", {"STORAGE_URI": f"file://{source}"}, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert tree(workspace / "a") == {"iris.csv": b"5.1,3.5\n", "nested/extra.csv": b"x"}
    assert tree(source) == {"iris.csv": b"5.1,3.5\n", "nested/extra.csv": b"x"}  # untouched

    proc = run("dataset", workspace / "b", {"STORAGE_URI": str(source / "iris.csv")}, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert tree(workspace / "b") == {"iris.csv": b"5.1,3.5\n"}

    claim = tmp_path / "state" / "volumes" / "team-a" / "datasets" / "iris"
    claim.mkdir(parents=True)
    (claim / "iris.csv").write_bytes(b"pvc")
    env = {"STORAGE_URI": "pvc://datasets/iris", "POD_NAMESPACE": "team-a"}
    proc = run("dataset", workspace / "c", env, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert tree(workspace / "c") == {"iris.csv": b"pvc"}

    proc = run("dataset", workspace / "d", {**env, "POD_NAMESPACE": "team-b"}, home=tmp_path)
    assert proc.returncode == 1
    assert "no volume for PersistentVolumeClaim 'datasets' in namespace 'team-b'" in (
        last_line(proc)
    )

    proc = run("dataset", source, {"STORAGE_URI": str(source.parent)}, home=tmp_path)
    assert proc.returncode == 1
    assert "overlap" in last_line(proc)
    assert tree(source) == {"iris.csv": b"5.1,3.5\n", "nested/extra.csv": b"x"}


# -- configuration errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "uri", "message"),
    [
        ("dataset", "", "STORAGE_URI environment variable must be set"),
        ("model", "", "STORAGE_URI environment variable must be set"),
        ("dataset", "gs://bucket/data", "Unsupported dataset storage URI scheme 'gs'"),
        ("model", "cache://schema/table", "Unsupported model storage URI scheme 'cache'"),
        ("dataset", "cache://schema/table", "cache:// starts Kubeflow's distributed data cache"),
        ("dataset", "hf://squad", "expected hf://<org>/<dataset>"),
    ],
)
def test_configuration_errors_exit_1_with_one_line(
    tmp_path: Path, kind: str, uri: str, message: str
) -> None:
    proc = run(kind, tmp_path / kind, {"STORAGE_URI": uri}, home=tmp_path)
    assert proc.returncode == 1
    assert message in last_line(proc)
    assert not (tmp_path / kind).exists()


def test_default_destination_is_upstreams_workspace(tmp_path: Path) -> None:
    if Path("/workspace").exists():
        pytest.skip("/workspace exists on this machine; the default would write there")
    proc = run("model", None, {"STORAGE_URI": str(tmp_path)}, home=tmp_path)
    assert proc.returncode == 1
    assert "/workspace does not exist" in last_line(proc)
    assert "pass --dest DIR" in last_line(proc)
    usage = run("weights", tmp_path / "x", {"STORAGE_URI": str(tmp_path)}, home=tmp_path)
    assert usage.returncode == 2
    assert "invalid choice: 'weights'" in usage.stderr
