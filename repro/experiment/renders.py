"""Rendered inputs cached across runs: a second run on the same data (another method or seed, a rerun) renders
nothing.

What is cached is what `Template.render` returns (token ids, token types, prompt and target positions, target ids,
tokens cut) for one *request*: an example's slot values, its target (ids, or a length), `max_length` and
causal, rendered by one template for one tokenizer. Three pieces:

- `RenderMemo`, the hook `Template.render` asks (`Template.memo`): a request it holds comes back as a fresh copy
  (callers set fields such as `prompt_offset` on what they get); any other is rendered (`render_uncached`) and
  kept. It answers only for the template and tokenizer it was made for, so a lookup can never return another
  template's or tokenizer's rendering; anything else goes straight to `render_uncached`.
- `CachedScorer`, what `cached(scorer)` returns (the engine wraps every scorer it builds: `engine.build_scorer`,
  `joint.build_joint`): before the scorer builds its training items or evaluation inputs of a list of examples,
  it fills the memo with `Dataset.map` over that list. The map's function asks the scorer's own rendering code
  for the whole list (`train_items`; `eval_inputs`, or a candidate scorer's `render`) and returns every request
  it made with its rendering as rows; `new_fingerprint` is the key below and the cache file
  `$REPRO_CACHE_DIR/renders/<key>.arrow`, so on a second run `datasets` finds the file, skips the function, and
  the memo is filled from it. The scorer then finds every request in the memo. (Scorers with neither method,
  the WSC span scorer and CLS-FT's labels head, render their evaluation inputs as before.)
- The key: the task, the role (train/eval), the examples' content (uid, values, label, candidates, group, meta:
  a changed data file changes it), the template (parts, truncation and spacing rules), the tokenizer (a hash of its full
  serialized form, special tokens and library versions), `causal`, `max_length`, the scorer's kind, options,
  fidelity choices and `describe()` (they decide which targets are asked for), and the code of
  `repro/core/template.py` (without docstrings). A file of another key is never read.

`REPRO_RENDER_CACHE=0` turns the cache off (every scorer is used as built).
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from repro.core.template import Rendered, Template
from repro.experiment.fingerprints import code_version
from repro.scorers.base import Scorer, ScorerContext
from repro.splits import quiet_datasets
from repro.tasks.base import Example

CACHE_SUBDIR = "renders"
ENV_SWITCH = "REPRO_RENDER_CACHE"
RENDER_CODE = ("repro/core/template.py",)
FORMAT = 1  # of the cache files; bump when their columns change
_COLUMNS = ("key", "input_ids", "token_type_ids", "prompt_positions", "target_positions", "target_ids", "truncated")


def cache_dir() -> Path:
    """`$REPRO_CACHE_DIR/renders` (default ~/.cache/ptuning-repro/renders)."""
    from repro.core.backbone import cache_root

    return cache_root() / CACHE_SUBDIR


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip() not in ("0", "false", "no", "off")


def _digest(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=16).hexdigest()


def _repr_digest(data: Any) -> str:
    """A hash of `repr(data)`: for the many small keys (a request, an example list), where JSON costs 10x more;
    two equal dicts written in another key order hash apart, which only costs a cache miss."""
    return hashlib.blake2b(repr(data).encode("utf-8"), digest_size=16).hexdigest()


def request_key(values: Any, *, causal: bool, target_ids: Optional[Sequence[int]], target_len: int,
                max_length: Optional[int]) -> str:
    """Everything of one `Template.render` call besides the template and the tokenizer."""
    targets = None if target_ids is None else tuple(int(t) for t in target_ids)
    return _repr_digest((sorted(values.items()), bool(causal), targets, int(target_len), max_length))


# ------------------------------------------------------------------------------------------ tokenizer identity
_TOKENIZERS: "weakref.WeakKeyDictionary[Any, tuple[Any, str]]" = weakref.WeakKeyDictionary()


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of what decides a tokenizer's encodings: its serialized form (the fast backend's JSON: vocabulary,
    merges, normalizer, pre-tokenizer, post-processor, added tokens; else its vocabulary), its special tokens,
    its class and the library versions. Recomputed when its size or special tokens change (tokens added)."""
    import tokenizers
    import transformers

    state = (len(tokenizer), json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str))
    known = _TOKENIZERS.get(tokenizer)
    if known is not None and known[0] == state:
        return known[1]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    digest = hashlib.sha256()
    for part in (type(tokenizer).__name__, transformers.__version__, tokenizers.__version__, state[1], body):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    _TOKENIZERS[tokenizer] = (state, digest.hexdigest()[:32])
    return _TOKENIZERS[tokenizer][1]


