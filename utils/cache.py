"""A cross-run cache of tokenised datasets.

Local files become in-memory datasets with random fingerprints, so `datasets`' own map cache never hits for them
across runs. `cached_map` names the result of a `datasets.map` by what determines it, and stores it as
`{HF_DATASETS_CACHE}/xtreme_inter/{key}.arrow` (`~/.cache/huggingface/datasets/xtreme_inter/` by default):

    key = hash(the examples' content (schema + every value),
               the tokenizer (its full `tokenizer.json` without the truncation/padding state that calls leave
                              behind, its class, special tokens, padding/truncation side, model_max_length),
               the function (module file contents + qualified name) and its other arguments (max_seq_length,
                              doc_stride, ...), the map options that change the output (with_indices, ...),
               the datasets / transformers / tokenizers versions, CACHE_VERSION)

So a result is shared by every run, phase and script that tokenises the same examples with the same tokenizer and
settings (the English dev set of phase 2 and of phase 3, one target task's training set under 11 intermediate
tasks), and any change of data, tokenizer, `max_seq_length` or preprocessing code is a new key (never a stale
hit). `--overwrite_cache` recomputes and replaces the entry. Writes are atomic (`datasets` writes a temporary
file in the cache dir and renames it), so concurrent processes (DDP ranks, parallel jobs) cannot read a partial
file; with `num_proc` the result is stored as `{key}_{rank:05d}_of_{num_proc:05d}.arrow` shards, which later runs
load whatever their own `num_proc`. Entries are never deleted: remove the directory to reclaim the space.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
SUBDIR = "xtreme_inter"
# map() options that do not change the result
_NOT_IN_KEY = {"desc", "num_proc", "load_from_cache_file", "cache_file_name", "new_fingerprint", "keep_in_memory",
               "writer_batch_size", "fn_kwargs"}


def cache_dir() -> Path:
    """`$HF_DATASETS_CACHE/xtreme_inter` (read at call time), else datasets' default cache dir."""
    root = os.environ.get("HF_DATASETS_CACHE")
    if not root:
        import datasets.config

        root = str(datasets.config.HF_DATASETS_CACHE)
    return Path(root).expanduser() / SUBDIR


def _sha(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def data_fingerprint(dataset) -> str:
    """Hash of the schema and every value, independent of how the Arrow table is chunked or sliced."""
    digest = hashlib.sha256(json.dumps(dataset.features.to_dict(), sort_keys=True).encode("utf-8"))
    digest.update(str(len(dataset)).encode())
    for table in dataset.with_format("arrow").iter(batch_size=10_000):
        for batch in table.combine_chunks().to_batches():
            digest.update(batch.serialize())
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of everything that decides a tokenizer's output (not of the object: a reloaded copy hashes the same)."""
    settings = json.dumps({
        "class": type(tokenizer).__name__, "len": len(tokenizer),
        "special_tokens": getattr(tokenizer, "special_tokens_map", None),
        "padding_side": getattr(tokenizer, "padding_side", None),
        "truncation_side": getattr(tokenizer, "truncation_side", None),
        "model_max_length": getattr(tokenizer, "model_max_length", None),
    }, sort_keys=True, default=str)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow (Python) tokenizer: datasets' own pickling hash
        from datasets.fingerprint import Hasher

        return _sha(settings, Hasher.hash(tokenizer))
    raw = backend.to_str()
    # A call with truncation=True/max_length leaves its truncation (and padding) state in the backend, so the
    # serialisation differs before and after the first call: drop that state. The tokenizers library writes
    # version, truncation, padding, then added_tokens: only that short head is parsed (the vocabulary can be MBs).
    head, separator, rest = raw.partition(',"added_tokens":')
    try:
        state = json.loads(head + "}") if separator else json.loads(raw)
    except json.JSONDecodeError:
        state, separator = json.loads(raw), ""
    state.pop("truncation", None)
    state.pop("padding", None)
    return _sha(settings, json.dumps(state, sort_keys=True), rest if separator else "")


def function_fingerprint(function) -> str:
    """The function's qualified name and the source of its whole module (so its helpers are covered too)."""
    name = f"{getattr(function, '__module__', '')}.{getattr(function, '__qualname__', repr(function))}"
    try:
        source = Path(inspect.getsourcefile(function)).read_bytes()
    except (TypeError, OSError):
        from datasets.fingerprint import Hasher

        source = Hasher.hash(function)
    return _sha(name, source)


def _is_tokenizer(value) -> bool:
    return hasattr(value, "backend_tokenizer") or type(value).__name__.endswith(("Tokenizer", "TokenizerFast"))


def cache_key(dataset, function, fn_kwargs: dict | None = None, **map_kwargs) -> str:
    import datasets
    import transformers

    try:
        import tokenizers
        tokenizers_version = tokenizers.__version__
    except ImportError:  # pragma: no cover
        tokenizers_version = None
    arguments = {}
    for name, value in sorted((fn_kwargs or {}).items()):
        arguments[name] = {"tokenizer": tokenizer_fingerprint(value)} if _is_tokenizer(value) else value
    options = {k: v for k, v in sorted(map_kwargs.items()) if k not in _NOT_IN_KEY}
    return _sha(CACHE_VERSION, datasets.__version__, transformers.__version__, tokenizers_version,
                data_fingerprint(dataset), function_fingerprint(function),
                json.dumps(arguments, sort_keys=True, default=repr), json.dumps(options, sort_keys=True, default=repr)
                )[:32]


def cached_map(dataset, function, *, overwrite_cache: bool = False, **map_kwargs):
    """`dataset.map(function, **map_kwargs)`, stored in and reused from the cross-run cache (see the module doc).

    Falls back to a plain `map` when `datasets` caching is disabled or the cache dir is not writable.
    """
    import datasets

    directory = cache_dir()
    if datasets.is_caching_enabled():
        try:
            directory.mkdir(parents=True, exist_ok=True)
            writable = os.access(directory, os.W_OK)
        except OSError:
            writable = False
        if not writable:
            logger.warning("Tokenisation cache dir %s is not writable: not caching", directory)
    else:
        writable = False
    if not writable:
        return dataset.map(function, load_from_cache_file=not overwrite_cache, **map_kwargs)
    key = cache_key(dataset, function, **map_kwargs)
    path = directory / f"{key}.arrow"
    logger.info("Tokenisation cache entry %s (%s)", path, "recomputing" if overwrite_cache else "reused if present")
    return dataset.map(function, cache_file_name=str(path), new_fingerprint=key,
                       load_from_cache_file=not overwrite_cache, **map_kwargs)
