"""Load any task's split from local files (XTREME's layout and the datasets' original formats) or the Hub.

Every loader returns a `datasets.Dataset` with the standard columns of the task's kind:
classification `sentence1`, `sentence2` (pairs only), `label`; tagging `tokens`, `tags`; multiple choice `context`,
`choices` (list of str), `label` (the index of the right choice); QA the SQuAD schema. Labels are ids in the task's
label list, matched by NAME (the Hub's ClassLabel orders differ from XTREME's). Unlabelled files (XTREME's
test files) give datasets without the label column. Bad input raises `XtremeError` naming file, line and field.

- `readers.py`: tsv, CoNLL and JSON-lines/csv readers; `conllu.py`: UD CoNLL-U as XTREME converts it;
- `choices.py`: multiple-choice records -> checked rows; `labels.py`: the label encoder;
- `hub.py`: the one Hub loader; `load.py`: `load_split` and `load_train_and_dev`, the entry points.

What is specific to one dataset (its layout, record schema, own file format) is in its registry entry
(`utils/tasks/`), not here.
"""

from .load import load_split, load_train_and_dev, read_rows, resolve_files

__all__ = ["load_split", "load_train_and_dev", "read_rows", "resolve_files"]