# ------------------------------------------------------------------------------------------------- the memo
# A kept rendering: (input_ids, token_type_ids, prompt_positions, target_positions, target_ids or None, truncated),
# lists the memo owns and never hands out (`thaw` copies them).
Frozen = tuple


def freeze(r: Rendered) -> Frozen:
    return (list(r.input_ids), list(r.token_type_ids), list(r.prompt_positions), list(r.target_positions),
            None if r.target_ids is None else list(r.target_ids), int(r.truncated))


def thaw(f: Frozen) -> Rendered:
    return Rendered(f[0][:], f[1][:], f[2][:], f[3][:], None if f[4] is None else f[4][:], f[5])


class RenderMemo:
    """Renderings of one template for one tokenizer, by request (see the module docstring)."""

    def __init__(self, template: Template, tokenizer) -> None:
        self.template = template
        self.tokenizer = tokenizer
        self.size = len(tokenizer)
        self.entries: dict[str, Frozen] = {}
        self.rendered = 0  # renderings made here (the requests it did not hold)
        self.recording: Optional[dict[str, None]] = None  # while filling: every request asked, in order

    def render(self, template: Template, tokenizer, values, *, causal: bool, target_ids=None, target_len: int = 1,
               max_length: Optional[int] = None) -> Rendered:
        def now() -> Rendered:
            return template.render_uncached(tokenizer, values, causal=causal, target_ids=target_ids,
                                            target_len=target_len, max_length=max_length)

        same = template is self.template or template == self.template
        if tokenizer is not self.tokenizer or not same or len(tokenizer) != self.size:
            return now()
        key = request_key(values, causal=causal, target_ids=target_ids, target_len=target_len, max_length=max_length)
        held = self.entries.get(key)
        if held is None:
            held = self.entries[key] = freeze(now())
            self.rendered += 1
        if self.recording is not None:
            self.recording[key] = None
        return thaw(held)

    def columns(self, keys: Sequence[str]) -> dict[str, list]:
        """The kept renderings of `keys` as the cache file's columns."""
        rows = [(k, *self.entries[k]) for k in keys]
        return {name: [r[i] for r in rows] for i, name in enumerate(_COLUMNS)}

    def load(self, columns: dict[str, list]) -> None:
        """Keep the renderings of a cache file's columns (`Dataset.to_dict`, whose lists are new objects)."""
        for key, *fields in zip(*(columns[c] for c in _COLUMNS)):
            self.entries.setdefault(key, tuple(fields))


def _features():
    import datasets

    ids = datasets.List(datasets.Value("int64"))
    return datasets.Features({"key": datasets.Value("string"), "input_ids": ids, "token_type_ids": ids,
                              "prompt_positions": ids, "target_positions": ids, "target_ids": ids,
                              "truncated": datasets.Value("int64")})


# ------------------------------------------------------------------------------------------------ the scorer
def examples_digest(examples: Sequence[Example]) -> str:
    """A hash of everything a scorer may read of the examples."""
    return _repr_digest([(ex.uid, ex.values, ex.label, ex.candidates, ex.group, ex.meta) for ex in examples])


