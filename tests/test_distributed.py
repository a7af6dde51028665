"""Multi-process runs on CPU (gloo): 2-rank DDP and DeepSpeed ZeRO-2/ZeRO-3 agree with one process on the same
global batch, the phase chain works under ZeRO-3 with a change of head shape, and a 2-rank evaluation predicts
every example exactly once and writes its files once.

Agreement is checked on the saved weights (max absolute difference < 1e-5; the runs differ only in the order of
float sums: a different batch order or a head that was not transferred moves weights by ~1e-3), the reported
training loss and the dev metrics. The tiny model is copied with dropout off: dropout masks depend on how a batch
is split over ranks. Every run is a subprocess (python, torchrun or accelerate launch with the YAMLs in
accelerate_configs/).
"""


import pytest
import yaml
from conftest import ROOT, XTREME_DIR, glue_squad_layout, read_json
from launchers import check, load_weights, max_difference, run, without_dropout
from safetensors.torch import load_file

from utils.results import results_path

TOLERANCE = 1e-5
QUIET = ["--use_cpu", "--disable_tqdm", "true", "--logging_steps", 1, "--seed", 7]
# 48 examples: with per-rank mega-batches, 1 x 8 and 2 x 4 would group (and so order) them differently.
PHASE1 = ["--task", "mnli", "--train_file", XTREME_DIR / "xnli/train-en.tsv", "--validation_file",
          XTREME_DIR / "xnli/dev-en.tsv", "--max_train_samples", 48, "--max_eval_samples", 37, "--do_train",
          "--max_steps", 8, "--learning_rate", 1e-3, "--eval_strategy", "steps", "--eval_steps", 4, "--save_strategy",
          "steps", "--save_steps", 4, "--load_best_model_at_end", "false", "--per_device_eval_batch_size", 8, *QUIET]
ONE = ["--per_device_train_batch_size", 8]
TWO = ["--per_device_train_batch_size", 4]
MODES = {"ddp": ("accelerate:multi_gpu", [], {"ACCELERATE_USE_CPU": "true"}),
         "zero2": ("torchrun", ["--deepspeed", ROOT / "ds_configs/zero2.json"], {}),
         "zero3": ("accelerate:deepspeed_zero3", [], {})}


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, tmp_path_factory):
    return without_dropout(tiny_model_dir, tmp_path_factory.mktemp("nodrop") / "model")


@pytest.fixture(scope="module")
def phase1_single(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("p1-single") / "out"
    check(run("python", "run_intermediate.py", ["--model_name_or_path", model_dir, *PHASE1, *ONE,
                                                "--output_dir", out]))
    return out


@pytest.fixture(scope="module")
def phase1_runs(model_dir, tmp_path_factory):
    """Phase 1 (3-way NLI) under each 2-process mode, run once for the whole module."""
    outputs = {}

    def get(mode):
        if mode not in outputs:
            how, extra, env = MODES[mode]
            out = tmp_path_factory.mktemp(f"p1-{mode}") / "out"
            log = check(run(how, "run_intermediate.py", ["--model_name_or_path", model_dir, *PHASE1, *TWO, *extra,
                                                         "--output_dir", out], env=env))
            outputs[mode] = (out, log)
        return outputs[mode]

    return get


def phase1_weights(out):
    return {**{f"encoder.{k}": v for k, v in load_weights(out).items()},
            **{f"head.{k}": v.float() for k, v in load_file(out / "heads/mnli/head.safetensors").items()}}


@pytest.mark.parametrize("mode", list(MODES))
def test_phase1_with_two_processes_matches_one(mode, phase1_single, phase1_runs):
    out, log = phase1_runs(mode)
    assert "distributed training: True" in log and "Process rank: 1" in log
    # DeepSpeed checkpoints hold its partitioned optimizer state, one file per rank
    shards = sorted(p.name for p in (out / "checkpoint-8").glob("global_step8/*optim_states.pt"))
    assert len(shards) == (0 if mode == "ddp" else 2), shards
    assert max_difference(phase1_weights(out), phase1_weights(phase1_single)) < TOLERANCE
    one, two = read_json(phase1_single / "all_results.json"), read_json(out / "all_results.json")
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)  # not doubled by 2 ranks
    assert two["eval_accuracy"] == one["eval_accuracy"] and two["eval_samples"] == one["eval_samples"] == 37
    assert (out / "checkpoint-8/trainer_state.json").is_file()
    assert read_json(out / "xtreme_inter_run.json")["finished"] is True


PHASE2 = ["--task", "pawsx", "--data_dir", XTREME_DIR, "--max_train_samples", 48, "--max_eval_samples", 40,
          "--do_train", "--num_train_epochs", 2, "--learning_rate", 1e-3, "--per_device_eval_batch_size", 8, *QUIET]


