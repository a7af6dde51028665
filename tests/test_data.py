"""Loaders on real XTREME-format slices, the Hub label mapping, task specs and bad input."""

import pytest
from conftest import XTREME_DIR

from utils.data import load_split, read_rows
from utils.data.conllu import read_conllu
from utils.data.labels import encode_labels
from utils.data.readers import read_conll_tsv
from utils.errors import MissingDataError, XtremeError
from utils.tasks import NLI_LABELS, TASKS, get_task, load_task_spec

UD = XTREME_DIR / "udpos"


def test_xtreme_language_lists_are_exact():
    assert len(TASKS["panx"].languages) == 40
    assert len(TASKS["udpos"].languages) == 33
    assert len(TASKS["tatoeba"].languages) == 36
    assert not {"en", "ms", "my", "yo"} & set(TASKS["tatoeba"].languages)
    assert TASKS["xnli"].languages == tuple("ar bg de el en es fr hi ru sw th tr ur vi zh".split())
    assert TASKS["pawsx"].languages == tuple("de en es fr ja ko zh".split())
    assert TASKS["mlqa"].languages == tuple("en es de ar hi vi zh".split())
    assert TASKS["tydiqa"].languages == tuple("en ar bn fi id ko ru sw te".split())
    assert TASKS["xquad"].languages == tuple("en es de el ru tr ar vi th zh hi".split())
    assert TASKS["bucc2018"].languages == ("de", "fr", "ru", "zh")


def test_xnli_tsv_labels_by_name():
    dataset, labels = load_split(TASKS["xnli"], "dev", "de", list(NLI_LABELS), data_dir=XTREME_DIR)
    assert labels == ["contradiction", "entailment", "neutral"]
    assert len(dataset) == 100
    first_line = (XTREME_DIR / "xnli" / "dev-de.tsv").read_text(encoding="utf-8").splitlines()[0].split("\t")
    assert dataset[0]["sentence1"] == first_line[0]
    assert labels[dataset[0]["label"]] == first_line[2]


def test_conllu_matches_xtreme_processed_english():
    """Our CoNLL-U reader reproduces XTREME's processed UD-POS file (EWT is its first treebank)."""
    ours = read_conllu(UD / "en_ewt-ud-dev.conllu")
    xtreme = read_conll_tsv(UD / "dev-en.tsv")
    assert len(ours) == 150
    assert [(r["tokens"], r["tags"]) for r in ours] == [(r["tokens"], r["tags"]) for r in xtreme[:150]]


def test_conllu_keeps_fused_surface_forms():
    sentences = read_conllu(UD / "de_gsd-ud-test.conllu")
    words = [(w, t) for s in sentences for w, t in zip(s["tokens"], s["tags"])]
    fused = [w for w, _ in words if w.lower() in ("im", "zum", "zur", "am", "vom", "beim")]
    assert fused, "multiword tokens must stay as their surface form"
    assert all(t == "ADP" for w, t in words if w in ("im", "zum", "zur", "beim"))
    # the syntactic words of a fused token ("in dem") are not emitted beside it
    raw = (UD / "de_gsd-ud-test.conllu").read_text(encoding="utf-8")
    ids = [line.split("\t")[0] for line in raw.splitlines() if line and not line.startswith("#")]
    n_ranges = sum(1 for i in ids if "-" in i)
    n_words = sum(1 for i in ids if i.isdigit())
    assert len(words) == n_words - n_ranges  # each range of 2 words becomes 1 token


def conllu(tmp_path, name: str, *sentences: str):
    """A CoNLL-U file from sentences given as `ID FORM UPOS HEAD [DEPS]` rows (space-separated, `~` for a space
    inside a form; the other columns `_`), each with its comment lines, as UD writes them."""
    blocks = []
    for number, sentence in enumerate(sentences, 1):
        rows = []
        for line in sentence.strip().splitlines():
            ident, form, upos, head, deps = (line.split() + ["_"])[:5]
            rows.append("\t".join([ident, form.replace("~", " "), "_", upos, "_", "_", head,
                                   "_" if "-" in ident else "dep", deps, "_"]))
        blocks.append(f"# sent_id = {number}\n# text = ...\n" + "\n".join(rows) + "\n")
    path = tmp_path / name
    path.write_text("\n".join(blocks) + "\n", encoding="utf-8")
    return path


def tagged(path):
    return [list(zip(row["tokens"], row["tags"])) for row in read_conllu(path)]


