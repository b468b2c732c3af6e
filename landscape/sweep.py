"""Many runs through an existing engine: a grid of ``landscape`` commands, run by a local
process pool or by Slurm through submitit.

A sweep file holds one or more *blocks*; a block names a command, its fixed arguments and a
grid of values, and expands to the product of the grid::

    {"command": "train",
     "args": {"model": "mlp", "data": "mnist1d", "steps": 2000, "runs": "runs"},
     "grid": {"init_seed": [0, 1, 2], "lr": [0.1, 0.05]}}

JSON (one block, a list of blocks, or ``{"sweep": [...]}``), TOML (the top-level table is a
block, or ``[[sweep]]`` tables) and Python (a module-level ``SWEEP``: a block or a list of
them) are read. Argument names are the command's options without their dashes
(``init_seed`` for ``--init-seed``); ``true`` is a bare flag, ``false`` or ``null`` leave it
out, a list is comma-separated (``checkpoint_steps``), a dict gives ``KEY=VALUE`` options one
by one (``model_arg``), and ``positional`` lists the command's positional arguments.

Every job is one ``python -m landscape <command> ...`` process. Its key is the digest of its
command line; the sweep's state folder keeps a log per key (``logs/<key>.log``) and a marker
per finished job (``done/<key>.json``). A job with a marker is skipped, so running a sweep
again finishes only what is missing; the commands themselves reuse a run that exists (its
spec hash) and resume one cut short, which is also what a Slurm job requeued after
preemption does.
"""

from __future__ import annotations

import itertools
import json
import os
import runpy
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landscape.data.paths import runs_root
from landscape.errors import LandscapeError
from landscape.io import write_json
from landscape.specs import digest

EXECUTORS = ("local", "slurm")
_BLOCK_KEYS = ("command", "args", "grid")
#: Lines of a failed job's log quoted in the sweep's report.
LOG_TAIL = 8


@dataclass(frozen=True)
class Job:
    """One command line of a sweep: ``landscape <command> <argv...>``, or with ``script``
    a study, ``python <script> <argv...>`` (``command`` then names the study)."""

    command: str
    argv: tuple[str, ...]
    script: str | None = None

    @property
    def key(self) -> str:
        """The digest naming this job's log and marker."""
        fields = {"command": self.command, "argv": list(self.argv)}
        if self.script is not None:
            fields["script"] = self.script
        return digest(fields)

    def cli(self) -> list[str]:
        if self.script is not None:
            return [sys.executable, self.script, *self.argv]
        return [sys.executable, "-m", "landscape", self.command, *self.argv]

    def __str__(self) -> str:
        if self.script is not None:
            return " ".join(["python", self.script, *self.argv])
        return " ".join(["landscape", self.command, *self.argv])


def load_sweep(path: str | os.PathLike) -> list[Job]:
    """The jobs of a sweep file (``.json``, ``.toml`` or ``.py``), in order, duplicates once."""
    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"sweep file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            content = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise LandscapeError(f"{path} is not valid JSON: {err}") from None
    elif suffix == ".toml":
        content = _read_toml(path)
    elif suffix == ".py":
        namespace = runpy.run_path(str(path))  # the user's own file, run as they wrote it
        if "SWEEP" not in namespace:
            raise LandscapeError(f"{path} defines no SWEEP (a block or a list of blocks)")
        content = namespace["SWEEP"]
    else:
        raise LandscapeError(f"a sweep file is .json, .toml or .py; got {path.name}")
    return expand(_blocks(content, path))


def _read_toml(path: Path) -> Any:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise LandscapeError(
                "reading TOML on Python 3.10 needs tomli (pip install tomli); or write the "
                "sweep as JSON"
            ) from None
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise LandscapeError(f"{path} is not valid TOML: {err}") from None


def _blocks(content: Any, path: Path) -> list[Mapping[str, Any]]:
    if isinstance(content, Mapping) and "sweep" in content:
        if set(content) != {"sweep"}:
            raise LandscapeError(f"{path}: beside 'sweep', a sweep file holds nothing else")
        content = content["sweep"]
    blocks = [content] if isinstance(content, Mapping) else content
    if not isinstance(blocks, Sequence) or isinstance(blocks, str) or not blocks:
        raise LandscapeError(f"{path}: a sweep is a block or a non-empty list of blocks")
    return blocks


