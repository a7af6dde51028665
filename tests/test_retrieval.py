"""BUCC / Tatoeba retrieval: embeddings, blocked vs faiss search, mining, threshold search, readers, errors."""

import random

import numpy as np
import pytest
import torch
from conftest import XTREME_DIR

from metrics.xtreme.xtreme_metrics import bucc_scores
from utils import retrieval as R
from utils.bitext import load_hub_paired, read_mining, read_paired
from utils.errors import XtremeError
from utils.tasks import TASKS
from utils.tasks.xtreme import TATOEBA_LANG3

TATOEBA, BUCC = TASKS["tatoeba"], TASKS["bucc2018"]

TATOEBA_DIR = XTREME_DIR / "tatoeba"
BUCC_DIR = XTREME_DIR / "bucc2018"
# XTREME_TASK2LANGS["tatoeba"], in XTREME's order
XTREME_TATOEBA = (
    "ar he vi id jv tl eu ml ta te af nl de el bn hi mr ur fa fr it pt es bg ru ja ka ko th sw zh kk tr et fi hu"
)


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    from transformers import AutoModel

    return AutoModel.from_pretrained(tiny_model_dir)


def one_hot_lookup(groups: list[list[str]], common: float = 0.0) -> callable:
    """A fake encoder: every sentence of group g embeds as one-hot(g) (+ `common` on every dimension)."""
    index = {sentence: g for g, group in enumerate(groups) for sentence in group}

    def embed(sentences: list[str]) -> np.ndarray:
        out = np.full((len(sentences), len(groups)), common, dtype=np.float32)
        out[np.arange(len(sentences)), [index[s] for s in sentences]] += 1
        return out

    return embed


# ------------------------------------------------------------------------------------------ languages / layer


def test_tatoeba_codes_cover_xtreme():
    assert list(TATOEBA_LANG3) == XTREME_TATOEBA.split()
    assert len(set(TATOEBA_LANG3.values())) == 36
    codes = {c: TATOEBA_LANG3[c] for c in ("fa", "sw", "zh", "tl", "ar", "de")}
    assert codes == {"fa": "pes", "sw": "swh", "zh": "cmn", "tl": "tgl", "ar": "ara", "de": "deu"}
    assert TATOEBA.code("pes") == ("fa", "pes") and TATOEBA.code("sw") == ("sw", "swh")
    with pytest.raises(XtremeError, match="not a language of task tatoeba"):
        TATOEBA.code("yo")


def test_default_layer(tiny_model):
    from transformers import XLMRobertaConfig

    assert R.default_layer(tiny_model.config) == 1
    assert R.default_layer(XLMRobertaConfig(num_hidden_layers=24)) == 12


# ------------------------------------------------------------------------------------------------ embeddings


SENTENCES = ["Hallo Welt.", "Das ist ein deutlich längerer Satz mit vielen Wörtern.", "Ja", "我们试试看！", ""]


