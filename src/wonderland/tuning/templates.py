"""Trial templates: where a trial's run object comes from and how it is rendered.

As Katib's manifest generator does, the template (``trialSpec`` inline, or the
``templatePath`` key of a ConfigMap) is serialised, every ``${trialParameters.<name>}`` is
replaced by the value of the parameter (or trial metadata, ``${trialSpec.Name}``...) its
``reference`` names, and the result is parsed back; the run object then gets the trial's
name and namespace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from wonderland.api.admission import ObjectReader
from wonderland.api.schemas.katib import ExperimentSpec, ParameterAssignment, TrialTemplate
from wonderland.errors import InvalidError, NotFoundError

__all__ = [
    "JOB",
    "PARAM_REFERENCE",
    "RUN_KINDS",
    "TRAINJOB",
    "render",
    "template_text",
]

Obj = dict[str, Any]

JOB = ("batch/v1", "Job")
TRAINJOB = ("trainer.kubeflow.org/v1alpha1", "TrainJob")
RUN_KINDS = {JOB: "jobs.batch", TRAINJOB: "trainjobs.trainer.kubeflow.org"}
PARAM_REFERENCE = re.compile(r"\$\{trialParameters\..+?\}")
_META_REFERENCE = re.compile(r"^\$\{trialSpec\.(.+?)\}$")
_META_INDEX = re.compile(r"^(.+)\[(.+)]$")
META_KEYS = ("Name", "Namespace", "Kind", "APIVersion", "Annotations", "Labels")


def is_meta_reference(reference: str) -> bool:
    """``${trialSpec.Name}``, ``${trialSpec.Labels[key]}``...: Katib's metadata references."""
    match = _META_REFERENCE.match(reference)
    if match is None:
        return False
    key = match.group(1)
    if key in META_KEYS:
        return True
    indexed = _META_INDEX.match(key)
    return indexed is not None and indexed.group(1) in META_KEYS


def template_text(template: TrialTemplate, reader: ObjectReader) -> str:
    """The template as JSON text: ``trialSpec``, or the ConfigMap's ``templatePath`` key."""
    if template.trialSpec is not None:
        return json.dumps(template.trialSpec)
    source = template.configMap
    if source is None:
        raise InvalidError(
            "spec.trialTemplate",
            "spec.trialTemplate.trialSpec or spec.trialTemplate.configMap must be specified",
        )
    try:
        cm = reader.get("configmaps", source.configMapNamespace, source.configMapName)
    except NotFoundError:
        raise InvalidError(
            "spec.trialTemplate.configMap",
            f'unable to parse spec.trialTemplate: ConfigMap "{source.configMapName}" not '
            f'found in namespace "{source.configMapNamespace}"; create it before the Experiment',
        ) from None
    data = (cm.get("data") or {}).get(source.templatePath)
    if data is None:
        raise InvalidError(
            "spec.trialTemplate.configMap.templatePath",
            f'unable to parse spec.trialTemplate: ConfigMap "{source.configMapName}" has no '
            f'key "{source.templatePath}" (keys: {sorted(cm.get("data") or {})})',
        )
    try:
        loaded = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise InvalidError(
            "spec.trialTemplate.configMap.templatePath",
            f"unable to parse spec.trialTemplate: {exc}",
        ) from None
    if not isinstance(loaded, dict):
        raise InvalidError(
            "spec.trialTemplate.configMap.templatePath",
            "unable to parse spec.trialTemplate: the template is not a Kubernetes object",
        )
    return json.dumps(loaded)


def _meta_value(reference: str, name: str, namespace: str, run: Obj) -> str:
    match = _META_REFERENCE.match(reference)
    assert match is not None
    key = match.group(1)
    meta = run.get("metadata") or {}
    simple = {
        "Name": name,
        "Namespace": namespace,
        "Kind": str(run.get("kind", "")),
        "APIVersion": str(run.get("apiVersion", "")),
    }
    if key in simple:
        return simple[key]
    indexed = _META_INDEX.match(key)
    assert indexed is not None
    section = "annotations" if indexed.group(1) == "Annotations" else "labels"
    return str((meta.get(section) or {}).get(indexed.group(2), ""))


def render(
    spec: ExperimentSpec,
    text: str,
    trial_name: str,
    namespace: str,
    assignments: list[ParameterAssignment],
) -> Obj:
    """The run object of one trial: ``text`` (from :func:`template_text`) with every
    trial parameter replaced, named after the trial."""
    template = spec.trialTemplate
    assert template is not None
    values: Mapping[str, str] = {a.name: a.value for a in assignments}
    skeleton: Obj = json.loads(text)
    for param in template.trialParameters or []:
        if is_meta_reference(param.reference):
            value = _meta_value(param.reference, trial_name, namespace, skeleton)
        elif param.reference in values:
            value = values[param.reference]
        else:
            raise InvalidError(
                "spec.trialTemplate.trialParameters",
                f"parameter reference {param.reference} does not exist in the trial's "
                f"assignments {sorted(values)}",
            )
        # The value goes into JSON text: escape it as a JSON string body.
        text = text.replace(f"${{trialParameters.{param.name}}}", json.dumps(value)[1:-1])
    run: Obj = json.loads(text)
    meta = run.setdefault("metadata", {})
    meta["name"] = trial_name
    meta["namespace"] = namespace
    return run