@pytest.fixture(scope="module")
def phase2_zero3(phase1_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("p2-zero3") / "out"
    phase1, _ = phase1_runs("zero3")
    log = check(run("torchrun", "run_target.py", ["--model_name_or_path", phase1, *PHASE2, *TWO, "--deepspeed",
                                                  ROOT / "ds_configs/zero3.json", "--output_dir", out]))
    return out, log


def test_zero3_phase1_to_phase2_with_another_head_shape(phase1_runs, phase2_zero3, tmp_path):
    """3-way NLI encoder (written under ZeRO-3) -> 2-way PAWS-X under ZeRO-3 (2 ranks, per-epoch evaluation and
    checkpoints, best checkpoint reloaded) and without DeepSpeed (1 process): the same model."""
    phase1, _ = phase1_runs("zero3")
    zero3, log = phase2_zero3
    plain = tmp_path / "plain"
    check(run("python", "run_target.py", ["--model_name_or_path", phase1, *PHASE2, *ONE, "--output_dir", plain]))
    assert "encoder weights were not in" not in log  # the whole encoder came from phase 1
    weights = load_weights(zero3)
    assert weights["classifier.out_proj.weight"].shape == (2, 32)
    assert max_difference(weights, load_weights(plain)) < TOLERANCE
    one, two = read_json(plain / "all_results.json"), read_json(zero3 / "all_results.json")
    assert two["eval_accuracy"] == one["eval_accuracy"]
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)


def test_zero3_fresh_head_of_another_size_from_a_task_checkpoint(phase2_zero3, tmp_path):
    """A fine-tuned 2-way model as the start of a 3-way task under ZeRO-3: transformers' ZeRO-3 loader ignores
    ignore_mismatched_sizes and fails on rank 0 alone; the head must be left out, the encoder loaded exactly.
    With learning rate 0 the saved encoder is the loaded one."""
    source, _ = phase2_zero3
    out = tmp_path / "xnli"
    args = ["--model_name_or_path", source, "--task", "xnli", "--train_file", XTREME_DIR / "xnli/train-en.tsv",
            "--validation_file", XTREME_DIR / "xnli/dev-en.tsv", "--max_train_samples", 16, "--max_eval_samples", 8,
            "--do_train", "--max_steps", 1, "--learning_rate", 0.0, "--warmup_steps", 0, "--weight_decay", 0.0,
            "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end", "false", *TWO, *QUIET,
            "--deepspeed", ROOT / "ds_configs/zero3.json", "--output_dir", out]
    log = check(run("torchrun", "run_target.py", args))
    assert "Head weights in" in log and "are not loaded (fresh head" in log
    before, after = load_weights(source), load_weights(out)
    encoder = [k for k in before if k.startswith("roberta.")]
    assert max(abs(after[k] - before[k]).max().item() for k in encoder) == 0
    assert after["classifier.out_proj.weight"].shape == (3, 32)
    assert not (after["classifier.dense.weight"] == before["classifier.dense.weight"]).all()
    # --keep_head with a head of another size: one clear error on every rank, no hang
    kept = run("torchrun", "run_target.py", [*args[:-1], tmp_path / "kept", "--keep_head"], timeout=120)
    assert kept.returncode != 0
    assert "error: " + str(source) + ": its classification head has 2 labels, this task 3" in kept.stdout