def test_conllu_spaces_inside_a_word_are_removed(tmp_path):
    """Vietnamese UD writes multi-syllable words with spaces ("Hà Nội"); XTREME joins them (and drops U+200C)."""
    path = conllu(tmp_path, "vi_vtb-ud-test.conllu", """
        1 Hà~Nội PROPN 4
        2 là AUX 4
        3 thủ~đô NOUN 4
        4 của ADP 0
        5 \u200cViệt~Nam PROPN 4""")
    assert tagged(path) == [[("HàNội", "PROPN"), ("là", "AUX"), ("thủđô", "NOUN"), ("của", "ADP"),
                             ("ViệtNam", "PROPN")]]


def test_conllu_sentences_of_underscores_are_dropped(tmp_path):
    """udpos_preprocess drops a sentence whose forms are all `_`, or all but one; one `_` among three stays."""
    path = conllu(tmp_path, "en_test-ud-test.conllu",
                  "1 _ NOUN 0\n2 _ VERB 1\n3 _ PUNCT 1",  # all _
                  "1 _ NOUN 0\n2 runs VERB 1\n3 _ PUNCT 1",  # all but one
                  "1 _ NOUN 0\n2 runs VERB 1\n3 . PUNCT 1",  # one of three: kept
                  "1 _ X 0",  # one word, _
                  "1 Yes INTJ 0",
                  "1 _ X 0\n2 Yes INTJ 1")  # two words, one _ (all but one): dropped
    assert tagged(path) == [[("_", "NOUN"), ("runs", "VERB"), (".", "PUNCT")], [("Yes", "INTJ")]]


def test_conllu_multiword_head_counts_enhanced_dependencies(tmp_path):
    """The fused form takes the UPOS of the word with the fewest ancestors in the graph of basic AND enhanced
    edges. "zu" and "dem" both hang off word 5 in the basic tree (a tie that ADP would win over DET); the
    enhanced edge 6 -> "zu" gives "zu" more ancestors, so "dem" (DET) is the head. Word 1 "dámelo"-like span with
    one highest word takes that word's UPOS whatever the list says."""
    sentence = """
        1-2 Gibs _ _
        1 Gib VERB 0
        2 es PRON 1
        3-4 zum _ _
        3 zu ADP 5 {deps}
        4 dem DET 5
        5 Bahnhof NOUN 1
        6 bitte ADV 5"""
    basic = conllu(tmp_path, "de_a-ud-test.conllu", sentence.format(deps="5:case"))
    enhanced = conllu(tmp_path, "de_b-ud-test.conllu", sentence.format(deps="5:case|6:dep"))
    assert tagged(basic) == [[("Gibs", "VERB"), ("zum", "ADP"), ("Bahnhof", "NOUN"), ("bitte", "ADV")]]
    assert tagged(enhanced) == [[("Gibs", "VERB"), ("zum", "DET"), ("Bahnhof", "NOUN"), ("bitte", "ADV")]]


@pytest.mark.parametrize("lang, first, second, own, default", [
    ("es", "AUX", "PRON", "AUX", "PRON"),  # es: VERB AUX PRON ADP DET
    ("fr", "NOUN", "PRON", "PRON", "NOUN"),  # fr: VERB AUX PRON NOUN ADJ ADV ADP DET PART SCONJ CONJ
    ("it", "PRON", "ADV", "ADV", "PRON"),  # it: VERB AUX ADV PRON ADP DET INTJ
])
def test_conllu_precedence_lists_of_es_fr_it(tmp_path, lang, first, second, own, default):
    """Two words of a multiword token equally near the root: the language's precedence list decides, chosen by
    the file name's language prefix as XTREME's conversion does (`--lang {prefix}`); other languages use the
    default list (VERB NOUN PROPN PRON ADJ NUM ADV INTJ AUX ADP DET PART CCONJ SCONJ X PUNCT)."""
    sentence = f"1 ver VERB 0\n2-3 fused _ _\n2 a {first} 1\n3 b {second} 1"
    assert tagged(conllu(tmp_path, f"{lang}_x-ud-test.conllu", sentence))[0][1] == ("fused", own)
    assert tagged(conllu(tmp_path, f"en_{lang}-ud-test.conllu", sentence))[0][1] == ("fused", default)


def test_conllu_head_tie_outside_the_precedence_list_is_an_error(tmp_path):
    path = conllu(tmp_path, "es_x-ud-test.conllu", "1 ver VERB 0\n2-3 fused _ _\n2 a NOUN 1\n3 b ADJ 1")
    with pytest.raises(XtremeError) as err:
        read_conllu(path)
    assert str(err.value).startswith(f"{path}:4: cannot choose the head of multiword token 'fused': its words a, "
                                     "b are equally near the root and UPOS NOUN is not in the es precedence list")


