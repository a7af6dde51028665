"""XTREME's nine tasks: exact language lists, labels, categories, XTREME's downloaded layout and the Hub copies."""

from .task import (CLASSIFICATION, MINING, NEAREST, QA, RETRIEVAL, SPLITS, TAGGING, Bitext, HubSource, Task,
                   register)

# Exact language lists of XTREME's evaluate.py.
PANX_LANGS = ("ar he vi id jv ms tl eu ml ta te af nl en de el bn hi mr ur fa fr it pt es bg ru ja ka ko th sw yo "
              "my zh kk tr et fi hu").split()
UDPOS_LANGS = ("af ar bg de el en es et eu fa fi fr he hi hu id it ja kk ko mr nl pt ru ta te th tl tr ur vi yo "
               "zh").split()
TATOEBA_LANGS = [lang for lang in PANX_LANGS if lang not in ("en", "ms", "my", "yo")]
# UD v2.5 has no dev treebank for these (test only): XTREME's and the Hub's udpos dev split has the other 29.
UDPOS_DEV_LANGS = [lang for lang in UDPOS_LANGS if lang not in ("kk", "th", "tl", "yo")]

NLI_LABELS = ("contradiction", "entailment", "neutral")  # XTREME's order (processors/xnli.py)
HUB_NLI_LABELS = ("entailment", "neutral", "contradiction")  # GLUE/XNLI/ANLI/SNLI ClassLabel order
PANX_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
UPOS_LABELS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
               "SCONJ", "SYM", "VERB", "X")

# XTREME 2-letter code -> LASER / Tatoeba 3-letter code (XTREME `utils_preprocess.py::tatoeba_preprocess`).
TATOEBA_LANG3 = {
    "ar": "ara", "he": "heb", "vi": "vie", "id": "ind", "jv": "jav", "tl": "tgl", "eu": "eus", "ml": "mal",
    "ta": "tam", "te": "tel", "af": "afr", "nl": "nld", "de": "deu", "el": "ell", "bn": "ben", "hi": "hin",
    "mr": "mar", "ur": "urd", "fa": "pes", "fr": "fra", "it": "ita", "pt": "por", "es": "spa", "bg": "bul",
    "ru": "rus", "ja": "jpn", "ka": "kat", "ko": "kor", "th": "tha", "sw": "swh", "zh": "cmn", "kk": "kaz",
    "tr": "tur", "et": "est", "fi": "fin", "hu": "hun",
}  # fmt: skip

_HUB_SPLITS = (("train", "train"), ("dev", "validation"), ("test", "test"))


def _xnli_sources(split: str) -> tuple:
    return (HubSource("facebook/xnli", "{lang}", split, {"sentence1": "premise", "sentence2": "hypothesis"}),)


register(Task(
    "pawsx", CLASSIFICATION, "accuracy", languages=tuple("de en es fr ja ko zh".split()), labels=("0", "1"),
    category="classification",
    local={s: f"pawsx/{s}-{{lang}}.tsv" for s in SPLITS},
    hub={s: (HubSource("google-research-datasets/paws-x", "{lang}", hs),) for s, hs in _HUB_SPLITS},
    description="PAWS-X paraphrase identification."))
register(Task(
    "xnli", CLASSIFICATION, "accuracy",
    languages=tuple("ar bg de el en es fr hi ru sw th tr ur vi zh".split()), labels=NLI_LABELS,
    int_labels=HUB_NLI_LABELS, category="classification",
    local={s: f"xnli/{s}-{{lang}}.tsv" for s in SPLITS},
    hub={"train": _xnli_sources("train"), "dev": _xnli_sources("validation"), "test": _xnli_sources("test")},
    description="XNLI: English training data is MNLI (XTREME's xnli/train-en.tsv)."))
register(Task(
    "udpos", TAGGING, "f1", languages=tuple(UDPOS_LANGS), labels=UPOS_LABELS, category="structured prediction",
    split_languages={"dev": tuple(UDPOS_DEV_LANGS)},
    local={s: f"udpos/{s}-{{lang}}.tsv" for s in SPLITS},
    hub={s: (HubSource("google/xtreme", "udpos.{lang_name}", hs, {"tokens": "tokens", "tags": "pos_tags"}),)
         for s, hs in _HUB_SPLITS},
    description="UD-POS (UD v2.5) universal POS tags; XTREME scores it with seqeval F1, token accuracy beside it."))
