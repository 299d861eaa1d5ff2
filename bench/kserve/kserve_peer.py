"""KServe (pip ``kserve``) peers, run from bench/.venv-kserve.

``predictor``: a kserve.Model serving the joblib file as KServe's sklearnserver does.
``transformer``: a plain kserve.Model whose default ``predict`` forwards to
``--predictor_host`` (KServe's transformer path).
"""

from __future__ import annotations

import argparse
import os
import sys

from kserve import Model, ModelServer, model_server


class SKLearnIris(Model):  # type: ignore[misc]
    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir

    def load(self) -> bool:
        import joblib

        self._model = joblib.load(os.path.join(self.model_dir, "model.joblib"))
        self.ready = True
        return True

    def predict(self, payload, headers=None):  # type: ignore[no-untyped-def]
        from kserve.utils.utils import get_predict_input, get_predict_response

        result = self._model.predict(get_predict_input(payload))
        return get_predict_response(payload, result, self.name)


class PassThrough(Model):  # type: ignore[misc]
    def load(self) -> bool:
        self.ready = True
        return True


if __name__ == "__main__":
    mode = sys.argv.pop(1)
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_dir", default="")
    args, _ = parser.parse_known_args()
    if mode == "predictor":
        model: Model = SKLearnIris(args.model_name, args.model_dir)
    else:
        model = PassThrough(args.model_name)
    model.load()
    ModelServer().start([model])
