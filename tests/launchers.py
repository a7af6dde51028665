"""Helpers for the tests that run the phase scripts in subprocesses: plain python, torchrun, accelerate launch,
always through `tests/fault_injection.py` (which only acts when its environment variables are set)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

BIN = Path(sys.executable).parent
HELPER = ROOT / "tests" / "fault_injection.py"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launcher(how: str) -> list[str]:
    """The command prefix of one launch mode: `python` (1 process), `torchrun` (2 processes),
    `accelerate:CONFIG` (2 processes, `accelerate launch --config_file accelerate_configs/CONFIG.yaml`)."""
    if how == "python":
        return [sys.executable]
    if how == "torchrun":
        return [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port())]
    if how.startswith("accelerate:"):
        return [str(BIN / "accelerate"), "launch", "--config_file", str(ROOT / "accelerate_configs" /
                                                                          f"{how.split(':')[1]}.yaml"),
                "--num_processes", "2", "--main_process_port", str(free_port())]
    raise ValueError(how)


def run(how: str, script: str, args: list, env: dict | None = None, timeout: int = 300):
    """Run `script` with `args` under launcher `how`; returns the CompletedProcess (stdout+stderr in .stdout)."""
    command = [*launcher(how), str(HELPER), script, *map(str, args)]
    # a session of its own: on a timeout the launcher AND its workers are killed
    with subprocess.Popen(command, cwd=ROOT, env={**ENV, **(env or {})}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            raise AssertionError(f"timed out after {timeout}s: {' '.join(command)}\n{output[-4000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output)


def check(result) -> str:
    assert result.returncode == 0, result.stdout[-4000:]
    return result.stdout


def without_dropout(model_dir, out_dir) -> Path:
    """A copy of a model dir with every dropout at 0: the runs compared differ in how batches are split over
    ranks, and dropout masks would differ with them."""
    out_dir = Path(out_dir)
    shutil.copytree(model_dir, out_dir)
    config = json.loads((out_dir / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    return out_dir


def load_weights(path) -> dict:
    """A model dir's weights as from_pretrained sees them (ZeRO-3 saves LayerNorm weights under legacy names)."""
    from safetensors.torch import load_file

    weights = load_file(str(Path(path) / "model.safetensors"))
    return {k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v.float()
            for k, v in weights.items()}


def max_difference(a: dict, b: dict) -> float:
    assert set(a) == set(b), sorted(set(a) ^ set(b))[:10]
    return max((a[k] - b[k]).abs().max().item() for k in a)
