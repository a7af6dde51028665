"""Decoder-only backbones (tiny random Llama and Qwen2 with the project's tokenizer) through every phase."""

import copy

import pytest
import torch
from conftest import XTREME_DIR, read_json, run_script

from utils.choice_model import ChoiceModel
from utils.results import results_path

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
    panx = read_json(results_path(tagging, "panx", "test"))["languages"]["af"]
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
    tatoeba = read_json(results_path(phase1, "tatoeba", "test"))["languages"]["de"]
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


def test_lora_trains_adapters_and_saves_a_merged_plain_checkpoint(decoder_dir, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "lora"
    run_script("run_target", ["--model_name_or_path", decoder_dir, "--task", "pawsx", "--data_dir", XTREME_DIR,
                              "--use_lora", "--lora_r", 4, "--max_train_samples", 32, "--max_eval_samples", 16,
                              "--max_steps", 4, "--learning_rate", 1e-2, "--do_train", "--output_dir", out, *FAST])
    saved = load_file(out / "model.safetensors")
    assert not any("lora" in key or "base_layer" in key or "modules_to_save" in key for key in saved)
    original = load_file(decoder_dir / "model.safetensors")
    query = next(k for k in original if k.endswith("layers.0.self_attn.q_proj.weight"))
    embeddings = next(k for k in original if k.endswith("embed_tokens.weight"))
    assert not torch.equal(saved[query], original[query])  # the adapter was merged into the projection
    assert torch.equal(saved[embeddings], original[embeddings])  # untargeted weights stay as they were
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 2
    run_script("run_xtreme_eval", ["--model_name_or_path", out, "--task", "pawsx", "--languages", "de",
                                   "--data_dir", XTREME_DIR, "--split", "dev", *FAST])
    assert read_json(results_path(out, "pawsx", "dev"))["languages"]["de"]["num_examples"] == 100
