"""Sentence retrieval for XTREME's BUCC 2018 and Tatoeba tasks: embeddings, k-NN search, mining and metrics.

Follows XTREME's `third_party/evaluate_retrieval.py` / `utils_retrieve.py` (itself LASER's method):

- sentences are encoded as `<s> ... </s>` and mean-pooled (special tokens included, padding masked out) over
  one hidden layer of `output_hidden_states` (0 = embeddings);
- Tatoeba: cosine 1-NN with the *English* sentences as queries over the non-English ones (XTREME's direction);
  predictions are written in submission order, the order of XTREME's alphabetically sorted English file;
- BUCC: de-duplicated sentences, k=4 nearest neighbours both ways, ratio-margin scores (in float64, as XTREME
  computes them), "max" retrieval made one-to-one, and a threshold chosen on dev gold (to be applied to test).

Search never builds the full n x m similarity matrix: the torch backend scores `block_size` queries at a time
(peak memory about block_size * m floats), the faiss backend uses an exact `IndexFlatIP`.
All reported metrics (accuracy, precision, recall, F1) are percentages (x100), as in XTREME's `evaluate.py`.
"""

import contextlib
from collections import Counter

import numpy as np
import torch

from metrics.xtreme.xtreme_metrics import accuracy, bucc_scores, prf
from utils.bitext import MiningData, read_mining, read_paired
from utils.errors import MissingDataError, XtremeError
from utils.tasks import NEAREST, Task

POOLINGS = ("mean", "cls", "last")
BACKENDS = ("torch", "faiss")
DEFAULT_BLOCK_SIZE = 512


# ----------------------------------------------------------------------------------------------- embeddings


def _num_layers(config) -> int:
    return config.get_text_config().num_hidden_layers


def default_layer(config) -> int:
    """Middle layer, as an index into `output_hidden_states` (0 = embeddings): `num_hidden_layers // 2`.

    XTREME's Tatoeba run for XLM-R Large uses `hidden_states[14]` (its `--specific_layer 13` counts from the
    first transformer block); that is not the middle (12) of 24 layers, so pass `--layer 14` to reproduce it.
    """
    return _num_layers(config) // 2


