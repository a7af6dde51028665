#!/usr/bin/env python
"""Run a phase script with faults injected from environment variables (a test helper, not part of the scripts).

    XTREME_KILL_AT_STEP=N python tests/fault_injection.py run_target.py ARGS...

- `XTREME_KILL_AT_STEP=N`: SIGKILL this process at the end of optimizer step N (before step N's evaluation and
  checkpoint).
- `XTREME_KILL_IN_SAVE=N:WHERE`: SIGKILL while checkpoint-N is written: WHERE is `weights` (the model weights are
  written, optimizer, scheduler, RNG and trainer state are not), `state` (half of `trainer_state.json` written)
  or `rotate` (checkpoint-N complete, killed half-way through deleting an older checkpoint).
- `XTREME_KILL_AFTER_LANGUAGES=K`: SIGKILL in the middle of the evaluation of the language after the K-th one
  written to the results file (its prediction has started).
- `XTREME_RECORD=DIR`: every rank appends to `DIR/rank{R}.txt` one line per evaluation batch (`batch N`: its
  number of examples) and per results/predictions file written (`write NAME`).

Without these variables the script runs unchanged. It runs as `__main__` in this process (under torchrun and
accelerate launch too), so its exit status and output are its own.
"""

import os
import runpy
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def kill():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", 0))


def record(line: str) -> None:
    with open(Path(os.environ["XTREME_RECORD"]) / f"rank{rank()}.txt", "a", encoding="utf-8") as f:
        f.write(line + "\n")


def install_training_faults():
    from transformers import Trainer, TrainerCallback, TrainerState

    kill_step = int(os.environ.get("XTREME_KILL_AT_STEP", 0))
    if kill_step:
        class KillAtStep(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == kill_step:
                    kill()

        original_init = Trainer.__init__

        def init(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            self.add_callback(KillAtStep())

        Trainer.__init__ = init

    save_fault = os.environ.get("XTREME_KILL_IN_SAVE")
    if not save_fault:
        return
    step, where = save_fault.split(":")
    step = int(step)
    if where == "weights":
        original_save = Trainer._save_optimizer_and_scheduler

        def save_optimizer_and_scheduler(self, output_dir):
            if self.state.global_step == step:
                kill()
            return original_save(self, output_dir)

        Trainer._save_optimizer_and_scheduler = save_optimizer_and_scheduler
    elif where == "state":
        original_state = TrainerState.save_to_json

        def save_to_json(self, json_path):
            original_state(self, json_path)
            if self.global_step == step and Path(json_path).parent.name == f"checkpoint-{step}":
                text = Path(json_path).read_text(encoding="utf-8")
                Path(json_path).write_text(text[: len(text) // 2], encoding="utf-8")
                kill()

        TrainerState.save_to_json = save_to_json
    elif where == "rotate":
        import shutil

        original_rmtree = shutil.rmtree

        def rmtree(path, *args, **kwargs):
            if Path(path).name.startswith("checkpoint-"):
                files = sorted(Path(path).iterdir())
                for f in files[: len(files) // 2]:
                    original_rmtree(f) if f.is_dir() else f.unlink()
                kill()
            return original_rmtree(path, *args, **kwargs)

        shutil.rmtree = rmtree  # transformers' rotate_checkpoints calls shutil.rmtree
    else:
        raise SystemExit(f"XTREME_KILL_IN_SAVE: unknown place {where!r}")


def install_evaluation_faults():
    import utils.files
    import utils.kinds
    import utils.results
    import utils.training

    after = int(os.environ.get("XTREME_KILL_AFTER_LANGUAGES", 0))
    if after:
        written = []
        original_add = utils.results.ResultsFile.add

        def add(self, lang, metrics):
            original_add(self, lang, metrics)
            written.append(lang)

        utils.results.ResultsFile.add = add
        original_predict = utils.training.predict_in_order

        def predict_in_order(trainer, dataset):
            if len(written) >= after:
                kill()
            return original_predict(trainer, dataset)

        utils.training.predict_in_order = utils.kinds.predict_in_order = predict_in_order

    if os.environ.get("XTREME_RECORD"):
        from transformers import Trainer

        original_step = Trainer.prediction_step

        def prediction_step(self, model, inputs, *args, **kwargs):
            record(f"batch {len(inputs['input_ids'])}")
            return original_step(self, model, inputs, *args, **kwargs)

        Trainer.prediction_step = prediction_step
        original_write = utils.files.atomic_write_text

        def atomic_write_text(path, text):
            record(f"write {Path(path).name}")
            return original_write(path, text)

        utils.files.atomic_write_text = utils.results.atomic_write_text = atomic_write_text


def main():
    script = sys.argv[1]
    sys.argv = [script] + sys.argv[2:]
    sys.path.insert(0, str(ROOT))
    install_training_faults()
    install_evaluation_faults()
    runpy.run_path(str(ROOT / script), run_name="__main__")


if __name__ == "__main__":
    main()
