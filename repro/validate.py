"""One validation layer: every check a run can make before a model loads, each failing as one `ConfigError`
(or `DataError`) line, which the CLI prints as `error: ...` and exits with status 2, nothing written.

Three stages, from cheapest to the ones that look at the machine and the files:

- `check_config(config)`: the config alone (called at the end of `RunConfig.__post_init__`, so a config built
  in Python is checked too): numeric ranges of the training settings (positive steps, epochs, batch sizes,
  evaluation interval, patience, learning rates; warm-up share in [0, 1)), seeds, encoder width (none with
  `--encoder none`, which has no hidden layer), and per benchmark the fields that only make sense together
  (LAMA: a P-tuning template with at least one prompt token, one target and only the {sub} slot; `--vocab-key`
  only with a vocabulary file).
- `check_flags(config, given)`: flags the user typed that the method would ignore are refused, not warned
  about: a run that silently drops `--max-steps` for MP reads as if it had trained. Zero-shot methods take
  no training flags, data limits, encoder or template; methods without a prompt encoder take no encoder
  flags; methods with a frozen LM no `--lr-backbone`; a classification head no `--pattern`.
- `preflight(config, workspace)`: the device string and whether this torch build has it, the backbone source
  (`repro.core.backbone.locate_backbone`: embedded name, model directory, hub id, each attempt named), and the
  data the run will read (LAMA: the relations, non-empty split files, at least one relation the method can
  train, the vocabulary key; SuperGLUE: the pattern variant), with templates checked against the backbone's
  kind where its config tells it without loading weights.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from repro.errors import ConfigError

if TYPE_CHECKING:  # config.py imports this module
    from repro.core.backbone import BackboneSource
    from repro.core.training import TrainConfig
    from repro.experiment.config import RunConfig

DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")  # what the suite moves a model to; torch knows more (meta, hpu, ...)
MAX_SEED = 2**32 - 1  # numpy's seed range (`training.set_seed` seeds numpy too)
MAX_ENCODER_HIDDEN = 16384  # far above any model's width: a typo (or 10**9) stops here, not at an allocation


# ------------------------------------------------------------------------------------------ the config
def _positive(value: Any, name: str, unit: str, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of {unit}, got {value!r}")


def _real(value: Any, name: str, *, low: float, high: float = math.inf, low_open: bool = True,
          high_open: bool = True, optional: bool = False) -> None:
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        bounds = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        if math.isinf(high):
            bounds = "a positive number" if low_open and low == 0 else f"a number >= {low:g}"
        raise ConfigError(f"{name} must be {bounds}, got {value!r}")


def check_train(train: "TrainConfig") -> None:
    """The numeric ranges of one training schedule (`--max-steps 0` trained by epochs, `--lr -1` ascended)."""
    _positive(train.max_steps, "max_steps (--max-steps)", "optimizer steps")
    _positive(train.max_epochs, "max_epochs (--epochs)", "epochs")
    _positive(train.batch_size, "batch_size (--batch-size)", "examples", optional=False)
    _positive(train.eval_every_steps, "eval_every_steps (--eval-every)", "steps")
    _positive(train.patience, "patience (--patience)", "evaluations")
    _real(train.lr_encoder, "lr_encoder (--lr-encoder, --lr)", low=0.0)
    _real(train.lr_backbone, "lr_backbone (--lr-backbone, --lr)", low=0.0)
    _real(train.warmup_ratio, "warmup_ratio (--warmup-ratio)", low=0.0, high=1.0, low_open=False)
    _real(train.weight_decay, "weight_decay", low=0.0, low_open=False)
    _real(train.encoder_weight_decay, "encoder_weight_decay", low=0.0, low_open=False, optional=True)
    _real(train.adam_eps, "adam_eps", low=0.0)
    _real(train.gamma, "gamma", low=0.0, high=1.0, high_open=False)
    _real(train.max_grad_norm, "max_grad_norm", low=0.0, optional=True)


def check_config(config: "RunConfig") -> None:
    """Everything the config alone decides (see the module docstring); the benchmark's own checks last."""
    check_train(config.train)
    bad_seeds = [s for s in config.seeds if not 0 <= s <= MAX_SEED]
    if bad_seeds:
        raise ConfigError(f"seeds must be in 0..{MAX_SEED}, got {bad_seeds}")
    if config.encoder_hidden > MAX_ENCODER_HIDDEN:
        raise ConfigError(f"encoder_hidden (--encoder-hidden) {config.encoder_hidden} is above {MAX_ENCODER_HIDDEN}")
    if config.encoder == "none" and config.encoder_hidden:  # refused, not ignored: the width would read as used
        raise ConfigError(f"encoder_hidden (--encoder-hidden) {config.encoder_hidden} sizes the lstm and mlp "
                          "encoders; --encoder none trains the prompt embeddings directly and has no hidden layer: "
                          "leave --encoder-hidden out")
    BENCHMARK_CHECKS.get(config.BENCHMARK, lambda _: None)(config)


