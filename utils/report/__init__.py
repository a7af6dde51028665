"""The report on a grid's results (`python -m utils.report RUN_DIR`, see `cli.py`), along its seams:

- `collect`: finding and checking the results files (`Result`, `discover`, `BrokenResults`);
- `aggregate`: seeds into cells, gains over the baseline, the best setting per target, backbone pairs (`Summary`);
- `markdown`, `tables`, `plots`: `report.md`/`runs.md`, the CSV files, the PNG plots (`formatting`: numbers as text);
- `cli`: `write_report` (all of them) and the command line.
"""

from .aggregate import Summary
from .cli import main, write_report
from .collect import BrokenResults, Result, discover
from .formatting import MISSING

__all__ = ["MISSING", "BrokenResults", "Result", "Summary", "discover", "main", "write_report"]
