"""The paper's experiment grid from one plan file: phase 1 per intermediate setting, phase 2 per target, phase 3.

    python -m utils.grid plans/paper_xlmr_large.yaml              # run (or resume) the whole grid
    python -m utils.grid plans/paper_xlmr_large.yaml --dry-run    # print the exact commands, run nothing
    python -m utils.grid PLAN --only intermediate=mnli target=pawsx,xnli

The three scripts stay the unit of work: every step is one `run_intermediate.py`, `run_target.py` or
`run_xtreme_eval.py` process (optionally under `accelerate launch` / `torchrun`), with its output and a log in its
own directory:

    {output_dir}/grid_state.json                        every step: status, command, wall time, reason
    {output_dir}/{backbone}/{intermediate}/seed{s}/
        phase1/{step.json,log.txt,model/}               run_intermediate.py (absent for `none`)
        {target}/phase2/{step.json,log.txt,model/}      run_target.py on phase1/model (or the backbone)
        {target}/phase3/{step.json,log.txt,results/{task}.json,predictions/}   run_xtreme_eval.py --languages ...
        bucc2018/phase3/ ...                            retrieval: evaluated on phase1/model, no phase 2

A step is skipped when its outputs are complete (phases 1-2: `model/xtreme_inter_run.json` says
`"finished": true`; phase 3: `results/{task}.json` holds every requested language of the planned split) and the
outputs of the steps it depends on are the ones it was run on. `step.json` records, for each input step, the id
of the grid run that produced it and a hash of its completion file; an input that was produced again (by the grid
or by hand) makes the step stale: its old outputs are removed and it runs again. So deleting one step's outputs
re-runs exactly that step and what depends on it. A failed step is reported and the rest of the grid goes on;
the steps that need its output are skipped with the reason. An interrupted training step resumes from its last
checkpoint on the next invocation (the scripts do that), an interrupted evaluation keeps the languages already
done (`--resume`).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .errors import XtremeError, run_main
from .results import RUN_INFO, atomic_write_json

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {1: "run_intermediate.py", 2: "run_target.py", 3: "run_xtreme_eval.py"}
PHASE_SECTION = {1: "intermediate", 2: "target", 3: "eval"}
ARG_SECTIONS = ("all", "intermediate", "target", "eval")
RETRIEVAL_TASKS = ("bucc2018", "tatoeba")
STEP_FILE, LOG_FILE, STATE_FILE, LOCK_FILE = "step.json", "log.txt", "grid_state.json", ".grid.lock"
LAUNCHERS = ("python", "accelerate", "torchrun")
# Set by the grid from the plan's structure; an `args:` section may not set them.
RESERVED_ARGS = {"model_name_or_path", "output_dir", "task", "tasks", "seed", "languages", "mlm_files", "resume",
                 "do_train", "task_spec"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")

TOP_KEYS = {"name", "description", "output_dir", "python", "launcher", "num_processes", "launcher_args",
            "deepspeed", "backbones", "seeds", "intermediate", "targets", "args", "tasks"}
BACKBONE_KEYS = {"name", "path", "group", "pair", "args"}
INTERMEDIATE_KEYS = {"name", "task", "tasks", "mlm_files", "task_spec", "args"}
TARGET_KEYS = {"name", "task", "task_spec", "languages", "train_with", "args", "eval_args"}
GROUPS = ("base", "aligned")


# ----------------------------------------------------------------------------------------------------- the plan

@dataclass
class Backbone:
    name: str
    path: str
    group: str | None = None  # "base" | "aligned": issue 9's comparison of an aligned model with its base
    pair: str | None = None
    args: dict = field(default_factory=dict)  # section -> args (all/intermediate/target/eval)

    def record(self) -> dict:
        return {"name": self.name, "path": self.path, "group": self.group, "pair": self.pair}


@dataclass
class Intermediate:
    name: str
    task: str | None = None  # one task: --task
    tasks: list | str | None = None  # multi-task (and MLM control): --tasks a,b
    mlm_files: list | None = None
    task_spec: str | None = None
    args: dict = field(default_factory=dict)

    @property
    def is_none(self) -> bool:
        return self.task is None and self.tasks is None and self.task_spec is None

    @property
    def task_names(self) -> list[str]:
        if self.tasks is not None:
            return [self.tasks] if isinstance(self.tasks, str) else list(self.tasks)
        return [self.task] if self.task else []


@dataclass
class Target:
    name: str
    task: str
    task_spec: str | None = None
    languages: list | str = "all"
    train_with: str | None = None  # reuse another target's phase-2 model (XQuAD and MLQA share SQuAD training)
    args: dict = field(default_factory=dict)  # phase 2
    eval_args: dict = field(default_factory=dict)  # phase 3

    @property
    def retrieval(self) -> bool:
        return self.task in RETRIEVAL_TASKS


@dataclass
class Plan:
    path: str
    raw: dict
    output_dir: Path
    backbones: list[Backbone]
    seeds: list[int]
    intermediates: list[Intermediate]
    targets: list[Target]
    args: dict
    tasks: dict
    python: list[str]
    launcher: str = "python"
    num_processes: int | None = None
    launcher_args: list = field(default_factory=list)
    deepspeed: str | None = None


def _check_keys(where: str, mapping: dict, allowed: set) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise XtremeError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of "
                          f"{', '.join(sorted(allowed))}")


def _check_name(where: str, name) -> str:
    name = str(name)
    if not NAME_RE.match(name) or name in ("phase1", "phase2", "phase3"):
        raise XtremeError(f"{where}: {name!r} cannot be a directory name; use letters, digits and . _ + -")
    return name


def _sections(where: str, value) -> dict:
    """An args block keyed by phase section (all/intermediate/target/eval), each a flat mapping."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise XtremeError(f"{where}: expected a mapping of {', '.join(ARG_SECTIONS)} to arguments")
    _check_keys(where, value, set(ARG_SECTIONS))
    return {section: _flat_args(f"{where}.{section}", args) for section, args in value.items()}