def test_mean_pooling_includes_special_tokens(tiny_model, tiny_tokenizer):
    sentence = SENTENCES[1]
    batch = tiny_tokenizer(sentence, return_tensors="pt")
    ids = batch["input_ids"][0]
    assert ids[0] == tiny_tokenizer.bos_token_id and ids[-1] == tiny_tokenizer.eos_token_id
    with torch.inference_mode():
        hidden = tiny_model(**batch, output_hidden_states=True).hidden_states[1][0]
    got = R.embed_sentences(tiny_model, tiny_tokenizer, [sentence], layer=1)
    np.testing.assert_allclose(got[0], hidden.mean(dim=0).numpy(), atol=1e-5)
    cls = R.embed_sentences(tiny_model, tiny_tokenizer, [sentence], layer=1, pooling="cls")
    np.testing.assert_allclose(cls[0], hidden[0].numpy(), atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls", "last"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_batched_equals_unbatched_in_input_order(tiny_model, tiny_tokenizer, pooling, side, monkeypatch):
    monkeypatch.setattr(tiny_tokenizer, "padding_side", side)
    batched = R.embed_sentences(tiny_model, tiny_tokenizer, SENTENCES, layer=2, pooling=pooling, batch_size=3)
    assert batched.shape == (len(SENTENCES), 32) and batched.dtype == np.float32
    for i, sentence in enumerate(SENTENCES):
        alone = R.embed_sentences(tiny_model, tiny_tokenizer, [sentence], layer=2, pooling=pooling)
        np.testing.assert_allclose(batched[i], alone[0], atol=1e-5)
    assert not np.allclose(batched[0], batched[1])


def test_embed_truncates_and_checks_arguments(tiny_model, tiny_tokenizer):
    long = " ".join(["Wort"] * 300)
    short = R.embed_sentences(tiny_model, tiny_tokenizer, [long, "kurz"], layer=0, max_length=8)
    assert np.isfinite(short).all()
    assert R.embed_sentences(tiny_model, tiny_tokenizer, [], layer=1).shape == (0, 32)
    with pytest.raises(XtremeError, match="layer 14 is out of range"):
        R.embed_sentences(tiny_model, tiny_tokenizer, ["x"], layer=14)
    with pytest.raises(XtremeError, match="unknown pooling"):
        R.embed_sentences(tiny_model, tiny_tokenizer, ["x"], layer=1, pooling="max")


# ---------------------------------------------------------------------------------------------------- search


def test_knn_blocked_torch_matches_faiss():
    rng = np.random.default_rng(0)
    queries, index = rng.normal(size=(300, 16)), 3 * rng.normal(size=(500, 16))
    scores, indices = R.knn(queries, index, 5, block_size=10_000)
    brute = R.normalize(queries) @ R.normalize(index).T
    np.testing.assert_array_equal(indices, np.argsort(-brute, axis=1)[:, :5])
    for kwargs in ({"block_size": 7}, {"backend": "faiss"}):
        other_scores, other_indices = R.knn(queries, index, 5, **kwargs)
        np.testing.assert_array_equal(other_indices, indices)
        np.testing.assert_allclose(other_scores, scores, atol=1e-5)
    assert R.knn(queries[:3], index[:2], 4)[1].shape == (3, 2)  # k is capped at the index size
    with pytest.raises(XtremeError, match="unknown search backend"):
        R.knn(queries, index, 1, backend="annoy")


# --------------------------------------------------------------------------------------------------- Tatoeba


@pytest.mark.parametrize("lang", ["deu", "fra", "cmn"])
def test_tatoeba_tiny_model_blocked_unblocked_faiss(tiny_model, tiny_tokenizer, lang):
    data = read_paired(TATOEBA, XTREME_DIR, lang)  # found under XTREME_DIR/tatoeba/
    assert len(data.sentences) == len(data.en_sentences) == 100 and data.gold == list(range(100))
    layer = R.default_layer(tiny_model.config)
    src = R.embed_sentences(tiny_model, tiny_tokenizer, data.sentences, layer, batch_size=32)
    en = R.embed_sentences(tiny_model, tiny_tokenizer, data.en_sentences, layer, batch_size=32)
    result = R.tatoeba_accuracy(src, en, data.gold, block_size=10_000)
    for key in ("accuracy", "accuracy_xx2en", "accuracy_mean"):
        assert 0 <= result[key] <= 100
    assert len(result["predictions"]) == 100
    assert R.tatoeba_accuracy(src, en, data.gold, block_size=7) == result
    assert R.tatoeba_accuracy(src, en, data.gold, backend="faiss") == result


def test_tatoeba_one_hot_model_is_perfect_and_shuffling_breaks_it(tmp_path):
    data = read_paired(TATOEBA, TATOEBA_DIR, "de")
    embed = one_hot_lookup([[src, en] for src, en in zip(data.sentences, data.en_sentences)])
    result = R.tatoeba_accuracy(embed(data.sentences), embed(data.en_sentences), data.gold)
    assert result["accuracy"] == result["accuracy_xx2en"] == 100.0
    assert result["predictions"] == list(range(100))

    shuffled = data.sentences[:]
    random.Random(0).shuffle(shuffled)
    (tmp_path / "tatoeba.deu-eng.deu").write_text("\n".join(shuffled) + "\n", encoding="utf-8")
    (tmp_path / "tatoeba.deu-eng.eng").write_text("\n".join(data.en_sentences) + "\n", encoding="utf-8")
    broken = read_paired(TATOEBA, tmp_path, "de")
    result = R.tatoeba_accuracy(embed(broken.sentences), embed(broken.en_sentences), broken.gold)
    assert result["accuracy"] < 5 and result["accuracy_xx2en"] < 5


def test_tatoeba_xtreme_layout_with_labels(tmp_path):
    data = read_paired(TATOEBA, TATOEBA_DIR, "fr")
    order = sorted(range(100), key=lambda i: data.en_sentences[i])  # XTREME sorts the English side
    (tmp_path / "fr-en.fr").write_text("\n".join(data.sentences) + "\n", encoding="utf-8")
    (tmp_path / "fr-en.en").write_text("\n".join(data.en_sentences[i] for i in order) + "\n", encoding="utf-8")
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"[{i}]\n" if n % 2 else f"{i}\n" for n, i in enumerate(order)), encoding="utf-8")

    assert read_paired(TATOEBA, tmp_path, "fr").gold is None  # alignment hidden without labels
    hidden = read_paired(TATOEBA, tmp_path, "fra", labels_file=labels)
    embed = one_hot_lookup([[src, en] for src, en in zip(data.sentences, data.en_sentences)])
    result = R.tatoeba_accuracy(embed(hidden.sentences), embed(hidden.en_sentences), hidden.gold, block_size=16)
    assert result["accuracy"] == result["accuracy_xx2en"] == 100.0
    assert result["predictions"] == order
    np.testing.assert_array_equal(R.tatoeba_predict(embed(hidden.sentences), embed(hidden.en_sentences)), order)


