"""Training step of the PyTorch reference BN-Inception (pretrainedmodels), images/s.

    python bench/torch_reference.py                      # ~1-2 min on 2 CPU cores
    python bench/torch_reference.py --batch 8 --iters 3 --json out.json

The same step as `bench/model.py`'s `training_step_fn` on the Keras side: BN-Inception
with its 1000-way classifier on a batch of 224x224 RGB images (batch 8 by default, as in
bench/model.py), every BN layer in training mode, softmax cross-entropy on random labels,
backward, and one SGD step (momentum 0.9). Rows: float32, and bfloat16 autocast where this
torch supports it on CPU. Each number is the median of --iters timed steps after one warm-up
step. torch runs with as many intra-op threads as there are cores (TensorFlow's default).

The model is pretrainedmodels' `bninception.py` loaded on its own (the package imports
torchvision, which is not installed here; tests/test_weights.py loads it the same way), with
random weights: the speed does not depend on them. Without torch or pretrainedmodels the script
prints why and reports nothing (exit status 0).

Alone, this script times PyTorch by itself; `bench/run_all.py` instead times this step and the
Keras one in turn in one process, so that both see the same load on shared cores.
"""

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time


def reference_module():
    """pretrainedmodels/models/bninception.py, loaded alone (the package wants torchvision)."""
    spec = importlib.util.find_spec("pretrainedmodels")
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "models", "bninception.py")
    module_spec = importlib.util.spec_from_file_location("_bninception_reference", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def missing() -> str | None:
    """Why the reference cannot run here (None when it can)."""
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (scripts/setup_env.sh installs the CPU build)"
    if importlib.util.find_spec("pretrainedmodels") is None:
        return "pretrainedmodels is not installed (pip install --no-deps pretrainedmodels==0.7.4)"
    return None


def bf16_autocast_supported() -> bool:
    import torch

    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = torch.nn.functional.conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3))
        return y.dtype == torch.bfloat16
    except (RuntimeError, TypeError):
        return False


def training_step_fn(precision: str, batch: int, threads: int):
    """One training step (forward, backward, SGD momentum 0.9) as a callable returning the loss.

    precision: "float32", or "bfloat16" for bf16 autocast (check bf16_autocast_supported).
    """
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = reference_module().BNInception(num_classes=1000)
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, 224, 224) * 50  # [B, C, H, W]: the reference is channels-first
    labels = torch.randint(0, 1000, (batch,))

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            logits = net(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def training_images_per_s(precision: str, batch: int, iters: int, threads: int) -> dict:
    """Median images/s of `iters` training steps after one warm-up, and the step seconds."""
    step = training_step_fn(precision, batch, threads)
    step()  # warm-up: allocations, oneDNN primitive creation
    seconds = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - t)
    return {
        "precision": precision,
        "batch": batch,
        "images_per_s": batch / statistics.median(seconds),
        "step_seconds": seconds,
    }


def run(batch: int = 8, iters: int = 3, threads: int | None = None) -> dict:
    """Every row this torch can run: {"torch": version, "threads": n, "rows": [...]}."""
    why = missing()
    if why:
        return {"skipped": why}
    import torch

    threads = threads or os.cpu_count() or 1
    precisions = ["float32"] + (["bfloat16"] if bf16_autocast_supported() else [])
    rows = [training_images_per_s(p, batch, iters, threads) for p in precisions]
    return {"torch": torch.__version__, "threads": threads, "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="Images per step.")
    parser.add_argument("--iters", type=int, default=3, help="Timed steps (median reported).")
    parser.add_argument("--threads", type=int, default=None, help="Default: all cores.")
    parser.add_argument("--json", default=None, help="Also write the result to this file.")
    args = parser.parse_args(argv)
    result = run(args.batch, args.iters, args.threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)
    if "skipped" in result:
        print(f"PyTorch reference skipped: {result['skipped']}")
        return 0
    print(
        f"pretrainedmodels BN-Inception 224, forward + backward + SGD momentum, batch "
        f"{args.batch}, torch {result['torch']}, {result['threads']} threads, "
        f"median of {args.iters}"
    )
    for row in result["rows"]:
        steps = ", ".join(f"{s:.2f}" for s in row["step_seconds"])
        print(f"{row['precision']:<9} {row['images_per_s']:8.2f} images/s  (steps: {steps} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
