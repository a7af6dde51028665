"""The task registry: every task described once, in one place per task family.

A `Task` says what kind of problem it is, its labels, the exact language list (and a split's own, where it has
fewer), its XTREME category (None for a task outside XTREME's nine), its metric, and where its data lives: Hub
sources and local layouts per split, with the record adapter or file reader of its own format beside it.

- `task.py`: the `Task`, `HubSource` and `Bitext` types, kinds, metrics, categories;
- `xtreme.py`: XTREME's nine tasks; `xtreme_r.py`: XTREME-R's XCOPA (and Social IQa, trained on first);
- `intermediate.py`: the English intermediate tasks of phase 1;
- `spec.py`: a user's own task from a YAML/JSON spec (`--task_spec`).

Everything else (loaders, scripts, scores, the grid and report) reads these entries and never names a task.
"""

from . import xtreme, intermediate, xtreme_r  # noqa: F401, I001  (each registers its tasks, XTREME's first)
from .intermediate import PAPER_INTERMEDIATE_TASKS
from .spec import get_task, load_task_spec
from .task import (ACCURACY, CATEGORIES, CLASSIFICATION, F1, KINDS, LANG_NAMES, METRICS, MINING, MLQA,
                   MULTIPLE_CHOICE, NEAREST, QA, RETRIEVAL, SPLITS, SQUAD, SQUAD_V2, TAGGING, TASKS, Bitext, HubSource,
                   Task, register, text_field)
from .xtreme import (HUB_NLI_LABELS, NLI_LABELS, PANX_LABELS, PANX_LANGS, TATOEBA_LANGS, UDPOS_DEV_LANGS,
                     UDPOS_LANGS, UPOS_LABELS)

__all__ = [
    "PAPER_INTERMEDIATE_TASKS", "get_task", "load_task_spec", "ACCURACY", "CATEGORIES", "CLASSIFICATION", "F1",
    "KINDS", "LANG_NAMES", "METRICS", "MINING", "MLQA", "MULTIPLE_CHOICE", "NEAREST", "QA", "RETRIEVAL", "SPLITS",
    "SQUAD", "SQUAD_V2", "TAGGING", "TASKS", "Bitext", "HubSource", "Task", "register", "text_field",
    "HUB_NLI_LABELS", "NLI_LABELS", "PANX_LABELS", "PANX_LANGS", "TATOEBA_LANGS", "UDPOS_DEV_LANGS", "UDPOS_LANGS",
    "UPOS_LABELS"
]
