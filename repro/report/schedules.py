"""How a preset's schedule was chosen: the "schedules" section of REPRODUCING.md, generated from the candidate files
that `scripts/lama_schedule_search.py` writes (`<results>/lama/<backbone>/*schedule_search.json`), so the dev
scores the choice rests on are the recorded ones. Test scores never appear here: the choice is made on dev."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PATTERN = "lama/*/*schedule_search.json"


def schedules_section(results_dir: Path) -> str:
    parts = [_table(path, json.loads(path.read_text(encoding="utf-8")), Path(results_dir))
             for path in sorted(Path(results_dir).glob(PATTERN))]
    return "\n\n".join(parts) or "No schedule search recorded."


def _table(path: Path, search: dict[str, Any], results_dir: Path) -> str:
    seeds = ", ".join(str(s) for s in search.get("seeds", []))
    candidates = search.get("candidates", {})
    invocations = list(dict.fromkeys(c.get("invocation", search.get("command", "")) for c in candidates.values()))
    made_by = "; ".join(f"`{command}`" for command in invocations or [search.get("command", "")])
    rows = [
        f"`{path.relative_to(results_dir.parent).as_posix()}`: {search.get('what', '')}; seeds {seeds}; "
        f"CPU {search.get('cpu', 'unknown')}; {made_by}.",
        "",
        "| candidate | training settings unlike the preset's now | mean best dev P@1 (± std over seeds) | per seed | relations at dev "
        "P@1 0, per seed | recorded wall, all seeds | computed at |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    chosen = search.get("chosen")
    for name, c in candidates.items():
        settings = _settings(c)
        label = f"**{name} (chosen)**" if name == chosen else name
        per_seed = " / ".join(f"{v:.1f}" for v in c["per_seed"].values())
        zeros = " / ".join(str(len(v)) for v in c["dev_zero"].values())
        rows.append(f"| {label} | {settings} | {c['mean_best_dev_p_at_1']:.2f} ± {c['std_over_seeds']:.2f} | "
                    f"{per_seed} | {zeros} | {c['recorded_wall_s_all_seeds'] / 60:.0f} min | "
                    f"{', '.join(c.get('computed_at', []))} |")
    if search.get("rule"):
        rows += ["", f"Rule: {search['rule']}"]
    return "\n".join(rows)


def _settings(candidate: dict[str, Any]) -> str:
    """What the candidate trained with that the preset does not (now), as read from its files' configs."""
    differs = candidate["train_settings_unlike_the_preset_now"]
    return ", ".join(f"{k} {v}" for k, v in sorted(differs.items())) or "none (the preset now)"
