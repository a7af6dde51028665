"""However an optimizer step's global batch is split, training gives the same model: 1 x 16, 4 x 4 with gradient
accumulation, and (multi-task) 2 processes x 4 x 2 accumulation steps agree on every logged loss, every gradient norm (before
clipping), `train_loss` and the final weights, for every task kind and for multi-task training.

The loss of a step is the mean over the whole global batch of what the model averages over (examples, labelled
tokens, QA windows), so the agreement is up to float summation order (weights within 1e-5). The learning rate
moves the weights by more than 100 times that, and the tiny model runs with dropout off (dropout masks depend on
how the batch is split).
"""

import shutil

import pytest
from conftest import XTREME_DIR, glue_squad_layout, hellaswag_layout, read_json, run_script
from launchers import check, load_weights, max_difference, run, without_dropout
from safetensors.torch import load_file

TOLERANCE = 1e-5
# --adam_epsilon 1e-5: some gradients are zero up to float noise (QA: the output bias and the last LayerNorm's bias
# shift every position's logit alike, which a softmax over positions ignores); with the default 1e-8 Adam, dividing
# by the gradient's own size, would turn that noise into steps as large as the learning rate.
COMMON = ["--do_train", "--max_steps", 3, "--learning_rate", 3e-3, "--warmup_steps", 0, "--adam_epsilon", 1e-5,
          "--logging_steps", 1,
          "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false", "--seed", 5,
          "--max_train_samples", 64, "--max_eval_samples", 8, "--per_device_eval_batch_size", 8, "--use_cpu",
          "--disable_tqdm", "true"]
ONE_BATCH = ["--per_device_train_batch_size", 16]
ACCUMULATED = ["--per_device_train_batch_size", 4, "--gradient_accumulation_steps", 4]
TWO_PROCESSES = ["--per_device_train_batch_size", 4, "--gradient_accumulation_steps", 2]
QA = ["--max_seq_length", 96, "--doc_stride", 32, "--max_query_length", 24]
KINDS = {
    "classification": ("run_target", ["--task", "mnli"]),
    "tagging": ("run_target", ["--task", "udpos", "--max_seq_length", 24]),  # sentences split into segments
    "qa": ("run_target", ["--task", "squad_v1", *QA]),
    "multiple_choice": ("run_target", ["--task", "hellaswag"]),
    "multitask": ("run_intermediate", ["--tasks", "mnli,udpos,squad_v1,hellaswag", "--sampling", "uniform",
                                       "--max_steps", 6, "--seed", 10, *QA]),
}


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, tmp_path_factory):
    return without_dropout(tiny_model_dir, tmp_path_factory.mktemp("nodrop") / "model")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = hellaswag_layout(glue_squad_layout(tmp_path_factory.mktemp("data")))
    (root / "udpos").mkdir()
    shutil.copy(XTREME_DIR / "udpos/dev-en.tsv", root / "udpos/train-en.tsv")
    return root


def arguments(kind, model_dir, data_dir, out, split):
    script, args = KINDS[kind]
    return script, ["--model_name_or_path", model_dir, "--data_dir", data_dir, *COMMON, *args, *split,
                    "--output_dir", out]


@pytest.fixture(scope="module")
def one_batch(model_dir, data_dir, tmp_path_factory):
    """The 1 x 16 run of each kind, trained once for the module."""
    outputs = {}

    def get(kind):
        if kind not in outputs:
            outputs[kind] = tmp_path_factory.mktemp(kind) / "one"
            run_script(*arguments(kind, model_dir, data_dir, outputs[kind], ONE_BATCH))
        return outputs[kind]

    return get


def steps(out):
    """(step, loss, grad_norm) of every logged step."""
    history = read_json(out / "trainer_state.json")["log_history"]
    return [(e["step"], e["loss"], e["grad_norm"]) for e in history if "loss" in e]


def weights(out):
    """The saved model: weights, and phase 1's heads beside them."""
    heads = {f"{p.parent.name}.{k}": v.float() for p in out.glob("heads/*/head.safetensors")
             for k, v in load_file(p).items()}
    return {**load_weights(out), **heads}


def assert_same_training(out, reference):
    expected = steps(reference)
    assert len(expected) >= 3
    assert [s for s, *_ in steps(out)] == [s for s, *_ in expected]
    assert [loss for _, loss, _ in steps(out)] == pytest.approx([loss for _, loss, _ in expected], rel=1e-5)
    assert [norm for *_, norm in steps(out)] == pytest.approx([norm for *_, norm in expected], rel=1e-4)
    assert read_json(out / "all_results.json")["train_loss"] == pytest.approx(
        read_json(reference / "all_results.json")["train_loss"], rel=1e-5)
    assert max_difference(weights(out), weights(reference)) < TOLERANCE


def moved(out, model_dir) -> float:
    """How far training moved the encoder from the initial weights (largest change of any weight)."""
    def encoder(path):  # names as in a plain encoder checkpoint (phase 1 saves one)
        return {k.split(".", 1)[1] if k.startswith(("roberta.", "backbone.")) else k: v
                for k, v in load_weights(path).items()}

    start, trained = encoder(model_dir), encoder(out)
    return max((trained[k] - start[k]).abs().max().item() for k in trained.keys() & start.keys())


@pytest.mark.parametrize("kind", list(KINDS))
def test_accumulated_batches_train_the_same_model(kind, one_batch, model_dir, data_dir, tmp_path):
    reference = one_batch(kind)
    assert moved(reference, model_dir) > 100 * TOLERANCE
    run_script(*arguments(kind, model_dir, data_dir, tmp_path / "accumulated", ACCUMULATED))
    assert_same_training(tmp_path / "accumulated", reference)
    if kind == "multitask":  # the steps drew every task
        history = read_json(reference / "trainer_state.json")["log_history"]
        drawn = {k for e in history for k in e if k.startswith("batches_")}
        assert drawn == {"batches_mnli", "batches_udpos", "batches_squad_v1", "batches_hellaswag"}


def test_two_processes_with_accumulation_train_the_same_model(one_batch, model_dir, data_dir, tmp_path):
    """2 DDP processes x 4 x 2 accumulation steps, multi-task: every kind, and tagging weighs every labelled token
    of the global batch alike although the processes' batches hold different numbers of them. (Single-task
    training on 2 processes: tests/test_distributed.py.)"""
    script, args = arguments("multitask", model_dir, data_dir, tmp_path / "two", TWO_PROCESSES)
    log = check(run("accelerate:multi_gpu", f"{script}.py", args, env={"ACCELERATE_USE_CPU": "true"}))
    assert "distributed training: True" in log
    assert_same_training(tmp_path / "two", one_batch("multitask"))