def _check_lama(config: Any) -> None:
    from repro.tasks import lama as lama_data

    if config.relations is not None:
        if not config.relations or not all(isinstance(r, str) and r.strip() for r in config.relations):
            raise ConfigError(f"relations must be relation ids such as P17,P19 (or None for all), got {config.relations!r}")
        twice = sorted({r for r in config.relations if config.relations.count(r) > 1})
        if twice:
            raise ConfigError(f"relation(s) {', '.join(twice)} given more than once")
    if config.vocab_key is not None and config.vocab not in lama_data.VOCAB_FILES:
        raise ConfigError(f"--vocab-key selects a list of a vocabulary file ({', '.join(lama_data.VOCAB_FILES)}); "
                          f"vocab {config.vocab!r} has none")
    if config.template is not None:
        lama_template(config)


def lama_template(config: Any, *, causal: Optional[bool] = None):
    """The user's LAMA template, parsed and checked: P-tuning only, at least one prompt token, one target, the
    subject slot and no other; with `causal` known, nothing a causal LM cannot see."""
    from repro.core.template import Template
    from repro.methods import Style

    method = config.method_entry
    if method.style is not Style.PTUNING:
        reads = "the relation's manual prompt" if method.style is Style.MANUAL else "the subject then the object"
        raise ConfigError(f"--template sets P-tuning's template; LAMA method {method.name!r} reads {reads}")
    template = Template.parse(config.template, masked=not causal if causal is not None else True)
    if template.num_prompt_tokens == 0:
        raise ConfigError(f"template {config.template!r} has no prompt token; P-tuning trains the prompt tokens' "
                          "encoder, e.g. (3, sub, 3, obj)")
    if template.slots != ("sub",):
        raise ConfigError(f"template {config.template!r} must hold the subject slot once ({{sub}} or sub) and no "
                          f"other slot; it holds {list(template.slots) or 'none'}")
    if causal is not None:
        template.check_visible(causal=causal)
    return template


BENCHMARK_CHECKS: dict[str, Callable[[Any], None]] = {"lama": _check_lama}


# ---------------------------------------------------------------------------------------- typed flags
def ignored_flags(config: "RunConfig", given: Mapping[str, str]) -> list[str]:
    """`given`: field name (training fields as `train_<name>`, `train_lr` for --lr) -> the flag as typed. Returns
    "flag (why)" for each flag the method would ignore."""
    method = config.method_entry
    ignored: list[str] = []

    def refuse(names, why: str) -> None:
        ignored.extend(f"{given[n]} ({why})" for n in names if n in given)

    training = [n for n in given if n.startswith("train_")]
    if method.zero_shot:
        refuse([*training, "max_train", "max_dev", "checkpoint"], "nothing trains")
    if not method.uses_encoder:
        refuse(["encoder", "encoder_hidden", "template"], "no prompt encoder")
        if not method.zero_shot:
            refuse(["train_lr_encoder"], "no prompt encoder")
    elif not method.trains_backbone:
        refuse(["train_lr_backbone"], "the LM stays frozen")
    if method.style.value == "classifier":
        refuse(["pattern"], "a classification head reads no pattern")
    return ignored


def check_flags(config: "RunConfig", given: Mapping[str, str]) -> None:
    ignored = ignored_flags(config, given)
    if ignored:
        raise ConfigError(f"{config.BENCHMARK} method {config.method!r} ignores {', '.join(ignored)}; "
                          f"leave {'them' if len(ignored) > 1 else 'it'} out")