def expand(blocks: Sequence[Mapping[str, Any]]) -> list[Job]:
    """The jobs of ``blocks``: each block's grid expanded (its first key varies slowest)."""
    jobs: dict[str, Job] = {}
    for i, block in enumerate(blocks):
        where = f"sweep block {i}"
        if not isinstance(block, Mapping):
            raise LandscapeError(f"{where} must be a table/dict, got {type(block).__name__}")
        unknown = sorted(set(block) - set(_BLOCK_KEYS))
        if unknown:
            raise LandscapeError(
                f"{where} has unknown keys {unknown}; a block holds {', '.join(_BLOCK_KEYS)}"
            )
        command = block.get("command")
        if not isinstance(command, str) or not command or command == "sweep":
            raise LandscapeError(f"{where} needs a 'command' such as train, prune or dst")
        args = dict(block.get("args") or {})
        grid = dict(block.get("grid") or {})
        both = sorted(set(args) & set(grid))
        if both:
            raise LandscapeError(f"{where} sets {both} both in 'args' and in 'grid'")
        for name, values in grid.items():
            if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
                raise LandscapeError(f"{where}: grid['{name}'] must be a list of values")
            if not values:
                raise LandscapeError(f"{where}: grid['{name}'] is empty")
        names = list(grid)
        for values in itertools.product(*(grid[n] for n in names)):
            job = Job(command, tuple(argv({**args, **dict(zip(names, values))})))
            jobs.setdefault(job.key, job)
    return list(jobs.values())


def argv(args: Mapping[str, Any]) -> list[str]:
    """Command-line arguments from ``{name: value}`` (module docstring)."""
    out: list[str] = []
    positional = args.get("positional") or []
    if isinstance(positional, (str, bytes)) or not isinstance(positional, Sequence):
        positional = [positional]
    out.extend(str(p) for p in positional)
    for name, value in args.items():
        if name == "positional" or value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                text = item if isinstance(item, str) else json.dumps(item)
                out += [flag, f"{key}={text}"]
        elif isinstance(value, Sequence) and not isinstance(value, str):
            out += [flag, ",".join(str(v) for v in value)]
        else:
            out += [flag, str(value)]
    return out


@dataclass
class SweepResult:
    """What a sweep did: jobs run now, jobs skipped (done before), and failures with logs."""

    ran: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, Path]] = field(default_factory=list)

    def report(self) -> str:
        lines = [
            f"{len(self.ran)} ran, {len(self.skipped)} already done, {len(self.failed)} failed"
        ]
        for job, log in self.failed:
            lines.append(f"FAILED {job}\n  log: {log}")
            tail = _tail(log)
            lines.extend(f"  | {line}" for line in tail)
        return "\n".join(lines)


def default_state() -> Path:
    """``<runs root>/sweeps``: logs and markers of every sweep run from here."""
    return runs_root() / "sweeps"


def is_done(job: Job, state: str | os.PathLike) -> bool:
    return (Path(state) / "done" / f"{job.key}.json").is_file()


