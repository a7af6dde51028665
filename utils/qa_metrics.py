"""Extractive QA metrics, re-implementing the official scripts: SQuAD v1.1 (XQuAD, TyDiQA-GoldP), MLQA (language-
specific normalisation) and SQuAD 2.0 (HasAns/NoAns, best null threshold).

`predictions` maps question id -> answer text; `references` maps question id -> gold answer texts. Every question in
`references` is scored; ids only in `predictions` are ignored. EM and F1 are x100.
"""

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable

from utils.errors import XtremeError

# ---------------------------------------------------------------- SQuAD v1.1 (third_party/evaluate_squad.py)

_ASCII_PUNCT = frozenset(string.punctuation)
_EN_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_squad(text: str) -> str:
    """Lowercase, drop ASCII punctuation, replace English articles by a space, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
    return " ".join(_EN_ARTICLES.sub(" ", text).split())


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _score(predictions: dict[str, str], references: dict[str, list[str]], tokens: Callable[[str], list[str]]) -> dict:
    """Max EM/F1 over the gold answers per question, averaged over all questions (missing predictions score 0)."""
    em = f1 = 0.0
    for qid, golds in references.items():
        if not golds:
            raise XtremeError(f"question {qid}: no gold answer (unanswerable questions need squad_v2_scores)")
        if qid not in predictions:
            continue
        pred = tokens(predictions[qid])
        em += max(float(pred == tokens(gold)) for gold in golds)
        f1 += max(_f1(pred, tokens(gold)) for gold in golds)
    total = len(references)
    return {"exact_match": 100.0 * em / total if total else 0.0, "f1": 100.0 * f1 / total if total else 0.0}


def squad_scores(predictions: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
    """SQuAD v1.1 `{"exact_match", "f1"}` (x100)."""
    return _score(predictions, references, lambda text: normalize_squad(text).split())


# ---------------------------------------------------------------- MLQA (third_party/evaluate_mlqa.py)


def _is_punct(ch: str) -> bool:
    """Official PUNCT set: every Unicode category P* character plus `string.punctuation` (which adds $+<=>^`|~)."""
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "ar": re.compile(r"\sال^|ال"),  # the official regex: in effect every "ال" becomes a space
    "hi": None,
    "zh": None,
}
MLQA_LANGS = tuple(_ARTICLES)


def _check_lang(lang: str) -> None:
    if lang not in _ARTICLES:
        raise XtremeError(f"MLQA metric: unknown language {lang!r} (expected one of {', '.join(MLQA_LANGS)})")


def _mixed_segmentation(text: str) -> list[str]:
    """Each CJK ideograph and punctuation char is a token; the runs between them are split on whitespace."""
    tokens, run = [], ""
    for ch in text:
        if "\u4e00" <= ch <= "\u9fa5" or _is_punct(ch):
            tokens.extend(run.split())
            tokens.append(ch)
            run = ""
        else:
            run += ch
    tokens.extend(run.split())
    return tokens


def normalize_mlqa(text: str, lang: str) -> str:
    """Lowercase -> drop Unicode+ASCII punctuation -> drop `lang`'s articles -> tokenise -> join with spaces."""
    _check_lang(lang)
    text = "".join(ch for ch in text.lower() if not _is_punct(ch))
    if _ARTICLES[lang] is not None:
        text = _ARTICLES[lang].sub(" ", text)
    tokens = _mixed_segmentation(text) if lang == "zh" else text.split()
    return " ".join(t for t in tokens if t.strip())


def mlqa_scores(predictions: dict[str, str], references: dict[str, list[str]], lang: str) -> dict[str, float]:
    """MLQA `{"exact_match", "f1"}` (x100) for the context language `lang` (one of `MLQA_LANGS`)."""
    _check_lang(lang)
    return _score(predictions, references, lambda text: normalize_mlqa(text, lang).split())


# ---------------------------------------------------------------- SQuAD 2.0 (evaluate-v2.0.py)


def _v2_tokens(text: str) -> list[str]:
    return normalize_squad(text).split() if text else []


def _v2_f1(gold: str, pred: str) -> float:
    gold_tokens, pred_tokens = _v2_tokens(gold), _v2_tokens(pred)
    if not gold_tokens or not pred_tokens:  # a no-answer on either side: 1 if both are empty
        return float(gold_tokens == pred_tokens)
    return _f1(pred_tokens, gold_tokens)


def _best_threshold(predictions, raw, na_probs, has_ans) -> tuple[float, float]:
    """Official `find_best_thresh`: scan questions by rising na_prob, predicting no-answer above the cut-off."""
    score = best = sum(1 for qid in has_ans if not has_ans[qid])
    best_thresh = 0.0
    for qid in sorted(raw, key=lambda q: na_probs[q]):
        if has_ans[qid]:
            score += raw[qid]
        elif qid not in predictions or predictions[qid]:  # a missing or non-empty answer is wrong
            score -= 1
        if score > best:
            best, best_thresh = score, na_probs[qid]
    return 100.0 * best / len(raw), best_thresh


def squad_v2_scores(
    predictions: dict[str, str],
    references: dict[str, list[str]],
    na_probs: dict[str, float] | None = None,
    null_threshold: float = 1.0,
) -> dict[str, float]:
    """SQuAD 2.0 metrics: exact, f1, total, HasAns_*/NoAns_* (when such questions exist) and, given `na_probs`
    (question id -> no-answer score, e.g. the null score diffs of `postprocess_qa_predictions`), best_exact/best_f1
    with their thresholds. An unanswerable question has references `[]` and is right iff the prediction is "".
    A question whose na_prob exceeds `null_threshold` counts as answered with "". Unlike the official script, which
    crashes on them, missing predictions score 0.
    """
    if na_probs is not None and (missing := [qid for qid in references if qid not in na_probs]):
        raise XtremeError(f"SQuAD v2 metric: no null score for {len(missing)} question(s), e.g. {missing[0]}")
    has_ans = {qid: bool(golds) for qid, golds in references.items()}
    exact_raw, f1_raw, exact, f1 = {}, {}, {}, {}
    for qid, golds in references.items():
        golds = [g for g in golds if normalize_squad(g)] or [""]
        pred = predictions.get(qid)
        if pred is None:
            exact_raw[qid] = f1_raw[qid] = 0.0
        else:
            exact_raw[qid] = max(float(normalize_squad(g) == normalize_squad(pred)) for g in golds)
            f1_raw[qid] = max(_v2_f1(g, pred) for g in golds)
        forced_null = na_probs is not None and na_probs[qid] > null_threshold
        exact[qid] = float(not has_ans[qid]) if forced_null else exact_raw[qid]
        f1[qid] = float(not has_ans[qid]) if forced_null else f1_raw[qid]

    def summary(qids: list[str], prefix: str = "") -> dict[str, float]:
        n = len(qids)
        return {
            f"{prefix}exact": 100.0 * sum(exact[q] for q in qids) / n if n else 0.0,
            f"{prefix}f1": 100.0 * sum(f1[q] for q in qids) / n if n else 0.0,
            f"{prefix}total": n,
        }

    result = summary(list(references))
    for prefix, wanted in (("HasAns_", True), ("NoAns_", False)):
        if qids := [qid for qid, has in has_ans.items() if has == wanted]:
            result.update(summary(qids, prefix))
    if na_probs is not None and references:
        result["best_exact"], result["best_exact_thresh"] = _best_threshold(predictions, exact_raw, na_probs, has_ans)
        result["best_f1"], result["best_f1_thresh"] = _best_threshold(predictions, f1_raw, na_probs, has_ans)
    return result
