from __future__ import annotations

import pytest

from wonderland.control.protobuf import MAGIC, decode
from wonderland.errors import InvalidError


def _key(number: int, wire: int) -> bytes:
    return bytes([(number << 3) | wire])


def _bytes(number: int, value: bytes) -> bytes:
    assert len(value) < 128
    return _key(number, 2) + bytes([len(value)]) + value


def _entry(number: int, key: str, value: bytes) -> bytes:
    return _bytes(number, _bytes(1, key.encode()) + _bytes(2, value))


def _envelope(kind: str, raw: bytes) -> bytes:
    type_meta = _bytes(1, b"v1") + _bytes(2, kind.encode())
    return MAGIC + _bytes(1, type_meta) + _bytes(2, raw)


def test_secret_from_protobuf() -> None:
    meta = _bytes(1, b"db") + _bytes(2, b"") + _entry(11, "app", b"web")
    raw = _bytes(1, meta) + _entry(2, "password", b"\x00\xffsecret") + _bytes(3, b"Opaque")
    obj = decode(_envelope("Secret", raw))
    assert obj == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "labels": {"app": "web"}},
        "data": {"password": "AP9zZWNyZXQ="},
        "type": "Opaque",
    }


def test_configmap_with_immutable_flag() -> None:
    raw = _bytes(1, _bytes(1, b"cfg")) + _entry(2, "k", b"v") + _key(4, 0) + b"\x01"
    obj = decode(_envelope("ConfigMap", raw))
    assert obj["data"] == {"k": "v"} and obj["immutable"] is True


def test_other_kinds_and_garbage_are_refused() -> None:
    with pytest.raises(InvalidError, match="ConfigMap, Secret and Namespace only"):
        decode(_envelope("Pod", _bytes(1, _bytes(1, b"p"))))
    with pytest.raises(InvalidError, match="no k8s magic"):
        decode(b"{}")
    with pytest.raises(InvalidError, match="truncated"):
        decode(MAGIC + _key(2, 2) + b"\x50abc")