def _flat_args(where: str, args) -> dict:
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise XtremeError(f"{where}: expected a mapping of argument names to values, e.g. {{num_train_epochs: 2}}")
    reserved = sorted(set(args) & RESERVED_ARGS)
    if reserved:
        raise XtremeError(f"{where}: {', '.join(reserved)} is set by the grid from the plan's structure "
                          "(backbones, intermediate, targets, seeds, languages); remove it from the args")
    return dict(args)


def _backbone(i: int, entry) -> Backbone:
    where = f"backbones[{i}]"
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict) or "path" not in entry:
        raise XtremeError(f"{where}: expected a model (Hub id or dir) or a mapping with 'path' (and name, group, "
                          "pair, args)")
    _check_keys(where, entry, BACKBONE_KEYS)
    path = str(entry["path"])
    name = entry.get("name") or re.sub(r"[^A-Za-z0-9._+-]", "-", Path(path.rstrip("/")).name)
    group = entry.get("group")
    if group is not None and group not in GROUPS:
        raise XtremeError(f"{where}: group {group!r}; expected one of {', '.join(GROUPS)}")
    return Backbone(_check_name(where, name), path, group, None if entry.get("pair") is None else str(entry["pair"]),
                    _sections(f"{where}.args", entry.get("args")))


def _intermediate(i: int, entry) -> Intermediate:
    where = f"intermediate[{i}]"
    if entry is None or isinstance(entry, str):
        name = "none" if entry in (None, "none") else entry
        return Intermediate(_check_name(where, name), task=None if name == "none" else name)
    if not isinstance(entry, dict):
        raise XtremeError(f"{where}: expected 'none', a task name or a mapping (name, task | tasks, mlm_files, args)")
    _check_keys(where, entry, INTERMEDIATE_KEYS)
    if "task" in entry and "tasks" in entry:
        raise XtremeError(f"{where}: give 'task' (one task) or 'tasks' (multi-task), not both")
    tasks = entry.get("tasks")
    if tasks is not None and not (tasks == "all" or (isinstance(tasks, list) and tasks)):
        raise XtremeError(f"{where}: 'tasks' must be a non-empty list of task names or 'all'")
    mlm_files = entry.get("mlm_files")
    if isinstance(mlm_files, str):
        mlm_files = [mlm_files]
    name = entry.get("name") or entry.get("task") or ("+".join(tasks) if isinstance(tasks, list) else tasks)
    if not name:
        raise XtremeError(f"{where}: give a 'name' (or a 'task')")
    item = Intermediate(_check_name(where, name), entry.get("task"), tasks, mlm_files, entry.get("task_spec"),
                        _flat_args(f"{where}.args", entry.get("args")))
    if item.is_none and item.name != "none":
        raise XtremeError(f"{where}: {item.name!r} names no task; give 'task', 'tasks' or 'task_spec' "
                          "(or call the no-intermediate setting 'none')")
    return item


