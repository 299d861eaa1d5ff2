"""A KServe-style transformer for `wonderland serve --predictor_host`: millimetres in,
class names out; `predict` is inherited (forwarded to the predictor)."""

CLASSES = ["setosa", "versicolor", "virginica"]


class IrisTransformer:
    def __init__(self, name):
        self.name = name

    def load(self):
        self.ready = True

    def preprocess(self, payload, headers=None):
        return {"instances": [[v / 10 for v in row] for row in payload["instances"]]}

    def postprocess(self, result, headers=None):
        return {"predictions": [CLASSES[int(p)] for p in result["predictions"]]}
