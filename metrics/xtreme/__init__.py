"""XTREME's metrics: `xtreme_metrics` (the implementation, imported by the project) and `xtreme.py` (the `evaluate`
module, loaded with `evaluate.load("metrics/xtreme", TASK)`, never imported here: `evaluate` is slow to import)."""
