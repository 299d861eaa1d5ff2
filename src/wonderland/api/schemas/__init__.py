"""Typed schemas of every kind, keyed by (apiVersion, kind)."""

from __future__ import annotations

from wonderland.api.schemas import (
    batch,
    core,
    dapr,
    jobset,
    katib,
    knative,
    kserve,
    kubeflow,
    optimization,
    storage,
    trainer,
)
from wonderland.api.schemas._base import Schema

__all__ = ["SCHEMAS", "Schema"]

SCHEMAS: dict[tuple[str, str], type[Schema]] = {
    ("serving.knative.dev/v1", "Service"): knative.ServiceObject,
    ("serving.knative.dev/v1", "Configuration"): knative.ConfigurationObject,
    ("serving.knative.dev/v1", "Revision"): knative.RevisionObject,
    ("serving.knative.dev/v1", "Route"): knative.RouteObject,
    ("serving.kserve.io/v1beta1", "InferenceService"): kserve.InferenceServiceObject,
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): kserve.ServingRuntimeObject,
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): kserve.ServingRuntimeObject,
    ("dapr.io/v1alpha1", "Component"): dapr.ComponentObject,
    ("dapr.io/v1alpha1", "Resiliency"): dapr.ResiliencyObject,
    ("dapr.io/v1alpha1", "Configuration"): dapr.DaprConfigurationObject,
    ("dapr.io/v1alpha1", "Subscription"): dapr.SubscriptionV1Object,
    ("dapr.io/v2alpha1", "Subscription"): dapr.SubscriptionV2Object,
    ("v1", "ConfigMap"): core.ConfigMapObject,
    ("v1", "Secret"): core.SecretObject,
    ("v1", "Namespace"): core.NamespaceObject,
    ("v1", "Event"): core.EventObject,
    ("v1", "Pod"): core.PodObject,
    ("v1", "Node"): core.NodeObject,
    ("v1", "PersistentVolumeClaim"): core.PersistentVolumeClaimObject,
    ("v1", "PersistentVolume"): core.PersistentVolumeObject,
    ("batch/v1", "Job"): batch.JobObject,
    ("batch/v1", "CronJob"): batch.CronJobObject,
    ("storage.k8s.io/v1", "StorageClass"): storage.StorageClassObject,
    ("jobset.x-k8s.io/v1alpha2", "JobSet"): jobset.JobSetObject,
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"): trainer.TrainJobObject,
    ("trainer.kubeflow.org/v1alpha1", "TrainingRuntime"): trainer.TrainingRuntimeObject,
    ("trainer.kubeflow.org/v1alpha1", "ClusterTrainingRuntime"): trainer.TrainingRuntimeObject,
    ("kubeflow.org/v1beta1", "Experiment"): katib.ExperimentObject,
    ("kubeflow.org/v1beta1", "Trial"): katib.TrialObject,
    ("kubeflow.org/v1beta1", "Suggestion"): katib.SuggestionObject,
    ("trainer.kubeflow.org/v1alpha1", "OptimizationJob"): optimization.OptimizationJobObject,
    ("kubeflow.org/v1alpha1", "PodDefault"): kubeflow.PodDefaultObject,
    ("kubeflow.org/v1", "Notebook"): kubeflow.NotebookObject,
}