def _target(i: int, entry) -> Target:
    where = f"targets[{i}]"
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or not (entry.get("name") or entry.get("task")):
        raise XtremeError(f"{where}: expected a task name or a mapping with 'name' (and task, languages, args, "
                          "eval_args, train_with)")
    _check_keys(where, entry, TARGET_KEYS)
    name = _check_name(where, entry.get("name") or entry["task"])
    languages = entry.get("languages", "all")
    if isinstance(languages, str) and languages != "all":
        languages = [lang.strip() for lang in languages.split(",") if lang.strip()]
    if not (languages == "all" or (isinstance(languages, list) and languages)):
        raise XtremeError(f"{where}: 'languages' must be 'all' or a non-empty list")
    return Target(name, str(entry.get("task") or name), entry.get("task_spec"),
                  languages if languages == "all" else [str(lang) for lang in languages], entry.get("train_with"),
                  _flat_args(f"{where}.args", entry.get("args")), _flat_args(f"{where}.eval_args",
                                                                              entry.get("eval_args")))


def _unique(where: str, names: list[str]) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise XtremeError(f"{where}: {name!r} appears twice; give each entry its own 'name'")
        seen.add(name)


def _set_dotted(data: dict, dotted: str, value) -> None:
    """`--set backbones.0.path=DIR`: replace one value of the plan (list items by index)."""
    keys = dotted.split(".")
    node = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise XtremeError(f"--set {dotted}: {key!r} is not an index of a list of {len(node)}")
            if last:
                node[int(key)] = value
            else:
                if isinstance(node[int(key)], str) and keys[i + 1] in ("path", "name"):
                    node[int(key)] = {"path" if keys[0] == "backbones" else "name": node[int(key)]}
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
        else:
            raise XtremeError(f"--set {dotted}: {'.'.join(keys[:i])} is not a mapping or list")


