"""examples/notebooks/iris.ipynb runs headless against a real `wonderland up`: from a
notebook kernel, OptimizerClient tunes (two Katib trials), TrainerClient trains with the
best value, mlflow tracks and registers, the kubernetes client deploys an
InferenceService and tritonclient infers.

The kernel gets what the shipped PodDefaults give a Notebook's pod (``KUBECONFIG`` and
``MLFLOW_TRACKING_URI``) and the Kubeflow SDK from its own environment, added after the
platform's packages (the SDK pins ``kubernetes<36``; its code runs on the newer client).
nbclient executes it in this process, as ``jupyter nbconvert --execute`` does."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.daemon import WonderlandDaemon, running_daemon, wait_for
from _support.kubeflow_sdk import KUBEFLOW, kubeflow_python

nbclient = pytest.importorskip(
    "nbclient", reason="needs the notebook extra: pip install 'wonderland[notebook]'"
)
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "notebooks" / "iris.ipynb"
KERNEL = "wonderland-kubeflow"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WonderlandDaemon]:
    kubeflow_python()  # skips (or fails in CI) without the SDK's environment
    with running_daemon(WonderlandDaemon.in_tmp(tmp_path_factory.mktemp("nb-iris"))) as started:
        yield started


def kernelspec(folder: Path) -> Path:
    """A kernel of the platform's Python with the Kubeflow SDK's packages appended to its
    path (``site.addsitedir`` puts them after the platform's own)."""
    sdk = KUBEFLOW.run_script(
        "import sysconfig; print(sysconfig.get_paths()['purelib'])", timeout=60
    ).stdout.strip()
    assert sdk, "the Kubeflow SDK's environment has no site-packages"
    launch = (
        f"import site; site.addsitedir({sdk!r}); "
        "from ipykernel import kernelapp; kernelapp.launch_new_instance()"
    )
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-c", launch, "-f", "{connection_file}"],
                "display_name": "Python 3 (wonderland + Kubeflow SDK)",
                "language": "python",
            }
        )
    )
    return folder


def printed(nb: Any) -> str:
    return "".join(
        "".join(o.get("text", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )


def test_the_iris_notebook_tunes_trains_tracks_deploys_and_infers(
    daemon: WonderlandDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access = json.loads(daemon.ok("get", "poddefault", "access-mlflow", "-o", "json"))
    env = dict(daemon.env)
    for entry in access["spec"]["env"]:
        env[entry["name"]] = entry["value"]
    env.update(
        KUBECONFIG=str(daemon.home / "kubeconfig"),
        INGRESS=daemon.gateway.split("://", 1)[1],
    )
    # where jupyter_client looks for the kernel's spec (read in this process)
    monkeypatch.setenv("JUPYTER_PATH", str(kernelspec(tmp_path / "jupyter")))
    nb = nbformat.read(EXAMPLE, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=240,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute(env=env)
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{exc}\n--- printed so far:\n{printed(nb)[-4000:]}")
    finally:
        nbformat.write(nb, tmp_path / "iris.out.ipynb")  # with each cell's timing

    out = printed(nb)
    assert "Complete best C=" in out  # the Katib experiment and its best trial
    assert "iris-notebook v1 from run" in out  # the registered version and its run
    assert "[1 0]" in out  # tritonclient's answer

    def gone() -> bool:  # its clean-up cell deleted what it made
        left = daemon.ok("get", "experiments,trainjobs,inferenceservices", "-o", "name")
        return left.strip() == ""

    wait_for(gone, 60, "the experiment, TrainJobs and InferenceService to go", interval=0.5)