class CachedScorer(Scorer):
    """A scorer whose renderings come from the memo, filled per list of examples from the disk cache (module
    docstring). Everything else is the wrapped scorer's."""

    def __init__(self, inner: Scorer, memo: RenderMemo) -> None:
        self.inner = inner
        self.memo = memo
        self._filled: dict[tuple[str, int], Sequence[Example]] = {}  # kept, so that an id stays its list's

    def __getattr__(self, name: str) -> Any:  # only for names the wrapper lacks
        if "inner" not in self.__dict__:  # a copy being built (copy.deepcopy, pickle) asks before `inner` is set
            raise AttributeError(name)
        return getattr(self.__dict__["inner"], name)

    def train_items(self, examples: Sequence[Example]) -> list[Any]:
        made = self.fill(examples, "train")  # on a first run, filling built them
        return made if made is not None else self.inner.train_items(examples)

    def loss(self, items: list[Any]):
        return self.inner.loss(items)

    def predict(self, examples: Sequence[Example], *, desc: str = "eval") -> list[Any]:
        self.fill(examples, "eval")
        return self.inner.predict(examples, desc=desc)

    def eval_inputs(self, examples: Sequence[Example]) -> list[Any]:
        made = self.fill(examples, "eval")  # the producer of "eval" is this very method where the scorer has it
        return made if made is not None else self.inner.eval_inputs(examples)  # type: ignore[attr-defined]

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def joint_key(self) -> Any:
        return self.inner.joint_key()

    # ------------------------------------------------------------------ filling the memo
    def _producer(self, role: str) -> Optional[Callable[[list[Example]], Any]]:
        """The scorer's own code that renders `role`'s inputs of a list of examples (None: it has none)."""
        inner = self.inner
        if role == "train":
            return inner.train_items
        if hasattr(inner, "eval_inputs"):
            return inner.eval_inputs  # type: ignore[attr-defined]
        if hasattr(inner, "render"):  # candidates, CLS-FT's choices: one rendering per candidate, as `predict`
            return lambda examples: [inner.render(ex) for ex in examples]  # type: ignore[attr-defined]
        return None

    def key(self, examples: Sequence[Example], role: str) -> str:
        ctx: ScorerContext = self.inner.ctx  # type: ignore[attr-defined]
        template = self.memo.template
        return _digest({
            "format": FORMAT, "role": role, "task": ctx.task.name, "scorer": type(self.inner).__qualname__,
            "examples": examples_digest(examples), "template": [repr(p) for p in template.parts],
            "truncation": template.truncation, "spacing": template.spacing, "tokenizer": tokenizer_fingerprint(ctx.tokenizer),
            "causal": ctx.causal, "max_length": ctx.max_length, "options": ctx.options,
            "fidelity": ctx.fidelity.to_dict(), "describe": self.inner.describe(),
            "render_code": code_version(RENDER_CODE),
        })

    def fill(self, examples: Sequence[Example], role: str) -> Optional[Any]:
        """Fill the memo with every rendering `role` needs for `examples`: from the cache file of their key, or
        made now by the scorer's own code inside `Dataset.map`, which writes that file. Returns what that code
        returned when it ran (the caller's answer, when the code is what the caller asked for), else None."""
        producer = self._producer(role)
        if producer is None or not examples or (role, id(examples)) in self._filled:
            return None
        self._filled[(role, id(examples))] = examples
        import datasets

        memo = self.memo
        chosen = list(examples)
        made_now: list[Any] = []

        def render_all(batch: dict[str, list]) -> dict[str, list]:
            memo.recording = {}
            try:
                made_now.append(producer([chosen[i] for i in batch["index"]]))
                asked = list(memo.recording)
            finally:
                memo.recording = None
            return memo.columns(asked)

        key = self.key(chosen, role)
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        with quiet_datasets():
            mapped = datasets.Dataset.from_dict({"index": list(range(len(chosen)))}).map(
                render_all, batched=True, batch_size=None, remove_columns=["index"], features=_features(),
                new_fingerprint=key, cache_file_name=str(folder / f"{key}.arrow"), load_from_cache_file=True)
        if made_now:
            return made_now[0]
        memo.load(mapped.to_dict())  # read from the cache file: the function did not run
        return None


def cached(scorer: Scorer) -> Scorer:
    """`scorer` with its renderings cached (module docstring); as is when the cache is off or it has no context."""
    ctx = getattr(scorer, "ctx", None)
    if not enabled() or not isinstance(ctx, ScorerContext):
        return scorer
    memo = RenderMemo(ctx.template, ctx.tokenizer)
    ctx.template = ctx.template.with_memo(memo)
    memo.template = ctx.template
    return CachedScorer(scorer, memo)