def test_tatoeba_predictions_in_submission_order_from_every_layout(tmp_path, monkeypatch):
    """Whatever the input (LASER files, the Hub, XTREME's sorted layout with labels), line i of the predictions
    answers line i of XTREME's sorted English file: scored against labels built as XTREME builds them (stripped
    English lines, stable sort, label = the translation's line) it gives the accuracy the run reports."""
    import datasets

    from utils.score import score_file

    data = read_paired(TATOEBA, TATOEBA_DIR, "de")
    german, english = data.sentences[:40], data.en_sentences[:40]
    english[7] = "  " + english[7]  # leading spaces move a line once stripped
    embed = one_hot_lookup([[g, e, e.strip()] for g, e in zip(german, english)])
    shuffled = german[1:10] + german[:1] + german[10:]  # the first ten pairs are wrong: accuracy 75
    order = sorted(range(40), key=lambda i: english[i].strip())
    labels = tmp_path / "labels.tsv"
    labels.write_text("".join(f"{i}\n" for i in order))

    laser, xtreme = tmp_path / "laser", tmp_path / "xtreme"
    laser.mkdir()
    xtreme.mkdir()
    (laser / "tatoeba.deu-eng.deu").write_text("\n".join(shuffled) + "\n", encoding="utf-8")
    (laser / "tatoeba.deu-eng.eng").write_text("\n".join(english) + "\n", encoding="utf-8")
    (xtreme / "de-en.de").write_text("\n".join(shuffled) + "\n", encoding="utf-8")
    (xtreme / "de-en.en").write_text("".join(english[i].strip() + "\n" for i in order), encoding="utf-8")
    hub = datasets.Dataset.from_dict({"source_sentence": shuffled, "target_sentence": english})
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: hub)

    predictions = tmp_path / "test-de.tsv"
    for data_dir, labels_file in ((laser, None), (None, None), (xtreme, labels)):
        metrics, text, _ = R.evaluate_nearest(embed, TATOEBA, "de", data_dir=data_dir, labels_file=labels_file)
        predictions.write_text(text)
        assert metrics["accuracy"] == 75.0
        assert score_file("tatoeba", "de", predictions, labels) == {"accuracy": 75.0}


