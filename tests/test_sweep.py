"""Sweeps: grid expansion, the three file formats, the local and submitit executors,
skipping what is done, failures with their logs, and a killed sweep finishing on rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from landscape.cli import main
from landscape.errors import LandscapeError
from landscape.io import read_rows
from landscape.specs import digest
from landscape.sweep import Job, _Task, argv, expand, is_done, load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def tiny_train(runs: Path, **grid) -> dict:
    """A block of 1-step MLP runs on MNIST-1D (each job a few seconds, mostly imports)."""
    return {
        "command": "train",
        "args": {
            "model": "mlp",
            "model_arg": {"widths": [4]},
            "data": "mnist1d",
            "steps": 1,
            "batch_size": 8,
            "runs": str(runs),
            "resume_every": 0,
        },
        "grid": grid,
    }


def test_a_grid_expands_to_its_product_with_distinct_keys():
    block = {
        "command": "train",
        "args": {"model": "mlp", "data": "mnist1d", "nesterov": True, "augment": None},
        "grid": {"init_seed": [0, 1, 2], "lr": [0.1, 0.05]},
    }
    jobs = expand([block, block])  # the same jobs twice count once
    assert len(jobs) == 6 and len({j.key for j in jobs}) == 6
    assert jobs[0].argv == (
        "--model", "mlp", "--data", "mnist1d", "--nesterov", "--init-seed", "0", "--lr", "0.1"
    )  # fmt: skip
    assert [j.argv[-3::2] for j in jobs] == [
        ("0", "0.1"),
        ("0", "0.05"),
        ("1", "0.1"),
        ("1", "0.05"),
        ("2", "0.1"),
        ("2", "0.05"),
    ]  # fmt: skip  (the first grid key varies slowest)
    assert jobs[0].key == digest({"command": "train", "argv": list(jobs[0].argv)})
    assert str(jobs[0]).startswith("landscape train --model mlp")


def test_arguments_render_as_the_command_line_expects():
    assert argv(
        {
            "positional": ["runs/abc"],
            "step": 50,
            "noise_seeds": [1, 2],
            "model_arg": {"width": 2, "norm": "group"},
            "flag": True,
            "off": False,
            "unset": None,
        }
    ) == [
        "runs/abc", "--step", "50", "--noise-seeds", "1,2",
        "--model-arg", "width=2", "--model-arg", "norm=group", "--flag",
    ]  # fmt: skip


def test_no_positional_arguments_render_as_none():
    assert argv({"positional": None, "step": 1}) == ["--step", "1"]


def test_json_toml_and_python_files_give_the_same_jobs(tmp_path):
    block = {"command": "train", "args": {"model": "mlp", "data": "mnist1d"}}
    block["grid"] = {"init_seed": [0, 1]}
    (tmp_path / "s.json").write_text(json.dumps({"sweep": [block]}))
    (tmp_path / "s.toml").write_text(
        'command = "train"\n[args]\nmodel = "mlp"\ndata = "mnist1d"\n[grid]\ninit_seed = [0, 1]\n'
    )
    (tmp_path / "s.py").write_text(f"SWEEP = [{block!r}]\n")
    jobs = [load_sweep(tmp_path / name) for name in ("s.json", "s.toml", "s.py")]
    assert jobs[0] == jobs[1] == jobs[2] and len(jobs[0]) == 2


@pytest.mark.parametrize(
    "content, message",
    [
        ({"args": {}}, "needs a 'command'"),
        ({"command": "sweep"}, "needs a 'command'"),
        ({"command": "train", "grids": {}}, "unknown keys"),
        ({"command": "train", "args": {"lr": 1}, "grid": {"lr": [1, 2]}}, "both in 'args'"),
        ({"command": "train", "grid": {"lr": []}}, "is empty"),
        ({"command": "train", "grid": {"lr": 0.1}}, "must be a list"),
        ([], "non-empty list of blocks"),
        ({"sweep": [], "other": 1}, "holds nothing else"),
    ],
)
def test_bad_sweep_files_get_one_clear_error(tmp_path, content, message):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(content))
    with pytest.raises(LandscapeError, match=message):
        load_sweep(path)


def test_bad_files_and_options_are_refused(tmp_path, capsys):
    with pytest.raises(LandscapeError, match="does not exist"):
        load_sweep(tmp_path / "missing.json")
    (tmp_path / "s.yaml").write_text("")
    with pytest.raises(LandscapeError, match=r"\.json, \.toml or \.py"):
        load_sweep(tmp_path / "s.yaml")
    (tmp_path / "s.py").write_text("X = 1\n")
    with pytest.raises(LandscapeError, match="defines no SWEEP"):
        load_sweep(tmp_path / "s.py")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(LandscapeError, match="not valid JSON"):
        load_sweep(tmp_path / "bad.json")
    jobs = expand([{"command": "list"}])
    with pytest.raises(LandscapeError, match="unknown executor"):
        run_sweep(jobs, "pbs", state=tmp_path)
    with pytest.raises(LandscapeError, match="max_parallel"):
        run_sweep(jobs, state=tmp_path, max_parallel=0)
    with pytest.raises(LandscapeError, match="unknown Slurm options"):
        run_sweep(jobs, "slurm", state=tmp_path, slurm={"gpu": 1}, cluster="debug")
    if not any((Path(p) / "sbatch").exists() for p in os.environ["PATH"].split(os.pathsep)):
        with pytest.raises(LandscapeError, match="no sbatch"):
            run_sweep(jobs, "slurm", state=tmp_path)


def test_a_typo_in_any_job_stops_the_sweep_before_it_runs(tmp_path, capsys):
    block = tiny_train(tmp_path / "runs", init_seed=[0, 1])
    block["args"]["stepz"] = 3
    (tmp_path / "s.json").write_text(json.dumps(block))
    state = tmp_path / "state"
    assert main(["sweep", str(tmp_path / "s.json"), "--state", str(state)]) == 2
    err = capsys.readouterr().err
    assert "is not a valid command line" in err and "--stepz" in err
    assert not state.exists() and not (tmp_path / "runs").exists()
    (tmp_path / "t.json").write_text(json.dumps({"command": "list"}))
    assert main(["sweep", str(tmp_path / "t.json"), "--gpus", "1"]) == 2
    assert "Slurm options" in capsys.readouterr().err


def test_local_sweep_runs_skips_and_reports_failures(tmp_path, capsys):
    runs = tmp_path / "runs"
    good = tiny_train(runs, init_seed=[0, 1])
    bad = tiny_train(runs, init_seed=[0])
    bad["args"]["model"] = "no-such-model"  # parses, fails when it runs
    (tmp_path / "s.json").write_text(json.dumps([good, bad]))
    state = tmp_path / "state"
    cmd = ["sweep", str(tmp_path / "s.json"), "--state", str(state), "--max-parallel", "2"]
    assert main(cmd) == 1  # a job failed
    out = capsys.readouterr().out
    assert "2 ran, 0 already done, 1 failed" in out
    assert "FAILED landscape train --model no-such-model" in out and "no-such-model" in out
    jobs = load_sweep(tmp_path / "s.json")
    assert [is_done(j, state) for j in jobs] == [True, True, False]
    assert len(list(runs.iterdir())) == 2  # one run directory per spec hash
    marker = state / "done" / f"{jobs[0].key}.json"
    before = marker.stat().st_mtime_ns
    assert main(cmd) == 1  # again: only the failed job runs
    out = capsys.readouterr().out
    assert "0 ran, 2 already done, 1 failed" in out
    assert marker.stat().st_mtime_ns == before
    assert main(cmd + ["--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["done", "done", "todo"]


def test_submitit_executors_run_a_two_job_sweep(tmp_path):
    jobs = expand([tiny_train(tmp_path / "runs", init_seed=[0, 1])])
    for cluster in ("debug", "local"):
        state = tmp_path / cluster
        result = run_sweep(jobs, "slurm", state=state, cluster=cluster, slurm={"time": 5})
        assert not result.failed and len(result.ran) == 2, result.report()
        assert all(is_done(j, state) for j in jobs)
        assert "$ landscape train" in (state / "logs" / f"{jobs[0].key}.log").read_text()
    again = run_sweep(jobs, "slurm", state=tmp_path / "local", cluster="local")
    assert len(again.skipped) == 2 and not again.ran


def test_a_preempted_job_is_requeued_as_itself(tmp_path):
    task = _Task(Job("train", ("--model", "mlp")), tmp_path)
    again = task.checkpoint()
    assert again.function is task  # the same command: it resumes from its last checkpoint


def test_a_killed_sweep_finishes_on_rerun_without_redoing_finished_jobs(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps(tiny_train(tmp_path / "runs", init_seed=[0, 1, 2])))
    state = tmp_path / "state"
    cmd = [sys.executable, "-m", "landscape", "sweep", str(tmp_path / "s.json")]
    cmd += ["--state", str(state)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    jobs = load_sweep(tmp_path / "s.json")
    first = state / "done" / f"{jobs[0].key}.json"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the job it is running
    proc.wait()
    assert first.exists()
    stamps = {j.key: (state / "done" / f"{j.key}.json").stat().st_mtime_ns
              for j in jobs if is_done(j, state)}  # fmt: skip
    assert 1 <= len(stamps) < 3
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{3 - len(stamps)} ran, {len(stamps)} already done, 0 failed" in rerun.stdout
    assert all(is_done(j, state) for j in jobs)
    for key, stamp in stamps.items():
        assert (state / "done" / f"{key}.json").stat().st_mtime_ns == stamp


def test_a_study_sweeps_one_job_per_replicate(tmp_path):
    from landscape.sweep import study_jobs

    argv = ["--scale", "ci", "--exec", "slurm", "--max-par=3", "--out", "x"]  # abbreviated
    argv += ["--gpus", "1", "--replicates", "2"]
    jobs = study_jobs("analyses/stability.py", argv, 2, tmp_path)
    assert [j.argv[:6] for j in jobs] == [
        ("--scale", "ci", "--replicates", "2", "--only-replicate", str(r)) for r in (0, 1)
    ]
    assert all(
        j.argv[6] == "--out" and j.argv[7].startswith(str(tmp_path / "shards")) for j in jobs
    )
    assert jobs[0].argv[7] != jobs[1].argv[7] and jobs[0].key != jobs[1].key
    assert jobs[0].cli()[1:3] == ["analyses/stability.py", "--scale"]
    assert str(jobs[0]).startswith("python analyses/stability.py --scale ci")
    assert Job("stability", ("--x",), "a.py").key != Job("stability", ("--x",)).key


def test_only_replicate_must_be_one_of_them():
    from types import SimpleNamespace

    from landscape.sweep import study_replicates

    assert study_replicates(SimpleNamespace(replicates=3, only_replicate=None)) == [0, 1, 2]
    assert study_replicates(SimpleNamespace(replicates=3, only_replicate=2)) == [2]
    with pytest.raises(LandscapeError, match="not among the 3 replicates"):
        study_replicates(SimpleNamespace(replicates=3, only_replicate=3))


@pytest.mark.slow
def test_a_study_runs_its_replicates_as_a_sweep_then_gathers_them(tmp_path, capsys):
    from tests._studies import load_study

    study = load_study("stability")
    argv = ["--scale", "ci", "--replicates", "2", "--runs", str(tmp_path / "runs")]
    argv += ["--out", str(tmp_path / "out"), "--executor", "local", "--max-parallel", "2"]
    assert study.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("finished: ") == 2 and "2 ran" not in out  # the study prints its own
    rows = read_rows(tmp_path / "out" / "barriers.csv")
    assert sorted({r["replicate"] for r in rows}) == [0, 1]
    shards = sorted((tmp_path / "runs" / "sweeps" / "shards").iterdir())
    assert [p.name[-2:] for p in shards] == ["r0", "r1"]
    for shard in shards:  # each job measured its replicate as the gathering pass did
        part = read_rows(shard / "barriers.csv")
        r = int(shard.name[-1])
        mine = [x for x in rows if x["replicate"] == r]
        assert [x["error_barrier"] for x in part] == [x["error_barrier"] for x in mine]
    assert study.main(argv) == 0
    assert capsys.readouterr().out.count("done before: ") == 2
