"""Hyperparameter tuning: Katib's Experiment, Trial and Suggestion (``kubeflow.org/v1beta1``)
and Trainer's OptimizationJob, with suggestions from Optuna."""
