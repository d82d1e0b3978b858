"""`python tests/distributed_entry.py OUT -- superglue ... [-- lama ...]`: the suite's command line
(`repro.cli.main`), one command after another, run in one process or launched data-parallel (`accelerate launch
--multi_gpu --num_processes 2 tests/distributed_entry.py ...`), recording per process what
tests/test_distributed.py compares:

- `OUT/weights-rank<R>-<I>.safetensors`: the trainable weights (prompt encoder, LM) of the last model command I
  built, as training left it (the best dev state restored);
- `OUT/writes-rank<R>.txt`: every file this process wrote through `repro.atomic` (one path a line).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    commands: list[list[str]] = []
    for arg in argv[1:]:
        if arg == "--":
            commands.append([])
        else:
            commands[-1].append(arg)
    out.mkdir(parents=True, exist_ok=True)

    from safetensors.torch import save_file

    import repro.atomic
    import repro.checkpoint
    import repro.experiment.engine as engine
    import repro.experiment.lama as lama
    import repro.experiment.superglue as superglue
    from repro.cli import main as cli_main

    rank = os.environ.get("RANK", "0")
    built = []
    writes = []

    def recording_build(*a, **k):
        scorer = build_scorer(*a, **k)
        built.append(scorer)
        return scorer

    def recording_write(path, write):
        writes.append(str(path))
        return atomic_write(path, write)

    build_scorer, atomic_write = engine.build_scorer, repro.atomic.atomic_write
    for module in (engine, superglue, lama):
        module.build_scorer = recording_build
    repro.atomic.atomic_write = recording_write
    repro.checkpoint.atomic_write = recording_write
    for i, args in enumerate(commands):
        built.clear()
        status = cli_main(args)
        if status:
            return status
        model = built[-1].model
        keep = {id(p) for ps in model.trainable_parameters().values() for p in ps}
        weights = {name: p.detach().float().contiguous().clone() for name, p in model.named_parameters() if id(p) in keep}
        save_file(weights, str(out / f"weights-rank{rank}-{i}.safetensors"))
    (out / f"writes-rank{rank}.txt").write_text("".join(f"{w}\n" for w in writes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
