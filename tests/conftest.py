import os
import sys
from pathlib import Path

import pytest

# Tests never reach the Hub: a Hub name fails in a second instead of retrying for forty.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
XTREME_DIR = FIXTURES / "xtreme"
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random XLM-R model + sentencepiece tokenizer, built offline once per test session."""
    from utils.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def run_script(script: str, args: list, capsys=None):
    """Run a phase script's `main()` in this process, as `python script.py args` would (errors -> exit 2)."""
    import importlib
    from unittest import mock

    from utils.errors import run_main

    module = importlib.import_module(script)
    with mock.patch.object(sys, "argv", [f"{script}.py"] + [str(a) for a in args]):
        return run_main(module.main)


def read_json(path):
    import json

    return json.loads(Path(path).read_text(encoding="utf-8"))


def glue_squad_layout(root: Path) -> Path:
    """`--data_dir` layouts of MNLI (GLUE) and SQuAD built from real fixture slices, for multi-task runs."""
    import shutil

    (root / "MNLI").mkdir()
    (root / "squad").mkdir()
    shutil.copy(XTREME_DIR / "xnli/train-en.tsv", root / "MNLI/train.tsv")
    shutil.copy(XTREME_DIR / "xnli/dev-en.tsv", root / "MNLI/dev_matched.tsv")
    shutil.copy(XTREME_DIR / "xquad/xquad.en.json", root / "squad/train-v1.1.json")
    shutil.copy(XTREME_DIR / "xquad/xquad.en.json", root / "squad/dev-v1.1.json")
    return root


def grid_ends(text: str) -> dict:
    """Step label -> how it ended, from the grid driver's progress lines (`[n/N ...] label ... outcome`)."""
    return {line.split("] ", 1)[1].split(" ... ")[0]: line.split(" ... ", 1)[1]
            for line in text.splitlines() if line.startswith("[") and " ... " in line}


def hellaswag_layout(root: Path, rows: int = 48) -> Path:
    """A `--data_dir` HellaSwag (its schema; the right ending carries a marker word, so it is learnable)."""
    import json
    import random

    (root / "hellaswag").mkdir()
    rng = random.Random(0)
    words = "the man walks runs house tree river small dog sits".split()
    lines = []
    for i in range(rows):
        endings = [" ".join(rng.choice(words) for _ in range(4)) for _ in range(4)]
        endings[i % 4] += " zebra"
        lines.append(json.dumps({"ctx_a": " ".join(rng.choice(words) for _ in range(6)), "ctx_b": "He",
                                 "endings": endings, "label": str(i % 4)}))
    for split in ("train", "val"):
        (root / f"hellaswag/hellaswag_{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
