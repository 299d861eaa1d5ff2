"""Reading the Kubernetes protobuf encoding of the few built-in kinds kubectl sends that way.

kubectl's typed commands (``kubectl create configmap|secret|namespace``) send bodies as
``application/vnd.kubernetes.protobuf``: the magic ``k8s\\0`` and a ``runtime.Unknown``
wrapping the object. This decodes ConfigMap, Secret and Namespace (field numbers from
k8s.io/api core/v1 and apimachinery meta/v1 ``generated.proto``) into the JSON shape;
answers still go out as JSON, which those clients also accept.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from wonderland.errors import InvalidError

__all__ = ["MAGIC", "decode"]

MAGIC = b"k8s\x00"


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise InvalidError("body", "truncated protobuf")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field; bytes for length-delimited ones."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise InvalidError("body", "truncated protobuf")
            yield number, wire, data[pos : pos + length]
            pos += length
        elif wire == 1:
            yield number, wire, data[pos : pos + 8]
            pos += 8
        elif wire == 5:
            yield number, wire, data[pos : pos + 4]
            pos += 4
        else:
            raise InvalidError("body", f"unsupported protobuf wire type {wire}")


def _entry(data: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, _, raw in _fields(data):
        if number == 1:
            key = raw.decode()
        elif number == 2:
            value = raw
    return key, value


def _metadata(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    for number, _, raw in _fields(data):
        if number in strings:
            if raw:  # proto2 writes unset strings as "", JSON leaves them out
                meta[strings[number]] = raw.decode()
        elif number in (11, 12):
            key, value = _entry(raw)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = value.decode()
        elif number == 14:
            meta.setdefault("finalizers", []).append(raw.decode())
        elif number == 13:
            ref: dict[str, Any] = {}
            names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
            for inner, _, value in _fields(raw):
                if inner in names:
                    ref[names[inner]] = value.decode()
                elif inner in (6, 7):
                    ref["controller" if inner == 6 else "blockOwnerDeletion"] = bool(value)
            meta.setdefault("ownerReferences", []).append(ref)
    return meta


def _configmap(data: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, _, raw in _fields(data):
        if number == 1:
            obj["metadata"] = _metadata(raw)
        elif number == 2:
            key, value = _entry(raw)
            obj.setdefault("data", {})[key] = value.decode()
        elif number == 3:
            key, value = _entry(raw)
            obj.setdefault("binaryData", {})[key] = base64.b64encode(value).decode()
        elif number == 4:
            obj["immutable"] = bool(raw)
    return obj


def _secret(data: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, _, raw in _fields(data):
        if number == 1:
            obj["metadata"] = _metadata(raw)
        elif number == 2:
            key, value = _entry(raw)
            obj.setdefault("data", {})[key] = base64.b64encode(value).decode()
        elif number == 3 and raw:
            obj["type"] = raw.decode()
        elif number == 4:
            key, value = _entry(raw)
            obj.setdefault("stringData", {})[key] = value.decode()
        elif number == 5:
            obj["immutable"] = bool(raw)
    return obj


def _namespace(data: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, _, raw in _fields(data):
        if number == 1:
            obj["metadata"] = _metadata(raw)
        elif number == 2:
            finalizers = [v.decode() for n, _, v in _fields(raw) if n == 1]
            if finalizers:
                obj["spec"] = {"finalizers": finalizers}
    return obj


_DECODERS = {"ConfigMap": _configmap, "Secret": _secret, "Namespace": _namespace}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object of a Kubernetes protobuf body; InvalidError if unsupported."""
    if not body.startswith(MAGIC):
        raise InvalidError("body", "not a Kubernetes protobuf message (no k8s magic)")
    api_version = kind = ""
    raw = b""
    for number, _, value in _fields(body[len(MAGIC) :]):
        if number == 1:
            for inner, _, text in _fields(value):
                if inner == 1:
                    api_version = text.decode()
                elif inner == 2:
                    kind = text.decode()
        elif number == 2:
            raw = value
    decoder = _DECODERS.get(kind)
    if api_version != "v1" or decoder is None:
        raise InvalidError(
            "body",
            f"protobuf bodies are read for v1 ConfigMap, Secret and Namespace only, not "
            f"{api_version} {kind}; send JSON (kubectl apply does)",
        )
    obj = decoder(raw)
    return {"apiVersion": api_version, "kind": kind, **obj}
