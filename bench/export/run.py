"""Export and build timings on the conference demo.

    python bench/export/run.py [--base DIR]

- ``wonderland export`` of ``examples/conference`` (15 objects, checked), in process;
- ``wonderland build`` of the demo's four app images: cold (an empty output layout) and
  again with the sources unchanged (the aim: under 2 s), and the size of each app layer.

``--base`` takes a real base image layout (``skopeo copy docker://python:3.12-slim
oci:DIR:3.12-slim``); without it a one-file stand-in base is used, so the times are those
of the app layers and the layout (copying a real base's ~45 MB of layers adds to the
cold build only).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from wonderland.api.manifests import load_paths  # noqa: E402
from wonderland.export import PROFILES, SourceObject, check_paths, export_objects  # noqa: E402
from wonderland.export.oci import build_image  # noqa: E402
from wonderland.export.output import write_tree  # noqa: E402
from wonderland.export.sources import local_images  # noqa: E402
from wonderland.export.tree import image_fields  # noqa: E402

APPS = ["frontend", "agenda-service", "c4p-service", "notifications-service"]


def stand_in_base(folder: Path) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("usr/local/bin/python")
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        hexd = hashlib.sha256(data).hexdigest()
        (blobs / hexd).write_bytes(data)
        return f"sha256:{hexd}"

    diff = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    config = json.dumps({"config": {}, "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "config": {"digest": put(config), "size": len(config)},
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": put(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    index = {"schemaVersion": 2, "manifests": [{"digest": put(manifest), "size": len(manifest)}]}
    (folder / "index.json").write_text(json.dumps(index))
    return folder


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path)
    args = parser.parse_args()
    conference = ROOT / "examples" / "conference"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        objects = [SourceObject(m.obj, m.source) for m in load_paths([str(conference)])]
        images = local_images(
            (str(c["image"]) for o in objects for _, c in image_fields(o.obj.get("spec"))),
            [conference],
            root=ROOT,
        )
        tree = export_objects(objects, PROFILES["cluster"], images, "localhost:5001")
        write_tree(tree, work / "out")
        report = check_paths([str(work / "out")], recursive=True)
        export_s = time.perf_counter() - start
        print(
            f"export: {tree.objects} objects written and checked ({len(report.errors)} errors) "
            f"in {export_s * 1000:.0f} ms"
        )
        base = args.base or stand_in_base(work / "base")
        for label in ("cold", "unchanged"):
            start = time.perf_counter()
            results = [
                build_image(
                    conference / "apps" / app,
                    f"conference-{app}",
                    work / "images",
                    base,
                    "localhost:5001",
                )
                for app in APPS
            ]
            took = time.perf_counter() - start
            print(f"build {label}: {len(results)} images in {took * 1000:.0f} ms")
        for result in results:
            print(f"  {result.ref}: {result.size / 1000:.1f} kB of layers ({result.layers} layers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