def test_tatoeba_hub_loader(monkeypatch):
    import datasets

    rows = {"source_sentence": ["Hallo.\n", "Danke.\n"], "target_sentence": ["Hello.\n", "Thanks.\n"]}
    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        return datasets.Dataset.from_dict(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_hub_paired(TATOEBA, "test", "de")
    assert calls == [("google/xtreme", "tatoeba.deu", "validation")]
    assert (data.sentences, data.en_sentences, data.gold) == (["Hallo.", "Danke."], ["Hello.", "Thanks."], [0, 1])


def test_tatoeba_bad_files(tmp_path):
    (tmp_path / "tatoeba.deu-eng.deu").write_text("a\nb\nc\n", encoding="utf-8")
    with pytest.raises(XtremeError, match=r"tatoeba\.deu-eng\.eng not found"):
        read_paired(TATOEBA, tmp_path, "de")
    (tmp_path / "tatoeba.deu-eng.eng").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(XtremeError, match=r"tatoeba\.deu-eng\.deu has 3 lines but .*tatoeba\.deu-eng\.eng has 2"):
        read_paired(TATOEBA, tmp_path, "de")
    (tmp_path / "tatoeba.deu-eng.eng").write_text("a\nb\nc\n", encoding="utf-8")
    for text, message in [
        ("0\n1\n", r"labels\.txt: 2 labels, expected one per English sentence \(3\)"),
        ("0\n3\n1\n", r"labels\.txt:2: label 3 out of range: expected 0\.\.2"),
        ("0\nx\n1\n", r"labels\.txt:2: expected a sentence index"),
        ("0\n1\n1\n", r"labels\.txt: label 1 occurs more than once"),
    ]:
        (tmp_path / "labels.txt").write_text(text, encoding="utf-8")
        with pytest.raises(XtremeError, match=message):
            read_paired(TATOEBA, tmp_path, "de", labels_file=tmp_path / "labels.txt")
    with pytest.raises(XtremeError, match=r"no tatoeba files for fr .*tatoeba\.fra-eng\.fra"):
        read_paired(TATOEBA, tmp_path, "fr")
    (tmp_path / "tatoeba.deu-eng.deu").write_bytes(b"\xff\n\n\n")
    with pytest.raises(XtremeError, match=r"tatoeba\.deu-eng\.deu:1: not UTF-8 text"):
        read_paired(TATOEBA, tmp_path, "de")


# ------------------------------------------------------------------------------------------------------ BUCC


def test_mine_bitext_hand_built_margins_threshold_f1():
    # cosines x_i . y_j (x3 duplicates y1 and competes with x1 for it):
    #        y0    y1    y2          k=2 means: x0..x2 0.7, x3 (1+.48)/2 = 0.74; y0 0.7, y1 (1+.8)/2 = 0.9, y2 0.7
    #   x0  0.8   0     0.6          best margins: x0-y0 0.8/0.7, x1-y1 0.8/0.8 = 1, x2-y2 0.8/0.7,
    #   x1  0.6   0.8   0                          x3-y1 1/((0.74+0.9)/2) = 1/0.82; y1 prefers x3
    #   x2  0     0.6   0.8          one-to-one: x3-y1 first, so x1 stays unmatched
    #   x3  0.48  1     0.48
    x = 2 * np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0.8, 0.6]])  # scaled: normalised inside
    y = np.array([[0.8, 0.6, 0], [0, 0.8, 0.6], [0.6, 0, 0.8]])
    for backend in R.BACKENDS:
        mined = R.mine_bitext(["x0", "x1", "x2", "x3"], x, ["y0", "y1", "y2"], y, k=2, backend=backend)
        assert [(i, j) for i, j, _ in mined] == [(3, 1), (0, 0), (2, 2)]
        np.testing.assert_allclose([s for _, _, s in mined], [1 / 0.82, 0.8 / 0.7, 0.8 / 0.7], rtol=1e-5)
    # gold x0-y0, x1-y1, x2-y2: prefixes give F1 0, 0.4, 2/3, so the best cut keeps all: threshold = last score
    candidates = [(f"x{i}", f"y{j}", s) for i, j, s in mined]
    gold = {("x0", "y0"), ("x1", "y1"), ("x2", "y2")}
    threshold, precision, recall, f1 = R.bucc_optimize_threshold(candidates, gold)
    assert threshold == pytest.approx(0.8 / 0.7, rel=1e-5)
    assert (precision, recall, f1) == pytest.approx((200 / 3, 200 / 3, 200 / 3))


