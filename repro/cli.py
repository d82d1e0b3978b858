"""Command line: `python -m repro {lama,superglue,lama-table,superglue-table,report,data,sweep} ...`.

The run subcommands (`lama`, `superglue`) are built from their config dataclasses
(`repro.experiment.config.RunConfig` and its subclasses): every field is a flag with the field's help and
choices, the common fields from `RunConfig` and the run options from `repro.experiment.engine.Workspace` (data
root, results, runs, device, threads, quiet), and the training overrides from `TrainConfig`'s fields, so a flag has
the same name and meaning everywhere. Old spellings stay as aliases (`--seed`, `--root`, `--lr`).
The other subcommands register themselves (`register(subparsers)` in the module that does the work).

Before a run starts, `repro.validate` checks the config, the flags the method would ignore, the device, the
backbone source and the data (`_run`): nothing is loaded or written when any of them fails.
Errors a user can act on (`ReproError`) are printed as one line and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import Field, dataclass, fields, replace
from typing import Any, Callable, Optional, Sequence

from repro.core import distributed
from repro.errors import ConfigError, ReproError

REGISTERED = {
    "lama-table": "repro.report.lama_table",
    "superglue-table": "repro.report.superglue_table",
    "report": "repro.report.cli",
    "data": "repro.data",
    "sweep": "repro.sweep.cli",
}


@dataclass(frozen=True)
class RunCommand:
    """A run subcommand: its config class, its driver and how it prints its results."""

    config: str  # "module:Class"
    driver: str  # "module:function"
    printer: str  # "module:function"
    help: str


RUN_COMMANDS = {
    "lama": RunCommand("repro.experiment.lama:LamaConfig", "repro.experiment.lama:run_lama",
                       "repro.experiment.lama:format_summary", "LAMA knowledge probing (P@1), per relation"),
    "superglue": RunCommand("repro.experiment.superglue_config:SuperGLUEConfig",
                            "repro.experiment.superglue:run_superglue", "repro.experiment.superglue:format_results",
                            "SuperGLUE: few-shot and supervised, per task"),
}
SUBCOMMANDS = tuple(RUN_COMMANDS) + tuple(REGISTERED)

# TrainConfig fields a user may override per run, and their flags.
TRAIN_FLAGS = {
    "max_steps": "--max-steps", "max_epochs": "--epochs", "batch_size": "--batch-size",
    "eval_every_steps": "--eval-every", "lr_encoder": "--lr-encoder", "lr_backbone": "--lr-backbone",
    "warmup_ratio": "--warmup-ratio", "patience": "--patience", "max_grad_norm": "--max-grad-norm",
    "max_batch_tokens": "--max-batch-tokens",
}


def _load(spec: str) -> Any:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


# ------------------------------------------------------------------------------------------ field parsing
def parse_seeds(text: str, first: int) -> list[int]:
    """A count N (seeds first, first+1, ...) or a comma-separated list."""
    from repro.experiment.config import seeds_from_text

    return seeds_from_text(text, first, "--seeds")


def parse_options(items: Sequence[str], flags: str = "--scorer-option and --fidelity-item") -> dict[str, str]:
    """KEY=VALUE pairs (the values as text); `flags` names the flags in the error."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flags} take KEY=VALUE, got {item!r}")
        options[key.strip()] = value.strip()
    return options


def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConfigError(f"expected a comma-separated list of names, got {text!r}")
    return names


def _limit(text: str) -> Optional[int]:
    """A data limit on the command line: N, 0 for all, -1 for the preset's."""
    value = int(text)
    return None if value == 0 else value


