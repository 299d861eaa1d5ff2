"""The Notebook, PodDefault and dataset claim YAML that docs/notebooks.md shows is what a
Kubeflow cluster takes: each block passes ``wonderland export --check`` (the vendored
Kubeflow v1.10.0 and Kubernetes schemas, strict field validation) with no finding."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from wonderland.export.check import check_paths

PAGE = Path(__file__).resolve().parents[2] / "docs" / "notebooks.md"
BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def test_the_pages_manifests_pass_the_cluster_schemas(tmp_path: Path) -> None:
    kinds = []
    for i, block in enumerate(BLOCK.findall(PAGE.read_text())):
        doc = yaml.safe_load(block)
        if not isinstance(doc, dict) or "kind" not in doc:
            continue  # a fragment (a volumes list, a status)
        kinds.append(doc["kind"])
        (tmp_path / f"block-{i}.yaml").write_text(block)
    assert sorted(kinds) == ["Notebook", "PersistentVolumeClaim", "PodDefault", "PodDefault"]
    report = check_paths([str(tmp_path)])
    assert report.ok and not report.findings, "\n".join(str(f) for f in report.findings)