def test_hub_load_failures_name_dataset_config_split_and_local_files(monkeypatch):
    """What datasets 5.x raises for a script-only dataset, a missing revision, config and split."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    cases = [
        ("hellaswag", "dev", "en", RuntimeError("Dataset scripts are no longer supported, but found hellaswag.py"),
         "could not load Rowan/hellaswag split validation from the Hub (RuntimeError: Dataset scripts are no longer "
         "supported, but found hellaswag.py); use local files instead: --data_dir DIR holding "
         "DIR/hellaswag/hellaswag_val.jsonl, or --validation_file FILE (--eval_file in run_xtreme_eval.py)"),
        ("cosmosqa", "train", "en", DatasetNotFoundError("Revision 'refs/convert/parquet' doesn't exist for dataset "
                                                         "'allenai/cosmos_qa' on the Hub."),
         "could not load allenai/cosmos_qa split train (revision refs/convert/parquet) from the Hub "
         "(DatasetNotFoundError: Revision 'refs/convert/parquet' doesn't exist for dataset 'allenai/cosmos_qa' on "
         "the Hub.); use local files instead: --data_dir DIR holding DIR/cosmosqa/train.jsonl, or --train_file FILE"),
        ("panx", "test", "xx", ValueError("BuilderConfig 'PAN-X.xx' not found. Available: ['PAN-X.af']"),
         "could not load google/xtreme config PAN-X.xx split test from the Hub (ValueError: BuilderConfig "
         "'PAN-X.xx' not found. Available: ['PAN-X.af']); use local files instead: --data_dir DIR holding "
         "DIR/panx/test-xx.tsv, or --validation_file FILE (--eval_file in run_xtreme_eval.py)"),
        ("udpos", "dev", "kk", ValueError('Unknown split "validation". Should be one of [\'train\', \'test\'].'),
         "could not load google/xtreme config udpos.Kazakh split validation from the Hub (ValueError: Unknown "
         "split \"validation\". Should be one of ['train', 'test'].); use local files instead: --data_dir DIR "
         "holding DIR/udpos/dev-kk.tsv, or --validation_file FILE (--eval_file in run_xtreme_eval.py)"),
    ]
    for task, split, lang, error, message in cases:
        def load_dataset(*args, **kwargs):
            raise error

        monkeypatch.setattr(datasets, "load_dataset", load_dataset)
        labels = list(TASKS[task].labels) if TASKS[task].labels else None
        with pytest.raises(XtremeError) as err:
            load_split(TASKS[task], split, lang, labels)
        assert str(err.value) == message


def test_json_lines_errors_name_their_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"premise": "a", "hypothesis": "b", "label": 0}\n\n'
                    '{"premise": "c", "hypothesis": "d", "label": 1}\n{"premise": "e", "hyp\n', encoding="utf-8")
    with pytest.raises(XtremeError) as err:
        read_rows(path, TASKS["mnli"])
    assert str(err.value) == f"{path}:4:18: not valid JSON lines (Unterminated string starting at)"


def test_conllu_tag_errors_name_the_tokens_line(tmp_path):
    path = conllu(tmp_path, "en_x-ud-train.conllu", "1 Hello INTJ 0\n2 world NOUNN 1")
    with pytest.raises(XtremeError) as err:
        load_split(TASKS["udpos"], "train", "en", list(TASKS["udpos"].labels), files=[str(path)])
    assert str(err.value).startswith(f"{path}:4: unknown label 'NOUNN'")


def test_hub_labels_are_mapped_by_name(monkeypatch):
    """facebook/xnli's ClassLabel order (entailment, neutral, contradiction) differs from XTREME's."""
    import datasets

    hub = datasets.Dataset.from_dict(
        {"premise": ["p1", "p2", "p3"], "hypothesis": ["h1", "h2", "h3"], "label": [0, 1, 2]},
        features=datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"])}))
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda path, config, split, **kw: calls.append(
        (path, config, split)) or hub)
    dataset, labels = load_split(TASKS["xnli"], "dev", "de", list(NLI_LABELS))
    assert calls == [("facebook/xnli", "de", "validation")]
    assert [labels[i] for i in dataset["label"]] == ["entailment", "neutral", "contradiction"]
    assert dataset["sentence1"] == ["p1", "p2", "p3"]


def test_hub_tagging_config_names(monkeypatch):
    import datasets

    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    hub = datasets.Dataset.from_dict(
        {"tokens": [["a", "b"]], "ner_tags": [[1, 2]], "langs": [["de", "de"]]},
        features=datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                    "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
                                    "langs": datasets.Sequence(datasets.Value("string"))}))
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda path, config, split, **kw: calls.append(config) or hub)
    dataset, labels = load_split(TASKS["panx"], "test", "de", list(TASKS["panx"].labels))
    assert calls == ["PAN-X.de"]
    assert dataset[0] == {"tokens": ["a", "b"], "tags": [1, 2]}


def test_glue_style_tsv_with_header_and_jsonl(tmp_path):
    tsv = tmp_path / "train.tsv"
    tsv.write_text("index\tsentence1\tsentence2\tgold_label\n0\tA man.\tA person.\tentailment\n"
                   "1\tA dog.\tA cat.\tcontradiction\n", encoding="utf-8")
    rows = encode_labels(read_rows(tsv, TASKS["mnli"]), list(NLI_LABELS), str(tsv), "classification")
    assert [(r["sentence1"], r["label"]) for r in rows] == [("A man.", 1), ("A dog.", 0)]
    jsonl = tmp_path / "anli.jsonl"  # ANLI's own format: context/hypothesis, labels e/n/c; SNLI's "-" dropped
    jsonl.write_text('{"context": "c1", "hypothesis": "h1", "label": "n"}\n'
                     '{"premise": "c2", "hypothesis": "h2", "label": 2}\n'
                     '{"sentence1": "c3", "sentence2": "h3", "gold_label": "-"}\n', encoding="utf-8")
    dataset, labels = load_split(TASKS["anli_plus"], "train", "en", list(NLI_LABELS), files=[str(jsonl)])
    assert [labels[i] for i in dataset["label"]] == ["neutral", "contradiction"]  # 2 = contradiction (Hub order)


def test_unlabelled_test_files(tmp_path):
    (tmp_path / "pawsx").mkdir()
    (tmp_path / "pawsx" / "test-de.tsv").write_text("a\tb\nc\td\n", encoding="utf-8")
    dataset, _ = load_split(TASKS["pawsx"], "test", "de", ["0", "1"], data_dir=tmp_path)
    assert dataset.column_names == ["sentence1", "sentence2"] and len(dataset) == 2
    (tmp_path / "panx").mkdir()
    (tmp_path / "panx" / "test-de.tsv").write_text("Berlin\nist\n\nschön\n", encoding="utf-8")
    dataset, _ = load_split(TASKS["panx"], "test", "de", list(TASKS["panx"].labels), data_dir=tmp_path)
    assert dataset["tokens"] == [["Berlin", "ist"], ["schön"]] and "tags" not in dataset.column_names


@pytest.mark.parametrize("content, expected", [
    ("a\tb\t0\nc\td\n", ":2: expected 3 tab-separated columns, found 2"),
    ("a\tb\t0\nc\td\tmaybe\n", ":2: unknown label 'maybe'; expected one of: 0, 1"),
    ("", ": empty file"),
])
def test_bad_classification_files(tmp_path, content, expected):
    path = tmp_path / "train.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(XtremeError) as err:
        load_split(TASKS["pawsx"], "train", "en", ["0", "1"], files=[str(path)])
    assert str(err.value) == f"{path}{expected}"


def test_bad_tagging_files(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("Berlin\tB-LOC\nist\tO\textra\n", encoding="utf-8")
    with pytest.raises(XtremeError, match=r"train.tsv:2: expected 'token<TAB>tag'"):
        load_split(TASKS["panx"], "train", "en", list(TASKS["panx"].labels), files=[str(path)])
    path.write_text("Berlin\tB-CITY\n", encoding="utf-8")
    with pytest.raises(XtremeError, match=r"train.tsv:1: unknown label 'B-CITY'"):
        load_split(TASKS["panx"], "train", "en", list(TASKS["panx"].labels), files=[str(path)])
    with pytest.raises(MissingDataError, match="nothere.tsv: file not found"):
        load_split(TASKS["panx"], "train", "en", None, files=[str(tmp_path / "nothere.tsv")])


def test_unknown_task_and_language():
    with pytest.raises(XtremeError, match="unknown task 'xnly'"):
        get_task("xnly")
    with pytest.raises(XtremeError, match="task pawsx: unknown language"):
        TASKS["pawsx"].check_languages(["de", "xx"])


def test_task_spec_yaml(tmp_path):
    spec = tmp_path / "task.yaml"
    spec.write_text("name: my_ner\nkind: tagging\nlabels: [O, B-X, I-X]\nfiles:\n  train: data/train-en.tsv\n"
                    "  test: {en: data/test-en.tsv, de: data/test-de.tsv}\n", encoding="utf-8")
    task, files = load_task_spec(str(spec))
    assert task.kind == "tagging" and task.metric == "f1" and task.labels == ("O", "B-X", "I-X")
    assert set(task.languages) == {"en", "de"}
    assert files["test"]["de"] == "data/test-de.tsv"
    spec.write_text("name: t\nkind: regression\nfiles: {}\n", encoding="utf-8")
    with pytest.raises(XtremeError, match="kind 'regression' is not supported"):
        load_task_spec(str(spec))
