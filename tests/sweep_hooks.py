"""Instrumentation for the Ray sweep tests, installed in every Ray worker at start
(`runtime_env={"worker_process_setup_hook": "sweep_hooks.install"}`): it counts driver runs per LAMA relation
and, when armed, kills its worker (os._exit, as a lost node would) right after a relation's first checkpoint.

Files, from environment variables the test sets: $SWEEP_TEST_RUNS (one line appended per run: the relations,
and "resumed" when a checkpoint was there at its start), $SWEEP_TEST_ARM (exists: crash the relation it names,
once), $SWEEP_TEST_FIRED (created when the crash happens: the next attempt runs normally).
"""

from __future__ import annotations

import os
from pathlib import Path

_current: dict[str, str] = {}


def install() -> None:
    from repro.core import training
    from repro.experiment import lama

    run_lama, save = lama.run_lama, training._save

    def counted_run_lama(config, **where):
        relations = ",".join(config.relations or ["all"])
        checkpoints = Path(where["runs_root"]) / "lama"
        resumed = any(checkpoints.rglob(f"{config.relations[0]}/*")) if config.relations else False
        with open(os.environ["SWEEP_TEST_RUNS"], "a") as out:
            out.write(f"{config.method} {relations}{' resumed' if resumed else ''}\n")
        _current["relation"] = relations
        return run_lama(config, **where)

    def crashing_save(*args, **kwargs):
        save(*args, **kwargs)
        arm, fired = Path(os.environ["SWEEP_TEST_ARM"]), Path(os.environ["SWEEP_TEST_FIRED"])
        if arm.is_file() and not fired.exists() and arm.read_text().strip() == _current.get("relation"):
            fired.write_text(str(os.getpid()))
            os._exit(1)

    lama.run_lama = counted_run_lama
    training._save = crashing_save