def _flag(f: Field) -> str:
    return f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def _converter(f: Field, config_cls: type) -> tuple[Callable[[Any], Any], dict[str, Any]]:
    """(how to turn the parsed value into the field's value, extra add_argument kwargs) from the field's type."""
    kind = str(f.type).replace("typing.", "")
    if f.name == "seeds":
        return (lambda text: parse_seeds(text, config_cls.DEFAULT_SEEDS[0])), {"metavar": "N|S1,S2"}
    if kind.startswith("dict"):
        return parse_options, {"action": "append", "metavar": "KEY=VALUE"}
    if "list[str]" in kind:
        return _names, {"metavar": "A,B"}
    if kind == "bool":
        return bool, {"action": "store_true"}
    if f.name.startswith("max_") and "Optional[int]" in kind:
        return (lambda v: v), {"type": _limit, "metavar": "N"}
    if "int" in kind:
        return (lambda v: v), {"type": int}
    if kind == "float":
        return (lambda v: v), {"type": float, "metavar": "X"}
    return (lambda v: v), {}


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *, skip: Sequence[str] = (),
                            config_cls: Optional[type] = None) -> dict[str, Callable[[Any], Any]]:
    """One flag per field of `cls` (help and choices from the field metadata); returns field -> converter.
    Defaults are left to the dataclass: a flag not given is not passed."""
    converters = {}
    for f in fields(cls):
        if f.name in skip or f.name == "train":
            continue
        convert, extra = _converter(f, config_cls or cls)
        choices = f.metadata.get("choices")
        if f.name == "method" and hasattr(cls, "method_choices"):
            choices = cls.method_choices()
        if f.name == "preset" and hasattr(cls, "PRESETS"):
            choices = tuple(cls.PRESETS)
        if callable(choices):
            choices = choices()
        if choices is not None and extra.get("action") != "append":  # listed here, validated by the config
            extra["metavar"] = "{" + ",".join(choices) + "}"
        required = f.metadata.get("required", False)
        flags = [_flag(f), *f.metadata.get("aliases", ())]
        parser.add_argument(*flags, dest=f.name, help=f.metadata.get("help"), default=argparse.SUPPRESS,
                            required=required, **extra)
        converters[f.name] = convert
    return converters


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from repro.core.training import TrainConfig

    by_name = {f.name: f for f in fields(TrainConfig)}
    group = parser.add_argument_group("training overrides (default: the preset's)")
    for name, flag in TRAIN_FLAGS.items():
        kind = int if "int" in str(by_name[name].type) else float
        group.add_argument(flag, dest=f"train_{name}", type=kind, default=None, metavar="N" if kind is int else "X",
                           help=by_name[name].metadata["help"])
    group.add_argument("--lr", dest="train_lr", type=float, default=None,
                       help="learning rate of what the method trains first: the encoder, else the LM")


# --------------------------------------------------------------------------------------------- parsers
def _add_run_command(sub, name: str, command: RunCommand) -> None:
    from repro.experiment.engine import Workspace

    config_cls = _load(command.config)
    p = sub.add_parser(name, help=command.help, description=command.help)
    converters = add_dataclass_arguments(p, config_cls, skip=("backbone_kind",))
    if name == "lama":  # the old single-seed spelling
        p.add_argument("--seed", dest="seeds", type=lambda t: [int(t)], default=argparse.SUPPRESS,
                       help="alias of --seeds with one seed")
    _train_arguments(p)
    workspace = add_dataclass_arguments(p.add_argument_group("run options"), Workspace)
    p.set_defaults(func=lambda args: _run(args, command, config_cls, converters, workspace))


def _run(args: argparse.Namespace, command: RunCommand, config_cls: type, converters: dict,
         workspace: dict) -> int:
    """Build the config and the workspace from the parsed flags, run the driver, print its results."""
    from repro.validate import check_flags, check_train

    values = vars(args)
    given = {k: (v if isinstance(v, list) and k == "seeds" else converters[k](v))
             for k, v in values.items() if k in converters}
    config = config_cls(**given)
    config.train = replace(config.train, **_train_overrides(values, config))
    check_train(config.train)
    check_flags(config, _typed_flags(values, config_cls, given))
    where = {k: values[k] for k in workspace if k in values}  # the driver's Workspace.open runs the preflight
    results = _load(command.driver)(config, **where)
    if distributed.is_main():  # a data-parallel launch prints once
        print(_load(command.printer)(results))
    return 0


def _typed_flags(values: dict[str, Any], config_cls: type, given: dict[str, Any]) -> dict[str, str]:
    """Field name -> the flag the user typed (training overrides as `train_<name>`), for messages."""
    typed = {f.name: _flag(f) for f in fields(config_cls) if f.name in given}
    typed.update({f"train_{name}": flag for name, flag in TRAIN_FLAGS.items() if values.get(f"train_{name}") is not None})
    if values.get("train_lr") is not None:
        typed["train_lr"] = "--lr"
    return typed


def _train_overrides(values: dict[str, Any], config: Any) -> dict[str, Any]:
    overrides = {name: values[f"train_{name}"] for name in TRAIN_FLAGS if values.get(f"train_{name}") is not None}
    if overrides.get("max_grad_norm") == 0:  # `--max-grad-norm 0`: no clipping, where the preset clips
        overrides["max_grad_norm"] = None
    if values.get("train_lr") is not None:
        target = "lr_encoder" if config.method_entry.uses_encoder else "lr_backbone"
        overrides.setdefault(target, values["train_lr"])
    return overrides


class Parser(argparse.ArgumentParser):
    """Usage errors as one line (`error: ...`, exit 2) like every other error a user can act on."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """All subcommands, or only `only` (imports just the module that runs: `report` needs no torch)."""
    parser = Parser(prog="python -m repro", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name, command in RUN_COMMANDS.items():
        if only is None or name == only:
            _add_run_command(sub, name, command)
    for name, module_name in REGISTERED.items():
        if only is None or name == only:
            importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    try:
        args = build_parser(chosen).parse_args(argv)
        return int(args.func(args) or 0)
    except ReproError as err:
        print(f"error: {' '.join(str(err).splitlines())}", file=sys.stderr)  # one line, whatever the message holds
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished relations/seeds are kept and a rerun resumes", file=sys.stderr)
        return 130
