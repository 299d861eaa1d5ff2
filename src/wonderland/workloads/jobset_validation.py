"""The JobSet webhook's checks on create (``ValidateCreate`` of
``pkg/webhooks/jobset_webhook.go``, kubernetes-sigs/jobset v0.12) with upstream's messages,
and the name checks of ``k8s.io/apimachinery/pkg/util/validation`` they use.

Each check raises the first error it finds as :class:`InvalidError` with a field path.
Two go further than upstream, because a JobSet they refuse could never run: each replicated
job's Job template is checked as the API server checks a Job (upstream only finds out when
the Job is created, with a ``JobCreationFailed`` event), and
``failurePolicy.restartStrategy: InPlaceRestart`` is refused with what to use instead.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from wonderland.api.schemas.jobset import JobSetObject, ReplicatedJob
from wonderland.errors import InvalidError
from wonderland.workloads.admission import default_job_spec, validate_job_spec
from wonderland.workloads.jobset_jobs import (
    COORDINATOR_KEY,
    JobSetView,
    claim_name,
    coordinator_endpoint,
    job_name,
)
from wonderland.workloads.views import ObjectMetaView

__all__ = ["dns1035_label", "dns1123_subdomain", "label_value", "validate_create"]

Obj = dict[str, Any]
MAX_INT32 = 2**31 - 1
MAX_MANAGED_BY = 63
MAX_CLAIM_NAME = 63
MAX_REPLICAS_WITH_RESTART_JOB = 1024
VALID_FAILURE_REASONS = (
    "BackoffLimitExceeded",
    "DeadlineExceeded",
    "FailedIndexes",
    "MaxFailedIndexesExceeded",
    "PodFailurePolicy",
)

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_HTTP_PATH = re.compile(r"^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$")
_RULE_NAME = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
TOO_LONG = "must be no more than 63 characters"


# -- k8s.io/apimachinery/pkg/util/validation, with its messages ----------------------


def dns1123_subdomain(value: str) -> list[str]:
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.match(value):
        errors.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return errors


def dns1035_label(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append(TOO_LONG)
    if not _DNS1035_LABEL.match(value):
        errors.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character (e.g. "
            "'my-name',  or 'abc-123', regex used for validation is "
            "'[a-z]([-a-z0-9]*[a-z0-9])?')"
        )
    return errors


def label_value(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append(TOO_LONG)
    if not _LABEL_VALUE.match(value):
        errors.append(
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
            "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return errors


def _label_check(path: str, value: str, too_long: str) -> None:
    """Raise the first DNS-1035 error of ``value``, the length one replaced by ``too_long``."""
    for message in dns1035_label(value):
        raise InvalidError(
            path, f'Invalid value: "{value}": {too_long if message == TOO_LONG else message}'
        )


# -- create --------------------------------------------------------------------------


def _name_for_validation(meta: Obj) -> str:
    """The name the JobSet will have: its name, or generateName with 5 characters added."""
    name = str(meta.get("name") or "")
    if name:
        return name
    return str(meta.get("generateName") or "")[:58] + "abcde"


def validate_create(obj: Obj, restart_job: bool = False) -> None:
    """ValidateCreate of the webhook (on an object with the defaults filled)."""
    js = JobSetObject.model_validate(obj)
    spec = js.spec
    name = _name_for_validation(obj.get("metadata") or {})
    rjobs = spec.replicatedJobs or []
    failure = spec.failurePolicy
    if failure is not None and failure.restartStrategy == "InPlaceRestart":
        raise InvalidError(
            "spec.failurePolicy.restartStrategy",
            "InPlaceRestart restart strategy cannot be set when InPlaceRestart feature gate is "
            "disabled (it needs the in-place restart agent on every node; use Recreate or "
            "BlockingRecreate)",
        )
    if rjobs and rjobs[0].dependsOn is not None:
        raise InvalidError(
            "spec.replicatedJobs[0].dependsOn", "DependsOn can't be set for the first ReplicatedJob"
        )
    network = spec.network
    if network is not None and network.subdomain:
        path = "spec.network.subdomain"
        for message in dns1123_subdomain(network.subdomain):
            raise InvalidError(path, f'Invalid value: "{network.subdomain}": {message}')
        _label_check(
            path,
            network.subdomain,
            ".spec.network.subdomain is too long, must be less than 63 characters",
        )
    if spec.managedBy is not None:
        _check_managed_by(spec.managedBy)
    seen: set[str] = set()
    for i, rjob in enumerate(rjobs):
        _check_replicated_job(name, i, rjob, seen, obj)
        seen.add(rjob.name)
    names = {r.name for r in rjobs}
    for target in (spec.successPolicy.targetReplicatedJobs if spec.successPolicy else None) or []:
        if target not in names:
            raise InvalidError(
                "spec.successPolicy.targetReplicatedJobs",
                f"invalid replicatedJob name '{target}' does not appear in .spec.ReplicatedJobs",
            )
    if failure is not None:
        _check_failure_policy(js, names, restart_job)
    if spec.coordinator is not None:
        _check_coordinator(js, name)
    if spec.volumeClaimPolicies:
        _check_claims(js, name)


def _check_managed_by(manager: str) -> None:
    path = "spec.managedBy"
    if not manager:
        raise InvalidError(path, "Required value")
    host, slash, rest = manager.partition("/")
    if not slash or not host or not rest:
        raise InvalidError(
            path,
            f'Invalid value: "{manager}": must be a domain-prefixed path (such as "acme.io/foo")',
        )
    for message in dns1123_subdomain(host):
        raise InvalidError(path, f'Invalid value: "{host}": {message}')
    if not _HTTP_PATH.match(rest):
        raise InvalidError(
            path,
            f'Invalid value: "{rest}": Invalid path (regex used for validation is '
            "'[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
        )
    if len(manager) > MAX_MANAGED_BY:
        raise InvalidError(path, f"Too long: may not be more than {MAX_MANAGED_BY} bytes")


def _check_replicated_job(
    jobset: str, i: int, rjob: ReplicatedJob, seen: set[str], obj: Obj
) -> None:
    path = f"spec.replicatedJobs[{i}]"
    if rjob.name in seen:
        raise InvalidError(
            path, f'Duplicate value: map[string]interface {{}}{{"name":"{rjob.name}"}}'
        )
    replicas = rjob.replicas if rjob.replicas is not None else 1
    if replicas < 0:
        raise InvalidError(
            f"{path}.replicas",
            f"Invalid value: {replicas}: {path}.replicas in body should be greater than or equal to 0",
        )
    job_spec = rjob.template.spec
    parallelism = job_spec.parallelism if job_spec.parallelism is not None else 1
    if parallelism * replicas > MAX_INT32:
        raise InvalidError(
            path,
            f"the product of replicas and parallelism must not exceed {MAX_INT32} for "
            f"replicatedJob '{rjob.name}'",
        )
    group = rjob.groupName if rjob.groupName is not None else "default"
    _label_check(
        f"{path}.groupName",
        group,
        ".spec.replicatedJob[].groupName is too long, must be less than 63 characters",
    )
    longest_job = job_name(jobset, rjob.name, replicas - 1)
    for message in dns1035_label(longest_job):
        text = (
            "JobSet name is too long, job names generated for this JobSet will exceed 63 characters"
            if message == TOO_LONG
            else message
        )
        raise InvalidError(f"{path}.name", f'Invalid value: "{longest_job}": {text}')
    if job_spec.completionMode == "Indexed" and job_spec.completions is not None:
        longest_pod = f"{longest_job}-{job_spec.completions - 1}-abcde"
        for message in dns1035_label(longest_pod):
            text = (
                "JobSet name is too long, pod names generated for this JobSet will exceed 63 "
                "characters"
                if message == TOO_LONG
                else message
            )
            raise InvalidError(f"{path}.name", f'Invalid value: "{longest_job}": {text}')
    dependencies = rjob.dependsOn or []
    if len(dependencies) > 5:
        raise InvalidError(
            f"{path}.dependsOn", f"Too many: {len(dependencies)}: must have at most 5 items"
        )
    for j, dependency in enumerate(dependencies):
        if dependency.name not in seen:
            raise InvalidError(
                f"{path}.dependsOn[{j}].name",
                f"replicatedJob: {rjob.name} cannot depend on replicatedJob: {dependency.name}",
            )
    # The Job template as the Job's own API server checks will see it.
    raw_spec = copy.deepcopy(obj["spec"]["replicatedJobs"][i]["template"]["spec"])
    pod_spec = (raw_spec.get("template") or {}).get("spec") or {}
    # The controller adds a volume for each claim template the pods mount (addVolumes).
    claims = [
        (t.metadata.name if t.metadata else None) or ""
        for policy in JobSetObject.model_validate(obj).spec.volumeClaimPolicies or []
        for t in policy.templates or []
    ]
    for claim in claims:
        if _mounts(rjob, claim) and claim not in {
            v.get("name") for v in pod_spec.get("volumes") or []
        }:
            pod_spec["volumes"] = [
                *(pod_spec.get("volumes") or []),
                {"name": claim, "persistentVolumeClaim": {"claimName": claim}},
            ]
    default_job_spec(raw_spec)
    validate_job_spec(raw_spec, f"{path}.template.spec")


def _check_failure_policy(js: JobSetObject, names: set[str], restart_job: bool) -> None:
    policy = js.spec.failurePolicy
    assert policy is not None
    rules = policy.rules or []
    if any(r.action in ("RestartJob", "RestartJobAndIgnoreMaxRestarts") for r in rules):
        if not restart_job:
            raise InvalidError(
                "spec.failurePolicy.rules",
                "RestartJob and RestartJobAndIgnoreMaxRestarts failure policy actions are not "
                "allowed when RestartJob feature gate is disabled (start the platform with "
                "WONDERLAND_JOBSET_FEATURE_GATES=RestartJob=true)",
            )
        for rjob in js.spec.replicatedJobs or []:
            if (rjob.replicas if rjob.replicas is not None else 1) > MAX_REPLICAS_WITH_RESTART_JOB:
                raise InvalidError(
                    "spec.failurePolicy.rules",
                    "JobSet cannot have a failure policy rule with RestartJob or "
                    "RestartJobAndIgnoreMaxRestarts action and a replicated job with replicas > "
                    f"{MAX_REPLICAS_WITH_RESTART_JOB}",
                )
    by_name: dict[str, list[int]] = {}
    for i, rule in enumerate(rules):
        path = f"spec.failurePolicy.rules[{i}]"
        rule_name = rule.name or ""
        if not 1 <= len(rule_name) <= 128:
            raise InvalidError(
                f"{path}.name",
                f"invalid failure policy rule name of length {len(rule_name)}, the rule name must "
                "be at least 1 characters long and at most 128 characters long",
            )
        by_name.setdefault(rule_name, []).append(i)
        if not _RULE_NAME.match(rule_name):
            raise InvalidError(
                f"{path}.name",
                f"invalid failure policy rule name '{rule_name}', a failure policy rule name must "
                "start with an alphabetic character, optionally followed by a string of "
                "alphanumeric characters or '_,:', and must end with an alphanumeric character "
                "or '_'",
            )
        for target in rule.targetReplicatedJobs or []:
            if target not in names:
                raise InvalidError(
                    f"{path}.targetReplicatedJobs",
                    f"invalid replicatedJob name '{target}' in failure policy does not appear in "
                    ".spec.ReplicatedJobs",
                )
        for reason in rule.onJobFailureReasons or []:
            if reason not in VALID_FAILURE_REASONS:
                raise InvalidError(
                    f"{path}.onJobFailureReasons",
                    f"invalid job failure reason '{reason}' in failure policy is not a recognized "
                    f"job failure reason (one of {', '.join(VALID_FAILURE_REASONS)})",
                )
        for pattern in rule.onJobFailureMessagePatterns or []:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InvalidError(
                    f"{path}.onJobFailureMessagePatterns",
                    f'Invalid value: "{pattern}": not a regular expression: {exc}',
                ) from None
    for rule_name, indices in by_name.items():
        if len(indices) > 1:
            raise InvalidError(
                "spec.failurePolicy.rules",
                f"rule names are not unique, rules with indices {_go_list(indices)} all have the "
                f"same name '{rule_name}'",
            )


def _go_list(values: list[int]) -> str:
    return "[" + " ".join(str(v) for v in values) + "]"


def _check_coordinator(js: JobSetObject, name: str) -> None:
    coordinator = js.spec.coordinator
    assert coordinator is not None
    path = "spec.coordinator"
    rjob = next(
        (r for r in js.spec.replicatedJobs or [] if r.name == coordinator.replicatedJob), None
    )
    if rjob is None:
        raise InvalidError(
            f"{path}.replicatedJob",
            f"coordinator replicatedJob {coordinator.replicatedJob} does not exist",
        )
    job_index = coordinator.jobIndex or 0
    if not 0 <= job_index < (rjob.replicas if rjob.replicas is not None else 1):
        raise InvalidError(
            f"{path}.jobIndex",
            f"coordinator job index {job_index} is invalid for replicatedJob {rjob.name}",
        )
    job_spec = rjob.template.spec
    if job_spec.completionMode != "Indexed" or job_spec.completions is None:
        raise InvalidError(
            path,
            "job for coordinator pod must be indexed completion mode, and completions number "
            "must be set",
        )
    pod_index = coordinator.podIndex or 0
    if not 0 <= pod_index < job_spec.completions:
        raise InvalidError(
            f"{path}.podIndex",
            f"coordinator pod index {pod_index} is invalid for replicatedJob "
            f"{coordinator.replicatedJob} job index {job_index}",
        )
    view = JobSetView(js, ObjectMetaView(name=name))
    endpoint = coordinator_endpoint(view)
    errors = label_value(endpoint)
    if errors:
        raise InvalidError(
            path,
            f'spec will lead to invalid label value "{endpoint}" for coordinator label '
            f'"{COORDINATOR_KEY}" (long JobSet / ReplicatedJob / SubDomain name?): '
            + ", ".join(errors),
        )


def _mounts(rjob: ReplicatedJob, volume: str) -> bool:
    pod = rjob.template.spec.template.spec
    return any(
        mount.name == volume
        for container in [*(pod.initContainers or []), *pod.containers]
        for mount in container.volumeMounts or []
    )


def _check_claims(js: JobSetObject, name: str) -> None:
    policies = js.spec.volumeClaimPolicies or []
    if len(policies) > 50:
        raise InvalidError(
            "spec.volumeClaimPolicies", f"Too many: {len(policies)}: must have at most 50 items"
        )
    seen: set[str] = set()
    rjobs = js.spec.replicatedJobs or []
    for i, policy in enumerate(policies):
        path = f"spec.volumeClaimPolicies[{i}]"
        for j, template in enumerate(policy.templates or []):
            at = f"{path}.template[{j}]"
            meta = template.metadata
            if meta is not None and meta.namespace:
                raise InvalidError(
                    path,
                    'Invalid value: "object": namespace cannot be set for VolumeClaimPolicies '
                    "templates",
                )
            volume = (meta.name if meta else None) or ""
            if volume in seen:
                raise InvalidError(
                    f"{at}.name",
                    f'Invalid value: "{volume}": names must be unique for VolumeClaimPolicies '
                    "template",
                )
            for message in dns1123_subdomain(volume):
                raise InvalidError(f"{at}.name", f'Invalid value: "{volume}": {message}')
            if len(claim_name(name, volume)) > MAX_CLAIM_NAME:
                raise InvalidError(
                    f"{at}.name",
                    f'Invalid value: "{volume}": VolumeClaimPolicies template name is too long',
                )
            for k, rjob in enumerate(rjobs):
                for v, pod_volume in enumerate(rjob.template.spec.template.spec.volumes or []):
                    if pod_volume.name == volume:
                        raise InvalidError(
                            f"spec.replicatedJobs[{k}].template.spec.template.spec.volumes[{v}].name",
                            f'Invalid value: "{volume}": volume name conflicts with '
                            f"VolumeClaimPolicy template name: {volume}",
                        )
            if not any(_mounts(rjob, volume) for rjob in rjobs):
                raise InvalidError(
                    "spec.replicatedJobs",
                    "replicatedJob containers don't have a matching volumeMount: "
                    f"{volume} from VolumeClaimPolicies",
                )
            seen.add(volume)