# ----------------------------------------------------------------------------------- machine and files
def check_device(device: str) -> None:
    """A torch device string this build and machine have: `--device tpu9` and `--device cuda` on a CPU-only
    torch fail here, not after the model is loaded."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"unknown device {device!r} ({str(err).splitlines()[0]}); "
                          f"valid: {', '.join(DEVICE_TYPES)}, with an index as in cuda:1") from None
    if parsed.type not in DEVICE_TYPES:
        raise ConfigError(f"device {device!r}: the suite runs on {', '.join(DEVICE_TYPES)}, not {parsed.type}")
    if parsed.type == "cpu":
        return
    if parsed.type == "cuda" and torch.version.cuda is None and torch.version.hip is None:
        raise ConfigError(f"device {device!r}: this torch ({torch.__version__}) is built without CUDA; use cpu or "
                          "install a CUDA build of torch")
    backend = getattr(torch, parsed.type, None) if parsed.type != "mps" else torch.backends.mps
    if backend is None or not backend.is_available():
        raise ConfigError(f"device {device!r}: this torch ({torch.__version__}) sees no {parsed.type} device here")
    count = backend.device_count() if hasattr(backend, "device_count") else 1
    if parsed.index is not None and parsed.index >= count:
        raise ConfigError(f"device {device!r}: only {count} {parsed.type} device(s), numbered from 0")


def preflight(config: "RunConfig", workspace: Any) -> "BackboneSource":
    """The checks that look at the machine and the files, in the order a user fixes them: device, backbone,
    data. Returns where the backbone comes from."""
    from repro.core.backbone import locate_backbone
    from repro.data import data_root

    check_device(workspace.device)
    source = locate_backbone(config.backbone)
    DATA_CHECKS.get(config.BENCHMARK, lambda *_: None)(config, data_root(workspace.root), source)
    return source


def _lama_data(config: Any, root, source: "BackboneSource") -> None:
    """Relations exist, their files are there and not empty, at least one can be trained (when the method
    trains), the vocabulary key is one of the file's; a user template fits the backbone's kind."""
    from repro.data import check_jsonl, require
    from repro.tasks import lama as lama_data

    relations = lama_data.get_relations(root, config.relations)
    method = config.method_entry
    trainable = []
    for relation in relations:
        check_jsonl(require(root, lama_data.relation_file(relation, "test")), required=lama_data.FACT_FIELDS)
        if method.trains and all(lama_data.has_split(root, relation, s) for s in ("train", "dev")):
            trainable.append(relation)
            for split in ("train", "dev"):
                check_jsonl(require(root, lama_data.relation_file(relation, split)), required=lama_data.FACT_FIELDS)
    if method.trains and not trainable:
        reasons = "; ".join(f"{r.id}: " + ", ".join(f"{s} {r.split_status(s) or 'file not found'}"
                                                    for s in ("train", "dev") if not lama_data.has_split(root, r, s))
                            for r in relations)
        raise ConfigError(f"LAMA method {method.name!r} trains, and none of the relations asked for has a train and a "
                          f"dev file ({reasons}); choose others, or method mp")
    if config.vocab_key is not None:
        keys = lama_data.load_vocab_file(root, config.vocab)
        if config.vocab_key not in keys:
            raise ConfigError(f"unknown vocab key {config.vocab_key!r} for vocab {config.vocab}; valid: {', '.join(keys)}")
    if config.template is not None and source.is_causal is not None:
        lama_template(config, causal=source.is_causal)


def _superglue_data(config: Any, root, source: "BackboneSource") -> None:
    """A named pattern exists for the method's style and fits it (the driver reads the data files before the
    model, and an empty one fails there by name)."""
    from repro.tasks.registry import get_task

    if config.pattern is not None:
        check_pattern(get_task(config.train_task), config.method_entry, config.pattern, causal=source.is_causal)


def check_pattern(task: Any, method: Any, variant: str, *, causal: Optional[bool], text: str = "suite") -> None:
    """A SuperGLUE pattern variant must exist for the method's style, hold prompt tokens where the method trains an
    encoder, and (causal LMs; `causal` None: not known yet) put no input after [MASK]. `text`: the fidelity item
    pattern_text (the authors' wording of a pattern where its task declares one)."""
    from repro.tasks.base import slots_after_target

    style = method.style.value
    if style == "classifier":
        return
    template = task.template(style, variant, text=text)
    hidden = slots_after_target(template)
    if causal and hidden:
        raise ConfigError(f"pattern {variant!r} of {task.name!r} puts {{{', '.join(hidden)}}} after [MASK], "
                          f"which a causal LM cannot see; choose another: {', '.join(task.pattern_variants(style))}")
    if method.uses_encoder and not template.num_prompt_tokens:
        raise ConfigError(f"method {method.name!r} needs prompt tokens; pattern {variant!r} has none")


DATA_CHECKS: dict[str, Callable[[Any, Any, Any], None]] = {"lama": _lama_data, "superglue": _superglue_data}
