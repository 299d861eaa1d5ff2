"""The sidecar core in-process: configuration errors, scopes and access rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from wonderland.dapr.errors import APIError
from wonderland.dapr.resources import parse_documents
from wonderland.dapr.runtime import DaprRuntime, RuntimeOptions, StateWrite


def _comp(name: str, ctype: str, meta: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {
            "type": ctype,
            "version": "v1",
            "metadata": [{"name": k, "value": v} for k, v in (meta or {}).items()],
        },
    }


async def _runtime(
    docs: list[dict[str, object]], tmp_path: Path, app_id: str = "app1"
) -> DaprRuntime:
    rt = DaprRuntime(
        RuntimeOptions(app_id=app_id, resources=parse_documents(docs), state_dir=tmp_path)
    )
    await rt.start()
    return rt


async def test_nothing_configured_answers_as_daprd(tmp_path: Path) -> None:
    rt = await _runtime([], tmp_path)
    with pytest.raises(APIError) as err:
        await rt.get_state("statestore", "k")
    assert (err.value.status, err.value.code) == (500, "ERR_STATE_STORE_NOT_CONFIGURED")
    with pytest.raises(APIError) as err:
        await rt.publish("pubsub", "t", b"{}", "application/json", {})
    assert (err.value.status, err.value.code) == (400, "ERR_PUBSUB_NOT_CONFIGURED")
    with pytest.raises(APIError) as err:
        await rt.get_secret("s", "k", {})
    assert (err.value.status, err.value.code) == (500, "ERR_SECRET_STORES_NOT_CONFIGURED")
    with pytest.raises(APIError) as err:
        await rt.get_configuration("c", [], {})
    assert (err.value.status, err.value.code) == (500, "ERR_CONFIGURATION_STORE_NOT_CONFIGURED")
    await rt.close()


async def test_publishing_scopes_and_allowed_topics(tmp_path: Path) -> None:
    meta = {
        "publishingScopes": "app1=orders,audit;app2=other",
        "allowedTopics": "orders,audit,other",
    }
    rt = await _runtime([_comp("pubsub", "pubsub.in-memory", meta)], tmp_path)
    await rt.publish("pubsub", "orders", b"{}", "application/json", {})
    with pytest.raises(APIError) as err:
        await rt.publish("pubsub", "other", b"{}", "application/json", {})
    assert (err.value.status, err.value.code) == (403, "ERR_PUBSUB_FORBIDDEN")
    await rt.close()


async def test_secret_scopes_from_the_configuration(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"open": "1", "closed": "2", "listed": "3"}')
    docs = [
        _comp("secrets", "secretstores.local.file", {"secretsFile": str(tmp_path / "s.json")}),
        {
            "apiVersion": "dapr.io/v1alpha1",
            "kind": "Configuration",
            "metadata": {"name": "cfg"},
            "spec": {
                "secrets": {
                    "scopes": [
                        {
                            "storeName": "secrets",
                            "defaultAccess": "deny",
                            "allowedSecrets": ["open", "listed"],
                            "deniedSecrets": ["listed"],
                        }
                    ]
                }
            },
        },
    ]
    rt = await _runtime(docs, tmp_path)
    assert await rt.get_secret("secrets", "open", {}) == {"open": "1"}
    for name in ("closed", "listed"):
        with pytest.raises(APIError) as err:
            await rt.get_secret("secrets", name, {})
        assert (err.value.status, err.value.code) == (403, "ERR_PERMISSION_DENIED")
    assert set(await rt.bulk_secret("secrets", {})) == {"open"}
    await rt.close()


async def test_key_prefix_strategies(tmp_path: Path) -> None:
    docs = [
        _comp(f"s{mode}", "state.in-memory", {"keyPrefix": mode})
        for mode in ("name", "none", "custom")
    ]
    rt = await _runtime(docs, tmp_path)
    for mode, stored in (("name", "sname||k"), ("none", "k"), ("custom", "custom||k")):
        await rt.save_state(f"s{mode}", [StateWrite("k", b"1")])
        assert await rt.state[f"s{mode}"].component.get(stored) is not None
    await rt.close()


async def test_ignore_errors_skips_a_broken_component(tmp_path: Path) -> None:
    broken = _comp(
        "cfg",
        "configuration.postgresql",
        {"connectionString": "host=127.0.0.1 port=1", "table": "t"},
    )
    broken["spec"]["ignoreErrors"] = True  # type: ignore[index]
    rt = await _runtime([broken, _comp("statestore", "state.in-memory")], tmp_path)
    assert "cfg" not in rt.config_stores and "statestore" in rt.state
    await rt.close()
