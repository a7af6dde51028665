"""`evaluate` metric modules, each a folder that `evaluate.load("metrics/NAME", ...)` loads offline."""
