"""MLflow tracking: one parent run per optimize job, one child run per candidate, the model registry's challenger
and champion. The adapter is `mlflow_tracking.py` (the only module importing mlflow); this package imports nothing
heavy, so the CLI can register its commands without loading MLflow."""
