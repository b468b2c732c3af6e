"""The command line, end to end on a fabricated dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from landscape.cli import main
from landscape.io import write_rows


def _out(capsys) -> list[str]:
    return capsys.readouterr().out.strip().splitlines()


def test_train_spawn_interpolate_plot(tmp_path, capsys):
    runs = tmp_path / "runs"
    common = ["--model", "mlp", "--model-arg", "widths=[8]", "--data", "test-blobs"]
    assert (
        main(
            [
                "train",
                *common,
                "--steps",
                "12",
                "--batch-size",
                "32",
                "--lr",
                "0.05",
                "--checkpoint-steps",
                "4",
                "--runs",
                str(runs),
                "--nesterov",
                "--gamma",
                "0.5",
            ]
        )
        == 0
    )
    (parent,) = _out(capsys)
    recorded = json.loads(Path(parent, "spec.json").read_text())["spec"]["train"]
    assert recorded["nesterov"] is True and recorded["gamma"] == 0.5 and recorded["lr"] == 0.05
    assert Path(parent, "checkpoints", "step_4.pt").is_file()
    assert main(["spawn", parent, "--step", "4", "--noise-seeds", "1,2"]) == 0
    children = _out(capsys)
    assert len(children) == 2 and all(Path(c).parent == runs for c in children)
    a, b = (str(Path(c, "checkpoints", "step_12.pt")) for c in children)
    out = tmp_path / "line.json"
    # this project's checkpoints name their model, so --model may be left out
    assert (
        main(["interpolate", a, b, "--data", "test-blobs", "--points", "5", "--json", str(out)])
        == 0
    )
    result = json.loads(out.read_text())
    assert set(result) >= {
        "alphas",
        "loss",
        "error",
        "loss_barrier",
        "error_barrier",
        "loss_barrier_linear",
        "error_barrier_linear",
        "bn_reset",
    }
    assert result["alphas"] == [0.0, 0.25, 0.5, 0.75, 1.0] and result["bn_reset"] is False
    capsys.readouterr()

    rows = [
        {
            "network": "n",
            "rewind_step": k,
            "replicate": r,
            "error_barrier": 0.01 * k + r,
            "loss_barrier": 0.1,
        }
        for k in (0, 1, 4)
        for r in (0, 1)
    ]
    write_rows(tmp_path / "b.csv", rows)
    assert main(["plot", "barrier", str(tmp_path / "b.csv"), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig.pdf").stat().st_size > 1000
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"


def test_interpolate_accepts_a_foreign_state_dict(tmp_path, capsys):
    from landscape.models import create_model

    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = create_model("mlp", num_classes=4, in_shape=(1, 12), widths=[8])
        paths.append(tmp_path / f"m{seed}.pt")
        torch.save({"state_dict": model.state_dict()}, paths[-1])
    assert (
        main(
            [
                "interpolate",
                *map(str, paths),
                "--model",
                "mlp",
                "--model-arg",
                "widths=[8]",
                "--data",
                "test-blobs",
                "--points",
                "3",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["loss_barrier"] > 0


def test_user_errors_are_one_line_with_status_2(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--model",
                "nope",
                "--data",
                "test-blobs",
                "--steps",
                "2",
                "--runs",
                str(tmp_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("landscape train: error: unknown model 'nope'")
    assert "lenet300-100" in err and "Traceback" not in err
    assert main(["interpolate", "a.pt", "b.pt", "--model", "mlp", "--data", "test-blobs"]) == 2
    assert "does not exist" in capsys.readouterr().err
    # argparse's own refusals are one line too (tests/test_errors.py has the whole table)
    assert main(["train", "--model", "mlp"]) == 2
    assert capsys.readouterr().err == (
        "landscape train: error: the following arguments are required: --data "
        "(see landscape train --help)\n"
    )
    with pytest.raises(SystemExit) as done:  # --help still prints and exits 0
        main(["train", "--help"])
    assert done.value.code == 0


def test_list_and_python_dash_m(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "conv1d" in text and "mnist1d" in text and "tv:" in text
    done = subprocess.run(
        [sys.executable, "-m", "landscape", "--help"], capture_output=True, text=True, check=True
    )
    assert "interpolate" in done.stdout


def test_interpolate_resets_batchnorm_by_default(tmp_path, capsys):
    from landscape.models import create_model

    kwargs = {"depth": 1, "width": 4, "norm": "batch"}
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = create_model("convnet", num_classes=4, in_shape=(3, 6, 6), **kwargs)
        paths.append(str(tmp_path / f"m{seed}.pt"))
        torch.save(model.state_dict(), paths[-1])
    args = ["interpolate", *paths, "--model", "convnet", "--data", "test-images", "--points", "3"]
    args += [f"--model-arg={k}={json.dumps(v)}" for k, v in kwargs.items()]
    assert main(args + ["--bn-examples", "64"]) == 0
    subset = json.loads(capsys.readouterr().out)
    assert subset["bn_reset"] is True
    assert main(args + ["--bn-examples", "0"]) == 0  # the whole training split
    whole = json.loads(capsys.readouterr().out)
    assert whole["loss"][1] != subset["loss"][1]  # the statistics came from other data
    assert main(args + ["--no-bn-reset"]) == 0
    assert json.loads(capsys.readouterr().out)["bn_reset"] is False


def test_distill_then_prune_on_the_distilled_set(tmp_path, capsys):
    """`landscape distill` names a dataset that `landscape prune --find-on` takes, and the
    subnetworks of the found masks train on the real data."""
    runs = tmp_path / "runs"
    argv = ["distill", "--data", "test-blobs", "--model", "mlp", "--model-arg", "widths=[8]"]
    argv += ["--ipc", "4", "--iterations", "3", "--runs", str(runs), "--evaluate"]
    argv += ["--eval-steps", "10", "--eval-seeds", "0,1"]
    assert main(argv) == 0
    first, dm, baseline = _out(capsys)
    name, size, folder = first.split()[0], int(first.split()[1].strip("(")), first.split()[-1]
    assert (
        name.startswith("distilled:") and size == 16 and Path(folder).parent == runs / "distilled"
    )
    assert dm.split()[:3] == ["dm", "IPC", "4"] and "(2 runs)" in dm
    assert baseline.split()[0] == "random"
    common = ["--model", "mlp", "--model-arg", "widths=[8]", "--data", "test-blobs"]
    argv = ["prune", *common, "--steps", "12", "--batch-size", "32", "--levels", "2"]
    argv += ["--runs", str(runs), "--find-on", name, "--find-data-root", str(runs / "distilled")]
    argv += ["--find-batch-size", "8", "--find-steps", "5", "--json", str(tmp_path / "p.json")]
    assert main(argv) == 0
    lines = _out(capsys)
    assert [line.split()[1] for line in lines] == ["0", "1", "2"]
    rows = json.loads((tmp_path / "p.json").read_text())
    assert [r["examples_seen"] for r in rows] == [0, 40, 80]  # 5 steps x 8 per search run
    assert [round(r["density"], 2) for r in rows] == [1.0, 0.8, 0.64]
    assert rows[1]["run"] != rows[1]["search_run"]  # the subnetwork trained on real data
    spec = json.loads((runs / rows[1]["run"] / "spec.json").read_text())["spec"]
    assert spec["data"]["name"] == "test-blobs"
    search = json.loads((runs / rows[1]["search_run"] / "spec.json").read_text())["spec"]
    assert search["data"]["name"] == name


def test_prune_refuses_bad_settings_in_one_line(tmp_path, capsys):
    common = ["prune", "--model", "mlp", "--data", "test-blobs", "--runs", str(tmp_path)]
    for extra, message in (
        (["--rate", "1.5"], "rate must be"),
        (["--rewind-step", "1000"], "rewind_step 1000 is not before"),
        (["--scope", "local"], "invalid choice"),
        (["--start-masks", str(tmp_path / "none.pt")], "no mask file"),
    ):
        assert main([*common, *extra]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("landscape prune: error:") and message in line
    assert not any(tmp_path.iterdir())


def test_dst_and_ensemble_commands(tmp_path, capsys):
    common = ["--model", "mlp", "--data", "test-blobs", "--runs", str(tmp_path / "runs")]
    short = ["--steps", "30", "--batch-size", "32", "--lr", "0.05", "--update-every", "5"]
    summary = tmp_path / "dst.json"
    assert (
        main(
            ["dst", *common, *short, "--method", "rigl", "--density", "0.3", "--json", str(summary)]
        )
        == 0
    )
    (line,) = _out(capsys)
    assert line.startswith("rigl: density 0.")
    row = json.loads(summary.read_text())
    assert row["density"] == pytest.approx(0.3, abs=0.01)
    assert 0.3 < row["relative_flops"] < 0.5  # sparse steps plus RigL's dense gradients
    assert Path(row["run"], "dst.csv").is_file()
    table = tmp_path / "ensemble.json"
    args = [
        "ensemble",
        *common,
        *short,
        "--method",
        "edst",
        "--members",
        "2",
        "--explore-steps",
        "10",
        "--phase-steps",
        "10",
        "--json",
        str(table),
    ]
    assert main(args) == 0
    lines = _out(capsys)
    assert [line.split()[0] for line in lines[:3]] == ["0", "1", "ensemble"]
    assert lines[-1].startswith("training FLOPs 0.")
    result = json.loads(table.read_text())
    assert len(result["metrics"]) == 3 and len(result["pairs"]) == 1


def test_dst_refuses_options_of_another_method(tmp_path, capsys):
    common = ["dst", "--model", "mlp", "--data", "test-blobs", "--runs", str(tmp_path)]
    for extra, message in (
        (["--method", "set", "--init-density", "0.5"], "--init-density applies to --method granet"),
        (["--method", "rigl", "--drop-fraction", "1.2"], "drop_fraction"),
        (["--method", "granet", "--density", "0.5", "--init-density", "0.2"], "init_density"),
        (["--method", "snip"], "invalid choice"),
    ):
        assert main([*common, *extra]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("landscape dst: error:") and message in line
    assert not any(tmp_path.iterdir())


def test_hessian_of_a_run_and_of_its_subnetwork(tmp_path, capsys):
    """`landscape hessian` on a run directory: the dense run's diagonal (BackPACK), an IMP
    subnetwork's (its masks.pt found by default) and a written spectrum."""
    from landscape.analysis import hessian_diagonal
    from landscape.data import get_dataset
    from landscape.io import load_checkpoint, load_weights
    from landscape.models import create_model

    runs = tmp_path / "runs"
    common = ["--model", "mlp", "--model-arg", "widths=[8]", "--data", "test-blobs"]
    argv = ["prune", *common, "--steps", "12", "--batch-size", "32", "--levels", "1"]
    assert main([*argv, "--runs", str(runs), "--json", str(tmp_path / "p.json")]) == 0
    capsys.readouterr()
    levels = json.loads((tmp_path / "p.json").read_text())
    dense, sparse = (runs / levels[i]["run"] for i in (0, 1))
    out = tmp_path / "h"
    argv = ["hessian", str(sparse), "--data", "test-blobs", "--eigenvalues", "2", "--spectrum"]
    assert main([*argv, "--out", str(out), "--batch-size", "50"]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["masks"] == "the run's" and summary["density"] == pytest.approx(0.8, abs=0.01)
    assert summary["method"] == "backpack" and len(summary["top_eigenvalues"]) == 2
    assert out.with_suffix(".csv").is_file() and Path(f"{out}-spectrum.csv").is_file()
    # the same numbers from Python: the run's masks and weights on the whole train split
    data = get_dataset("test-blobs", split="train")
    model = create_model("mlp", num_classes=data.info.num_classes, in_shape=(1, 12), widths=[8])
    load_weights(model, load_checkpoint(sorted((sparse / "checkpoints").glob("*.pt"))[-1]))
    from landscape.sparse import load_masks

    masks = load_masks(sparse / "masks.pt")
    expected = hessian_diagonal(model, data, masks=masks)
    assert summary["trace"] == pytest.approx(expected.trace, rel=1e-5)
    assert summary["layers"][0]["count"] == int(masks[summary["layers"][0]["parameter"]].sum())
    # the dense run, printed; --masks none on the sparse run is its dense network
    capsys.readouterr()
    assert main(["hessian", str(dense), "--data", "test-blobs", "--masks", "none"]) == 0
    printed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert printed["masks"].startswith("none") and printed["density"] is None


def test_hessian_refuses_bad_settings_in_one_line(tmp_path, capsys):
    argv = ["train", "--model", "mlp", "--data", "test-blobs", "--steps", "2"]
    assert main([*argv, "--runs", str(tmp_path)]) == 0
    (run,) = _out(capsys)
    for extra, message in (
        (["--method", "lanczos"], "invalid choice"),
        (["--method", "exact", "--probes", "4"], "probes= is for Hutchinson"),
        (["--masks", str(tmp_path / "none.pt")], "no mask file"),
        (["--spectrum"], "--spectrum writes a CSV"),
        (["--eigenvalues", "5000"], "Lanczos needs k <"),
    ):
        assert main(["hessian", run, "--data", "test-blobs", *extra]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[-1].startswith("landscape hessian: error:") and message in lines[-1]


def test_align_two_runs_then_interpolate_the_aligned_checkpoint(tmp_path, capsys):
    """`landscape align` on two runs from different init seeds: barriers before and after,
    the aligned checkpoint of B (which records its model) and B's masks, permuted along."""
    from landscape.analysis import interpolate, permute
    from landscape.data import get_dataset
    from landscape.io import load_checkpoint, load_weights
    from landscape.models import create_model
    from landscape.sparse import load_masks

    runs = tmp_path / "runs"
    common = ["--model", "mlp", "--model-arg", "widths=[16]", "--data", "test-blobs"]
    common += ["--steps", "30", "--batch-size", "32", "--lr", "0.05", "--runs", str(runs)]
    assert main(["train", *common, "--init-seed", "1"]) == 0
    (run_a,) = _out(capsys)
    levels = tmp_path / "levels.json"
    assert main(["prune", *common, "--init-seed", "2", "--levels", "1", "--json", str(levels)]) == 0
    capsys.readouterr()
    run_b = runs / json.loads(levels.read_text())[1]["run"]  # IMP level 1: a sparse run
    out, saved, masks = tmp_path / "align.json", tmp_path / "b_aligned.pt", tmp_path / "m.pt"
    argv = ["align", run_a, str(run_b), "--data", "test-blobs", "--points", "5"]
    argv += ["--json", str(out), "--save", str(saved), "--save-masks", str(masks)]
    assert main(argv) == 0
    printed = _out(capsys)
    result = json.loads(out.read_text())
    assert printed[0].startswith(
        f"error barrier {result['error_barrier_before']:.4f} -> "
        f"{result['error_barrier_after']:.4f}, loss barrier"
    )
    assert printed[1:] == [f"wrote {out}", f"wrote {saved}", f"wrote {masks}"]
    assert result["objective_after"] >= result["objective_before"]
    assert sorted(result["perms"]) == ["fc1"] and sorted(result["perms"]["fc1"]) == list(range(16))
    line = result["interpolation"]
    assert line["loss_barrier"] == result["loss_barrier_after"]
    assert line["unaligned"]["loss_barrier"] == result["loss_barrier_before"]
    # the saved checkpoint is B permuted: same function, the recorded model, safe to load
    ckpt = load_checkpoint(saved)  # weights_only=True
    assert ckpt.meta["model"] == "mlp" and list(ckpt.meta["model_kwargs"]["widths"]) == [16]
    assert ckpt.meta["aligned_to"].startswith(run_a) and ckpt.optimizer is None
    build = lambda: create_model("mlp", num_classes=4, in_shape=(1, 12), widths=[16])  # noqa: E731
    b = load_weights(build(), load_checkpoint(run_b))
    perms = {"fc1": torch.tensor(result["perms"]["fc1"])}
    expected = permute(b, perms).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in ckpt.model.items())
    # the permuted masks still cover exactly B's pruned (zero) weights, now moved
    moved, own = load_masks(masks), load_masks(run_b / "masks.pt")
    assert moved["fc1.weight"].sum() == own["fc1.weight"].sum()
    assert not ckpt.model["fc1.weight"][~moved["fc1.weight"]].any()
    # interpolate --align gives the same lines; interpolating to the saved B needs no --model
    capsys.readouterr()
    assert (
        main(["interpolate", run_a, str(run_b), "--data", "test-blobs", "--points", "5", "--align"])
        == 0
    )
    aligned = json.loads(capsys.readouterr().out)
    assert aligned["loss"] == pytest.approx(line["loss"], abs=1e-7)
    assert aligned["unaligned"]["loss"] == pytest.approx(line["unaligned"]["loss"], abs=1e-7)
    assert main(["interpolate", run_a, str(saved), "--data", "test-blobs", "--points", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(line["loss"], abs=1e-7)
    a = load_weights(build(), load_checkpoint(run_a))
    ref = interpolate(a, b, get_dataset("test-blobs", split="test"), points=5, align=True)
    assert ref.loss_barrier == pytest.approx(result["loss_barrier_after"], abs=1e-7)


def test_surface_around_a_run_and_through_three(tmp_path, capsys):
    """`landscape surface`: a 2-D random slice around one run (its grid centre is the run's
    own loss) and the plane through three runs (each run's loss at its coordinates)."""
    from landscape.analysis import evaluate
    from landscape.data import get_dataset
    from landscape.io import load_checkpoint, load_weights
    from landscape.models import create_model

    runs = tmp_path / "runs"
    common = ["--model", "mlp", "--model-arg", "widths=[8]", "--data", "test-blobs"]
    dirs = []
    for seed in (0, 1, 2):
        argv = ["train", *common, "--steps", "6", "--init-seed", str(seed), "--runs", str(runs)]
        assert main(argv) == 0
        dirs.append(_out(capsys)[-1])
    test = get_dataset("test-blobs", split="test")

    def loss_of(run):
        model = create_model("mlp", num_classes=test.info.num_classes, in_shape=(1, 12), widths=[8])
        ckpt = sorted(Path(run, "checkpoints").glob("*.pt"))[-1]
        return evaluate(load_weights(model, load_checkpoint(ckpt)), test).loss

    out = tmp_path / "around"
    assert (
        main(["surface", dirs[0], "--data", "test-blobs", "--points", "5", "--out", str(out)]) == 0
    )
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["kind"] == "random" and summary["xs"] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert summary["loss"][2][2] == pytest.approx(loss_of(dirs[0]), rel=1e-5)
    assert out.with_suffix(".csv").is_file() and out.with_suffix(".png").is_file()
    out = tmp_path / "plane"
    assert main(["surface", *dirs, "--data", "test-blobs", "--points", "4", "--out", str(out)]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["kind"] == "plane" and set(summary["marks"]) == {"a", "b", "c"}
    assert summary["marks"]["a"] == [0.0, 0.0] and summary["marks"]["b"][1] == 0.0
    # the plane's corners are a margin beyond the models: every model is inside the grid
    for name, run in zip("abc", dirs):
        x, y = summary["marks"][name]
        assert min(summary["xs"]) < x < max(summary["xs"]) or x == 0.0
    out = tmp_path / "line"
    argv = ["surface", dirs[0], "--data", "test-blobs", "--dims", "1", "--out", str(out)]
    assert main([*argv, "--points", "3"]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["ys"] is None
