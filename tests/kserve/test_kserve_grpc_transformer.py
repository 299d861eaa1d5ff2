"""A transformer calling a ``protocolVersion: grpc-v2`` predictor over gRPC, on a real
``wonderland up``: the transformer's gRPC client honours the replica's proxy setting and
reaches ``<isvc>-predictor.<namespace>`` through the gateway's HTTP CONNECT."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from kserve_testing import IRIS, KServeDaemon, isvc, model, train_models

pytestmark = pytest.mark.e2e

# mm in, cm to the predictor: the answer is right only if the transformer ran and its
# gRPC call reached the predictor, whose only port speaks gRPC
TRANSFORMER = textwrap.dedent(
    '''
    class MillimetreTransformer:
        """No predict: wonderland forwards to --predictor_host over gRPC V2."""

        def __init__(self, name):
            self.name = name

        def preprocess(self, payload, headers=None):
            for t in payload.inputs:
                t.data = (t.data / 10).astype(t.data.dtype)
            return payload
    '''
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KServeDaemon]:
    tmp = tmp_path_factory.mktemp("kserve-grpc-transformer")
    models = train_models(tmp / "models")
    transformer = tmp / "transformer"
    transformer.mkdir()
    (transformer / "model.py").write_text(TRANSFORMER)
    manifests = tmp / "config.yaml"
    manifests.write_text("")
    d = KServeDaemon(tmp)
    try:
        d.start(manifests)
        d.apply(
            isvc(
                "grpc-chain",
                model("sklearn", str(models["sklearn"]), protocolVersion="grpc-v2"),
                transformer={
                    "containers": [
                        {
                            "name": "kserve-container",
                            "image": "wonderland/model-server",
                            "command": [sys.executable, "-m", "wonderland", "serve"],
                            "args": [
                                f"--model_dir={transformer}",
                                "--protocol=grpc-v2",  # as in KServe's gRPC transformer example
                            ],
                        }
                    ]
                },
            )
        )
        yield d
    finally:
        d.kill()


def test_transformer_reaches_a_grpc_v2_predictor_through_the_gateway(
    daemon: KServeDaemon,
) -> None:
    got = daemon.wait_ready("grpc-chain", timeout=180)
    conditions = {c["type"]: c["status"] for c in got["status"]["conditions"]}
    assert conditions["PredictorReady"] == conditions["TransformerReady"] == "True"
    spec = daemon.get("ksvc", "grpc-chain-predictor")["spec"]["template"]["spec"]
    assert spec["containers"][0]["ports"][0]["name"] == "h2c"  # the predictor speaks gRPC only
    mm = (np.asarray(IRIS, dtype=np.float32) * 10).tolist()
    body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": mm}]}
    for i in range(3):  # the InferenceService's host routes to the transformer
        reply = httpx.post(
            f"{daemon.gateway}/v2/models/grpc-chain/infer",
            json={**body, "id": f"req-{i}"},
            headers={"Host": daemon.host("grpc-chain")},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        doc = reply.json()
        assert doc["id"] == f"req-{i}"
        assert doc["outputs"][0]["data"] == [1, 1]  # versicolor, versicolor
    # a predictor error comes back through the gRPC call with its status
    bad = {"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    reply = httpx.post(
        f"{daemon.gateway}/v2/models/grpc-chain/infer",
        json=bad,
        headers={"Host": daemon.host("grpc-chain")},
        timeout=60,
    )
    assert reply.status_code == 400, reply.text
    assert "predictor" in reply.json()["error"]
