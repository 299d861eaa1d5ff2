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
    with pytest.raises(InvalidError, match="Job and CronJob only, not v1 Service"):
        decode(_envelope("Service", _bytes(1, _bytes(1, b"p"))))
    with pytest.raises(InvalidError, match="no k8s magic"):
        decode(b"{}")
    with pytest.raises(InvalidError, match="truncated"):
        decode(MAGIC + _key(2, 2) + b"\x50abc")


# What kubectl 1.32 sends for `kubectl create job --from=cronjob/hello manual-1` (from
# `kubectl -v=9`), the CronJob's jobTemplate as the daemon returned it.
KUBECTL_CREATE_JOB_FROM_CRONJOB = bytes.fromhex(
    "6b3873000a0f0a0862617463682f763112034a6f6212de030a9f010a086d616e75616c2d3112001a0022002a"
    "003200380042005a090a047465616d120161622b0a2163726f6e6a6f622e6b756265726e657465732e696f2f"
    "696e7374616e746961746512066d616e75616c62090a046e6f74651201786a420a0743726f6e4a6f621a0568"
    "656c6c6f222433386430316665642d316230322d346232382d616533642d6134333462393533653633332a08"
    "62617463682f7631300112af02080110013283020a100a0012001a0022002a0032003800420012ee0112a601"
    "0a046d61696e120b707974686f6e3a332e31321a0273681a022d631a076563686f2068692a003a060a014112"
    "016242420a0d0a0363707512060a043130306d0a100a066d656d6f727912060a0436344d69120d0a03637075"
    "12060a043130306d12100a066d656d6f727912060a0436344d696a142f6465762f7465726d696e6174696f6e"
    "2d6c6f67720c49664e6f7450726573656e74800100880100900100a2010446696c651a054e65766572201e32"
    "0c436c7573746572466972737442004a00520058006000680072008201008a01009a011164656661756c742d"
    "7363686564756c6572c20100f0010138064a0a4e6f6e496e6465786564500072135465726d696e6174696e67"
    "4f724661696c65641a082000280030003a001a002200"
)


def test_job_that_kubectl_create_job_from_cronjob_sends() -> None:
    job = decode(KUBECTL_CREATE_JOB_FROM_CRONJOB)
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"] == {
        "name": "manual-1",
        "labels": {"team": "a"},
        "annotations": {"cronjob.kubernetes.io/instantiate": "manual", "note": "x"},
        "ownerReferences": [
            {
                "kind": "CronJob",
                "name": "hello",
                "uid": "38d01fed-1b02-4b28-ae3d-a434b953e633",
                "apiVersion": "batch/v1",
                "controller": True,
            }
        ],
    }
    spec = job["spec"]
    # Pointer fields are kept at zero (suspend: false); plain zero fields are left out.
    assert (spec["parallelism"], spec["completions"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["suspend"] is False and spec["completionMode"] == "NonIndexed"
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["terminationGracePeriodSeconds"] == 30
    assert pod["securityContext"] == {} and pod["enableServiceLinks"] is True
    (container,) = pod["containers"]
    assert container == {
        "name": "main",
        "image": "python:3.12",
        "command": ["sh", "-c", "echo hi"],
        "env": [{"name": "A", "value": "b"}],
        "resources": {
            "limits": {"cpu": "100m", "memory": "64Mi"},
            "requests": {"cpu": "100m", "memory": "64Mi"},
        },
        "terminationMessagePath": "/dev/termination-log",
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePolicy": "File",
    }


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _tag(number: int, wire: int) -> bytes:
    return _varint((number << 3) | wire)


def _message(number: int, value: bytes) -> bytes:
    return _tag(number, 2) + _varint(len(value)) + value


def _int(number: int, value: int) -> bytes:
    return _tag(number, 0) + _varint(value)


def test_cronjob_with_probes_volumes_and_failure_policy() -> None:
    probe = _message(1, _message(2, _message(2, _int(1, 1) + _message(3, b"http")))) + _int(4, 5)
    container = (
        _message(1, b"main")
        + _message(3, b"true")
        + _message(11, probe)
        + _message(9, _message(1, b"data") + _message(3, b"/data"))
        + _int(16, 0)  # stdin: false, a plain bool, is left out
    )
    volume = _message(1, b"data") + _message(2, _message(2, _message(1, b"Memory")))
    pod_spec = _message(1, volume) + _message(2, container) + _message(3, b"Never")
    rule = _message(1, b"FailJob") + _message(
        2, _message(2, b"In") + _int(3, 42) + _message(3, _varint(7) + _varint(9))
    )
    job_spec = _message(6, _message(2, pod_spec)) + _message(11, _message(1, rule)) + _int(3, -1)
    cron_spec = (
        _message(1, b"*/5 * * * *")
        + _message(8, b"Asia/Tokyo")
        + _message(5, _message(2, job_spec))
        + _int(4, 0)
    )
    type_meta = _message(1, b"batch/v1") + _message(2, b"CronJob")
    body = (
        MAGIC
        + _message(1, type_meta)
        + _message(2, _message(1, _message(1, b"nightly")) + _message(2, cron_spec))
    )
    cron = decode(body)
    spec = cron["spec"]
    assert spec["schedule"] == "*/5 * * * *" and spec["timeZone"] == "Asia/Tokyo"
    assert spec["suspend"] is False
    job = spec["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] == -1  # int64 varints are two's complement
    assert job["podFailurePolicy"] == {
        "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42, 7, 9]}}]
    }
    pod = job["template"]["spec"]
    assert pod["volumes"] == [{"name": "data", "emptyDir": {"medium": "Memory"}}]
    (container,) = pod["containers"]
    assert container["readinessProbe"] == {"httpGet": {"port": "http"}, "periodSeconds": 5}
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert "stdin" not in container