def load_plan(path: str, overrides: list[str] = (), output_dir: str | None = None) -> Plan:
    import yaml

    plan_path = Path(path)
    if not plan_path.is_file():
        raise XtremeError(f"{path}: plan file not found")
    try:
        raw = yaml.safe_load(plan_path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except yaml.YAMLError as err:
        raise XtremeError(f"{path}: not valid YAML/JSON ({err})".replace("\n", " "))
    if not isinstance(raw, dict):
        raise XtremeError(f"{path}: expected a mapping with keys backbones, intermediate, targets, ...")
    for item in overrides:
        if "=" not in item:
            raise XtremeError(f"--set {item}: expected KEY=VALUE, e.g. output_dir=runs/x or seeds=[1,2,3]")
        key, value = item.split("=", 1)
        _set_dotted(raw, key.strip(), yaml.safe_load(value))
    if output_dir:
        raw["output_dir"] = output_dir
    _check_keys(path, raw, TOP_KEYS)
    for key in ("output_dir", "backbones", "targets"):
        if not raw.get(key):
            raise XtremeError(f"{path}: missing required key '{key}'")

    backbones = [_backbone(i, b) for i, b in enumerate(_as_list(raw["backbones"]))]
    intermediates = [_intermediate(i, x) for i, x in enumerate(_as_list(raw.get("intermediate", ["none"])))]
    targets = [_target(i, t) for i, t in enumerate(_as_list(raw["targets"]))]
    _unique("backbones", [b.name for b in backbones])
    _unique("intermediate", [x.name for x in intermediates])
    _unique("targets", [t.name for t in targets])
    _check_pairs(backbones)
    for i, t in enumerate(targets):
        if t.train_with is not None:
            other = next((o for o in targets[:i] if o.name == t.train_with), None)
            if other is None or other.retrieval or other.train_with or t.retrieval:
                raise XtremeError(f"target {t.name}: train_with {t.train_with!r} must name a trained target listed "
                                  "before it in the plan (e.g. mlqa: {train_with: xquad})")
    seeds = raw.get("seeds", [42])
    seeds = [seeds] if isinstance(seeds, int) else seeds
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise XtremeError(f"{path}: 'seeds' must be an integer or a list of integers")
    _unique("seeds", [str(s) for s in seeds])
    launcher = raw.get("launcher") or "python"
    if launcher not in LAUNCHERS:
        raise XtremeError(f"{path}: launcher {launcher!r}; expected one of {', '.join(LAUNCHERS)}")
    tasks = raw.get("tasks") or {}
    if not isinstance(tasks, dict):
        raise XtremeError(f"{path}: 'tasks' must map task names to per-phase args, e.g. xnli: {{target: "
                          "{num_train_epochs: 2}}")
    python = raw.get("python") or sys.executable
    return Plan(
        path=str(plan_path), raw=raw, output_dir=Path(str(raw["output_dir"])), backbones=backbones,
        seeds=seeds, intermediates=intermediates, targets=targets, args=_sections(f"{path}: args", raw.get("args")),
        tasks={str(t): _sections(f"{path}: tasks.{t}", v) for t, v in tasks.items()},
        python=shlex.split(python) if isinstance(python, str) else [str(p) for p in python],
        launcher=launcher, num_processes=raw.get("num_processes"),
        launcher_args=[str(a) for a in _as_list(raw.get("launcher_args") or [])],
        deepspeed=raw.get("deepspeed"))


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _check_pairs(backbones: list[Backbone]) -> None:
    pairs: dict[str, list[Backbone]] = {}
    for b in backbones:
        if b.pair is not None:
            if b.group is None:
                raise XtremeError(f"backbone {b.name}: pair {b.pair!r} needs a group (base or aligned)")
            pairs.setdefault(b.pair, []).append(b)
    for pair, members in pairs.items():
        if sorted(m.group for m in members) != ["aligned", "base"]:
            raise XtremeError(f"pair {pair!r}: expected one 'base' and one 'aligned' backbone, got "
                              + ", ".join(f"{m.name} ({m.group})" for m in members))


# ---------------------------------------------------------------------------------------------------- the steps

@dataclass
class Step:
    id: str
    phase: int
    label: str
    backbone: Backbone
    intermediate: Intermediate
    seed: int
    target: Target | None
    dir: Path  # step.json and log.txt
    output_dir: Path  # what the script writes (model/ for training, the step dir for evaluation)
    model: str
    deps: list  # of Step
    argv: list
    task: str | None = None
    languages: list | None = None  # phase 3: the languages that must be in the results file
    split: str = "test"
    status: str = "pending"  # done | failed | incomplete | blocked | interrupted
    outcome: str = ""

    @property
    def trains(self) -> bool:
        return self.phase in (1, 2)

    @property
    def completion_file(self) -> Path:
        return self.output_dir / RUN_INFO if self.trains else self.output_dir / "results" / f"{self.task}.json"

    def missing_languages(self) -> list[str] | None:
        """Phase 3: requested languages not in the results file (None: no usable results file)."""
        data = _read_json(self.completion_file)
        if not isinstance(data, dict) or not isinstance(data.get("languages"), dict):
            return None
        if data.get("split") != self.split:
            return None
        expected = self.languages if self.languages is not None else sorted(
            set(data["languages"]) | set(data.get("skipped") or {}))
        return [lang for lang in expected if lang not in data["languages"]]

    def complete(self) -> bool:
        if self.trains:
            info = _read_json(self.completion_file)
            return bool(isinstance(info, dict) and info.get("finished"))
        return self.missing_languages() == []

    def fingerprint(self) -> str | None:
        path = self.completion_file
        return hashlib.sha1(path.read_bytes()).hexdigest()[:16] if path.is_file() else None

    def record(self) -> dict | None:
        return _read_json(self.dir / STEP_FILE)

    def token(self) -> str | None:
        """What a dependent records of this step: the id of the grid run that made its outputs (a new one each
        time the grid runs it) and a hash of its completion file (changed by a run outside the grid too)."""
        fingerprint = self.fingerprint()
        if fingerprint is None:
            return None
        return f"{(self.record() or {}).get('run_id')}:{fingerprint}"

    def dep_fingerprints(self) -> dict:
        return {d.id: d.token() for d in self.deps}


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def _merge(plan: Plan, backbone: Backbone, phase: int, tasks: list[str], entry: dict) -> dict:
    """Later wins: args.all, args.{phase}, backbone.args (same order), tasks.{task} (same order), the entry's."""
    section = PHASE_SECTION[phase]
    merged = {}
    for layer in [plan.args, backbone.args] + [plan.tasks.get(t, {}) for t in tasks]:
        merged.update(layer.get("all", {}))
        merged.update(layer.get(section, {}))
    merged.update(entry)
    return merged


def to_flags(args: dict) -> list[str]:
    """`{bf16: true, train_file: [a, b], lr_scheduler_kwargs: {...}}` -> `--bf16 true --train_file a b ... '{..}'`."""
    out = []
    for key, value in args.items():
        if value is None:
            continue
        flag = f"--{key}"
        if isinstance(value, bool):  # explicit: `--flag` alone fails for Optional[bool] fields (disable_tqdm)
            out += [flag, "true" if value else "false"]
        elif isinstance(value, (list, tuple)):
            out += [flag, *(str(v) for v in value)]
        elif isinstance(value, dict):
            out += [flag, json.dumps(value)]
        else:
            out += [flag, str(value)]
    return out


def _script(name: str) -> str:
    try:
        return name if Path.cwd().resolve() == ROOT else str(ROOT / name)
    except OSError:
        return str(ROOT / name)


def _prefix(plan: Plan) -> list[str]:
    if plan.launcher == "accelerate":
        n = ["--num_processes", str(plan.num_processes)] if plan.num_processes else []
        return ["accelerate", "launch", *n, *plan.launcher_args]
    if plan.launcher == "torchrun":
        n = ["--nproc_per_node", str(plan.num_processes)] if plan.num_processes else []
        return ["torchrun", *n, *plan.launcher_args]
    return list(plan.python)


def _task_languages(task: str, languages) -> list[str] | None:
    if languages != "all":
        return list(languages)
    from .tasks import TASKS

    return list(TASKS[task].languages) if task in TASKS else None


def build_steps(plan: Plan) -> list[Step]:
    """Every step of the plan in run order: per backbone, per intermediate setting, per seed: phase 1, then per
    target phase 2 and its phase 3 (retrieval targets: phase 3 on the phase-1 model)."""
    steps = []
    prefix = _prefix(plan)
    many = len(plan.backbones) > 1
    for bb in plan.backbones:
        for inter in plan.intermediates:
            for seed in plan.seeds:
                base = plan.output_dir / bb.name / inter.name / f"seed{seed}"
                tag = f"[{bb.name}] " if many else ""
                phase1 = None
                if not inter.is_none:
                    d = base / "phase1"
                    task_args = ["--tasks", ",".join(inter.task_names)] if inter.tasks is not None else (
                        ["--task_spec", inter.task_spec] if inter.task_spec else ["--task", inter.task])
                    if inter.mlm_files:
                        task_args += ["--mlm_files", ",".join(str(f) for f in inter.mlm_files)]
                    args = _merge(plan, bb, 1, [] if inter.tasks is not None else inter.task_names, inter.args)
                    argv = [*prefix, _script(SCRIPTS[1]), "--model_name_or_path", bb.path, *task_args,
                            "--output_dir", str(d / "model"), "--do_train", "--seed", str(seed), *to_flags(args)]
                    if plan.deepspeed and "deepspeed" not in args:
                        argv += ["--deepspeed", str(plan.deepspeed)]
                    phase1 = Step(f"phase1:{bb.name}/{inter.name}/seed{seed}", 1,
                                  f"phase1 {tag}{inter.name} seed {seed}", bb, inter, seed, None, d, d / "model",
                                  bb.path, [], argv, task=",".join(inter.task_names) or inter.task_spec)
                    steps.append(phase1)
                encoder = str(phase1.output_dir) if phase1 else bb.path
                trained: dict[str, Step] = {}
                for target in plan.targets:
                    if target.retrieval and inter.is_none and seed != plan.seeds[0]:
                        continue  # the pretrained model does not depend on the seed: evaluated once
                    tdir = base / target.name
                    spec = ["--task_spec", target.task_spec] if target.task_spec else ["--task", target.task]
                    deps, model = [phase1] if phase1 else [], encoder
                    if target.train_with:
                        phase2 = trained.get(target.train_with)
                        deps, model = [phase2], str(phase2.output_dir)
                    elif not target.retrieval:
                        args = _merge(plan, bb, 2, [target.task], target.args)
                        argv = [*prefix, _script(SCRIPTS[2]), "--model_name_or_path", encoder, *spec,
                                "--output_dir", str(tdir / "phase2" / "model"), "--do_train", "--seed", str(seed),
                                *to_flags(args)]
                        if plan.deepspeed and "deepspeed" not in args:
                            argv += ["--deepspeed", str(plan.deepspeed)]
                        phase2 = Step(f"phase2:{bb.name}/{inter.name}/seed{seed}/{target.name}", 2,
                                      f"phase2 {tag}{inter.name}->{target.name} seed {seed}", bb, inter, seed, target,
                                      tdir / "phase2", tdir / "phase2" / "model", encoder, deps, argv, task=target.task)
                        steps.append(phase2)
                        trained[target.name] = phase2
                        deps, model = [phase2], str(phase2.output_dir)
                    args = _merge(plan, bb, 3, [target.task], target.eval_args)
                    languages = "all" if target.languages == "all" else ",".join(target.languages)
                    argv = [*prefix, _script(SCRIPTS[3]), "--model_name_or_path", model, *spec,
                            "--languages", languages, "--output_dir", str(tdir / "phase3"), "--resume",
                            *to_flags(args)]
                    steps.append(Step(f"phase3:{bb.name}/{inter.name}/seed{seed}/{target.name}", 3,
                                      f"phase3 {tag}{inter.name}->{target.name} seed {seed}", bb, inter, seed, target,
                                      tdir / "phase3", tdir / "phase3", model, deps, argv, task=target.task,
                                      languages=_task_languages(target.task, target.languages),
                                      split=str(args.get("split", "test"))))
    return steps


ONLY_KEYS = ("backbone", "intermediate", "target", "seed", "phase")


def select_steps(plan: Plan, steps: list[Step], only: list[str]) -> list[Step]:
    """`--only key=v1,v2 ...` (keys: backbone, intermediate, target, seed, phase): the steps matching every filter,
    plus the steps they depend on (skipped when complete)."""
    if not only:
        return steps
    known = {"backbone": {b.name for b in plan.backbones}, "intermediate": {x.name for x in plan.intermediates},
             "target": {t.name for t in plan.targets}, "seed": {str(s) for s in plan.seeds}, "phase": {"1", "2", "3"}}
    filters = {}
    for item in only:
        key, _, values = item.partition("=")
        if key not in ONLY_KEYS or not values:
            raise XtremeError(f"--only {item}: expected KEY=VALUE[,VALUE] with KEY one of {', '.join(ONLY_KEYS)}")
        wanted = {v.strip() for v in values.split(",") if v.strip()}
        unknown = sorted(wanted - known[key])
        if unknown:
            raise XtremeError(f"--only {item}: no {key} {', '.join(unknown)} in the plan "
                              f"(it has {', '.join(sorted(known[key]))})")
        filters.setdefault(key, set()).update(wanted)

    def attr(step: Step, key: str):
        return {"backbone": step.backbone.name, "intermediate": step.intermediate.name, "seed": str(step.seed),
                "phase": str(step.phase), "target": step.target.name if step.target else None}[key]

    chosen = set()

    def add(step: Step):
        if step.id not in chosen:
            chosen.add(step.id)
            for dep in step.deps:
                add(dep)

    for step in steps:
        if all(attr(step, k) in v for k, v in filters.items()):
            add(step)
    return [s for s in steps if s.id in chosen]


# ---------------------------------------------------------------------------------------------- running a step

def _versions() -> dict:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for package in ("torch", "transformers", "datasets", "accelerate", "deepspeed", "peft"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    try:
        git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        out["git_commit"] = git.stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10)
        out["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    return out


ERROR_LINE = re.compile(r"^([\w.-]+: )?error: |^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b")


def _last_error(lines: list[str]) -> str:
    """The line that says why: the script's one-line `error: ...`, else the exception, else the last line."""
    for line in reversed(lines):
        if ERROR_LINE.match(line):
            return line
    return lines[-1] if lines else "no output on stderr"


def run_command(argv: list[str], log_path: Path) -> tuple[int, str]:
    """Run `argv` in its own process group; stdout and stderr go to `log_path` (appended). Returns (exit status,
    the stderr line that explains a failure). Ctrl-C stops the whole process group (launchers start children)."""
    tail: list[str] = []
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        except OSError as err:
            log.write(f"cannot start: {err}\n".encode())
            return 127, f"cannot start {argv[0]}: {err.strerror or err}"

        def pump():
            for raw in proc.stderr:
                log.write(raw)
                log.flush()
                for part in raw.decode("utf-8", "replace").replace("\r", "\n").splitlines():
                    if part.strip():
                        tail.append(part.strip())
                        del tail[:-200]

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            proc.wait()
        except KeyboardInterrupt:
            _stop(proc)
            reader.join(timeout=5)
            raise
        reader.join()
    return proc.returncode, _last_error(tail)


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _script_args(argv: list) -> list:
    """A command from its script on: the interpreter or launcher may differ between machines."""
    i = next((i for i, a in enumerate(argv) if str(a).endswith(".py")), 0)
    return [Path(argv[i]).name, *argv[i + 1:]] if argv else []


def _clear_outputs(step: Step) -> None:
    """Remove a stale step's outputs (its inputs were produced again): only what the grid itself created."""
    if step.trains:
        shutil.rmtree(step.output_dir, ignore_errors=True)
    else:
        step.completion_file.unlink(missing_ok=True)
        shutil.rmtree(step.output_dir / "predictions" / step.task, ignore_errors=True)


def fmt_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _step_record(step: Step, **extra) -> dict:
    chain = []
    pending = list(step.deps)
    while pending:
        dep = pending.pop(0)
        rec = dep.record() or {}
        chain.append({"id": dep.id, "phase": dep.phase, "command": rec.get("command_line", shlex.join(dep.argv)),
                      "output_dir": str(dep.output_dir), "wall_s": rec.get("wall_s"),
                      "run_id": rec.get("run_id"), "fingerprint": dep.fingerprint()})
        pending.extend(dep.deps)
    return {
        "id": step.id, "phase": step.phase, "script": SCRIPTS[step.phase], "label": step.label,
        "backbone": step.backbone.record(), "intermediate": step.intermediate.name,
        "intermediate_tasks": step.intermediate.task_names, "seed": step.seed,
        "target": step.target.name if step.target else None, "task": step.task,
        "languages": step.languages, "split": step.split if step.phase == 3 else None,
        "model": step.model, "output_dir": str(step.output_dir),
        "command": step.argv, "command_line": shlex.join(step.argv), "cwd": os.getcwd(),
        "deps": step.dep_fingerprints(), "upstream": chain, "log": LOG_FILE, **extra}


class Grid:
    def __init__(self, plan: Plan, steps: list[Step], argv: list[str] | None = None):
        self.plan, self.steps, self.argv = plan, steps, argv
        self.state_path = plan.output_dir / STATE_FILE
        self.env = None

    # -- state file ---------------------------------------------------------------------------------------------
    def write_state(self, invocation: dict) -> None:
        previous = _read_json(self.state_path) or {}
        steps = previous.get("steps", {}) if isinstance(previous.get("steps"), dict) else {}
        for step in self.steps:
            rec = step.record() or {}
            steps[step.id] = {"label": step.label, "phase": step.phase, "backbone": step.backbone.name,
                              "intermediate": step.intermediate.name, "seed": step.seed,
                              "target": step.target.name if step.target else None, "dir": str(step.dir),
                              "status": step.status or rec.get("status"), "last_outcome": step.outcome,
                              "wall_s": rec.get("wall_s"), "finished": rec.get("finished"),
                              "error": rec.get("error"), "command": shlex.join(step.argv)}
        invocations = [i for i in previous.get("invocations") or [] if isinstance(i, dict) and i.get("id") !=
                       invocation["id"]][-49:] + [invocation]
        atomic_write_json(self.state_path, {
            "plan": self.plan.path, "plan_resolved": self.plan.raw, "output_dir": str(self.plan.output_dir),
            "backbones": [b.record() for b in self.plan.backbones],
            "intermediate": [x.name for x in self.plan.intermediates],
            "targets": [{"name": t.name, "task": t.task} for t in self.plan.targets],
            "seeds": self.plan.seeds, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "environment": self.env, "invocations": invocations, "steps": steps})

    # -- one step -----------------------------------------------------------------------------------------------
    def run_step(self, step: Step) -> str:
        """Bring `step` up to date; returns the progress line's ending."""
        blocker = next((d for d in step.deps if d.status != "done"), None)
        if blocker is not None:
            step.status = "blocked"
            why = {"failed": "failed", "interrupted": "was interrupted", "blocked": "was skipped"}.get(
                blocker.status, "is not complete")
            return f"skipped ({blocker.label} {why})"
        record = step.record()
        deps_now = step.dep_fingerprints()
        stale = record is not None and record.get("deps") != deps_now
        if step.complete() and not stale:
            step.status = "done"
            if record is None:  # outputs made outside the grid (e.g. a command of --dry-run): adopt them
                self._write_record(step, status="done", adopted=True, run_id=uuid.uuid4().hex[:12],
                                   fingerprint=step.fingerprint())
                return "skipped (complete; outputs found without a step record, adopted)"
            if record.get("status") != "done":
                self._write_record(step, record, status="done", fingerprint=step.fingerprint())
            if _script_args(record.get("command") or []) != _script_args(step.argv):
                return (f"skipped (done, but with another command than the plan's now: delete {step.output_dir} "
                        "to run it again)")
            return "skipped (done)"
        note = ""
        if stale and (step.output_dir.exists()):
            changed = [d.label for d in step.deps if (record.get("deps") or {}).get(d.id) != deps_now.get(d.id)]
            note = f"input changed ({', '.join(changed)}): old outputs removed; "
            _clear_outputs(step)
        step.dir.mkdir(parents=True, exist_ok=True)
        if self.env is None:
            self.env = _versions()
        started = time.time()
        base = {"status": "running", "run_id": uuid.uuid4().hex[:12], "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "environment": self.env}
        self._write_record(step, base)
        try:
            code, error = run_command(step.argv, step.dir / LOG_FILE)
        except KeyboardInterrupt:
            step.status = "interrupted"
            self._write_record(step, base, status="interrupted", wall_s=round(time.time() - started, 1))
            raise
        wall = time.time() - started
        done = {**base, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "wall_s": round(wall, 1), "exit_code": code}
        if code != 0:
            step.status = "failed"
            self._write_record(step, done, status="failed", error=error)
            return f"{note}FAILED (exit {code}: {error}) after {fmt_seconds(wall)}; log: {step.dir / LOG_FILE}"
        if step.complete():
            step.status = "done"
            self._write_record(step, done, status="done", fingerprint=step.fingerprint())
            return f"{note}done in {fmt_seconds(wall)}"
        if step.trains:
            step.status = "failed"
            error = f"exit 0 but {step.completion_file} does not say finished"
            self._write_record(step, done, status="failed", error=error)
            return f"{note}FAILED ({error})"
        step.status = "incomplete"
        missing = step.missing_languages()
        error = (f"no {step.split} results in {step.completion_file}" if missing is None else
                 f"{len(missing)} language(s) missing: {', '.join(missing)} (see 'skipped' in "
                 f"{step.completion_file})")
        self._write_record(step, done, status="incomplete", error=error, fingerprint=step.fingerprint())
        return f"{note}INCOMPLETE after {fmt_seconds(wall)}: {error}"

    def _write_record(self, step: Step, *records: dict, **fields) -> None:
        step.dir.mkdir(parents=True, exist_ok=True)
        for record in reversed(records):
            fields = {**record, **fields}
        fields.pop("id", None)
        atomic_write_json(step.dir / STEP_FILE, {**_step_record(step), **{k: v for k, v in fields.items()
                                                                          if k not in _RECOMPUTED}})

    # -- the whole grid -----------------------------------------------------------------------------------------
    def run(self) -> int:
        self.plan.output_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.plan.output_dir / LOCK_FILE, "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise XtremeError(f"another utils.grid is running on {self.plan.output_dir} (lock {LOCK_FILE})")
        invocation = {"id": uuid.uuid4().hex[:12], "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                      "argv": self.argv, "cwd": os.getcwd()}
        n, width = len(self.steps), len(str(len(self.steps)))
        print(f"grid {self.plan.path}: {n} step(s) under {self.plan.output_dir}", flush=True)
        started = time.time()
        try:
            for i, step in enumerate(self.steps, 1):
                print(f"[{i:>{width}}/{n}] {step.label} ... ", end="", flush=True)
                step.outcome = self.run_step(step)
                print(step.outcome, flush=True)
                self.write_state({**invocation, "running": True})
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            self.write_state({**invocation, "interrupted": True})
            return 130
        finally:
            lock.close()
        counts = {}
        for step in self.steps:
            kind = ("skipped" if step.outcome.startswith("skipped (") and step.status == "done" else step.status)
            counts[kind] = counts.get(kind, 0) + 1
        invocation.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S"), wall_s=round(time.time() - started, 1),
                          counts=counts)
        self.write_state(invocation)
        order = ("done", "skipped", "failed", "blocked", "incomplete")
        names = {"done": "ran", "skipped": "already done", "blocked": "skipped after a failure"}
        print(f"{n} step(s) in {fmt_seconds(time.time() - started)}: " + ", ".join(
            f"{counts[k]} {names.get(k, k)}" for k in order if counts.get(k)) + f"; state: {self.state_path}",
            flush=True)
        return 1 if any(counts.get(k) for k in ("failed", "blocked", "incomplete")) else 0

    def dry_run(self) -> int:
        n, width = len(self.steps), len(str(len(self.steps)))
        print(f"# grid {self.plan.path}: {n} step(s) under {self.plan.output_dir} (dry run: nothing is run)")
        for i, step in enumerate(self.steps, 1):
            record = step.record()
            stale = record is not None and record.get("deps") != step.dep_fingerprints()
            state = ("complete, would be skipped" if step.complete() and not stale else
                     "stale (an input changed), would run again" if stale else "would run")
            print(f"# [{i:>{width}}/{n}] {step.label}: {state}")
            command = shlex.join(step.argv)
            print(f"mkdir -p {shlex.quote(str(step.output_dir))} && {command}" if step.phase == 3 else command)
        return 0


_RECOMPUTED = {"phase", "script", "label", "backbone", "intermediate", "intermediate_tasks", "seed", "target",
               "task", "languages", "split", "model", "output_dir", "command", "command_line", "cwd", "deps",
               "upstream", "log"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.grid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan", help="the plan file (YAML or JSON)")
    parser.add_argument("--dry-run", action="store_true", help="print the exact commands (and each step's state); "
                        "run nothing, write nothing")
    parser.add_argument("--only", nargs="+", default=[], metavar="KEY=VALUES",
                        help="run only the steps matching every filter (and the steps they need): backbone=, "
                             "intermediate=, target=, seed=, phase= with comma-separated values")
    parser.add_argument("--output-dir", help="override the plan's output_dir")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one plan value (YAML value; dotted keys, list indices), e.g. "
                             "--set seeds=[1,2,3] --set backbones.0.path=demo_runs/tiny_model")
    args = parser.parse_args(argv)
    plan = load_plan(args.plan, args.overrides, args.output_dir)
    grid = Grid(plan, select_steps(plan, build_steps(plan), args.only), sys.argv[1:] if argv is None else argv)
    return grid.dry_run() if args.dry_run else grid.run()


if __name__ == "__main__":
    try:
        sys.exit(run_main(main))
    except BrokenPipeError:  # `--dry-run | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
