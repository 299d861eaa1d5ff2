"""Training as Kubeflow Trainer v2 runs it: TrainJob, TrainingRuntime and
ClusterTrainingRuntime (``trainer.kubeflow.org/v1alpha1``) on JobSets, Jobs and Pods."""