register(Task(
    "panx", TAGGING, "f1", languages=tuple(PANX_LANGS), labels=PANX_LABELS, category="structured prediction",
    local={s: f"panx/{s}-{{lang}}.tsv" for s in SPLITS},
    hub={s: (HubSource("google/xtreme", "PAN-X.{lang}", hs, {"tokens": "tokens", "tags": "ner_tags"}),)
         for s, hs in _HUB_SPLITS},
    description="PAN-X (WikiANN) named entities, IOB2, seqeval span F1."))

SQUAD_HUB = {"train": (HubSource("rajpurkar/squad", None, "train"),),
             "dev": (HubSource("rajpurkar/squad", None, "validation"),)}
SQUAD_LOCAL = {"train": "squad/train-v1.1.json", "dev": "squad/dev-v1.1.json"}
register(Task(
    "xquad", QA, "squad", languages=tuple("en es de el ru tr ar vi th zh hi".split()), category="question answering",
    split_languages={"dev": ("en",)},
    local={**SQUAD_LOCAL, "test": "xquad/xquad.{lang}.json"},
    hub={**SQUAD_HUB, "test": (HubSource("google/xtreme", "XQuAD.{lang}", "validation"),)},
    description="XQuAD: trained on SQuAD v1.1 (dev = SQuAD dev); the whole XQuAD set is the test set."))
register(Task(
    "mlqa", QA, "mlqa", languages=tuple("en es de ar hi vi zh".split()), category="question answering",
    local={"train": "squad/train-v1.1.json",
           **{s: f"mlqa/MLQA_V1/{s}/{s}-context-{{lang}}-question-{{lang}}.json" for s in ("dev", "test")}},
    hub={"train": SQUAD_HUB["train"], "dev": (HubSource("google/xtreme", "MLQA.{lang}.{lang}", "validation"),),
         "test": (HubSource("google/xtreme", "MLQA.{lang}.{lang}", "test"),)},
    description="MLQA (context language = question language): trained on SQuAD v1.1, MLQA's own metric."))
_TYDIQA_DEV = (HubSource("google/xtreme", "tydiqa", "validation", id_prefix="{lang_name}-"),)
register(Task(
    "tydiqa", QA, "squad", languages=tuple("en ar bn fi id ko ru sw te".split()), category="question answering",
    local={"train": "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.{lang}.train.json",
           **{s: "tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json" for s in ("dev", "test")}},
    hub={"train": (HubSource("google/xtreme", "tydiqa", "train", id_prefix="{lang_name}-"),),
         "dev": _TYDIQA_DEV, "test": _TYDIQA_DEV},
    description="TyDiQA-GoldP: trained on its English GoldP train set; evaluated on the GoldP dev sets."))

# BUCC: XTREME's layout names the BUCC sample "dev" (with gold) and the BUCC training data "test" (gold removed).
_BUCC_HUB = HubSource(
    "google/xtreme", "bucc18.{lang}", "validation", unusable=(
        "it holds only the gold parallel pairs, without the non-parallel distractor sentences that mining must "
        "reject, so its F1 is meaningless (download the BUCC 2018 sample and training archives)"))
register(Task(
    "bucc2018", RETRIEVAL, "f1", languages=("de", "fr", "ru", "zh"), category="retrieval", search=MINING,
    local={s: (Bitext(f"{{lang}}-en.{s}.{{lang}}", f"{{lang}}-en.{s}.en", gold=f"{{lang}}-en.{s}.gold",
                      folders=("", "bucc2018")),) for s in ("dev", "test")},
    hub={s: (_BUCC_HUB,) for s in ("dev", "test")},
    description="BUCC 2018 bitext mining: margin-scored mutual neighbours, the score threshold chosen on dev gold."))
_TATOEBA_LAYOUTS = (
    Bitext("tatoeba.{code}-eng.{code}", "tatoeba.{code}-eng.eng", folders=("", "tatoeba")),  # LASER v1, aligned
    Bitext("{lang}-en.{lang}", "{lang}-en.en", aligned=False, folders=("", "tatoeba")),  # XTREME's, English sorted
)
_TATOEBA_HUB = HubSource("google/xtreme", "tatoeba.{code}", "validation",
                         {"sentences": "source_sentence", "english": "target_sentence"})
register(Task(
    "tatoeba", RETRIEVAL, "accuracy", languages=tuple(TATOEBA_LANGS), category="retrieval", search=NEAREST,
    codes=TATOEBA_LANG3, local={s: _TATOEBA_LAYOUTS for s in ("dev", "test")},
    hub={s: (_TATOEBA_HUB,) for s in ("dev", "test")},
    description="Tatoeba: each English sentence's nearest neighbour among the other language's (accuracy); "
                "LASER's aligned files, or XTREME's sorted English side with a labels file."))
