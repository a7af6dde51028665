"""Build a tiny random model and tokenizer offline, for tests and the demo.

    python -m utils.tiny_model OUT_DIR [--architecture xlm-roberta|llama|qwen2] [--corpus FILE] [--vocab_size N]

A sentencepiece unigram model is trained on bundled multilingual text (real XTREME samples in ten scripts) and
wrapped as an `XLMRobertaTokenizer`. The default model is a 2-layer `XLMRobertaForMaskedLM` with random weights,
so every `AutoModelFor*` class loads the directory (its MLM head serves the MLM tasks). `llama` and `qwen2` build
2-layer decoder-only causal LMs with the same tokenizer, saved without a pad token as such checkpoints come.
Nothing touches the Hub.
"""

import argparse
import re
import shutil
import tempfile
from pathlib import Path

from .errors import XtremeError, run_main
from .files import honour_umask

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tiny_corpus.txt"


def build_tokenizer(corpus: Path, out_dir: Path, vocab_size: int = 4000):
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer

    if vocab_size < 1:
        raise XtremeError(f"--vocab_size {vocab_size}: must be positive")
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "spm"
        try:
            spm.SentencePieceTrainer.train(
                input=str(corpus),
                model_prefix=str(prefix),
                vocab_size=vocab_size,
                hard_vocab_limit=False,
                model_type="unigram",
                character_coverage=0.9995,
                # XLM-R's fairseq ids (<s>=0 <pad>=1 </s>=2 <unk>=3) are added by the tokenizer on top of these
                bos_id=-1,
                eos_id=-1,
                pad_id=-1,
                unk_id=0,
                minloglevel=2,
            )
        except RuntimeError as err:  # "Vocabulary size is smaller than required_chars. 5 vs 2102. ..."
            needed = re.search(r"required_chars\. \d+ vs (\d+)", str(err))
            if needed is None:
                raise
            raise XtremeError(f"--vocab_size {vocab_size}: too small for the characters of {corpus}; pass "
                              f"--vocab_size {needed.group(1)} or more") from None
        # XLMRobertaTokenizer reads `sentencepiece.bpe.model` from a directory (the `vocab_file=` constructor
        # silently yields a 5-token vocabulary).
        spm_dir = Path(tmp) / "tok"
        spm_dir.mkdir()
        shutil.copy(f"{prefix}.model", spm_dir / "sentencepiece.bpe.model")
        tokenizer = XLMRobertaTokenizer.from_pretrained(str(spm_dir))
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def decoder_config(architecture: str, tokenizer):
    from transformers import LlamaConfig, Qwen2Config

    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config}[architecture]
    return config_class(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        num_key_value_heads=1, intermediate_size=64, max_position_embeddings=1024,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        tie_word_embeddings=True)


def build_tiny_model(out_dir, corpus: Path = DEFAULT_CORPUS, vocab_size: int = 4000, seed: int = 0,
                     architecture: str = "xlm-roberta") -> Path:
    import torch
    from transformers import AutoModelForCausalLM, XLMRobertaConfig, XLMRobertaForMaskedLM

    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(Path(corpus), out_dir, vocab_size)
    torch.manual_seed(seed)
    if architecture == "xlm-roberta":
        config = XLMRobertaConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=514, type_vocab_size=1,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id)
        XLMRobertaForMaskedLM(config).save_pretrained(out_dir)
    else:
        AutoModelForCausalLM.from_config(decoder_config(architecture, tokenizer)).save_pretrained(out_dir)
        tokenizer.pad_token = None  # like Llama/Qwen base checkpoints: the scripts must cope without one
        tokenizer.save_pretrained(out_dir)
    honour_umask(out_dir.glob("*.safetensors"))
    return out_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="plain text, one sentence per line")
    parser.add_argument("--vocab_size", type=int, default=4000)
    parser.add_argument("--architecture", default="xlm-roberta", choices=["xlm-roberta", "llama", "qwen2"])
    args = parser.parse_args()
    out = build_tiny_model(args.out_dir, Path(args.corpus), args.vocab_size, architecture=args.architecture)
    print(f"tiny model written to {out}")


if __name__ == "__main__":
    run_main(main)
