"""CronJobs and Jobs through kubectl 1.32 against a running `wonderland up` daemon."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _support.daemon import WonderlandDaemon, running_daemon
from _support.kube import kubectl_for

CRONJOB = """
apiVersion: batch/v1
kind: CronJob
metadata:
  name: hello
spec:
  schedule: "0 0 1 1 *"
  jobTemplate:
    metadata:
      labels: {team: reports}
    spec:
      backoffLimit: 2
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: python:3.12
            command: ["sh", "-c", "echo hello from the cronjob"]
            env: [{name: GREETING, value: hi}]
            resources: {limits: {memory: 64Mi, cpu: 100m}}
"""


@pytest.mark.e2e
def test_kubectl_create_job_from_cronjob_and_wait(tmp_path: Path) -> None:
    daemon = WonderlandDaemon.in_tmp(tmp_path)
    with running_daemon(daemon):
        kubectl = kubectl_for(daemon)
        manifest = tmp_path / "cronjob.yaml"
        manifest.write_text(CRONJOB)
        applied = kubectl("apply", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr
        assert "cronjob.batch/hello created" in applied.stdout
        # kubectl GETs the CronJob, then POSTs the Job as protobuf.
        made = kubectl("create", "job", "--from=cronjob/hello", "manual-1")
        assert made.returncode == 0, made.stderr
        assert made.stdout.strip() == "job.batch/manual-1 created"
        waited = kubectl("wait", "--for=condition=complete", "job/manual-1", "--timeout=60s")
        assert waited.returncode == 0, waited.stderr + daemon.log.read_text()[-3000:]
        assert "job.batch/manual-1 condition met" in waited.stdout
        table = kubectl("get", "jobs")
        assert table.returncode == 0, table.stderr
        header, row = table.stdout.splitlines()[:2]
        assert header.split()[:3] == ["NAME", "STATUS", "COMPLETIONS"]
        assert row.split()[:3] == ["manual-1", "Complete", "1/1"]
        job = json.loads(kubectl("get", "job", "manual-1", "-o", "json").stdout)
        assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
        assert job["metadata"]["labels"]["team"] == "reports"
        (owner,) = job["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("CronJob", "hello")
        assert job["spec"]["backoffLimit"] == 2
        assert job["status"]["succeeded"] == 1
        logs = kubectl("logs", "job/manual-1")
        assert logs.returncode == 0, logs.stderr
        assert logs.stdout.strip() == "hello from the cronjob"
        cronjobs = kubectl("get", "cronjobs")
        assert cronjobs.stdout.splitlines()[1].startswith("hello")
        assert "0 0 1 1 *" in cronjobs.stdout
        deleted = kubectl("delete", "cronjob", "hello")
        assert deleted.returncode == 0, deleted.stderr
        # The Job is the CronJob's: it goes with it, and its pod with it.
        assert "manual-1" not in kubectl("get", "jobs").stdout
        assert kubectl("get", "pods", "-o", "name").stdout.strip() == ""
