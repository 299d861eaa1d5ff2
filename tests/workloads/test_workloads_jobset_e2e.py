"""JobSets through kubectl 1.32 against a running `wonderland up` daemon: upstream's examples
(examples/jobsets/) applied, listed, described, refused and deleted as a user does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _support.daemon import WonderlandDaemon, running_daemon, wait_for
from _support.kube import Kubectl, kubectl_for
from kubernetes import client, config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "jobsets"
LABEL = "jobset.sigs.k8s.io/jobset-name"


def _ok(kubectl: Kubectl, *args: str, stdin: str | None = None) -> str:
    result = kubectl(*args, stdin=stdin)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def _json(kubectl: Kubectl, *args: str) -> dict[str, object]:
    out: dict[str, object] = json.loads(_ok(kubectl, *args, "-o", "json"))
    return out


@pytest.mark.e2e
@pytest.mark.slow
def test_kubectl_runs_upstream_jobset_examples(tmp_path: Path) -> None:
    daemon = WonderlandDaemon.in_tmp(tmp_path)
    with running_daemon(daemon):
        kubectl = kubectl_for(daemon)
        files = ["depends-on", "success-policy", "coordinator", "failjobset-action", "single-pvc"]
        args = [a for name in files for a in ("-f", str(EXAMPLES / f"{name}.yaml"))]
        applied = _ok(kubectl, "apply", *args)
        assert "jobset.jobset.x-k8s.io/depends-on created" in applied
        listed = _ok(kubectl, "get", "jobsets").splitlines()
        assert listed[0].split() == [
            "NAME",
            "TERMINALSTATE",
            "RESTARTS",
            "COMPLETED",
            "SUSPENDED",
            "AGE",
        ]
        assert len(listed) == 1 + len(files)
        waited = kubectl(
            "wait",
            "--for=condition=Completed",
            "jobset/depends-on",
            "jobset/success-policy",
            "jobset/coordinator-example",
            "jobset/volume-claim-trainjob",
            "--timeout=90s",
        )
        assert waited.returncode == 0, waited.stderr + daemon.log.read_text()[-3000:]
        failed = _ok(kubectl, "wait", "--for=condition=Failed", "jobset/failjobset-action-example")
        assert "condition met" in failed
        rows = {
            line.split()[0]: line.split()[1:4]
            for line in _ok(kubectl, "get", "jobsets").splitlines()[1:]
        }
        assert rows["depends-on"] == ["Completed", "0", "True"]
        assert rows["failjobset-action-example"][:2] == ["Failed", "0"]

        # The kubernetes client and the wonderland CLI see the same.
        api = config.new_client_from_config(config_file=str(daemon.home / "kubeconfig"))
        with api:
            found = client.CustomObjectsApi(api).get_namespaced_custom_object(
                "jobset.x-k8s.io", "v1alpha2", "default", "jobsets", "depends-on"
            )
        assert found["status"]["terminalState"] == "Completed"
        cli = daemon.ok("get", "jobsets").splitlines()
        assert cli[0].split()[:4] == ["NAME", "TERMINALSTATE", "RESTARTS", "COMPLETED"]

        # dependsOn: every Job of the chain, named <jobset>-<replicatedJob>-<index>.
        jobs = _json(kubectl, "get", "jobs", "-l", f"{LABEL}=depends-on")
        names = sorted(j["metadata"]["name"] for j in jobs["items"])  # type: ignore[attr-defined]
        assert names == ["depends-on-initializer-0", "depends-on-launcher-0", "depends-on-worker-0"]
        hosts = _ok(
            kubectl,
            "get",
            "pods",
            "-l",
            f"{LABEL}=depends-on,jobset.sigs.k8s.io/replicatedjob-name=worker",
            "-o",
            "jsonpath={range .items[*]}{.spec.hostname}.{.spec.subdomain}{'\\n'}{end}",
        ).split()
        assert sorted(hosts) == [f"depends-on-worker-0-{i}.depends-on" for i in range(4)]
        logs = _ok(kubectl, "logs", "job/depends-on-initializer-0")
        assert logs.strip() == "initializer runs for 1 second"

        # The coordinator's endpoint on every pod.
        coordinator = _ok(
            kubectl,
            "get",
            "pods",
            "-l",
            f"{LABEL}=coordinator-example",
            "-o",
            "jsonpath={.items[*].metadata.labels.jobset\\.sigs\\.k8s\\.io/coordinator}",
        ).split()
        assert set(coordinator) == {"coordinator-example-driver-0-0.coordinator-example"}

        # successPolicy: done when the workers are; the leader Job was deleted with its pod.
        wait_for(
            lambda: (
                "success-policy-leader-0"
                not in _ok(kubectl, "get", "jobs", "-l", f"{LABEL}=success-policy")
            ),
            30,
            "the leader Job to be deleted",
        )

        described = _ok(kubectl, "describe", "jobset", "failjobset-action-example")
        assert "FailJobSetFailurePolicyAction" in described
        assert (
            "applying FailJobSet failure policy action (first failed job: "
            "failjobset-action-example-leader-0)" in described
        )

        # volumeClaimPolicies: the Delete claim goes with the JobSet, the Retain one stays.
        claims = _ok(kubectl, "get", "pvc", "-o", "name").split()
        assert sorted(claims) == [
            "persistentvolumeclaim/checkpoints-volume-claim-trainjob",
            "persistentvolumeclaim/initializer-volume-claim-trainjob",
        ]
        node_log = _ok(kubectl, "logs", "job/volume-claim-trainjob-node-0")
        assert "Qwen3-30b" in node_log

        # Refused with the webhook's message.
        bad = (EXAMPLES / "depends-on.yaml").read_text().replace("name: depends-on", "name: 9lives")
        refused = kubectl("apply", "-f", "-", stdin=bad)
        assert refused.returncode != 0
        assert "spec.replicatedJobs[0].name" in refused.stderr
        assert "a DNS-1035 label must consist of lower case alphanumeric characters" in (
            refused.stderr
        )
        immutable = (
            (EXAMPLES / "coordinator.yaml").read_text().replace("parallelism: 4", "parallelism: 3")
        )
        changed = kubectl("apply", "-f", "-", stdin=immutable)
        assert changed.returncode != 0 and "field is immutable" in changed.stderr

        # Suspend a new JobSet with a patch: its Jobs are suspended too.
        _ok(kubectl, "apply", "-f", str(EXAMPLES / "paralleljobs.yaml"))
        _ok(
            kubectl,
            "patch",
            "jobset",
            "paralleljobs",
            "--type=merge",
            "-p",
            '{"spec":{"suspend":true}}',
        )
        _ok(kubectl, "wait", "--for=condition=Suspended", "jobset/paralleljobs", "--timeout=30s")
        header, row = _ok(kubectl, "get", "jobset", "paralleljobs").splitlines()
        column = header.index("SUSPENDED")
        assert row[column:].split()[0] == "true"
        jobs = _json(kubectl, "get", "jobs", "-l", f"{LABEL}=paralleljobs")
        assert all(j["spec"]["suspend"] for j in jobs["items"])  # type: ignore[attr-defined]

        # Deleting JobSets deletes their Jobs and pods.
        _ok(kubectl, "delete", "jobsets", "--all")
        assert _ok(kubectl, "get", "jobs", "-o", "name").strip() == ""
        wait_for(
            lambda: _ok(kubectl, "get", "pods", "-o", "name").strip() == "",
            30,
            "every pod to be gone",
        )
        assert _ok(kubectl, "get", "pvc", "-o", "name").split() == [
            "persistentvolumeclaim/checkpoints-volume-claim-trainjob"
        ]
