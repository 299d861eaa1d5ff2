"""A base image for ``wonderland build --base`` made from Debian packages, with no registry.

    python tools/debian_base.py -o DIR [--suite bookworm] [--include python3,...]

``mmdebstrap`` installs a minimal Debian (``--variant=minbase``) with Python
(``python3``, and ``python-is-python3`` so that ``CMD ["python", ...]`` runs) from the
machine's Debian mirror into a tar; the tar becomes the one layer of an OCI image layout
in ``DIR`` under the name ``debian-python3:SUITE``. Its config sets ``PATH``, ``LANG``
and ``PYTHON_VERSION`` (the Python it holds, as the official ``python`` images do: it is
how ``wonderland build`` picks the wheels for the image) and runs ``python3``.

With ``SOURCE_DATE_EPOCH`` set (0 here), mmdebstrap gives the same tar for the same
packages. It runs as root, or as a user with user namespaces (its ``unshare`` mode); it
takes about 25 s here (``make registry-tools`` and the registry tests use it).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

INCLUDE = "python3,python-is-python3,ca-certificates"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _put(blobs: Path, data: bytes) -> str:
    hexd = hashlib.sha256(data).hexdigest()
    (blobs / hexd).write_bytes(data)
    return f"sha256:{hexd}"


def _python_version(rootfs: Path) -> str:
    """``3.N`` of the ``usr/bin/python3.N`` the tar holds."""
    with tarfile.open(rootfs) as tar:
        for name in tar.getnames():
            found = re.fullmatch(r"(?:\./)?usr/bin/python(3\.\d+)", name)
            if found:
                return found.group(1)
    raise SystemExit(f"{rootfs}: no usr/bin/python3.N in the tree mmdebstrap made")


def build(out: Path, suite: str, include: str, mirror: str | None) -> str:
    """Write the OCI image layout ``out``; return the image's name in it."""
    if shutil.which("mmdebstrap") is None:
        raise SystemExit("mmdebstrap is not installed: apt-get install mmdebstrap")
    with tempfile.TemporaryDirectory(prefix="debian-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        cmd = [
            "mmdebstrap",
            "--variant=minbase",
            f"--include={include}",
            "--format=tar",
            "--skip=output/dev",  # no device nodes: an image layer has none
            '--aptopt=Acquire::Languages "none"',
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--quiet",
            suite,
            str(rootfs),
            *([mirror] if mirror else []),
        ]
        env = {**os.environ, "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0")}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(
                f"mmdebstrap failed (it needs root, or user namespaces for its unshare "
                f"mode, and a Debian mirror):\n{proc.stderr[-2000:]}"
            )
        python = _python_version(rootfs)
        raw = rootfs.read_bytes()
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    layer = gzip.compress(raw, compresslevel=6, mtime=0)
    if out.exists():
        shutil.rmtree(out)
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": [f"PATH={_PATH}", "LANG=C.UTF-8", f"PYTHON_VERSION={python}"],
            "Cmd": ["python3"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": f"mmdebstrap --variant=minbase --include={include} {suite}"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _put(blobs, config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": _put(blobs, layer),
                "size": len(layer),
            }
        ],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    name = f"debian-python3:{suite}"
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": _put(blobs, manifest_bytes),
                "size": len(manifest_bytes),
                "annotations": {"org.opencontainers.image.ref.name": name},
            }
        ],
    }
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    (out / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}\n')
    return name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", required=True, type=Path, help="the layout to write")
    parser.add_argument("--suite", default="bookworm", help="the Debian release (bookworm)")
    parser.add_argument("--include", default=INCLUDE, help=f"packages to add ({INCLUDE})")
    parser.add_argument("--mirror", help="the Debian mirror (default: mmdebstrap's)")
    args = parser.parse_args()
    name = build(args.output, args.suite, args.include, args.mirror)
    size = sum(p.stat().st_size for p in (args.output / "blobs").rglob("*") if p.is_file())
    print(f"{args.output}: {name} ({size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