@pytest.fixture(scope="module")
def tagger(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tagger") / "out"
    check(run("python", "run_target.py", [
        "--model_name_or_path", model_dir, "--task", "udpos", "--train_file", XTREME_DIR / "udpos/dev-en.tsv",
        "--validation_file", XTREME_DIR / "udpos/dev-en.tsv", "--max_train_samples", 32, "--max_eval_samples", 8, "--do_train", "--max_steps", 3, "--learning_rate", 3e-3, "--eval_strategy", "no",
        "--save_strategy", "no", "--load_best_model_at_end", "false", *ONE, *QUIET, "--output_dir", out]))
    return out


def test_two_process_evaluation_predicts_every_example_once(tagger, tmp_path):
    """UD-POS en (sentences split into several segments at max_seq_length 24, 61 examples: the last batch is
    short and accelerate pads it with repeated examples) and de (no file: skipped)."""
    args = ["--model_name_or_path", tagger, "--task", "udpos", "--languages", "en,de", "--split", "dev",
            "--data_dir", XTREME_DIR, "--max_eval_samples", 61, "--max_seq_length", 24,
            "--per_device_eval_batch_size", 8, "--use_cpu", "--disable_tqdm", "true"]
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    check(run("python", "run_xtreme_eval.py", [*args, "--output_dir", tmp_path / "one"]))
    check(run("torchrun", "run_xtreme_eval.py", [*args, "--output_dir", tmp_path / "two"],
              env={"XTREME_RECORD": str(tmp_path / "two")}))
    one, two = (read_json(results_path(tmp_path / name, "udpos", "dev")) for name in ("one", "two"))
    assert two["languages"] == one["languages"] and two["languages"]["en"]["num_examples"] == 61
    assert set(two["skipped"]) == {"de"}
    predictions = (tmp_path / "two/predictions/udpos/dev-en.tsv").read_text()
    assert predictions == (tmp_path / "one/predictions/udpos/dev-en.tsv").read_text()
    sentences = [s for s in predictions.split("\n\n") if s.strip()]
    assert len(sentences) == 61 and len(set(predictions.split())) > 3  # diverse: the order is really checked
    gold = (XTREME_DIR / "udpos/dev-en.tsv").read_text().split("\n\n")[:61]
    assert [len(s.splitlines()) for s in sentences] == [len(s.strip().splitlines()) for s in gold]
    # both ranks predicted (sharded), every batch at most 8; only rank 0 wrote files, each once
    logs = {r: (tmp_path / f"two/rank{r}.txt").read_text().splitlines() for r in (0, 1)}
    for r in (0, 1):
        batches = [int(line.split()[1]) for line in logs[r] if line.startswith("batch")]
        assert batches and max(batches) <= 8
    assert not [line for line in logs[1] if line.startswith("write")]
    writes = [line.split()[1] for line in logs[0] if line.startswith("write")]
    assert writes == ["dev-en.tsv", "udpos.dev.json", "udpos.dev.json"]  # en's predictions + results, then de skipped


def test_accelerate_configs_point_at_the_json_configs_only():
    """accelerate refuses (or silently ignores) plugin fields next to a deepspeed_config_file: none may be set."""
    configs = sorted((ROOT / "accelerate_configs").glob("*.yaml"))
    assert len(configs) >= 4
    for path in configs:
        config = yaml.safe_load(path.read_text())
        assert config["distributed_type"] in ("MULTI_GPU", "DEEPSPEED"), path
        if config["distributed_type"] == "DEEPSPEED":
            ds = config["deepspeed_config"]
            assert set(ds) <= {"deepspeed_config_file", "deepspeed_multinode_launcher"}, path
            assert (ROOT / ds["deepspeed_config_file"]).is_file()
            assert "mixed_precision" not in config  # precision: the JSON's "auto" follows --bf16/--fp16
        if config["num_machines"] > 1:
            assert config["main_process_ip"] and config["main_process_port"]


def test_multitask_sampler_gives_every_rank_the_same_task():
    from utils.multitask import MultiTaskBatchSampler

    single = list(MultiTaskBatchSampler([30, 50], 8, [0.4, 0.6], 12, seed=5))
    split = list(MultiTaskBatchSampler([30, 50], 4, [0.4, 0.6], 12, seed=5, micro_batches=2))
    assert len(split) == 24 and [a + b for a, b in zip(split[::2], split[1::2])] == single
    for rank0, rank1 in zip(split[::2], split[1::2]):  # the two ranks' batches of one step: one task
        assert len({i >= 30 for i in rank0 + rank1}) == 1


@pytest.fixture(scope="module")
def multitask_data(tmp_path_factory):
    root = glue_squad_layout(tmp_path_factory.mktemp("multitask"))
    return root


def test_multitask_phase1_with_two_processes(model_dir, multitask_data, tmp_path):
    """--tasks mnli,xquad: 2 DDP ranks x 4 match 1 x 8 (each step one task on every rank). Under ZeRO-3 it trains
    and evaluates every task on 2 ranks; it is not compared: with DeepSpeed the head a step does not use still
    gets an optimizer update (ZeRO's flat partitions hold a gradient for it: zero under ZeRO-2, and ZeRO-3 reports
    a larger gradient norm on such steps), where torch's AdamW skips parameters without a gradient."""
    args = ["--model_name_or_path", model_dir, "--tasks", "mnli,xquad", "--data_dir", multitask_data,
            "--max_train_samples", 32, "--max_eval_samples", 8, "--max_steps", 6, "--do_train", "--learning_rate",
            1e-3, "--eval_strategy", "steps", "--eval_steps", 6, "--save_strategy", "no", "--load_best_model_at_end",
            "false", "--max_seq_length", 96, "--doc_stride", 32, "--max_query_length", 24, *QUIET]
    runs = {"one": ("python", ONE, {}), "ddp": ("accelerate:multi_gpu", TWO, {"ACCELERATE_USE_CPU": "true"}),
            "zero3": ("torchrun", [*TWO, "--deepspeed", ROOT / "ds_configs/zero3.json"], {})}
    for name, (how, extra, env) in runs.items():
        check(run(how, "run_intermediate.py", [*args, *extra, "--output_dir", tmp_path / name], env=env))
    one, ddp = read_json(tmp_path / "one/trainer_state.json"), read_json(tmp_path / "ddp/trainer_state.json")
    tasks = [[k for k in e if k.startswith("batches_")] for e in one["log_history"] if "loss" in e]
    assert {t for step in tasks for t in step} == {"batches_mnli", "batches_xquad"}
    assert [[k for k in e if k.startswith("batches_")] for e in ddp["log_history"] if "loss" in e] == tasks
    assert [e["loss"] for e in ddp["log_history"] if "loss" in e] == pytest.approx(
        [e["loss"] for e in one["log_history"] if "loss" in e], rel=1e-5)
    assert max_difference(load_weights(tmp_path / "ddp"), load_weights(tmp_path / "one")) < TOLERANCE
    zero3 = read_json(tmp_path / "zero3/all_results.json")
    assert {"eval_mnli_accuracy", "eval_xquad_f1", "eval_score"} <= set(zero3)
    assert (tmp_path / "zero3/heads/xquad/head.safetensors").is_file()