def _pad(seqs: list[list[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token-id lists to the longest one on `side` ("right" or "left"); returns (input_ids, attention_mask)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        cols = slice(0, len(seq)) if side == "right" else slice(width - len(seq), width)
        ids[row, cols] = torch.tensor(seq, dtype=torch.long)
        mask[row, cols] = 1
    return ids, mask


def _pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if pooling == "cls":  # first non-pad position (token 0 unless padded on the left)
        return hidden[rows, mask.argmax(dim=1)]
    if pooling == "last":  # last non-pad position
        positions = torch.arange(mask.shape[1], device=mask.device)
        return hidden[rows, (mask * positions).argmax(dim=1)]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def embed_sentences(
    model,
    tokenizer,
    sentences: list[str],
    layer: int,
    pooling: str = "mean",
    batch_size: int = 64,
    max_length: int = 512,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Embed sentences as the pooled `hidden_states[layer]` of `model`; returns float32 [len(sentences), hidden].

    Sentences get the tokenizer's special tokens (XLM-R: `<s> ... </s>`) and are truncated to `max_length`
    tokens. They are batched longest first with padding to the batch maximum (on `tokenizer.padding_side`), and
    returned in the input order. `pooling`: "mean" (attention-masked mean over all tokens, special tokens
    included), "cls" (first token, `<s>`) or "last" (last non-pad token, for decoder models). Task heads are
    skipped (`model.base_model` is run). `dtype` (e.g. torch.bfloat16) turns on autocast on the model's device.
    """
    if pooling not in POOLINGS:
        raise XtremeError(f"unknown pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
    n_layers = _num_layers(model.config)
    if not -n_layers - 1 <= layer <= n_layers:
        raise XtremeError(
            f"layer {layer} is out of range for a model with {n_layers} layers: expected 0..{n_layers} "
            "(an index into output_hidden_states, 0 = embeddings)"
        )
    out = np.zeros((len(sentences), model.config.get_text_config().hidden_size), dtype=np.float32)
    if not sentences:
        return out
    ids = tokenizer(list(sentences), add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    model.eval()
    with torch.inference_mode(), autocast:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, mask = _pad([ids[i] for i in rows], pad_id, tokenizer.padding_side)
            input_ids, mask = input_ids.to(device), mask.to(device)
            outputs = model.base_model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
            pooled = _pool(outputs.hidden_states[layer].float(), mask, pooling)
            out[rows] = pooled.cpu().numpy()
    return out


# --------------------------------------------------------------------------------------------------- search


def normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation as float32 (all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def knn(
    queries: np.ndarray,
    index: np.ndarray,
    k: int,
    block_size: int = DEFAULT_BLOCK_SIZE,
    backend: str = "torch",
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine k nearest neighbours of each query among the `index` rows (both L2-normalised here).

    Returns (scores float32 [n, k'], indices int64 [n, k']) sorted by decreasing cosine, k' = min(k, len(index)).
    backend "torch": `block_size` queries at a time (peak extra memory about block_size * len(index) floats),
    on `device` (default CPU); backend "faiss": exact `faiss.IndexFlatIP`. Both give the same neighbours up to ties.
    """
    if backend not in BACKENDS:
        raise XtremeError(f"unknown search backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    q, x = normalize(queries), normalize(index)
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"queries have dimension {q.shape[1]} but the index has {x.shape[1]}")
    k = min(k, len(x))
    if len(q) == 0 or k == 0:
        return np.zeros((len(q), k), np.float32), np.zeros((len(q), k), np.int64)
    if backend == "faiss":
        return _knn_faiss(q, x, k)
    return _knn_torch(q, x, k, block_size, torch.device(device or "cpu"))


def _knn_faiss(q: np.ndarray, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(np.ascontiguousarray(x))
    scores, indices = flat.search(np.ascontiguousarray(q), k)
    return scores.astype(np.float32), indices.astype(np.int64)


def _knn_torch(q: np.ndarray, x: np.ndarray, k: int, block_size: int, device) -> tuple[np.ndarray, np.ndarray]:
    scores = np.empty((len(q), k), np.float32)
    indices = np.empty((len(q), k), np.int64)
    xt = torch.from_numpy(x).to(device).T
    with torch.inference_mode():
        for start in range(0, len(q), block_size):
            block = torch.from_numpy(q[start : start + block_size]).to(device)
            top = (block @ xt).topk(k, dim=1)
            scores[start : start + len(block)] = top.values.cpu().numpy()
            indices[start : start + len(block)] = top.indices.cpu().numpy()
    return scores, indices


# ------------------------------------------------------------------------------------- nearest neighbour


def submission_order(en_sentences: list[str]) -> list[int]:
    """The English line indices in the order of XTREME's hidden test file: `tatoeba_preprocess` strips each
    English line and sorts them alphabetically (a stable sort: identical lines keep their order). Its labels give,
    for sorted line i, the index of the translation, so a submission's line i answers English line order[i]."""
    return sorted(range(len(en_sentences)), key=lambda i: en_sentences[i].strip())


def tatoeba_predict(
    src_emb: np.ndarray, en_emb: np.ndarray, block_size: int = DEFAULT_BLOCK_SIZE, backend: str = "torch"
) -> np.ndarray:
    """XTREME's predictions: for each English sentence, the index of the nearest non-English sentence."""
    return knn(en_emb, src_emb, 1, block_size, backend)[1][:, 0]


def tatoeba_accuracy(
    src_emb: np.ndarray,
    en_emb: np.ndarray,
    gold: list[int] | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    backend: str = "torch",
) -> dict:
    """Top-1 retrieval accuracy x100 in both directions.

    `accuracy` is XTREME's number (English queries, en->xx); `accuracy_xx2en` the reverse; `accuracy_mean`
    their mean. `gold[i]` is the foreign index of English line i (default: identity). `predictions` holds the
    en->xx indices (XTREME's submission format writes one per line).
    """
    if len(src_emb) != len(en_emb):
        raise ValueError(f"{len(src_emb)} non-English vs {len(en_emb)} English embeddings: expected equal counts")
    gold_arr = np.arange(len(en_emb)) if gold is None else np.asarray(gold, dtype=np.int64)
    en2xx = tatoeba_predict(src_emb, en_emb, block_size, backend)
    xx2en = knn(src_emb, en_emb, 1, block_size, backend)[1][:, 0]
    en2xx_accuracy = accuracy(en2xx, gold_arr) if len(gold_arr) else 0.0
    # foreign line j is correct iff its nearest English line is the one whose gold is j
    xx2en_accuracy = accuracy(gold_arr[xx2en], np.arange(len(src_emb))) if len(gold_arr) else 0.0
    return {
        "accuracy": en2xx_accuracy,
        "accuracy_xx2en": xx2en_accuracy,
        "accuracy_mean": (en2xx_accuracy + xx2en_accuracy) / 2,
        "predictions": en2xx.tolist(),
    }


# -------------------------------------------------------------------------------------------------- mining


def _unique(sentences: list[str]) -> list[int]:
    """Index of the first occurrence of each distinct sentence, in order of appearance."""
    first: dict[str, int] = {}
    for i, sentence in enumerate(sentences):
        first.setdefault(sentence, i)
    return list(first.values())


def mine_bitext(
    src_sents: list[str],
    src_emb: np.ndarray,
    tgt_sents: list[str],
    tgt_emb: np.ndarray,
    k: int = 4,
    block_size: int = DEFAULT_BLOCK_SIZE,
    backend: str = "torch",
) -> list[tuple[int, int, float]]:
    """LASER/XTREME bitext mining; returns one-to-one (src_index, tgt_index, margin score), best first.

    Identical sentences are searched once (indices point at their first occurrence). With the k nearest
    neighbours in both directions, score(x, y) = cos(x, y) / ((mean_knn(x) + mean_knn(y)) / 2) (ratio margin),
    with float32 cosines and their means (float32 sum) divided in float64, as XTREME's `score_candidates` computes
    it under NumPy 1.x (a float32 scalar divided by a Python int is float64 there). Each sentence proposes its best-scoring neighbour (both directions: "max" retrieval); the union is made
    one-to-one greedily in descending score order. No threshold is applied here.
    """
    if len(src_sents) != len(src_emb) or len(tgt_sents) != len(tgt_emb):
        raise ValueError("expected one embedding per sentence on both sides")
    src_keep, tgt_keep = _unique(src_sents), _unique(tgt_sents)
    if not src_keep or not tgt_keep:
        return []
    x, y = src_emb[src_keep], tgt_emb[tgt_keep]
    x2y_sim, x2y_ind = knn(x, y, k, block_size, backend)
    y2x_sim, y2x_ind = knn(y, x, k, block_size, backend)
    x_mean, y_mean = x2y_sim.mean(axis=1), y2x_sim.mean(axis=1)

    def best(sim: np.ndarray, ind: np.ndarray, own_mean: np.ndarray, other_mean: np.ndarray):
        """Each query's best neighbour by margin (its k-NN cosines are `sim`) and that margin."""
        margin = sim.astype(np.float64) / ((own_mean[:, None] + other_mean[ind]).astype(np.float64) / 2)
        rows, column = np.arange(len(sim)), margin.argmax(axis=1)
        return ind[rows, column], margin[rows, column]

    fwd_best, fwd_score = best(x2y_sim, x2y_ind, x_mean, y_mean)
    bwd_best, bwd_score = best(y2x_sim, y2x_ind, y_mean, x_mean)
    src = np.concatenate([np.arange(len(x)), bwd_best])
    tgt = np.concatenate([fwd_best, np.arange(len(y))])
    scores = np.concatenate([fwd_score, bwd_score])
    pairs, used_src, used_tgt = [], set(), set()
    for i in np.argsort(-scores, kind="stable"):
        if src[i] not in used_src and tgt[i] not in used_tgt:
            used_src.add(src[i])
            used_tgt.add(tgt[i])
            pairs.append((src_keep[src[i]], tgt_keep[tgt[i]], float(scores[i])))
    return pairs


def bucc_candidates(
    data: MiningData,
    src_emb: np.ndarray,
    en_emb: np.ndarray,
    k: int = 4,
    block_size: int = DEFAULT_BLOCK_SIZE,
    backend: str = "torch",
) -> list[tuple[str, str, float]]:
    """Mined (src_id, en_id, score) pairs of a BUCC split, best first. As in XTREME's `bucc_eval`, pairs whose
    sentence text occurs more than once on its side (under several ids) are dropped."""
    mined = mine_bitext(data.src_sentences, src_emb, data.en_sentences, en_emb, k, block_size, backend)
    src_count, en_count = Counter(data.src_sentences), Counter(data.en_sentences)
    return [
        (data.src_ids[i], data.en_ids[j], score)
        for i, j, score in mined
        if src_count[data.src_sentences[i]] == 1 and en_count[data.en_sentences[j]] == 1
    ]


def bucc_optimize_threshold(
    candidates: list[tuple[str, str, float]], gold: set[tuple[str, str]]
) -> tuple[float, float, float, float]:
    """Best-F1 score threshold against gold: (threshold, precision, recall, F1), metrics x100 (LASER `bucc_optimize`).

    Candidates sorted by descending score are cut after each position; the threshold is the midpoint between the
    best cut's last score and the next score (the last score if the best cut keeps all). The first best cut wins
    ties. If no candidate is in gold the threshold is 0.0, as in LASER.
    """
    if not gold:
        raise XtremeError("BUCC gold is empty: the threshold can only be chosen against gold pairs (dev split)")
    ranked = sorted(candidates, key=lambda c: -c[2])
    best, threshold, n_correct = (0.0, 0.0, 0.0), 0.0, 0
    for n, (src_id, en_id, score) in enumerate(ranked, 1):
        n_correct += (src_id, en_id) in gold
        scores = prf(n_correct, n, len(gold))
        if scores[2] > best[2]:
            best = scores
            threshold = (score + ranked[n][2]) / 2 if n < len(ranked) else score
    return (threshold, *(value * 100 for value in best))


def bucc_extract(candidates: list[tuple[str, str, float]], threshold: float) -> list[tuple[str, str]]:
    """The (src_id, en_id) pairs scoring >= threshold: the predictions XTREME submits for BUCC."""
    return [(src_id, en_id) for src_id, en_id, score in candidates if score >= threshold]


def bucc_evaluate(candidates: list[tuple[str, str, float]], gold: set[tuple[str, str]], threshold: float) -> dict:
    """Precision, recall and F1 (x100) of the candidates scoring >= threshold against the gold pairs."""
    return {**bucc_scores(set(bucc_extract(candidates, threshold)), gold), "threshold": threshold}


# ---------------------------------------------------------------------------------------- one language, end to end


def evaluate_nearest(embed, task: Task, lang: str, split: str = "test", data_dir: str | None = None,
                     spec_files: dict | None = None, labels_file: str | None = None,
                     block_size: int = DEFAULT_BLOCK_SIZE, backend: str = "torch") -> tuple[dict | None, str, int]:
    """Nearest-neighbour (Tatoeba) accuracy of one language (`embed(sentences) -> array`); data from the spec's
    files, the task's layouts under `data_dir`, or the Hub.

    Returns the metrics (None without gold), the predictions file text in submission order (line i: the index
    of the sentence retrieved for line i of XTREME's sorted English file, whatever the input layout; see
    `submission_order`) and the number of English queries.
    """
    data = read_paired(task, data_dir, lang, labels_file, split, spec_files)
    src, en = embed(data.sentences), embed(data.en_sentences)
    if data.gold is None:
        predictions, metrics = tatoeba_predict(src, en, block_size, backend), None
    else:
        metrics = tatoeba_accuracy(src, en, data.gold, block_size, backend)
        predictions = metrics.pop("predictions")
        metrics["score"] = metrics["accuracy"]
    lines = [f"{int(predictions[i])}\n" for i in submission_order(data.en_sentences)]
    return metrics, "".join(lines), len(data.en_sentences)


def evaluate_mining(embed, task: Task, lang: str, split: str, data_dir: str | None = None,
                    spec_files: dict | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
                    backend: str = "torch") -> tuple[dict, str, int]:
    """Bitext mining (BUCC 2018) for one language: the threshold is chosen on the dev gold and applied to `split`.

    With split "dev" the F1 is that of the dev-optimal threshold on dev (jiant's validation number); with "test"
    the dev threshold is applied unchanged to the test split (XTREME's intended use, which its own script never
    carries out), scored only if a test gold file exists (else the metrics hold just the threshold).
    Predictions are `xx_id<TAB>en_id` lines.
    """
    dev = read_mining(task, data_dir, lang, "dev", spec_files)
    if dev.gold is None:
        raise MissingDataError(f"task {task.name} {lang}: no dev gold pairs: the threshold is chosen on them")
    mine = lambda data: bucc_candidates(data, embed(data.src_sentences), embed(data.en_sentences),  # noqa: E731
                                        block_size=block_size, backend=backend)
    dev_candidates = mine(dev)
    threshold, *_ = bucc_optimize_threshold(dev_candidates, dev.gold)
    if split == "dev":
        data, candidates = dev, dev_candidates
    else:
        data = read_mining(task, data_dir, lang, split, spec_files)
        candidates = mine(data)
    metrics = {"threshold": threshold}
    if data.gold is not None:
        metrics = bucc_evaluate(candidates, data.gold, threshold)
        metrics["score"] = metrics["f1"]
    pairs = bucc_extract(candidates, threshold)
    return metrics, "".join(f"{src}\t{en}\n" for src, en in pairs), len(data.src_sentences)


def evaluate_retrieval(embed, task: Task, lang: str, split: str, data_dir: str | None = None,
                       spec_files: dict | None = None, labels_file: str | None = None, **search) -> tuple:
    """One language of a retrieval task, by the task's search: (metrics, predictions text, count)."""
    if task.search == NEAREST:
        return evaluate_nearest(embed, task, lang, split, data_dir, spec_files, labels_file, **search)
    return evaluate_mining(embed, task, lang, split, data_dir, spec_files, **search)
