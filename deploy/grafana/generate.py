"""Writes the Grafana dashboards of this folder (``python deploy/grafana/generate.py``).

The JSON files are generated: change the panels here and run this again. Every query uses
the names and labels the peers export on a cluster (Knative Serving's OpenTelemetry names,
Dapr's, KServe's), so the same dashboards read a cluster's Prometheus too; the few that
only wonderland exports say so in their description. Variables come from
``label_values(...)`` queries; rates use ``$__rate_interval``; the data source is the
``datasource`` variable (any Prometheus).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


@dataclass
class Panel:
    title: str
    exprs: list[tuple[str, str]]  # (expr, legend)
    unit: str = "short"
    description: str = ""
    width: int = 12


@dataclass
class Row:
    title: str
    panels: list[Panel] = field(default_factory=list)


@dataclass
class Variable:
    name: str
    label: str
    query: str  # label_values(...)
    multi: bool = True


def _quantiles(metric: str, selector: str, by: str, qs: tuple[float, ...]) -> list[tuple[str, str]]:
    return [
        (
            f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"p{round(q * 100)} {{{{{by}}}}}",
        )
        for q in qs
    ]


def _variable(v: Variable) -> dict[str, Any]:
    return {
        "name": v.name,
        "label": v.label,
        "type": "query",
        "datasource": DS,
        "query": {"query": v.query, "refId": f"{v.name}-values"},
        "definition": v.query,
        "refresh": 2,
        "multi": v.multi,
        "includeAll": v.multi,
        "allValue": ".*" if v.multi else None,
        "current": {},
        "sort": 1,
    }


def dashboard(
    uid: str, title: str, description: str, variables: list[Variable], rows: list[Row]
) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for row in rows:
        panels.append(
            {
                "type": "row",
                "title": row.title,
                "id": next_id,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        x = 0
        for p in row.panels:
            if x + p.width > 24:
                x, y = 0, y + 8
            panels.append(
                {
                    "type": "timeseries",
                    "title": p.title,
                    "description": p.description,
                    "id": next_id,
                    "datasource": DS,
                    "gridPos": {"h": 8, "w": p.width, "x": x, "y": y},
                    "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                    "options": {
                        "legend": {
                            "displayMode": "list",
                            "placement": "bottom",
                            "showLegend": True,
                        },
                        "tooltip": {"mode": "multi", "sort": "desc"},
                    },
                    "targets": [
                        {
                            "datasource": DS,
                            "expr": expr,
                            "legendFormat": legend,
                            "range": True,
                            "refId": chr(ord("A") + i),
                        }
                        for i, (expr, legend) in enumerate(p.exprs)
                    ],
                }
            )
            next_id += 1
            x += p.width
        y += 8
    templating = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "refresh": 1,
        },
        *(_variable(v) for v in variables),
    ]
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["wonderland"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-30m", "to": "now"},
        "refresh": "10s",
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": templating},
        "panels": panels,
    }


# -- services: Knative revisions ---------------------------------------------------

KN = 'k8s_namespace_name=~"$namespace", kn_service_name=~"$service", kn_revision_name=~"$revision"'
INVOKE = "kn_serving_invocation_duration_seconds"


def services() -> dict[str, Any]:
    rate = f"rate({INVOKE}_count{{{KN}}}[{RATE}])"
    code_class = (
        f'label_replace({rate}, "code_class", "${{1}}xx", "http_response_status_code", "([0-9]).*")'
    )
    rows = [
        Row(
            "Requests",
            [
                Panel(
                    "Request volume by revision",
                    [(f"sum by (kn_revision_name) ({rate})", "{{kn_revision_name}}")],
                    "reqps",
                ),
                Panel(
                    "Request volume by code class",
                    [
                        (
                            f"sum by (kn_revision_name, code_class) ({code_class})",
                            "{{kn_revision_name}} {{code_class}}",
                        )
                    ],
                    "reqps",
                ),
                Panel(
                    "Success rate (non-5xx responses)",
                    [
                        (
                            f'sum by (kn_revision_name) (rate({INVOKE}_count{{{KN}, http_response_status_code!~"5.."}}[{RATE}]))'
                            f" / sum by (kn_revision_name) ({rate})",
                            "{{kn_revision_name}}",
                        )
                    ],
                    "percentunit",
                ),
                Panel(
                    "Response time (p50, p95, p99)",
                    _quantiles(INVOKE, KN, "kn_revision_name", (0.5, 0.95, 0.99)),
                    "s",
                ),
            ],
        ),
        Row(
            "Concurrency and scaling",
            [
                Panel(
                    "Requests in flight",
                    [
                        (
                            f"sum by (kn_revision_name) (kn_serving_queue_depth{{{KN}}})",
                            "queued or in flight {{kn_revision_name}}",
                        ),
                        (
                            f"sum by (kn_revision_name) (kn_revision_request_concurrency{{{KN}}})",
                            "through the activator {{kn_revision_name}}",
                        ),
                    ],
                ),
                Panel(
                    "Observed concurrency (stable, panic, target)",
                    [
                        (
                            f"sum by (kn_revision_name) (kn_revision_concurrency_stable{{{KN}}})",
                            "stable {{kn_revision_name}}",
                        ),
                        (
                            f"sum by (kn_revision_name) (kn_revision_concurrency_panic{{{KN}}})",
                            "panic {{kn_revision_name}}",
                        ),
                        (
                            f"sum by (kn_revision_name) (kn_revision_concurrency_target{{{KN}}})",
                            "target {{kn_revision_name}}",
                        ),
                    ],
                ),
                Panel(
                    "Desired and actual pods",
                    [
                        (
                            f"sum by (kn_revision_name) (kn_revision_pods_desired{{{KN}}})",
                            "desired {{kn_revision_name}}",
                        ),
                        (
                            f"sum by (kn_revision_name) (kn_revision_pods_requested{{{KN}}})",
                            "requested {{kn_revision_name}}",
                        ),
                        (
                            f"sum by (kn_revision_name) (kn_revision_pods_count{{{KN}}})",
                            "actual {{kn_revision_name}}",
                        ),
                    ],
                ),
                Panel(
                    "Pods not ready, pending, terminating",
                    [
                        (
                            f"sum by (kn_revision_name) (kn_revision_pods_not_ready_count{{{KN}}})",
                            "not ready {{kn_revision_name}}",
                        ),
                        (
                            f"sum by (kn_revision_name) (kn_revision_pods_pending_count{{{KN}}})",
                            "pending {{kn_revision_name}}",
                        ),
                        (
                            f"sum by (kn_revision_name) (kn_revision_pods_terminating_count{{{KN}}})",
                            "terminating {{kn_revision_name}}",
                        ),
                    ],
                ),
            ],
        ),
        Row(
            "Cold starts",
            [
                Panel(
                    "Cold starts",
                    [
                        (
                            f"sum by (kn_revision_name) (increase(faas_coldstarts_total{{{KN}}}[{RATE}]))",
                            "{{kn_revision_name}}",
                        )
                    ],
                    description="Scale-from-zero events a request caused (OpenTelemetry's faas.coldstarts; "
                    "Knative itself has no cold-start metric).",
                ),
                Panel(
                    "Cold start time (p50, p95)",
                    _quantiles("faas_init_duration_seconds", KN, "kn_revision_name", (0.5, 0.95)),
                    "s",
                    description="From the first held request until a replica was ready (faas.init_duration).",
                ),
            ],
        ),
    ]
    variables = [
        Variable("namespace", "Namespace", f"label_values({INVOKE}_count, k8s_namespace_name)"),
        Variable(
            "service",
            "Service",
            f'label_values({INVOKE}_count{{k8s_namespace_name=~"$namespace"}}, kn_service_name)',
        ),
        Variable(
            "revision",
            "Revision",
            f'label_values({INVOKE}_count{{k8s_namespace_name=~"$namespace", kn_service_name=~"$service"}}, kn_revision_name)',
        ),
    ]
    return dashboard(
        "wonderland-services",
        "Knative Services: revisions",
        "Request volume, success, latency, concurrency and scaling of Knative revisions.",
        variables,
        rows,
    )


# -- Dapr sidecars -------------------------------------------------------------------

DAPR = 'app_id=~"$app_id", namespace=~"$namespace"'


def dapr() -> dict[str, Any]:
    def r(metric: str, extra: str = "") -> str:
        return f"rate({metric}{{{DAPR}{extra}}}[{RATE}])"

    rows = [
        Row(
            "HTTP: app to Dapr (Dapr's HTTP API)",
            [
                Panel(
                    "Requests per second",
                    [(f"sum by (app_id) ({r('dapr_http_server_request_count')})", "{{app_id}}")],
                    "reqps",
                ),
                Panel(
                    "Latency (p95, p75)",
                    _quantiles("dapr_http_server_latency", DAPR, "app_id", (0.95, 0.75)),
                    "ms",
                ),
                Panel(
                    "Responses by status",
                    [
                        (
                            f"sum by (app_id, status) ({r('dapr_http_server_response_count')})",
                            "{{app_id}} {{status}}",
                        )
                    ],
                    "reqps",
                ),
            ],
        ),
        Row(
            "HTTP: Dapr to app (deliveries, invocations)",
            [
                Panel(
                    "Requests per second",
                    [
                        (
                            f"sum by (app_id, status) ({r('dapr_http_client_completed_count')})",
                            "{{app_id}} {{status}}",
                        )
                    ],
                    "reqps",
                ),
                Panel(
                    "Round-trip latency (p95, p75)",
                    _quantiles("dapr_http_client_roundtrip_latency", DAPR, "app_id", (0.95, 0.75)),
                    "ms",
                ),
            ],
        ),
        Row(
            "Components",
            [
                Panel(
                    "State store operations",
                    [
                        (
                            f"sum by (app_id, component, operation, success) ({r('dapr_component_state_count')})",
                            "{{component}} {{operation}} ok={{success}}",
                        )
                    ],
                    "ops",
                ),
                Panel(
                    "State store latency (p95)",
                    _quantiles(
                        "dapr_component_state_latencies", DAPR, "component, operation", (0.95,)
                    ),
                    "ms",
                ),
                Panel(
                    "Pub/sub egress (published)",
                    [
                        (
                            f"sum by (app_id, component, topic, success) ({r('dapr_component_pubsub_egress_count')})",
                            "{{component}} {{topic}} ok={{success}}",
                        )
                    ],
                    "ops",
                ),
                Panel(
                    "Pub/sub egress latency (p95)",
                    _quantiles(
                        "dapr_component_pubsub_egress_latencies", DAPR, "component, topic", (0.95,)
                    ),
                    "ms",
                ),
                Panel(
                    "Pub/sub ingress (delivered)",
                    [
                        (
                            f"sum by (app_id, component, topic, process_status) ({r('dapr_component_pubsub_ingress_count')})",
                            "{{component}} {{topic}} {{process_status}}",
                        )
                    ],
                    "ops",
                ),
                Panel(
                    "Pub/sub ingress latency (p95)",
                    _quantiles(
                        "dapr_component_pubsub_ingress_latencies", DAPR, "component, topic", (0.95,)
                    ),
                    "ms",
                ),
                Panel(
                    "Components loaded",
                    [(f"sum by (app_id) (dapr_runtime_component_loaded{{{DAPR}}})", "{{app_id}}")],
                ),
                Panel(
                    "Component initialisations",
                    [
                        (
                            f"sum by (app_id, component) (dapr_runtime_component_init_total{{{DAPR}}})",
                            "{{app_id}} {{component}}",
                        )
                    ],
                ),
            ],
        ),
    ]
    variables = [
        Variable(
            "namespace", "Namespace", "label_values(dapr_runtime_component_loaded, namespace)"
        ),
        Variable(
            "app_id",
            "App ID",
            'label_values(dapr_runtime_component_loaded{namespace=~"$namespace"}, app_id)',
        ),
    ]
    return dashboard(
        "wonderland-dapr",
        "Dapr sidecars",
        "Dapr's HTTP API and app channel, state and pub/sub components, per app_id (Dapr's own metric names).",
        variables,
        rows,
    )


# -- models: KServe and MLServer ---------------------------------------------------------

MODEL = 'model_name=~"$model"'


def models() -> dict[str, Any]:
    requests = f"rate(inference_requests_total{{{MODEL}}}[{RATE}])"
    errors = f'rate(inference_requests_total{{{MODEL}, code!~"2..|OK"}}[{RATE}])'
    rows = [
        Row(
            "Inference",
            [
                Panel(
                    "Inference requests by outcome",
                    [
                        (
                            f"sum by (model_name, protocol, code) ({requests})",
                            "{{model_name}} {{protocol}} {{code}}",
                        )
                    ],
                    "reqps",
                    description="wonderland's model server (KServe's Python server has no request counter; "
                    "on a cluster read the predictor's Knative revision).",
                ),
                Panel(
                    "Error ratio",
                    [
                        (
                            f"(sum by (model_name) ({errors}) or sum by (model_name) ({requests}) * 0)"
                            f" / sum by (model_name) ({requests})",
                            "{{model_name}}",
                        )
                    ],
                    "percentunit",
                ),
                Panel(
                    "Predict latency (p50, p95, p99)",
                    _quantiles("request_predict_seconds", MODEL, "model_name", (0.5, 0.95, 0.99)),
                    "s",
                ),
                Panel(
                    "Predictions per second",
                    [
                        (
                            f"sum by (model_name) (rate(request_predict_seconds_count{{{MODEL}}}[{RATE}]))",
                            "{{model_name}}",
                        )
                    ],
                    "reqps",
                ),
                Panel(
                    "Pre- and post-processing latency (p95)",
                    [
                        *_quantiles("request_preprocess_seconds", MODEL, "model_name", (0.95,)),
                        *_quantiles("request_postprocess_seconds", MODEL, "model_name", (0.95,)),
                    ],
                    "s",
                ),
            ],
        ),
    ]
    variables = [
        Variable("model", "Model", "label_values(request_predict_seconds_count, model_name)"),
    ]
    return dashboard(
        "wonderland-models",
        "Models: inference",
        "Inference rate, latency and errors per model_name (KServe's model server names).",
        variables,
        rows,
    )


# -- training and tuning -----------------------------------------------------------------


def training() -> dict[str, Any]:
    job = 'namespace=~"$namespace", trainjob=~"$trainjob"'
    rows = [
        Row(
            "TrainJobs",
            [
                Panel(
                    "Progress",
                    [
                        (
                            f"max by (namespace, trainjob) (wonderland_trainjob_progress_percentage{{{job}}})",
                            "{{trainjob}}",
                        )
                    ],
                    "percent",
                    description="trainerStatus.progressPercentage as the training code reports it "
                    "(Kubeflow Trainer's status endpoint).",
                ),
                Panel(
                    "Reported metrics",
                    [
                        (
                            f"max by (trainjob, metric) (wonderland_trainjob_metric{{{job}}})",
                            "{{trainjob}} {{metric}}",
                        )
                    ],
                ),
            ],
        ),
        Row(
            "Katib",
            [
                Panel(
                    "Experiments",
                    [
                        (
                            'sum by (namespace) (katib_experiment_created_total{namespace=~"$namespace"})',
                            "created {{namespace}}",
                        ),
                        (
                            'sum by (namespace) (katib_experiment_succeeded_total{namespace=~"$namespace"})',
                            "succeeded {{namespace}}",
                        ),
                    ],
                ),
                Panel(
                    "Trials",
                    [
                        (
                            'sum by (namespace) (katib_trial_created_total{namespace=~"$namespace"})',
                            "created {{namespace}}",
                        ),
                        (
                            'sum by (namespace) (katib_trial_succeeded_total{namespace=~"$namespace"})',
                            "succeeded {{namespace}}",
                        ),
                    ],
                ),
                Panel(
                    "Trial metrics",
                    [
                        (
                            'max by (experiment, trial, metric) (wonderland_trial_metric{namespace=~"$namespace"})',
                            "{{trial}} {{metric}}",
                        )
                    ],
                ),
            ],
        ),
    ]
    variables = [
        Variable(
            "namespace",
            "Namespace",
            "label_values(wonderland_trainjob_progress_percentage, namespace)",
        ),
        Variable(
            "trainjob",
            "TrainJob",
            'label_values(wonderland_trainjob_progress_percentage{namespace=~"$namespace"}, trainjob)',
        ),
    ]
    return dashboard(
        "wonderland-training",
        "Training and tuning",
        "TrainJob progress and reported metrics; Katib experiments and trials.",
        variables,
        rows,
    )


DASHBOARDS = {
    "services.json": services,
    "dapr.json": dapr,
    "models.json": models,
    "training.json": training,
}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2) + "\n"


def main() -> int:
    for name in DASHBOARDS:
        (HERE / name).write_text(render(name))
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
