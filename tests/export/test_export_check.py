"""`wonderland export --check`: manifests against the vendored upstream schemas."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wonderland.api.manifests import load_text
from wonderland.export import CheckReport, Finding, check_manifests, check_paths

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def check(text: str, source: str = "app.yaml") -> CheckReport:
    return check_manifests(load_text(textwrap.dedent(text).lstrip("\n"), source))


def only_error(report: CheckReport) -> Finding:
    assert len(report.errors) == 1, [str(f) for f in report.findings]
    return report.errors[0]


KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "1"
    spec:
      containerConcurrency: 10
      containers:
        - image: registry.example/hello@sha256:0123
          ports:
            - containerPort: 8080
          env:
            - name: TARGET
              value: world
  traffic:
    - latestRevision: true
      percent: 100
"""


def test_a_valid_knative_service_passes() -> None:
    report = check(KSVC)
    assert report.ok
    assert report.findings == ()
    assert report.objects == 1


def test_an_unknown_field_is_an_error_at_its_line_with_its_path() -> None:
    report = check(KSVC.replace("          ports:", "          portz:"))
    error = only_error(report)
    assert error.path == "spec.template.spec.containers[0].portz"
    assert error.line == 14
    assert 'unknown field "portz"' in error.message
    assert "ports" in error.message  # the fields that are allowed are named
    assert str(error).startswith("app.yaml:14: error: document 1 (Service/hello): spec.")


def test_a_misspelled_case_gets_a_suggestion() -> None:
    error = only_error(check(KSVC.replace("containerConcurrency", "ContainerConcurrency")))
    assert 'did you mean "containerConcurrency"' in error.message


def test_a_wrong_type_is_an_error_naming_what_was_expected() -> None:
    error = only_error(check(KSVC.replace("containerConcurrency: 10", "containerConcurrency: ten")))
    assert error.path == "spec.template.spec.containerConcurrency"
    assert error.line == 11
    assert error.message == 'expected an integer, found a string ("ten")'


def test_a_missing_required_field_is_an_error_at_its_parent() -> None:
    error = only_error(
        check(
            KSVC.replace("            - name: TARGET\n              value", "            - value")
        )
    )
    assert error.path == "spec.template.spec.containers[0].env[0].name"
    assert error.message == "required field is missing"
    assert error.line == 17  # the env item the name is missing from


def test_a_required_field_set_to_null_is_missing() -> None:
    error = only_error(check(KSVC.replace("name: TARGET", "name: null")))
    assert error.path == "spec.template.spec.containers[0].env[0].name"


def test_an_optional_field_set_to_null_is_accepted() -> None:
    assert check(KSVC.replace("containerConcurrency: 10", "containerConcurrency: null")).ok


JOBSET = """
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata:
  name: pair
spec:
  successPolicy:
    operator: All
  replicatedJobs:
    - name: workers
      replicas: 2
      template:
        spec:
          template:
            spec:
              restartPolicy: Never
              containers:
                - name: main
                  image: busybox
"""


def test_a_bad_enum_value_is_an_error_listing_the_allowed_values() -> None:
    assert check(JOBSET).ok
    error = only_error(check(JOBSET.replace("operator: All", "operator: Some")))
    assert error.path == "spec.successPolicy.operator"
    assert error.line == 7
    assert error.message == 'unsupported value "Some": must be one of "All", "Any"'


def test_every_problem_of_an_object_is_reported() -> None:
    text = JOBSET.replace("operator: All", "operator: Some").replace("replicas: 2", "replicas: two")
    report = check(text)
    assert [f.path for f in report.errors] == [
        "spec.successPolicy.operator",
        "spec.replicatedJobs[0].replicas",
    ]


def test_findings_name_the_document_of_a_multi_document_file() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: '1'}\n---\n"
        + textwrap.dedent(JOBSET).lstrip("\n")
        + "---\n"
        + textwrap.dedent(KSVC).lstrip("\n").replace("ports:", "portz:")
    )
    report = check_manifests(load_text(text, "all.yaml"))
    error = only_error(report)
    assert error.document == 3
    assert error.object == "Service/hello"
    assert error.line == 5 + 19 + 14  # the line in the file, not in the document


def test_an_unserved_version_names_the_served_one() -> None:
    error = only_error(
        check(KSVC.replace("serving.knative.dev/v1", "serving.knative.dev/v1alpha1"))
    )
    assert error.path == "apiVersion"
    assert "knative/serving knative-v1.21.3" in error.message
    assert "apiVersion: serving.knative.dev/v1" in error.message


def test_an_unknown_kind_is_an_error() -> None:
    error = only_error(check("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"))
    assert "no vendored schema for example.com/v1 Widget" in error.message


def test_a_document_that_is_not_an_object_is_an_error() -> None:
    error = only_error(check('{"inputs": []}', "input.json"))
    assert "not a Kubernetes object" in error.message


