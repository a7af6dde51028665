"""The grid at scale, on stub scripts (tests/grid_stub.py): plan checks before anything runs, steps in parallel on
their own devices and ports, Ctrl-C and a killed driver (local workers and submitit's local executor), re-attaching
to jobs, a requeued preempted job, the --status table and the per-step lock."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, grid_ends, read_json

from utils.errors import XtremeError
from utils.grid import main
from utils.grid.process import Lock, pid_alive
from utils.results import RUN_INFO, results_path

STUB = ROOT / "tests" / "grid_stub.py"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def write_plan(tmp_path, seconds=0.0, **changes):
    plan = {"output_dir": str(tmp_path / "grid"),
            "python": f"{sys.executable} {STUB} --seconds {seconds} --events {tmp_path / 'events.txt'}",
            "backbones": [{"name": "m", "path": "some/model"}], "seeds": [1], "intermediate": ["none", "mnli"],
            "targets": [{"name": "pawsx", "languages": ["de", "en"]}, {"name": "tatoeba", "languages": ["de"]}]}
    plan.update(changes)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    return path


def events(tmp_path) -> list[list[str]]:
    path = tmp_path / "events.txt"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def runs_per_dir(tmp_path) -> dict:
    """Output dir -> (starts, completions) of the stub."""
    out = {}
    for e in events(tmp_path):
        starts, dones = out.get(e[1], (0, 0))
        out[e[1]] = (starts + (e[0] == "start"), dones + (e[0] == "done"))
    return out




def driver(path, *args, tmp_path):
    """The grid driver in a process of its own (a test can interrupt or kill it), started as a shell starts a
    command in the background: with SIGINT ignored, which its steps would inherit."""
    log = open(tmp_path / f"driver{time.time_ns()}.log", "w+")
    return subprocess.Popen([sys.executable, "-m", "utils.grid", str(path), *args], cwd=ROOT, env=ENV, stdout=log,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)), log


def wait_for(condition, timeout=60):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def started(tmp_path) -> list[list[str]]:
    return [e for e in events(tmp_path) if e[0] == "start"]


def step_record(out_dir: str) -> dict:
    """The step.json of the step whose script writes `out_dir` (model/ for training steps)."""
    return read_json(Path(out_dir.removesuffix("/model")) / "step.json")


def recorded(tmp_path, out_dir: str) -> bool:
    """Whether the driver has recorded the step as running (it does so right after starting it)."""
    path = Path(out_dir.removesuffix("/model")) / "step.json"
    return path.exists() and step_record(out_dir)["status"] == "running"


# ------------------------------------------------------------------------------- the plan, before anything runs

@pytest.mark.parametrize("change, message", [
    ({"targets": [{"name": "pawsx", "languages": ["de", "jp"]}]},
     r"targets\[0\] \(pawsx\): task pawsx: unknown language\(s\) jp"),
    ({"targets": ["xnlj"]}, r"targets\[0\] \(xnlj\): unknown task 'xnlj'"),
    ({"intermediate": ["none", "mnl"]}, r"intermediate\[1\]: unknown task 'mnl'"),
    ({"intermediate": [{"name": "multi", "tasks": ["mnli", "sqaud_v1"]}]}, "unknown task 'sqaud_v1'"),
    ({"intermediate": [{"name": "control", "tasks": ["mnli", "mlm"]}]}, "task mlm needs text: give 'mlm_files'"),
    ({"tasks": {"xqaud": {"target": {"num_train_epochs": 2}}}}, "tasks.xqaud: no target or intermediate task"),
    ({"targets": [{"name": "cities", "task_spec": "no/such/spec.yaml"}]}, "task spec no/such/spec.yaml: file not"),
    ({"targets": [{"name": "udpos", "languages": ["de", "kk"], "eval_args": {"split": "dev"}}]},
     "target udpos: task udpos: the dev split has no kk"),
    ({"num_processes": 0}, "num_processes: expected a positive integer"),
    ({"slurm": {"partition": "gpu", "time_min": "1 day"}}, r"slurm.time_min: '1 day' has the wrong type"),
    ({"slurm": {"cluster": "pbs"}}, "slurm.cluster: 'pbs'"),
])
def test_plan_errors_surface_before_anything_runs(tmp_path, change, message):
    path = write_plan(tmp_path, **change)
    for args in ([], ["--dry-run"]):
        with pytest.raises(XtremeError, match=message):
            main([str(path), *args])
    assert not (tmp_path / "grid").exists() and not events(tmp_path)


def test_an_evaluation_of_all_languages_expects_the_languages_of_its_split(tmp_path):
    from utils.grid import build_steps, load_plan

    path = write_plan(tmp_path, intermediate=["none"], targets=["udpos"], args={"eval": {"split": "dev"}})
    evaluation = build_steps(load_plan(str(path)))[-1]
    assert evaluation.split == "dev" and "kk" not in evaluation.languages and "de" in evaluation.languages


def test_a_missing_file_stops_a_run_before_it_starts_and_is_listed_by_the_dry_run(tmp_path, capsys):
    path = write_plan(tmp_path, intermediate=["none", {"name": "mnli", "task": "mnli", "args": {
        "train_file": str(tmp_path / "no/train.tsv")}}], args={"eval": {"data_dir": str(tmp_path / "no_data")}})
    result = subprocess.run([sys.executable, "-m", "utils.grid", str(path)], cwd=ROOT, env=ENV, capture_output=True,
                            text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {path}: 2 path(s) the plan names do not exist: ")
    assert f"{tmp_path}/no/train.tsv (train_file of phase1 mnli seed 1): not found" in result.stderr
    assert f"{tmp_path}/no_data (data_dir of phase3 none->pawsx seed 1): not found" in result.stderr
    assert not (tmp_path / "grid").exists() and not events(tmp_path)
    assert main([str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# warning: 2 path(s) the plan names do not exist here" in out and "no/train.tsv (train_file" in out


def test_dry_run_counts_what_can_run_at_once_in_the_paper_plan(capsys):
    assert main([str(ROOT / "plans/paper_xlmr_large.yaml"), "--dry-run", "--output-dir", "/nonexistent/p"]) == 0
    out = capsys.readouterr().out
    # level 1: 11 phase 1 + the baseline's 6 phase 2 and 2 retrieval evaluations; level 2: 11 x (6 phase 2 +
    # 2 retrieval) + the baseline's 7 evaluations; level 3: 11 x 7 evaluations
    assert "#   level 1:  19 step(s) (phase 1: 11, phase 2: 6, phase 3: 2)" in out
    assert "#   level 2:  95 step(s) (phase 2: 66, phase 3: 29)" in out
    assert "#   level 3:  77 step(s) (phase 3: 77)" in out
    assert "#   by phase: 11 phase-1, 72 phase-2, 108 phase-3" in out


# ---------------------------------------------------------------------------------- many steps at once, locally

def overlaps(tmp_path) -> list[list[list[str]]]:
    """For each start event, the start events of the steps running at that moment (itself included)."""
    running, out = {}, []
    for e in events(tmp_path):
        if e[0] == "start":
            running[e[1]] = e
            out.append(list(running.values()))
        else:
            running.pop(e[1])
    return out


def test_workers_and_gpus_share_devices_and_respect_dependencies(tmp_path, capsys):
    path = write_plan(tmp_path, seconds=1, seeds=[1, 2])
    assert main([str(path), "--gpus", "0,1"]) == 0
    ends = grid_ends(capsys.readouterr().out)
    assert len(ends) == 13 and all(v.startswith("done in") for v in ends.values()), ends
    sets = overlaps(tmp_path)
    assert max(len(s) for s in sets) == 2  # two at once, never more
    for running in sets:  # steps running together never share a device
        devices = [e[4] for e in running]
        assert len(set(devices)) == len(devices) and set(devices) <= {"0", "1"}
    order = [(e[0], e[1]) for e in events(tmp_path)]
    grid = tmp_path / "grid/m/mnli/seed2"
    assert order.index(("done", str(grid / "phase1/model"))) < order.index(("start", str(grid / "pawsx/phase2/model")))
    assert order.index(("done", str(grid / "pawsx/phase2/model"))) < order.index(("start", str(grid / "pawsx/phase3")))
    assert order.index(("done", str(grid / "phase1/model"))) < order.index(("start", str(grid / "tatoeba/phase3")))
    record = read_json(grid / "pawsx/phase2/step.json")
    assert record["status"] == "done" and record["devices"] in (["0"], ["1"])


FAKE_ACCELERATE = f"""#!{sys.executable}
import os, sys
args = sys.argv[2:]  # after `launch`
script = next(i for i, a in enumerate(args) if a.endswith(".py"))
os.environ["STUB_PORT"] = args[args.index("--main_process_port") + 1]
os.execv(sys.executable, [sys.executable, "{STUB}", "--seconds", "2", "--events", os.environ["STUB_EVENTS"],
                          *args[script:]])
