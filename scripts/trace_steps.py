"""Run any `python -m repro` command and print, after every optimizer step, the loss, the gradient norm of what
it trains (before clipping) and the learning rate: the tool that showed why LAMA encoders stall (REPRODUCING.md,
"Stalled encoders"). Numbers are those of the plain command; only the printing is added.

    .venv/bin/python scripts/trace_steps.py lama --relations P30 --seeds 38, --sequential --batch-size 16 \\
        --max-grad-norm 0 --data-root ../shared/data --results /tmp/trace
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from repro.core import joint, training  # noqa: E402

_step = training.optimizer_step


def traced_step(state, config, optimizer, scheduler, params, loss, n_batches, total_steps):
    grads = [p.grad.detach().float() for p in params if p.grad is not None]
    norm = float(torch.sqrt(sum((g * g).sum() for g in grads))) if grads else 0.0
    due = _step(state, config, optimizer, scheduler, params, loss, n_batches, total_steps)
    print(f"step {state.step} loss {loss:.3f} grad-norm {norm:.3g} lr {optimizer.param_groups[0]['lr']:.3g}",
          file=sys.stderr, flush=True)
    return due


training.optimizer_step = traced_step
joint.optimizer_step = traced_step

if __name__ == "__main__":
    from repro.cli import main

    sys.argv[0] = str(Path(__file__).resolve().parents[1] / "repro" / "__main__.py")  # files record the plain command
    raise SystemExit(main(sys.argv[1:]))
