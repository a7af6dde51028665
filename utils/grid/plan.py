"""The plan file: backbones x intermediate settings x targets x seeds, script arguments by phase, launch settings.

Everything a plan names is checked here, before any step runs: keys, names, tasks (against the registry in
`utils/tasks/` or a `task_spec`), target languages and per-task overrides.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import XtremeError
from ..mlm import MLM_TASK
from ..tasks import RETRIEVAL, TASKS, Task, load_task_spec

PHASE_SECTION = {1: "intermediate", 2: "target", 3: "eval"}
ARG_SECTIONS = ("all", "intermediate", "target", "eval")
LAUNCHERS = ("python", "accelerate", "torchrun")
# Set by the grid from the plan's structure; an `args:` section may not set them.
RESERVED_ARGS = {"model_name_or_path", "output_dir", "task", "tasks", "seed", "languages", "mlm_files", "resume",
                 "do_train", "task_spec"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")

TOP_KEYS = {"name", "description", "output_dir", "python", "launcher", "num_processes", "launcher_args",
            "deepspeed", "backbones", "seeds", "intermediate", "targets", "args", "tasks", "slurm"}
BACKBONE_KEYS = {"name", "path", "group", "pair", "args"}
INTERMEDIATE_KEYS = {"name", "task", "tasks", "mlm_files", "task_spec", "args"}
TARGET_KEYS = {"name", "task", "task_spec", "languages", "train_with", "args", "eval_args"}
GROUPS = ("base", "aligned")
# `slurm:` settings (each may also be set per phase section: slurm: {intermediate: {time_min: 2880}})
SLURM_TYPES = {"cluster": str, "partition": str, "account": str, "qos": str, "gpus_per_step": int,
               "cpus_per_step": int, "mem_gb": (int, float), "time_min": int, "sbatch": dict, "setup": list,
               "max_jobs": int, "max_timeouts": int}
SLURM_CLUSTERS = ("slurm", "local")


@dataclass
class Backbone:
    name: str
    path: str
    group: str | None = None  # "base" | "aligned": the aligned-vs-base comparison
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
    registered: Task | None = None  # the registry's (or the spec's) description of the task (set by load_plan)

    @property
    def retrieval(self) -> bool:
        return self.registered is not None and self.registered.kind == RETRIEVAL


@dataclass
class Slurm:
    settings: dict = field(default_factory=dict)
    sections: dict = field(default_factory=dict)  # phase section -> overrides

    def for_phase(self, phase: int) -> dict:
        return {**self.settings, **self.sections.get(PHASE_SECTION[phase], {})}


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
    num_processes: dict = field(default_factory=dict)  # section -> processes per step
    launcher_args: list = field(default_factory=list)
    deepspeed: str | None = None
    slurm: Slurm = field(default_factory=Slurm)

    def processes(self, phase: int) -> int | None:
        return self.num_processes.get(PHASE_SECTION[phase], self.num_processes.get("all"))


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


def _registered(where: str, task: str | None, spec: str | None) -> Task:
    """The task a plan entry names: a registered task, or the one its `task_spec` file declares."""
    if spec:
        return load_task_spec(str(spec))[0]
    if task not in TASKS:
        raise XtremeError(f"{where}: unknown task {task!r}; expected one of: {', '.join(TASKS)} (or a task_spec)")
    return TASKS[task]


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
        item = Intermediate(_check_name(where, name), task=None if name == "none" else name)
        _check_intermediate_tasks(where, item)
        return item
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
    _check_intermediate_tasks(where, item)
    return item


def _check_intermediate_tasks(where: str, item: Intermediate) -> None:
    if item.task_spec or item.task:
        _registered(where, item.task, item.task_spec)
    elif item.tasks not in (None, "all"):
        for name in item.task_names:
            if name != MLM_TASK:
                _registered(where, name, None)
        if MLM_TASK in item.task_names and not item.mlm_files:
            raise XtremeError(f"{where}: task {MLM_TASK} needs text: give 'mlm_files'")


def _target(i: int, entry) -> Target:
    where = f"targets[{i}]"
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or not (entry.get("name") or entry.get("task")):
        raise XtremeError(f"{where}: expected a task name or a mapping with 'name' (and task, languages, args, "
                          "eval_args, train_with)")
    _check_keys(where, entry, TARGET_KEYS)
    name = _check_name(where, entry.get("name") or entry["task"])
    task = str(entry.get("task") or name)
    registered = _registered(f"{where} ({name})", task, entry.get("task_spec"))
    languages = entry.get("languages", "all")
    if isinstance(languages, str) and languages != "all":
        languages = [lang.strip() for lang in languages.split(",") if lang.strip()]
    if not (languages == "all" or (isinstance(languages, list) and languages)):
        raise XtremeError(f"{where}: 'languages' must be 'all' or a non-empty list")
    if languages != "all":
        languages = [str(lang) for lang in languages]
        try:
            registered.check_languages(languages)
        except XtremeError as err:
            raise XtremeError(f"{where} ({name}): {err}") from None
    return Target(name, task, entry.get("task_spec"), languages, entry.get("train_with"),
                  _flat_args(f"{where}.args", entry.get("args")),
                  _flat_args(f"{where}.eval_args", entry.get("eval_args")), registered)


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


def _read(path: str, overrides: list[str], output_dir: str | None) -> dict:
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
    return raw


def load_plan(path: str, overrides: list[str] = (), output_dir: str | None = None) -> Plan:
    raw = _read(path, overrides, output_dir)
    backbones = [_backbone(i, b) for i, b in enumerate(_as_list(raw["backbones"]))]
    intermediates = [_intermediate(i, x) for i, x in enumerate(_as_list(raw.get("intermediate", ["none"])))]
    targets = [_target(i, t) for i, t in enumerate(_as_list(raw["targets"]))]
    _unique("backbones", [b.name for b in backbones])
    _unique("intermediate", [x.name for x in intermediates])
    _unique("targets", [t.name for t in targets])
    _check_pairs(backbones)
    _check_train_with(targets)
    seeds = raw.get("seeds", [42])
    seeds = [seeds] if isinstance(seeds, int) else seeds
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise XtremeError(f"{path}: 'seeds' must be an integer or a list of integers")
    _unique("seeds", [str(s) for s in seeds])
    launcher = raw.get("launcher") or "python"
    if launcher not in LAUNCHERS:
        raise XtremeError(f"{path}: launcher {launcher!r}; expected one of {', '.join(LAUNCHERS)} (Slurm: "
                          "--launcher slurm on the command line, settings under 'slurm:')")
    python = raw.get("python") or sys.executable
    return Plan(
        path=str(path), raw=raw, output_dir=Path(str(raw["output_dir"])), backbones=backbones,
        seeds=seeds, intermediates=intermediates, targets=targets, args=_sections(f"{path}: args", raw.get("args")),
        tasks=_task_overrides(path, raw.get("tasks"), intermediates, targets),
        python=shlex.split(python) if isinstance(python, str) else [str(p) for p in python],
        launcher=launcher, num_processes=_num_processes(path, raw.get("num_processes")),
        launcher_args=[str(a) for a in _as_list(raw.get("launcher_args") or [])],
        deepspeed=raw.get("deepspeed"), slurm=_slurm(path, raw.get("slurm")))


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


def _check_train_with(targets: list[Target]) -> None:
    for i, t in enumerate(targets):
        if t.train_with is not None:
            other = next((o for o in targets[:i] if o.name == t.train_with), None)
            if other is None or other.retrieval or other.train_with or t.retrieval:
                raise XtremeError(f"target {t.name}: train_with {t.train_with!r} must name a trained target listed "
                                  "before it in the plan (e.g. mlqa: {train_with: xquad})")


def _task_overrides(path: str, tasks, intermediates: list[Intermediate], targets: list[Target]) -> dict:
    """`tasks:` per-task overrides; a name that no entry of the plan uses is a typo, not a no-op."""
    tasks = tasks or {}
    if not isinstance(tasks, dict):
        raise XtremeError(f"{path}: 'tasks' must map task names to per-phase args, e.g. xnli: {{target: "
                          "{num_train_epochs: 2}}")
    used = {t.task for t in targets} | {name for x in intermediates for name in x.task_names}
    for name in tasks:
        if str(name) not in used:
            raise XtremeError(f"{path}: tasks.{name}: no target or intermediate task of the plan is called "
                              f"{name!r} (it has {', '.join(sorted(used))})")
    return {str(t): _sections(f"{path}: tasks.{t}", v) for t, v in tasks.items()}


def _positive(where: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise XtremeError(f"{where}: expected a positive integer, got {value!r}")
    return value


def _num_processes(path: str, value) -> dict:
    """`num_processes: 8` or per phase section: `{intermediate: 8, target: 4, eval: 1}`."""
    if value is None:
        return {}
    if isinstance(value, dict):
        _check_keys(f"{path}: num_processes", value, set(ARG_SECTIONS))
        return {k: _positive(f"{path}: num_processes.{k}", v) for k, v in value.items()}
    return {"all": _positive(f"{path}: num_processes", value)}


def _slurm_values(where: str, values: dict) -> dict:
    for key, value in values.items():
        expected = SLURM_TYPES[key]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise XtremeError(f"{where}.{key}: {value!r} has the wrong type; expected "
                              f"{getattr(expected, '__name__', 'a number')}")
    if values.get("cluster", "slurm") not in SLURM_CLUSTERS:
        raise XtremeError(f"{where}.cluster: {values['cluster']!r}; expected one of {', '.join(SLURM_CLUSTERS)} "
                          "(local: submitit's local executor, to try a plan without Slurm)")
    return values


def _slurm(path: str, value) -> Slurm:
    if value is None:
        return Slurm()
    where = f"{path}: slurm"
    if not isinstance(value, dict):
        raise XtremeError(f"{where}: expected a mapping (partition, gpus_per_step, time_min, ...)")
    sections = set(PHASE_SECTION.values())
    _check_keys(where, value, set(SLURM_TYPES) | sections)
    settings = _slurm_values(where, {k: v for k, v in value.items() if k not in sections})
    overrides = {}
    for section in sections & set(value):
        if not isinstance(value[section], dict):
            raise XtremeError(f"{where}.{section}: expected a mapping of slurm settings")
        _check_keys(f"{where}.{section}", value[section], set(SLURM_TYPES))
        overrides[section] = _slurm_values(f"{where}.{section}", value[section])
    return Slurm(settings, overrides)