"""


def test_multi_process_steps_get_k_devices_and_their_own_port(tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "accelerate").write_text(FAKE_ACCELERATE)
    (bin_dir / "accelerate").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STUB_EVENTS", str(tmp_path / "events.txt"))
    path = write_plan(tmp_path, launcher="accelerate", num_processes={"all": 2, "eval": 1},
                      intermediate=["mnli", "qqp"], targets=["pawsx"])
    with pytest.raises(XtremeError, match=r"phase1 mnli seed 1: needs 2 GPUs \(num_processes\) but --gpus gives 1"):
        main([str(path), "--gpus", "0"])
    assert main([str(path), "--gpus", "0,1,2,3"]) == 0
    sets = overlaps(tmp_path)
    pairs = [s for s in sets if len(s) == 2 and all("phase1" in e[1] for e in s)]
    assert pairs, sets  # both phase-1 steps ran at once, on two GPUs each, with ports of their own
    (a, b), = pairs[:1]
    assert len(a[4].split(",")) == 2 and not set(a[4].split(",")) & set(b[4].split(",")) and a[5] != b[5]
    evals = [e for e in started(tmp_path) if e[1].endswith("phase3")]
    assert all(len(e[4].split(",")) == 1 for e in evals)  # eval: num_processes 1
    record = read_json(tmp_path / "grid/m/mnli/seed1/phase1/step.json")
    assert record["command"][:4] == ["accelerate", "launch", "--main_process_port", str(record["port"])]


def test_a_failure_blocks_only_its_dependents_and_the_summary_names_the_logs(tmp_path, capsys):
    path = write_plan(tmp_path, python=f"{sys.executable} {STUB} --fail run_intermediate.py")
    assert main([str(path), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert grid_ends(out)["phase3 none->pawsx seed 1"].startswith("done in")
    log = tmp_path / "grid/m/mnli/seed1/phase1/log.txt"
    assert f"  failed: phase1 mnli seed 1: error: cannot load the model: no such dir (log: {log})" in out
    assert f"  blocked: phase3 mnli->pawsx seed 1 (by phase1 mnli seed 1; log: {log})" in out
    assert f"  blocked: phase3 mnli->tatoeba seed 1 (by phase1 mnli seed 1; log: {log})" in out


# ------------------------------------------------------------------------------- interrupting and killing the driver

def test_ctrl_c_stops_every_running_step_and_a_rerun_resumes_them(tmp_path, capsys):
    path = write_plan(tmp_path, seconds=3)
    process, log = driver(path, "--gpus", "0,1", tmp_path=tmp_path)
    wait_for(lambda: len(started(tmp_path)) == 2 and all(
        (tmp_path / e[1] / ".stub_progress").exists() for e in started(tmp_path)))
    # --status from another process while the driver runs
    assert main([str(path), "--status"]) == 0
    table = capsys.readouterr().out
    rows = {line.split("  ")[0].strip() for line in table.splitlines()[2:]}
    assert "running" in rows and "queued" in rows and "GPU 0" in table and "GPU 1" in table, table
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130
    log.seek(0)
    assert "interrupted: stopping 2 running step(s)" in log.read()
    stopped = started(tmp_path)
    assert not any(pid_alive(int(e[2])) for e in stopped)  # the steps' processes are gone
    statuses = {step_record(e[1])["status"] for e in stopped}
    assert statuses == {"interrupted"}
    assert main([str(path), "--gpus", "0,1"]) == 0
    resumed = [e for e in started(tmp_path)[2:] if e[1] in {s[1] for s in stopped}]
    assert len(resumed) == 2 and all(int(e[6]) > 0 for e in resumed)  # from their checkpoints, not from scratch
    assert all(dones == 1 for _, dones in runs_per_dir(tmp_path).values())


def report_md(grid_dir, out):
    from utils.report import write_report

    write_report(grid_dir, out)
    return (out / "report.md").read_text().replace(str(grid_dir), "GRID")


def test_a_killed_driver_leaves_its_steps_running_and_a_rerun_never_runs_one_twice(tmp_path, capsys):
    reference = tmp_path / "reference"
    reference.mkdir()
    assert main([str(write_plan(reference)), "--workers", "2"]) == 0
    path = write_plan(tmp_path, seconds=3)
    process, _ = driver(path, "--workers", "2", tmp_path=tmp_path)
    wait_for(lambda: len(started(tmp_path)) == 2 and all(recorded(tmp_path, e[1]) for e in started(tmp_path)))
    process.kill()
    process.wait()
    orphans = started(tmp_path)
    assert all(pid_alive(int(e[2])) for e in orphans)  # left running, each holding its step's lock
    capsys.readouterr()
    assert main([str(path), "--workers", "2"]) == 0
    ends = grid_ends(capsys.readouterr().out)
    waited = [k for k, v in ends.items() if v == "done (finished by the run an earlier driver started)"]
    assert len(waited) == 2, ends
    assert all(v == (1, 1) for v in runs_per_dir(tmp_path).values()), runs_per_dir(tmp_path)
    assert report_md(tmp_path / "grid", tmp_path / "r1") == report_md(reference / "grid", tmp_path / "r2")


def test_a_step_dir_locked_by_another_process_is_waited_for(tmp_path):
    path = write_plan(tmp_path, targets=["pawsx"], intermediate=["none"])
    lock = Lock(tmp_path / "grid/m/none/seed1/pawsx/phase2/.step.lock")
    assert lock.acquire()
    process, log = driver(path, tmp_path=tmp_path)
    wait_for(lambda: "waits: another process writes" in open(log.name).read())
    assert not events(tmp_path)  # nothing ran in the locked dir
    lock.release()
    assert process.wait(timeout=60) == 0
    assert runs_per_dir(tmp_path)[str(tmp_path / "grid/m/none/seed1/pawsx/phase2/model")] == (1, 1)


def test_two_drivers_never_share_an_output_dir(tmp_path):
    path = write_plan(tmp_path)
    lock = Lock(tmp_path / "grid/.grid.lock")
    assert lock.acquire()
    with pytest.raises(XtremeError, match="another utils.grid is running on"):
        main([str(path)])
    lock.release()


# ------------------------------------------------------------------------- Slurm, through submitit's local executor

def slurm_plan(tmp_path, seconds):
    return write_plan(tmp_path, seconds=seconds, targets=["pawsx"],
                      slurm={"cluster": "local", "partition": "gpu", "time_min": 30, "cpus_per_step": 1})


def test_slurm_jobs_run_the_step_commands_with_dependencies(tmp_path, capsys):
    path = slurm_plan(tmp_path, 0)
    with pytest.raises(XtremeError, match="--workers/--gpus share this machine out"):
        main([str(path), "--launcher", "slurm", "--workers", "2"])
    assert main([str(path), "--launcher", "slurm"]) == 0
    out = capsys.readouterr().out
    assert "as jobs of submitit's local executor" in out and "phase1 mnli seed 1 started on job " in out
    grid = tmp_path / "grid/m/mnli/seed1"
    record = read_json(grid / "pawsx/phase3/step.json")
    assert record["status"] == "done" and record["cluster"] == "local" and record["job_id"]
    assert read_json(results_path(grid / "pawsx/phase3", "pawsx", "test"))["languages"]["en"]["score"] == 51.0
    order = [(e[0], e[1]) for e in events(tmp_path)]
    assert order.index(("done", str(grid / "phase1/model"))) < order.index(("start", str(grid / "pawsx/phase2/model")))
    assert "run_intermediate.py" in (grid / "phase1/log.txt").read_text()  # the job ran the step's command
    assert main([str(path), "--launcher", "slurm", "--status"]) == 0
    assert capsys.readouterr().out.count("done ") == 5


def test_slurm_driver_killed_and_started_again_reattaches_to_running_jobs(tmp_path, capsys):
    path = slurm_plan(tmp_path, 3)
    process, _ = driver(path, "--launcher", "slurm", tmp_path=tmp_path)
    wait_for(lambda: len(started(tmp_path)) == 2 and all(recorded(tmp_path, e[1]) for e in started(tmp_path)))
    process.kill()
    process.wait()
    running = {e[1] for e in started(tmp_path)}
    job_ids = {d: step_record(d)["job_id"] for d in running}
    assert main([str(path), "--launcher", "slurm", "--status"]) == 0
    table = capsys.readouterr().out
    assert all(f"job {job} RUNNING" in table for job in job_ids.values()), table
    assert main([str(path), "--launcher", "slurm"]) == 0
    out = capsys.readouterr().out
    assert out.count("re-attached to job") == 2, out
    assert all(v == (1, 1) for v in runs_per_dir(tmp_path).values()), runs_per_dir(tmp_path)
    assert {d: step_record(d)["job_id"] for d in running} == job_ids


def test_a_preempted_slurm_job_is_requeued_and_its_step_resumes(tmp_path, capsys):
    path = write_plan(tmp_path, seconds=3, intermediate=["mnli"], targets=["tatoeba"],
                      slurm={"cluster": "local"})
    process, log = driver(path, "--launcher", "slurm", tmp_path=tmp_path)
    model = tmp_path / "grid/m/mnli/seed1/phase1/model"
    wait_for(lambda: (model / ".stub_progress").exists())
    task = int(started(tmp_path)[0][3])  # the job's process: what Slurm signals before preempting it
    os.kill(task, signal.SIGUSR2)
    assert process.wait(timeout=120) == 0
    starts = [e for e in started(tmp_path) if e[1] == str(model)]
    assert len(starts) == 2 and int(starts[1][6]) > 0  # requeued, and resumed from its checkpoint
    assert runs_per_dir(tmp_path)[str(model)] == (2, 1) and (model / RUN_INFO).exists()
    assert "preempted or out of time: step stopped, job requeued" in (model.parent / "log.txt").read_text()
    record = read_json(model.parent / "step.json")
    assert record["status"] == "done" and record["exit_code"] == 0
