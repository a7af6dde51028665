"""UD CoNLL-U -> (FORM, UPOS) sentences, as XTREME makes its UD-POS files from the treebanks."""

from __future__ import annotations

from pathlib import Path

from ..errors import XtremeError

# ud-conversion-tools' POS precedence lists (conllu_to_conll.py), by the language prefix of the file name: the
# head of a multiword token, among its words nearest the root, is the one whose UPOS comes first. The default
# list lacks SYM (and ends with an empty entry, as its split of a trailing space gives).
UD_POS_PRECEDENCE = {
    "default": "VERB NOUN PROPN PRON ADJ NUM ADV INTJ AUX ADP DET PART CCONJ SCONJ X PUNCT ".split(" "),
    "es": "VERB AUX PRON ADP DET".split(),
    "fr": "VERB AUX PRON NOUN ADJ ADV ADP DET PART SCONJ CONJ".split(),
    "it": "VERB AUX ADV PRON ADP DET INTJ".split(),
}


def read_conllu(path: Path) -> list[dict]:
    """Raw CoNLL-U -> (FORM, UPOS) sentences, as XTREME's UD-POS files are made from it.

    XTREME converts each treebank file with ud-conversion-tools (`conllu_to_conll.py --lang {file prefix}
    --replace_subtokens_with_fused_forms`) and reads the result with `utils_preprocess.py::udpos_preprocess`:
    - a multiword token becomes its fused surface form with the UPOS of its head word (`_multiword_head`);
    - a sentence is dropped when all its forms, or all but one, are `_`;
    - spaces inside a form (Vietnamese UD has them) and U+200C are removed; forms are stripped.
    """
    rows, sentence = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                rows += [_conllu_sentence(path, sentence)] if sentence else []
                sentence = []
            elif not line.startswith("#"):
                parts = line.split("\t")
                if len(parts) != 10:
                    raise XtremeError(f"{path}:{number}: expected 10 tab-separated CoNLL-U columns, "
                                      f"found {len(parts)}")
                sentence.append((number, parts))
    rows += [_conllu_sentence(path, sentence)] if sentence else []
    return [row for row in rows if row is not None]


def _conllu_sentence(path: Path, lines: list) -> dict | None:
    words, parents, spans = {}, {}, []
    for number, (ident, form, _, upos, _, _, head, _, deps, _) in lines:
        try:
            if "." in ident:  # an empty node of the enhanced graph: not a word
                continue
            if "-" in ident:
                first, last = (int(x) for x in ident.split("-"))
                spans.append((number, form, range(first, last + 1)))
                continue
            index = int(ident)
            # the dependency graph of ud-conversion-tools: basic HEAD plus the enhanced DEPS heads that are words
            parents[index] = {int(head)} | {int(h) for h, *_ in (d.split(":") for d in deps.split("|"))
                                            if deps != "_" and h.isdigit()}
        except ValueError:
            raise XtremeError(f"{path}:{number}: expected integer ID and HEAD, found {ident!r}, {head!r}") from None
        words[index] = (number, form, upos)
    forms = {i: form for i, (_, form, _) in words.items()}
    for number, form, span in spans:
        if any(i not in words for i in span):
            raise XtremeError(f"{path}:{number}: multiword token {form!r} spans words that are not in the sentence")
        head = _multiword_head(path, number, form, span, words, parents)
        forms.update({i: None for i in span})
        forms[head] = form
    kept = [i for i in sorted(words) if forms[i] is not None]
    tokens = [forms[i].strip() for i in kept]
    n_empty = tokens.count("_")
    if n_empty and n_empty >= len(tokens) - 1:
        return None
    return {"tokens": ["".join(t.replace("\u200c", "").split(" ")) for t in tokens],
            "tags": [words[i][2].strip() for i in kept], "_line": lines[0][0], "_lines": [words[i][0] for i in kept]}


def _multiword_head(path: Path, line: int, form: str, span: range, words: dict, parents: dict) -> int:
    """The word of a multiword token that keeps its UPOS, as ud-conversion-tools chooses it: the word with the
    fewest ancestors in the dependency graph (basic and enhanced edges); among several, the first whose UPOS comes
    earliest in the language's precedence list (a UPOS missing from the list stops XTREME's conversion)."""
    def ancestors(index: int) -> int:
        seen, todo = set(), [index]
        while todo:
            for parent in parents.get(todo.pop(), ()):
                if parent not in seen and parent != index:
                    seen.add(parent)
                    todo.append(parent)
        return len(seen)

    depth = {i: ancestors(i) for i in span}
    highest = [i for i in span if depth[i] == min(depth.values())]
    if len(highest) == 1:
        return highest[0]
    prefix = Path(path).name.split("_")[0]
    precedence = UD_POS_PRECEDENCE.get(prefix, UD_POS_PRECEDENCE["default"])
    missing = [words[i][2] for i in highest if words[i][2] not in precedence]
    if missing:
        raise XtremeError(f"{path}:{line}: cannot choose the head of multiword token {form!r}: its words "
                          f"{', '.join(words[i][1] for i in highest)} are equally near the root and UPOS "
                          f"{missing[0]} is not in the {prefix if prefix in UD_POS_PRECEDENCE else 'default'} "
                          "precedence list of ud-conversion-tools (XTREME's conversion stops on this file)")
    return min(highest, key=lambda i: precedence.index(words[i][2]))

