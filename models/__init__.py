"""Task registry, training, evaluation, calibration, baselines, registry (MLflow) and explanations."""
