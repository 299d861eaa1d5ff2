"""Vendored web assets: every file the manifest lists ships in the package with its
licence, and the console serves it (no CDN: the page works offline)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest

from wonderland.console.server import ConsoleServer
from wonderland.console.views import HubMetrics
from wonderland.monitoring.hub import MetricsHub
from wonderland.store import Store

VENDOR = resources.files("wonderland.console").joinpath("static", "vendor")


def _packages() -> list[dict[str, Any]]:
    manifest = json.loads(VENDOR.joinpath("manifest.json").read_text())
    packages: list[dict[str, Any]] = manifest["packages"]
    assert packages, "the manifest lists no package"
    return packages


@pytest.mark.parametrize("package", _packages(), ids=lambda p: p["name"])
def test_each_vendored_package_ships_its_files_and_licence(package: dict[str, Any]) -> None:
    assert package["version"].count(".") == 2, "pin an exact version"
    assert package["integrity"].startswith("sha512-")
    assert package["tarball"].startswith("https://registry.npmjs.org/")
    licence = VENDOR.joinpath(package["licenseFile"]).read_text()
    assert package["license"] in licence or "Permission is hereby granted" in licence
    for shipped in package["files"]:
        assert VENDOR.joinpath(shipped).read_bytes(), f"{shipped} is empty"


async def test_the_vendored_files_are_served_with_their_types(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    server = ConsoleServer(store, lambda: "token", HubMetrics(MetricsHub()))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.status.url, timeout=30) as client:
            for package in _packages():
                for shipped in package["files"]:
                    r = await client.get(f"/static/vendor/{shipped}")
                    assert r.status_code == 200, shipped
                    expected = "text/css" if shipped.endswith(".css") else "javascript"
                    assert expected in r.headers["content-type"]
            assert (await client.get("/static/vendor/nested/x.js")).status_code == 404
            assert (await client.get("/static/vendor/missing.js")).status_code == 404
    finally:
        await server.stop()