def test_bucc_threshold_is_midpoint_after_best_prefix():
    candidates = [("a", "A", 1.5), ("e", "X", 1.0), ("c", "C", 1.3), ("b", "X", 1.4), ("d", "D", 1.2)]
    gold = {("a", "A"), ("c", "C"), ("d", "D"), ("f", "F")}
    # prefix F1: 0.4, 1/3, 4/7, 0.75 (a,b,c,d: P = R = 3/4), 2/3 -> cut after d (1.2), next score 1.0
    assert R.bucc_optimize_threshold(candidates, gold) == pytest.approx((1.1, 75.0, 75.0, 75.0))
    assert R.bucc_evaluate(candidates, gold, 1.1) == pytest.approx(
        {"precision": 75.0, "recall": 75.0, "f1": 75.0, "threshold": 1.1}
    )
    assert R.bucc_extract(candidates, 1.4) == [("a", "A"), ("b", "X")]
    assert R.bucc_evaluate(candidates, gold, 1.6)["f1"] == 0.0
    assert R.bucc_optimize_threshold([("b", "X", 1.0)], gold) == (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(XtremeError, match="gold is empty"):
        R.bucc_optimize_threshold(candidates, set())


def test_bucc_margins_in_float64_as_xtreme():
    """XTREME's `score_candidates` (NumPy 1.x): float32 cosines and k-NN means, the means' float32 sum halved in
    float64, the division in float64. Float32 division differs in the last bits, and so would the threshold."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 16)).astype(np.float32), rng.normal(size=(50, 16)).astype(np.float32)
    mined = R.mine_bitext([f"x{i}" for i in range(60)], x, [f"y{j}" for j in range(50)], y, k=4)
    x_sim, x_ind = R.knn(x, y, 4)
    y_sim, y_ind = R.knn(y, x, 4)
    x_mean, y_mean = x_sim.mean(axis=1), y_sim.mean(axis=1)
    cosine = {(i, x_ind[i, c]): x_sim[i, c] for i in range(60) for c in range(4)}
    cosine.update({(y_ind[j, c], j): y_sim[j, c] for j in range(50) for c in range(4)})
    float32_differs = False
    for i, j, score in mined:
        denominator = np.float32(x_mean[i] + y_mean[j])
        assert score == float(np.float64(cosine[i, j]) / (np.float64(denominator) / 2))
        float32_differs |= score != float(cosine[i, j] / (denominator / np.float32(2)))
    assert float32_differs


def test_bucc_scores_multiply_by_100_last_as_evaluate_py():
    # P = 1/1, R = 1/2: evaluate.py's f1 * 100 is 66.66666666666666; 100 * 2 * P * R / (P + R) gives ...67
    scores = bucc_scores({("a", "A")}, {("a", "A"), ("b", "B")})
    assert scores == {"f1": 66.66666666666666, "precision": 100.0, "recall": 50.0}


TEST_PAIRS = [("de-000000101", "en-000000104"), ("de-000000102", "en-000000101"),
              ("de-000000104", "en-000000105"), ("de-000000105", "en-000000102")]  # fmt: skip


def test_bucc_fixture_dev_threshold_applied_to_test():
    dev, test = read_mining(BUCC, XTREME_DIR, "de", "dev"), read_mining(BUCC, BUCC_DIR, "de", "test")
    assert len(dev.src_ids) == len(dev.en_ids) == 12 and len(dev.gold) == 7 and test.gold is None

    def groups(data, pairs):  # translations share a dimension; every other sentence gets its own
        src, en = dict(zip(data.src_ids, data.src_sentences)), dict(zip(data.en_ids, data.en_sentences))
        paired = [[src.pop(s), en.pop(e)] for s, e in pairs]
        return paired + [[s] for s in dict.fromkeys(src.values())] + [[s] for s in en.values()]

    def candidates(data, pairs):
        embed = one_hot_lookup(groups(data, pairs), common=0.1)
        return R.bucc_candidates(data, embed(data.src_sentences), embed(data.en_sentences), k=4)

    dev_candidates = candidates(dev, sorted(dev.gold))
    assert not {"de-000000004", "de-000000007"} & {s for s, _, _ in dev_candidates}  # "Danke." twice: dropped
    threshold, precision, recall, f1 = R.bucc_optimize_threshold(dev_candidates, dev.gold)
    assert (precision, recall, f1) == (100.0, 100.0, 100.0)
    assert R.bucc_evaluate(dev_candidates, dev.gold, threshold)["f1"] == 100.0
    assert sorted(R.bucc_extract(candidates(test, TEST_PAIRS), threshold)) == TEST_PAIRS


def test_bucc_tiny_model_runs(tiny_model, tiny_tokenizer):
    dev = read_mining(BUCC, BUCC_DIR, "de", "dev")
    src = R.embed_sentences(tiny_model, tiny_tokenizer, dev.src_sentences, layer=1)
    en = R.embed_sentences(tiny_model, tiny_tokenizer, dev.en_sentences, layer=1)
    torch_candidates = R.bucc_candidates(dev, src, en, block_size=3)
    faiss_candidates = R.bucc_candidates(dev, src, en, backend="faiss")
    assert [c[:2] for c in torch_candidates] == [c[:2] for c in faiss_candidates]
    assert 0 < len(torch_candidates) <= 11
    _, precision, recall, f1 = R.bucc_optimize_threshold(torch_candidates, dev.gold)
    assert 0 <= precision <= 100 and 0 <= recall <= 100 and 0 <= f1 <= 100


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("de-en.dev.gold", "de-000000001\ten-000000099\n", r"de-en\.dev\.gold:1: unknown English id 'en-000000099'"),
        ("de-en.dev.gold", "de-000000001 en-000000001\n", r"de-en\.dev\.gold:1: expected 'src_id<TAB>en_id'"),
        ("de-en.dev.de", "de-1\tA.\nde-1\tB.\n", r"de-en\.dev\.de:2: duplicate id 'de-1'"),
        ("de-en.dev.en", "en-1\tA.\nno tab here\n", r"de-en\.dev\.en:2: expected 'id<TAB>sentence'"),
    ],
)
def test_bucc_bad_files(tmp_path, name, text, message):
    (tmp_path / "de-en.dev.de").write_text("de-000000001\tHallo.\n", encoding="utf-8")
    (tmp_path / "de-en.dev.en").write_text("en-000000001\tHello.\n", encoding="utf-8")
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(XtremeError, match=message):
        read_mining(BUCC, tmp_path, "de", "dev")


def test_bucc_missing_file_and_hub_refused(tmp_path):
    with pytest.raises(XtremeError, match=r"no bucc2018 files for fr in .*: expected fr-en\.test\.fr"):
        read_mining(BUCC, tmp_path, "fr", "test")
    with pytest.raises(XtremeError, match=r"google/xtreme config 'bucc18\.de' .*only the gold parallel pairs"):
        read_mining(BUCC, None, "de", "test")
