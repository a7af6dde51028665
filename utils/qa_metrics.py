"""SQuAD 2.0's metric (`evaluate-v2.0.py`: HasAns/NoAns, best null threshold), for the SQuAD 2.0 intermediate task.

`predictions` maps question id -> answer text; `references` maps question id -> gold answer texts (`[]`:
unanswerable). EM and F1 are x100. XTREME's QA metrics (SQuAD v1.1, MLQA) are in `metrics.xtreme.xtreme_metrics`.
"""

from metrics.xtreme.xtreme_metrics import normalize_squad, token_f1
from utils.errors import XtremeError


def _v2_tokens(text: str) -> list[str]:
    return normalize_squad(text).split() if text else []


def _v2_f1(gold: str, pred: str) -> float:
    gold_tokens, pred_tokens = _v2_tokens(gold), _v2_tokens(pred)
    if not gold_tokens or not pred_tokens:  # a no-answer on either side: 1 if both are empty
        return float(gold_tokens == pred_tokens)
    return token_f1(pred_tokens, gold_tokens)


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
