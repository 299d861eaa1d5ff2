"""Train the iris classifier that inference.yaml serves (once; no download).

    python examples/inference/train.py      # writes examples/inference/model/model.joblib

The model is scikit-learn's SVC on the iris data set bundled with scikit-learn, the same
model KServe's sklearn-iris example serves.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def train(dest: Path) -> Path:
    """Fit the model and write ``dest/model.joblib`` (kept if it is already there)."""
    target = dest / "model.joblib"
    if target.exists():
        return target
    import joblib
    from sklearn import datasets, svm

    iris = datasets.load_iris()
    model = svm.SVC(gamma="scale")
    model.fit(iris.data, iris.target)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    joblib.dump(model, tmp)
    tmp.replace(target)
    return target


if __name__ == "__main__":
    out = train(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "model")
    print(f"model: {out}")
