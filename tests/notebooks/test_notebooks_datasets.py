"""``wonderland data add``'s core: sources onboarded into a dataset claim with its digest,
size, files, schema and source; the catalogue read back; bad sources leave nothing."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wonderland import datasets
from wonderland.controllers import events
from wonderland.datasets.views import describe, table
from wonderland.errors import NotFoundError
from wonderland.store import Store
from wonderland.workloads import admission, storage

IRIS = "sepal_length,sepal_width,species,wild\n5.1,3.5,setosa,true\n4.9,3,setosa,false\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "state")
    admission.install(opened.admission)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "iris"
    (folder / "raw").mkdir(parents=True)
    (folder / "iris.csv").write_text(IRIS)
    (folder / "raw" / "notes.txt").write_text("collected by Fisher\n")
    table = pa.table({"id": pa.array([1, 2], pa.int64()), "score": pa.array([0.5, 0.7])})
    pq.write_table(table, folder / "scores.parquet")
    return folder


def leftovers(tmp_path: Path, store: Store) -> list[object]:
    volumes = tmp_path / "state" / "volumes"
    files = sorted(p.name for p in volumes.iterdir()) if volumes.exists() else []
    return [*files, *store.list("persistentvolumes")[0], *store.list("persistentvolumeclaims")[0]]


async def test_a_folder_becomes_a_bound_claim_with_its_catalogue(
    store: Store, source: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    made = datasets.add(store, state_dir, "iris", str(source))
    assert (made.files, made.size) == (
        3,
        sum(p.stat().st_size for p in source.rglob("*") if p.is_file()),
    )
    assert made.digest.startswith("sha256:") and made.source == str(source)
    schemas = {s.path: s for s in made.schemas}
    assert [(c.name, c.type) for c in schemas["iris.csv"].columns] == [
        ("sepal_length", "float64"),
        ("sepal_width", "float64"),
        ("species", "string"),
        ("wild", "bool"),
    ]
    parquet = schemas["scores.parquet"]
    assert [(c.name, c.type) for c in parquet.columns] == [("id", "int64"), ("score", "double")]
    assert parquet.rows == 2
    # the same content under another name has the same digest; other content another one
    assert datasets.add(store, state_dir, "iris-copy", str(source)).digest == made.digest
    (source / "iris.csv").write_text(IRIS + "6.0,2.2,virginica,true\n")
    assert datasets.add(store, state_dir, "iris-v2", str(source)).digest != made.digest
    # the volume waits for its claim (a pre-bound volume is no released one), which binds
    for pv in store.list("persistentvolumes")[0]:
        await storage.VolumeReconciler(store, state_dir).reconcile("", pv["metadata"]["name"])
    claims = storage.ClaimReconciler(store, state_dir, events.record)
    await claims.reconcile("default", "iris")
    folder = storage.claim_path(store, "default", "iris")
    assert (folder / "iris.csv").read_text() == IRIS
    assert (folder / "raw" / "notes.txt").exists()
    found = datasets.get(store, "default", "iris")
    assert found.phase == "Bound" and found.digest == made.digest
    assert [d.name for d in datasets.list_datasets(store, "default")] == [
        "iris",
        "iris-copy",
        "iris-v2",
    ]
    text = describe(found)
    assert "sepal_length: float64" in text and "claimName: iris" in text
    assert table([found]).splitlines()[0].split() == [
        "NAME",
        "STATUS",
        "FILES",
        "SIZE",
        "DIGEST",
        "SOURCE",
        "AGE",
    ]


def test_a_file_and_file_urls_are_sources(store: Store, source: Path, tmp_path: Path) -> None:
    one = datasets.add(store, tmp_path / "state", "one", str(source / "iris.csv"))
    assert one.files == 1 and [s.path for s in one.schemas] == ["iris.csv"]
    url = datasets.add(store, tmp_path / "state", "url", (source / "iris.csv").as_uri())
    assert url.digest == one.digest


def test_http_and_hf_cache_sources(
    store: Store, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(source)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/iris.csv"
        web = datasets.add(store, tmp_path / "state", "web", url)
        with pytest.raises(datasets.DatasetError, match="answered 404"):
            datasets.add(store, tmp_path / "state", "missing", url.replace("iris", "nope"))
    finally:
        server.shutdown()
        server.server_close()
    assert web.files == 1 and web.schemas[0].columns[2].name == "species"
    cache = tmp_path / "hub"
    repo = cache / "datasets--fisher--iris"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "iris.csv").write_text(IRIS)
    env = {"HF_HUB_CACHE": str(cache), "HOME": str(tmp_path)}
    hub = datasets.add(store, tmp_path / "state", "hub", "hf://datasets/fisher/iris", env=env)
    assert hub.files == 1 and hub.source == "hf://datasets/fisher/iris"
    with pytest.raises(datasets.DatasetError, match=r"is not in the cache; .*hf download"):
        datasets.add(store, tmp_path / "state", "nohub", "hf://datasets/fisher/none", env=env)


@pytest.mark.parametrize(
    ("name", "src", "message"),
    [
        ("gone", "{tmp}/nowhere", "no such file or folder"),
        ("empty", "{tmp}/empty", "the folder has no files"),
        ("odd", "ftp://host/data.csv", "unknown scheme 'ftp'"),
        ("Bad_Name", "{tmp}/iris", "use lower-case letters"),
    ],
)
def test_bad_sources_are_refused_and_leave_nothing(
    store: Store, source: Path, tmp_path: Path, name: str, src: str, message: str
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(datasets.DatasetError, match=message):
        datasets.add(store, tmp_path / "state", name, src.format(tmp=tmp_path))
    assert leftovers(tmp_path, store) == []


def test_a_file_that_fails_mid_copy_leaves_nothing(
    store: Store, source: Path, tmp_path: Path
) -> None:
    # /proc/self/mem is a regular file whose read at offset 0 fails (EIO) for any user
    (source / "zz-unreadable.bin").symlink_to("/proc/self/mem")
    with pytest.raises(datasets.DatasetError, match=r"copying failed: .*Input/output error"):
        datasets.add(store, tmp_path / "state", "iris", str(source))
    assert leftovers(tmp_path, store) == []


def test_a_taken_name_and_an_unknown_dataset(store: Store, source: Path, tmp_path: Path) -> None:
    datasets.add(store, tmp_path / "state", "iris", str(source))
    before = leftovers(tmp_path, store)
    with pytest.raises(datasets.DatasetError, match='"iris" already exists'):
        datasets.add(store, tmp_path / "state", "iris", str(source))
    assert leftovers(tmp_path, store) == before
    with pytest.raises(NotFoundError, match='dataset "nope" not found'):
        datasets.get(store, "default", "nope")


def test_the_volume_controller_running_before_the_claim_exists_keeps_the_data(
    store: Store, source: Path, tmp_path: Path
) -> None:
    """The daemon's volume controller may see the volume before its claim is stored: a
    volume pre-bound to a claim not made yet stays Available, never reclaimed."""
    state_dir = tmp_path / "state"
    volumes = storage.VolumeReconciler(store, state_dir)

    class RacingStore:
        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

        def create(self, obj: dict[str, object]) -> dict[str, object]:
            made = store.create(obj)
            if obj["kind"] == "PersistentVolume":
                asyncio.run(volumes.reconcile("", made["metadata"]["name"]))  # type: ignore[index]
            return made

    datasets.add(RacingStore(), state_dir, "iris", str(source))  # type: ignore[arg-type]
    (pv,) = store.list("persistentvolumes")[0]
    assert pv["status"]["phase"] == "Available"
    assert (Path(pv["spec"]["hostPath"]["path"]) / "iris.csv").read_text() == IRIS
