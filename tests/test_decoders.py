"""Decoder-only backbones (tiny random Llama and Qwen2 with the project's tokenizer) through every phase."""

import copy

import pytest
import torch
from conftest import XTREME_DIR, read_json, run_script

from utils.choice_model import ChoiceModel

FAST = ["--use_cpu", "--per_device_train_batch_size", 8, "--per_device_eval_batch_size", 16,
        "--disable_tqdm", "true", "--logging_strategy", "no"]


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def decoder_dir(request, tmp_path_factory):
    from utils.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp(request.param), architecture=request.param)


def test_every_phase_and_kind_runs_on_a_decoder(decoder_dir, tmp_path):
    assert read_json(decoder_dir / "config.json").get("pad_token_id") is None  # as Llama/Qwen base models come
    phase1 = tmp_path / "nli"
    run_script("run_intermediate", [
        "--model_name_or_path", decoder_dir, "--task", "mnli", "--train_file", XTREME_DIR / "xnli/train-en.tsv",
        "--validation_file", XTREME_DIR / "xnli/dev-en.tsv", "--max_train_samples", 32, "--max_eval_samples", 32,
        "--max_steps", 2, "--do_train", "--output_dir", phase1, *FAST])
    assert read_json(phase1 / "config.json")["architectures"][0].endswith("Model")
    tagging = tmp_path / "panx"
    run_script("run_target", [
        "--model_name_or_path", phase1, "--task", "panx", "--train_file", XTREME_DIR / "panx/dev-af.tsv",
        "--validation_file", XTREME_DIR / "panx/dev-af.tsv", "--max_train_samples", 32, "--max_eval_samples", 32,
        "--max_steps", 2, "--do_train", "--output_dir", tagging, *FAST])
    run_script("run_xtreme_eval", ["--model_name_or_path", tagging, "--task", "panx", "--languages", "af",
                                   "--eval_file", XTREME_DIR / "panx/dev-af.tsv", "--max_eval_samples", 40, *FAST])
    panx = read_json(tagging / "results/panx.json")["languages"]["af"]
    assert panx["num_examples"] == 40 and 0 <= panx["f1"] <= 100
    qa = tmp_path / "qa"
    window = ["--max_seq_length", 96, "--doc_stride", 32, "--max_query_length", 24]
    squad = XTREME_DIR / "xquad/xquad.en.json"
    run_script("run_target", ["--model_name_or_path", phase1, "--task", "xquad", "--train_file", squad,
                              "--validation_file", squad, "--max_train_samples", 16, "--max_eval_samples", 8,
                              "--max_steps", 2, "--do_train", "--output_dir", qa, *window, *FAST])
    run_script("run_xtreme_eval", ["--model_name_or_path", qa, "--task", "xquad", "--languages", "de",
                                   "--data_dir", XTREME_DIR, "--max_eval_samples", 10, *window, *FAST])
    assert len(read_json(qa / "predictions/xquad/test-de.json")) == 10
    run_script("run_xtreme_eval", ["--model_name_or_path", phase1, "--task", "tatoeba", "--languages", "de",
                                   "--data_dir", XTREME_DIR, "--pooling", "last", *FAST])
    tatoeba = read_json(phase1 / "results/tatoeba.json")["languages"]["de"]
    assert 0 <= tatoeba["accuracy"] <= 100 and tatoeba["num_examples"] == 100


def test_mlm_is_refused_for_a_causal_model(decoder_dir, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("Ein Satz.\nNoch einer.\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        run_script("run_intermediate", ["--model_name_or_path", decoder_dir, "--tasks", "mlm", "--mlm_files", text,
                                        "--do_train", "--output_dir", tmp_path / "out", *FAST])
    assert "has no masked-LM head" in capsys.readouterr().err


def test_choice_model_matches_automodel_for_multiple_choice(tiny_model_dir):
    from transformers import AutoModelForMultipleChoice

    reference = AutoModelForMultipleChoice.from_pretrained(tiny_model_dir).eval()
    ours = ChoiceModel(copy.deepcopy(reference.roberta), reference.config).eval()
    ours.classifier.load_state_dict(reference.classifier.state_dict())
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, 3000, (3, 4, 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[:, :, 9:] = 0
    labels = torch.tensor([0, 3, 1])
    expected = reference(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    got = ours(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    torch.testing.assert_close(got.logits, expected.logits)
    torch.testing.assert_close(got.loss, expected.loss)


def test_choice_model_on_a_decoder_scores_the_last_real_token(decoder_dir):
    model = ChoiceModel.from_pretrained(decoder_dir).eval()
    input_ids = torch.randint(5, 3000, (2, 3, 7))
    padded = torch.cat([input_ids, torch.ones(2, 3, 4, dtype=torch.long)], dim=-1)
    mask = torch.cat([torch.ones(2, 3, 7, dtype=torch.long), torch.zeros(2, 3, 4, dtype=torch.long)], dim=-1)
    torch.testing.assert_close(model(input_ids=padded, attention_mask=mask).logits, model(input_ids=input_ids).logits)
