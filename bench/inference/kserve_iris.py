"""KServe 0.21 peer: a custom kserve.Model that serves the joblib file as sklearnserver does."""

from __future__ import annotations

import argparse
import logging
import os
import warnings

import joblib
from kserve import Model, ModelServer, model_server
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnIris(Model):  # type: ignore[misc]
    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir

    def load(self) -> bool:
        self._model = joblib.load(os.path.join(self.model_dir, "model.joblib"))
        self.ready = True
        return True

    def predict(self, payload, headers=None):  # type: ignore[no-untyped-def]
        instances = get_predict_input(payload)
        result = self._model.predict(instances)
        return get_predict_response(payload, result, self.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_dir", required=True)
    args, _ = parser.parse_known_args()
    model = SKLearnIris(args.model_name, args.model_dir)
    model.load()
    server = ModelServer()
    # Its quickest setup: no per-request deprecation warning (KServe 0.21 with a current
    # FastAPI), no per-request trace and access log lines.
    warnings.filterwarnings("ignore")
    for name in ("kserve.trace", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    server.start([model])
