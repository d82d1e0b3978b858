"""The suite's metrics as `evaluate` modules, loadable offline from inside the package.

    import evaluate
    from repro.evaluate_modules import module_path
    cb = evaluate.load(module_path("super_glue"), "cb")
    cb.compute(predictions=[0, 1], references=[0, 1])   # {'accuracy': 1.0, 'f1': 1.0}

`super_glue` takes the inputs and returns the keys and values (fractions, 0-1) that the Hugging Face hub's
`super_glue` metric documents for each subset, computed by the suite's own functions (`repro.metrics`, in
percent, divided by 100); AX-g also gives gender parity when the pair keys are passed. `lama` gives macro and
micro P@1 in percent, as the LAMA paper and the suite's result files report them. Each module has a version
(`VERSIONS`) that result files record next to the metric's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VERSIONS = {"super_glue": "1.0.0", "lama": "1.0.0"}


def module_path(name: str) -> str:
    """The folder of one module (what `evaluate.load` takes to load it without the hub)."""
    if name not in VERSIONS:
        raise KeyError(f"no evaluate module {name!r}; valid: {', '.join(VERSIONS)}")
    return str(HERE / name)


def describe(name: str, config: str) -> dict[str, str]:
    """What a result file records about the metric that scored it."""
    return {"module": f"repro.evaluate_modules.{name}", "config": config, "version": VERSIONS[name]}


def load(name: str, config: str, **kwargs: Any):
    """`evaluate.load` of a module of this package (imported lazily: evaluate is only needed here)."""
    import evaluate

    return evaluate.load(module_path(name), config, **kwargs)