def run_sweep(
    jobs: Sequence[Job],
    executor: str = "local",
    *,
    state: str | os.PathLike | None = None,
    max_parallel: int = 1,
    slurm: Mapping[str, Any] | None = None,
    cluster: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run the jobs that are not done yet.

    Args:
        jobs: from :func:`load_sweep` or :func:`expand`.
        executor: ``"local"`` (a pool of ``max_parallel`` processes on this machine) or
            ``"slurm"`` (a submitit job array, at most ``max_parallel`` at once).
        state: the folder of logs and markers (default :func:`default_state`).
        slurm: submitit parameters for ``"slurm"``: ``partition``, ``gpus`` (per job),
            ``cpus`` (per job), ``mem_gb``, ``time`` (minutes), ``account``, ``qos``.
        cluster: submitit's cluster (``"slurm"``, or ``"local"``/``"debug"`` to test the
            Slurm path without Slurm); default: Slurm, refused where ``sbatch`` is absent.
        echo: called with a line per job as it starts, is skipped, finishes or fails.
    """
    if executor not in EXECUTORS:
        raise LandscapeError(f"unknown executor {executor!r}; choose one of {EXECUTORS}")
    if not isinstance(max_parallel, int) or max_parallel < 1:
        raise LandscapeError(f"max_parallel must be a whole number >= 1, got {max_parallel!r}")
    given = sorted(k for k, v in (slurm or {}).items() if v is not None)
    if executor == "local" and given:
        raise LandscapeError(
            f"Slurm options ({', '.join(given)}) apply to the slurm executor only "
            f"(--executor slurm)"
        )
    state = Path(state) if state is not None else default_state()
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / "done").mkdir(parents=True, exist_ok=True)
    echo = echo or (lambda line: None)
    result = SweepResult()
    todo = []
    for job in jobs:
        if is_done(job, state):
            result.skipped.append(job)
            echo(f"done before: {job.key} {job}")
        else:
            todo.append(job)
    if not todo:
        return result
    if executor == "local":
        _run_local(todo, state, max_parallel, result, echo)
    else:
        _run_slurm(todo, state, max_parallel, dict(slurm or {}), cluster, result, echo)
    return result


class _Task:
    """One job where it runs (here, or on a Slurm node): the command with its output in the
    job's log and, on success, the job's marker. Requeued as it is after a preemption
    (submitit's ``checkpoint``): the command resumes from its last checkpoint."""

    def __init__(self, job: Job, state: Path) -> None:
        self.job, self.state = job, Path(state)

    def __call__(self) -> str:
        log = self.log
        started = time.time()
        with open(log, "ab") as out:
            out.write(f"$ {self.job}\n".encode())
            out.flush()
            code = subprocess.call(self.job.cli(), stdout=out, stderr=subprocess.STDOUT)
        if code != 0:
            raise LandscapeError(f"{self.job} exited with status {code}; see {log}")
        write_json(
            self.state / "done" / f"{self.job.key}.json",
            {
                "command": self.job.command,
                "argv": list(self.job.argv),
                "seconds": round(time.time() - started, 3),
            },
        )
        return self.job.key

    @property
    def log(self) -> Path:
        return self.state / "logs" / f"{self.job.key}.log"

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _run_local(todo, state, max_parallel, result: SweepResult, echo) -> None:
    def one(job: Job) -> None:
        task = _Task(job, state)
        echo(f"start: {job.key} {job}")
        try:
            task()
        except LandscapeError:
            result.failed.append((job, task.log))
            echo(f"failed: {job.key} (log: {task.log})")
        else:
            result.ran.append(job)
            echo(f"finished: {job.key}")

    with ThreadPoolExecutor(max_workers=max_parallel) as pool:
        list(pool.map(one, todo))  # threads only wait: each job is its own process


_SLURM_PARAMETERS = {  # our name -> submitit's
    "partition": "slurm_partition",
    "gpus": "gpus_per_node",
    "cpus": "cpus_per_task",
    "mem_gb": "mem_gb",
    "time": "timeout_min",
    "account": "slurm_account",
    "qos": "slurm_qos",
}


def _run_slurm(todo, state, max_parallel, slurm, cluster, result: SweepResult, echo) -> None:
    try:
        import submitit
    except ImportError as err:  # pragma: no cover - a runtime dependency
        raise LandscapeError("the slurm executor needs submitit: pip install submitit") from err
    unknown = sorted(set(slurm) - set(_SLURM_PARAMETERS))
    if unknown:
        raise LandscapeError(
            f"unknown Slurm options {unknown}; known: {', '.join(_SLURM_PARAMETERS)}"
        )
    if cluster is None:
        if shutil.which("sbatch") is None:
            raise LandscapeError(
                "the slurm executor needs Slurm (no sbatch on this machine); use "
                "--executor local here"
            )
        cluster = "slurm"
    executor = submitit.AutoExecutor(folder=state / "submitit", cluster=cluster)
    parameters = {_SLURM_PARAMETERS[k]: v for k, v in slurm.items() if v is not None}
    parameters.setdefault("timeout_min", 60)
    parameters["slurm_array_parallelism"] = max_parallel
    parameters["tasks_per_node"] = 1
    parameters["nodes"] = 1
    executor.update_parameters(**parameters)
    tasks = [_Task(job, state) for job in todo]
    with executor.batch():
        submitted = [executor.submit(task) for task in tasks]
    for task, sub in zip(tasks, submitted):
        echo(f"submitted: {task.job.key} as {sub.job_id} {task.job}")
    for task, sub in zip(tasks, submitted):
        try:
            sub.result()
        except Exception:  # submitit re-raises the job's failure here, of whatever kind
            result.failed.append((task.job, task.log))
            echo(f"failed: {task.job.key} (log: {task.log}; submitit: {sub.paths.stderr})")
        else:
            result.ran.append(task.job)
            echo(f"finished: {task.job.key}")


def _tail(path: Path, lines: int = LOG_TAIL) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ["(no log)"]
    return text.rstrip("\n").splitlines()[-lines:]


# ---------------------------------------------------------------------------------------------
# Studies as sweeps: one job per replicate, then the study gathers the runs they left

#: Options a study takes to run as a sweep (:func:`add_study_options`), with their arity.
_STUDY_OPTIONS = {"--executor": 1, "--max-parallel": 1, "--partition": 1, "--gpus": 1}
_STUDY_OPTIONS |= {"--time": 1, "--only-replicate": 1, "--out": 1}


def add_study_options(parser) -> None:
    """The options of :func:`study_sweep` on a study's ``argparse`` parser."""
    parser.add_argument(
        "--executor",
        default=None,
        choices=EXECUTORS,
        help="train the replicates as a sweep first (one process or Slurm job each), then "
        "gather them here",
    )
    parser.add_argument("--max-parallel", type=int, default=1, help="replicates at once")
    parser.add_argument("--partition", default=None, help="Slurm partition (--executor slurm)")
    parser.add_argument("--gpus", type=int, default=None, help="GPUs per Slurm job")
    parser.add_argument("--time", type=int, default=None, help="minutes per Slurm job")
    parser.add_argument(
        "--only-replicate",
        type=int,
        default=None,
        help="run this replicate alone (what each job of --executor runs)",
    )


def study_replicates(args) -> list[int]:
    """The replicates a study runs: all of ``args.replicates``, or ``--only-replicate``."""
    if args.only_replicate is None:
        return list(range(args.replicates))
    if not 0 <= args.only_replicate < args.replicates:
        raise LandscapeError(
            f"--only-replicate {args.only_replicate} is not among the {args.replicates} "
            f"replicates (0 to {args.replicates - 1})"
        )
    return [args.only_replicate]


def study_jobs(script: str | os.PathLike, argv: Sequence[str], replicates: int, state) -> list[Job]:
    """One job per replicate: the study's own command line without the sweep options,
    restricted to that replicate and writing its partial tables under ``state/shards``."""
    base, skip = [], 0
    for item in argv:
        if skip:
            skip -= 1
            continue
        name = _study_option(item.split("=", 1)[0])
        if name is not None:
            skip = 0 if "=" in item else _STUDY_OPTIONS[name]
            continue
        base.append(item)
    study = Path(script).stem
    group = digest({"study": study, "argv": base})
    return [
        Job(
            study,
            (
                *base,
                "--only-replicate",
                str(r),
                "--out",
                str(Path(state) / "shards" / f"{study}-{group}-r{r}"),
            ),
            script=str(script),
        )
        for r in range(replicates)
    ]


def _study_option(name: str) -> str | None:
    """The sweep option ``name`` stands for, abbreviations included (argparse accepts any
    unambiguous prefix), or ``None``."""
    if not name.startswith("--") or len(name) < 3:
        return None
    found = [option for option in _STUDY_OPTIONS if option.startswith(name)]
    return found[0] if len(found) == 1 else None


def study_sweep(script, argv: Sequence[str] | None, args) -> bool:
    """Before a study gathers its replicates, run them as a sweep when ``--executor`` asks
    for it (``args`` from :func:`add_study_options`, ``args.runs`` the runs root): every job
    trains one replicate's runs, which the gathering pass then reuses. Jobs themselves
    (``--only-replicate``) never sweep. Returns whether the study may go on; failures are
    printed with their logs."""
    if not args.executor or args.only_replicate is not None or getattr(args, "plot_only", False):
        return True
    argv = sys.argv[1:] if argv is None else argv
    state = runs_root(args.runs) / "sweeps"
    result = run_sweep(
        study_jobs(script, argv, args.replicates, state),
        args.executor,
        state=state,
        max_parallel=args.max_parallel,
        slurm={"partition": args.partition, "gpus": args.gpus, "time": args.time},
        echo=echo,
    )
    if result.failed:
        print(result.report())
    return not result.failed


def echo(line: str) -> None:
    """Print a sweep's progress line at once (jobs run for hours)."""
    print(line, flush=True)