def test_metadata_is_checked_as_the_api_server_does() -> None:
    report = check(
        KSVC.replace(
            "  name: hello\n", "  name: Hello_World\n  labelz: {}\n  labels: {app: 'a b'}\n"
        )
    )
    by_path = {f.path: f.message for f in report.errors}
    assert set(by_path) == {"metadata.name", "metadata.labelz", "metadata.labels.app"}
    assert "not a valid name" in by_path["metadata.name"]
    assert "not a valid label value" in by_path["metadata.labels.app"]


def test_a_fractional_quantity_in_a_crd_must_be_quoted() -> None:
    text = KSVC.replace(
        "          env:", "          resources:\n            limits: {cpu: 0.5}\n          env:"
    )
    error = only_error(check(text))
    assert error.path == "spec.template.spec.containers[0].resources.limits.cpu"
    assert 'quote it: "0.5"' in error.message
    assert check(text.replace("cpu: 0.5", 'cpu: "500m"')).ok


def test_core_kinds_check_against_the_kubernetes_schemas() -> None:
    deployment = """
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers:
            - name: web
              image: nginx
              ports: [{containerPort: 80}]
              resources: {requests: {cpu: 0.5, memory: 64Mi}}
    """
    assert check(deployment).ok  # a core Quantity takes a number
    error = only_error(check(deployment.replace("containerPort: 80", "containerPort: '80'")))
    assert error.path == "spec.template.spec.containers[0].ports[0].containerPort"
    duplicate = deployment.replace(
        "            - name: web\n",
        "            - {name: web, image: busybox}\n            - name: web\n",
    )
    error = only_error(check(duplicate))
    assert error.path == "spec.template.spec.containers[1]"
    assert error.message == 'duplicate entry: another item has {"name": "web"}'


def test_secret_data_must_be_base64() -> None:
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: cGFzcw==}\n"
    assert check(secret).ok
    error = only_error(check(secret.replace("cGFzcw==", "pass word")))
    assert error.path == "data.password"
    assert "stringData" in error.message


def test_a_dapr_component_needs_its_metadata_list() -> None:
    component = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: c}\nspec: {type: state.redis, version: v1}\n"
    error = only_error(check(component))
    assert error.path == "spec.metadata"
    assert check(component.replace("version: v1}", "version: v1, metadata: []}")).ok


def test_preserve_unknown_fields_keeps_what_the_crd_keeps() -> None:
    # Katib v0.19.0's Experiment CRD keeps any spec, as the cluster does.
    experiment = "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata: {name: e}\nspec: {anything: [1, 2]}\n"
    assert check(experiment).ok


@pytest.mark.parametrize(
    ("spec_type", "feature"),
    [
        ("pubsub.in-memory", "pubsub.in-memory"),
        ("state.sqlite", "state.sqlite"),
        ("configuration.wonderland.configmap", "configuration.wonderland.configmap"),
    ],
)
def test_a_local_only_component_is_a_warning_not_an_error(spec_type: str, feature: str) -> None:
    component = f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: c}}\nspec: {{type: {spec_type}, version: v1, metadata: []}}\n"
    report = check(component)
    assert report.ok
    (warning,) = report.warnings
    assert warning.path == "spec.type"
    assert f'local-only feature "{feature}"' in warning.message
    assert check(component.replace(spec_type, "state.redis")).warnings == []


def test_a_local_model_path_is_a_warning() -> None:
    isvc = """
    apiVersion: serving.kserve.io/v1beta1
    kind: InferenceService
    metadata: {name: iris}
    spec:
      predictor:
        model:
          modelFormat: {name: sklearn}
          storageUri: file://./model
    """
    report = check(isvc)
    assert report.ok
    (warning,) = report.warnings
    assert warning.path == "spec.predictor.model.storageUri"
    assert warning.line == 8
    assert check(isvc.replace("file://./model", "pvc://models/iris")).findings == ()


def test_the_conference_cluster_folder_passes() -> None:
    report = check_paths([str(EXAMPLES / "conference" / "cluster")], recursive=True)
    assert report.objects == 15
    assert report.findings == ()
    assert report.ok


def test_every_example_manifest_passes_with_only_local_only_warnings() -> None:
    files = sorted(str(p) for p in EXAMPLES.rglob("*.yaml"))
    report = check_paths(files)
    assert report.unreadable == ()
    assert [str(f) for f in report.errors] == []
    features = {f.message.split('"')[1] for f in report.warnings}
    assert features == {
        "pubsub.in-memory",
        "state.sqlite",
        "configuration.wonderland.configmap",
        "file://./examples/inference/model",
        "file://./examples/inference/tiny-lm",
        "models:/iris-mdlc@champion",
    }


def test_a_file_that_does_not_parse_is_reported_and_the_others_still_checked(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text("kind: [\n")
    (tmp_path / "b.yaml").write_text(textwrap.dedent(KSVC).replace("ports:", "portz:"))
    report = check_paths([str(tmp_path)])
    assert len(report.unreadable) == 1
    assert "a.yaml:" in report.unreadable[0]
    assert [f.path for f in report.errors] == ["spec.template.spec.containers[0].portz"]
    assert not report.ok
