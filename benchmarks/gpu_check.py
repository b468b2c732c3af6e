"""The CUDA paths in one short script, for a machine with a GPU (the project never needs one).

1. bfloat16 autocast with channels-last (and ``torch.compile`` unless ``--no-compile``):
   ResNet-20 trains ``--steps`` steps on CIFAR-10-shaped data; the loss must stay finite, the
   weights float32, and the compiled run must end within float rounding of the eager one.
2. With two or more GPUs: ``torchrun --standalone --nproc-per-node 2 -m landscape dst ...``
   (NCCL), two steps of RigL, must write the run one process writes (the same spec hash,
   weights within 1e-4, identical masks, ``processes`` 2 in the checkpoint).
3. Throughput: ``benchmarks/train_throughput.py``'s figures on this card (plain loop, ours in
   float32, bfloat16, channels-last, compiled), images/s.

Prints one line per check and, last, one JSON object with the card, every figure and
``ratios``. Exits 1 if a check fails; 0 with a note when there is no CUDA device.

    python benchmarks/gpu_check.py
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput as tp  # noqa: E402  (registers synthetic-cifar10)

from landscape.io import load_checkpoint  # noqa: E402
from landscape.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def check_bf16(steps: int, compile: bool, device: torch.device) -> dict:
    out = {}
    runs = {}
    for name, options in (("eager", {}), ("compiled", {"compile": True})):
        if name == "compiled" and not compile:
            continue
        with tempfile.TemporaryDirectory() as root:
            spec = tp.spec(tp.SYNTHETIC, None, steps, 128, "bf16")
            run = train(spec, root, device=device, channels_last=True, progress=False, **options)
            ckpt = load_checkpoint(run.checkpoint_path(steps))
            loss = run.metrics()[-1]["train_loss"]
            runs[name] = ckpt.model
        ok = math.isfinite(loss) and all(
            t.dtype == torch.float32 for t in ckpt.model.values() if t.is_floating_point()
        )
        out[name] = {"train_loss": loss, "ok": ok}
        print(f"bf16 + channels-last ({name}): final train loss {loss:.4f}, ok={ok}")
    if "compiled" in runs:
        gap = max(
            (runs["eager"][k].float() - runs["compiled"][k].float()).abs().max().item()
            for k in runs["eager"]
            if runs["eager"][k].is_floating_point()
        )
        out["compiled_vs_eager_max_abs"] = gap
        out["compiled"]["ok"] = out["compiled"]["ok"] and gap < 0.05  # bf16 rounding
        print(f"compiled vs eager: weights within {gap:.2e}")
    return out


def check_nccl(device: torch.device) -> dict:
    if device.type == "cuda" and torch.cuda.device_count() < 2:
        print(f"NCCL: skipped ({torch.cuda.device_count()} GPU)")
        return {"skipped": True, "ok": True}
    args = ["dst", "--model", "mlp", "--model-arg", "widths=[64]", "--data", "mnist1d"]
    args += ["--steps", "2", "--batch-size", "64", "--update-every", "1", "--density", "0.3"]
    with tempfile.TemporaryDirectory() as tmp:
        launchers = {
            "two": [sys.executable, "-m", "torch.distributed.run", "--standalone"]
            + ["--nproc-per-node", "2"],
            "one": [sys.executable],
        }
        for name, launcher in launchers.items():
            cmd = [*launcher, "-m", "landscape", *args, "--runs", str(Path(tmp) / name)]
            cmd += ["--device", str(device)]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
            if done.returncode:
                print(f"NCCL: {name} failed\n{done.stdout}{done.stderr}")
                return {"ok": False}
        two, one = (next((Path(tmp) / r).iterdir()) for r in ("two", "one"))
        a, b = (load_checkpoint(r / "checkpoints" / "step_2.pt") for r in (two, one))
        gap = max((a.model[k] - b.model[k]).abs().max().item() for k in b.model)
        masks = [c.controllers["rigl"]["masks"] for c in (a, b)]
        same = all(torch.equal(masks[0][k].cpu(), masks[1][k].cpu()) for k in masks[1])
        ok = two.name == one.name and gap < 1e-4 and same and a.meta["processes"] == 2
    print(f"NCCL, 2 processes against 1: weights within {gap:.1e}, same masks {same}, ok={ok}")
    return {"max_abs": gap, "same_masks": same, "ok": ok}


def throughput(steps: int, device: torch.device, compile: bool) -> tuple[dict, dict]:
    rows, ratios = tp.measure(tp.SYNTHETIC, None, 128, steps, device, True, compile)
    for name, row in rows.items():
        print(f"{name}: {1e3 * row['step_s']:.2f} ms a step, {row['images_per_s']:.0f} images/s")
    return rows, ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per timed run")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument(
        "--device",
        default="cuda",
        help="cpu runs the same checks on the CPU (gloo instead of NCCL): a rehearsal",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: nothing to check (the CPU paths are the test suite's)")
        print(json.dumps({"device": None, "ratios": {}}))
        return 0
    if device.type == "cuda":
        card = f"{torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}"
    else:
        card = f"cpu ({torch.get_num_threads()} threads)"
    print(f"{card}, torch {torch.__version__}")
    bf16 = check_bf16(min(args.steps, 100), not args.no_compile, device)
    nccl = check_nccl(device)
    rows, ratios = throughput(args.steps, device, not args.no_compile)
    ok = all(v["ok"] for v in bf16.values() if isinstance(v, dict)) and nccl["ok"]
    print(json.dumps({"device": card, "bf16": bf16, "nccl": nccl, "rows": rows,
                      "ok": ok, "ratios": ratios}))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
