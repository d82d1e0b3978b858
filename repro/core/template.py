"""Templates: where prompt tokens, text (anchors included), input slots and the target go.

Readable string form (one line; whitespace before an element is kept as a leading space of it):

    "[P*3] {sub} [P*3] [MASK] [P*3]"                       the paper's (3, sub, 3, obj, 3), masked LMs
    "{premise} Question: {hypothesis} ? [P] Answer: [MASK] ."  RTE, "?" and "Question:" are anchors
    "{passage:shorten} . Question: {question} ? [MASK]"      `:shorten` marks a part truncated first
    "{sub} was born in [MASK] ."                           a manual prompt (MP): no prompt token

Elements: `[P]` / `[P*n]` prompt tokens, `[MASK]` the target (exactly one), `[SEP]` the tokenizer's
separator, `{name}` / `{name:shorten}` input slots; anything else is literal text. A classifier input (CLS-FT)
has no [MASK]: parse it with `allow_no_target=True`; its one target position is then where a classification
head reads: the first position ([CLS] / <s>) for masked LMs, the last token for causal LMs. The paper's tuple form
`(3, sub, 3, obj, 3)` (also as the string "(3, sub, 3, obj, 3)" or the counts `(3, 3, 3)`) parses too.

Rendering for a tokenizer gives token ids, the prompt positions, and the target positions: the [MASK]
positions for masked LMs; for causal LMs the positions whose *next* token is a target token (everything
after the target is invisible to a causal LM and is dropped; prompt tokens there are an error).
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field, replace
from typing import Mapping, Optional, Sequence, Union

from repro.errors import ConfigError


class TemplateError(ConfigError):
    """A malformed template or an input that cannot be rendered; the message points at the bad part."""


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Slot:
    name: str
    shortenable: bool = False
    space_before: bool = False


@dataclass(frozen=True)
class Prompt:
    count: int


@dataclass(frozen=True)
class Target:
    space_before: bool = False


@dataclass(frozen=True)
class Sep:
    pass


Part = Union[Text, Slot, Prompt, Target, Sep]

_ELEMENT = re.compile(r"\[[^\[\]]*\]|\{[^{}]*\}")
_PROMPT = re.compile(r"^\[P(?:\*(\d+))?\]$")
_SLOT = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(?::(shorten))?\}$")
_TUPLE_STRING = re.compile(r"^\(\s*[\w\s,]+\)$")
# Prompt tokens one template may hold. The paper's templates have 3 to 16; the bound stops a typo such as
# [P*999999999] before it reaches an encoder allocation (2.3 TB for that one) or a model's position limit.
MAX_PROMPT_TOKENS = 1024
# How an input over `max_length` is shortened (fidelity item `truncation`): `longest` cuts the longest shortenable
# slot from its end (the suite's rule); `last` is PET's `PVP.truncate` / `_remove_last` (timoschick/pet
# pet/pvp.py, reused by THUDM/P-tuning PT-Fewshot): of the two segments (before / after [SEP]) the one holding more
# shortenable tokens (ties: the second) loses one token off the end of its LAST non-empty shortenable slot.
TRUNCATION_RULES = ("longest", "last")
# How the parts are spaced where a leading space changes the tokens (byte-level BPE: GPT-2, RoBERTa, SmolLM2;
# fidelity item `part_spacing`): `template` keeps the template's own whitespace (folded into the element after it;
# the first element has none); `pet` is PET's `PVP.encode` (timoschick/pet pet/pvp.py; THUDM/P-tuning
# PT-Fewshot/data_utils/task_pvps.py the same), which tokenizes each part alone with `add_prefix_space=True` on GPT-2
# tokenizers (RoBERTa's included): every text part and slot value gets one leading space, the first included, and a
# text part followed by whitespace ends in it (PET writes 'Question: ' before a slot: a lone space token), and the
# verbalizer words take their spaced form. Where a leading space changes nothing (SentencePiece, WordPiece) both are
# the same.
SPACING_RULES = ("template", "pet")


@dataclass(frozen=True)
class Template:
    """A parsed template: an ordered tuple of parts. Build with `Template.parse`."""

    parts: tuple[Part, ...]
    source: str = field(default="", compare=False)
    truncation: str = "longest"  # one of TRUNCATION_RULES; set per run by `with_truncation`
    spacing: str = "template"  # one of SPACING_RULES; set per run by `with_spacing`
    # What `render` asks first (None: nothing): an object with `render(template, tokenizer, values, **same keywords)`
    # that answers a request it has seen and renders the others with `render_uncached`
    # (`repro.experiment.renders.RenderMemo`: renderings cached across runs). Not part of the template's identity.
    memo: Optional[object] = field(default=None, compare=False, repr=False)

    def with_memo(self, memo: Optional[object]) -> "Template":
        """This template with `render` answered by `memo` first (see the `memo` field)."""
        return replace(self, memo=memo)

    def with_truncation(self, rule: str) -> "Template":
        """This template shortening over-long inputs by `rule` (TRUNCATION_RULES)."""
        if rule not in TRUNCATION_RULES:
            raise TemplateError(f"unknown truncation rule {rule!r}; valid: {', '.join(TRUNCATION_RULES)}")
        return replace(self, truncation=rule)

    def with_spacing(self, rule: str) -> "Template":
        """This template spacing its parts by `rule` (SPACING_RULES)."""
        if rule not in SPACING_RULES:
            raise TemplateError(f"unknown part spacing {rule!r}; valid: {', '.join(SPACING_RULES)}")
        return replace(self, spacing=rule)

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, spec: Union[str, Sequence, "Template"], *, masked: bool = True,
              allow_no_target: bool = False) -> "Template":
        """Parse the string form, the tuple form `(3, "sub", 3, "obj", 3)` or prompt counts `(3, 3, 3)`.

        `masked` only matters for the count form: the authors' code appends "." after [MASK] for masked LMs
        when no prompt tokens follow it. `allow_no_target` accepts a string without [MASK] (a classifier input).
        """
        if isinstance(spec, Template):
            return spec
        if isinstance(spec, str) and _TUPLE_STRING.match(spec.strip()):
            items = [s.strip() for s in spec.strip()[1:-1].split(",")]
            if items and not items[-1]:  # one trailing comma, as in Python's "(3,)"
                items.pop()
            if not all(items):
                at = items.index("") + 1
                raise TemplateError(f"template {spec!r}: item {at} is empty; write ints, sub, obj or text between "
                                    "the commas, e.g. (3, sub, 3, obj)")
            return cls.from_tuple([int(s) if s.isdigit() else s for s in items], masked=masked, source=spec)
        if isinstance(spec, str):
            return cls._parse_string(spec, allow_no_target=allow_no_target)
        if not isinstance(spec, (list, tuple)):
            raise TemplateError(
                f"a template is a string such as \"[P*3] {{sub}} [P*3] [MASK]\" or \"(3, sub, 3, obj)\", or a tuple "
                f"such as (3, 'sub', 3, 'obj'); got {spec!r} ({type(spec).__name__})")
        return cls.from_tuple(list(spec), masked=masked, source=repr(tuple(spec)))

    @classmethod
    def _parse_string(cls, spec: str, *, allow_no_target: bool = False) -> "Template":
        if "\n" in spec:
            raise TemplateError(f"template {spec!r}: must be one line")
        parts: list[Part] = []
        pos = 0
        for match in _ELEMENT.finditer(spec):
            cls._append_text(parts, spec, spec[pos : match.start()], pos)
            element = match.group(0)
            space_before = match.start() > 0 and spec[match.start() - 1].isspace()
            if parts and isinstance(parts[-1], Text):
                stripped = parts[-1].text.rstrip()
                parts[-1:] = [Text(stripped)] if stripped else []
            parts.append(cls._element(spec, element, match.start(), space_before))
            pos = match.end()
        cls._append_text(parts, spec, spec[pos:], pos)
        template = cls(tuple(parts), source=spec)
        template._validate(allow_no_target=allow_no_target)
        return template

    @staticmethod
    def _append_text(parts: list[Part], spec: str, text: str, offset: int) -> None:
        for bracket in "[]{}":
            if bracket in text:
                col = offset + text.index(bracket)
                raise TemplateError(f"template {spec!r}: unbalanced {bracket!r} at column {col + 1}")
        if text and (parts or text.strip()):
            text = text if parts else text.lstrip()
            parts.append(Text(text))

    @staticmethod
    def _element(spec: str, element: str, col: int, space_before: bool) -> Part:
        if element == "[MASK]":
            return Target(space_before=space_before)
        if element == "[SEP]":
            return Sep()
        prompt = _PROMPT.match(element)
        if prompt:
            count = int(prompt.group(1) or 1)
            if count <= 0:
                raise TemplateError(f"template {spec!r}: {element} at column {col + 1} needs a positive count")
            _check_prompt_count(count, f"template {spec!r}: {element} at column {col + 1}")
            return Prompt(count)
        slot = _SLOT.match(element)
        if slot:
            return Slot(slot.group(1), shortenable=bool(slot.group(2)), space_before=space_before)
        raise TemplateError(
            f"template {spec!r}: unknown element {element} at column {col + 1}; "
            "valid: [P], [P*n], [MASK], [SEP], {name}, {name:shorten}"
        )

    @classmethod
    def from_tuple(cls, items: Sequence, *, masked: bool = True, source: str = "") -> "Template":
        """The paper's form: ints are prompt-token runs, "sub"/"x" the subject slot, "obj"/"y" the target.

        Bare counts `(a, b, c)` mean `(a, sub, b, obj, c)`; `(a, b)` means `(a, sub, b, obj)`.
        """
        items = list(items)
        source = source or repr(tuple(items))
        if items and all(isinstance(i, int) for i in items):
            if len(items) not in (2, 3):
                raise TemplateError(f"template {source}: prompt counts take 2 or 3 numbers, got {len(items)}")
            counts = items + [0] * (3 - len(items))
            items = [counts[0], "sub", counts[1], "obj", counts[2]]
            if masked and counts[2] == 0:
                items.append(".")
        parts: list[Part] = []
        for item in items:
            space = bool(parts)
            if isinstance(item, bool) or (isinstance(item, int) and item < 0):
                raise TemplateError(f"template {source}: bad item {item!r}")
            if isinstance(item, int):
                _check_prompt_count(item, f"template {source}: item {item}")
                if item:
                    parts.append(Prompt(item))
            elif item in ("sub", "x", "X", "[X]"):
                parts.append(Slot("sub", space_before=space))
            elif item in ("obj", "y", "Y", "[Y]"):
                parts.append(Target(space_before=space))
            elif isinstance(item, str) and item:
                parts.append(Text((" " if space else "") + item))
            else:
                raise TemplateError(f"template {source}: bad item {item!r}; use ints, 'sub', 'obj' or text")
        template = cls(tuple(parts), source=source)
        template._validate()
        return template

    def _validate(self, *, allow_no_target: bool = False) -> None:
        targets = sum(isinstance(p, Target) for p in self.parts)
        if targets != 1 and not (allow_no_target and targets == 0):
            raise TemplateError(f"template {self.source!r}: needs exactly one [MASK] (target), found {targets}")
        _check_prompt_count(self.num_prompt_tokens, f"template {self.source!r}: prompt tokens in all")

    def check_visible(self, *, causal: bool) -> None:
        """Refuse what a causal LM cannot see (prompt tokens after the target) before any model is loaded;
        the same check `render` makes."""
        self._visible_parts(causal)

    # ------------------------------------------------------------------ properties
    @property
    def num_prompt_tokens(self) -> int:
        return sum(p.count for p in self.parts if isinstance(p, Prompt))

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parts if isinstance(p, Slot))

    @property
    def has_target(self) -> bool:
        return any(isinstance(p, Target) for p in self.parts)

    @property
    def target_space_before(self) -> bool:
        """Whether the target word follows whitespace (byte-level BPE then wants its 'Ġword' form); always under
        PET's spacing (its verbalizer ids are encoded with a prefix space)."""
        if self.spacing == "pet":
            return True
        return next((p.space_before for p in self.parts if isinstance(p, Target)), False)

    def is_prefix_only(self) -> bool:
        """True when all prompt tokens come first (PEFT can only prepend virtual tokens)."""
        seen_other = False
        for part in self.parts:
            if isinstance(part, Prompt) and seen_other:
                return False
            seen_other = seen_other or not isinstance(part, Prompt)
        return True

    def __str__(self) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, Text):
                out.append(part.text)
                continue
            space = " " if getattr(part, "space_before", bool(out)) and out else ""
            if isinstance(part, Prompt):
                out.append(f"{' ' if out else ''}[P{'*' + str(part.count) if part.count > 1 else ''}]")
            elif isinstance(part, Slot):
                out.append(f"{space}{{{part.name}{':shorten' if part.shortenable else ''}}}")
            elif isinstance(part, Target):
                out.append(f"{space}[MASK]")
            else:
                out.append(f"{' ' if out else ''}[SEP]")
        return "".join(out)

    # ------------------------------------------------------------------ rendering
    def render(self, tokenizer, values: Mapping[str, str], **options) -> "Rendered":
        """Token ids and positions for one example; `options` are `render_uncached`'s keywords (causal, target_ids,
        target_len, max_length). See the module docstring for the target convention. The memo, where the
        template has one, answers first."""
        if self.memo is not None:
            return self.memo.render(self, tokenizer, values, **options)  # type: ignore[attr-defined]
        return self.render_uncached(tokenizer, values, **options)

    def render_uncached(
        self,
        tokenizer,
        values: Mapping[str, str],
        *,
        causal: bool,
        target_ids: Optional[Sequence[int]] = None,
        target_len: int = 1,
        max_length: Optional[int] = None,
    ) -> "Rendered":
        """`render` itself: tokenize the example's parts, shorten, assemble (every rendering is made here)."""
        frame = special_token_frame(tokenizer, causal=causal)
        n_target = len(target_ids) if target_ids is not None else target_len
        if n_target <= 0:
            raise TemplateError(f"template {self.source!r}: the target needs at least one token")
        if causal and target_ids is None and n_target != 1:
            raise TemplateError("a causal LM needs the target token ids to score a multi-token target")
        parts = self._visible_parts(causal)

        pet_spacing = self.spacing == "pet" and leading_space_matters(tokenizer)
        pieces: list[list[int]] = []
        for i, part in enumerate(parts):
            if isinstance(part, Text):
                text = part.text
                if pet_spacing:
                    followed = i + 1 < len(parts) and getattr(parts[i + 1], "space_before", False)
                    text = " " + text.lstrip() + (" " if followed else "")
                pieces.append(_encode(tokenizer, text))
            elif isinstance(part, Slot):
                if part.name not in values:
                    raise TemplateError(f"template {self.source!r}: no value for slot {{{part.name}}}; got {sorted(values)}")
                text = str(values[part.name])
                space = " " if part.space_before or pet_spacing else ""
                pieces.append(_encode(tokenizer, space + text) if text else [])
            elif isinstance(part, Prompt):
                pieces.append([frame.placeholder_id] * part.count)
            elif isinstance(part, Target):
                if causal:
                    pieces.append(list(target_ids[:-1]) if target_ids is not None else [])
                else:
                    pieces.append([tokenizer.mask_token_id] * n_target)
            else:
                pieces.append([frame.sep_id])

        truncated = _truncate(pieces, parts, frame, max_length, self.source, self.truncation)

        input_ids: list[int] = list(frame.prefix)
        token_type_ids: list[int] = [0] * len(frame.prefix)
        prompt_positions: list[int] = []
        target_positions: list[int] = []
        segment = 0
        for part, ids in zip(parts, pieces):
            start = len(input_ids)
            if isinstance(part, Prompt):
                prompt_positions.extend(range(start, start + len(ids)))
            elif isinstance(part, Target):
                first = start - 1 if causal else start
                target_positions.extend(range(first, first + n_target))
            input_ids.extend(ids)
            token_type_ids.extend([segment] * len(ids))
            if isinstance(part, Sep):
                segment = 1
        input_ids.extend(frame.suffix)
        token_type_ids.extend([segment] * len(frame.suffix))
        if not self.has_target:
            target_positions = [len(input_ids) - 1 if causal else 0]
        if causal and target_positions[0] < 0:
            raise TemplateError(
                f"template {self.source!r}: a causal LM needs at least one token before the target "
                "(this tokenizer adds no BOS token)"
            )
        return Rendered(
            input_ids=input_ids,
            token_type_ids=token_type_ids,
            prompt_positions=prompt_positions,
            target_positions=target_positions,
            target_ids=list(target_ids) if target_ids is not None else None,
            truncated=truncated,
        )

    def _visible_parts(self, causal: bool) -> tuple[Part, ...]:
        if not causal or not self.has_target:
            return self.parts
        end = next(i for i, p in enumerate(self.parts) if isinstance(p, Target)) + 1
        if any(isinstance(p, Prompt) for p in self.parts[end:]):
            raise TemplateError(
                f"template {self.source!r}: prompt tokens after [MASK] are invisible to a causal LM; "
                "end the template at the target, e.g. (3, sub, 3, obj)"
            )
        return self.parts[:end]


def _check_prompt_count(count: int, what: str) -> None:
    if count > MAX_PROMPT_TOKENS:
        raise TemplateError(f"{what}: {count} prompt tokens, more than the {MAX_PROMPT_TOKENS} a template may hold")


@dataclass
class Rendered:
    """One rendered example. `prompt_positions[j]` holds prompt token j; targets are read at `target_positions`.
    `prompt_offset`: where this example's prompt tokens start in the model's prompt table (non-zero only when
    several units' encoders share one frozen LM, `repro.core.encoder_stack`)."""

    input_ids: list[int]
    token_type_ids: list[int]
    prompt_positions: list[int]
    target_positions: list[int]
    target_ids: Optional[list[int]]
    truncated: int = 0
    prompt_offset: int = 0


@dataclass(frozen=True)
class SpecialFrame:
    """The special tokens a tokenizer puts around one sequence, plus ids used for [P] and [SEP]."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    placeholder_id: int
    sep_id: int


_FRAMES: "weakref.WeakKeyDictionary[object, dict[bool, SpecialFrame]]" = weakref.WeakKeyDictionary()


def special_token_frame(tokenizer, *, causal: bool) -> SpecialFrame:
    """Find the special tokens around a single sequence by encoding a probe with and without them.

    Causal LMs keep only the prefix (e.g. a BOS token): a suffix such as EOS would sit after the target.
    """
    cached = _FRAMES.setdefault(tokenizer, {})
    if causal in cached:
        return cached[causal]
    probe = _encode(tokenizer, "a")
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    start = next((i for i in range(len(full) - len(probe) + 1) if full[i : i + len(probe)] == probe), None)
    if start is None:
        raise TemplateError(f"cannot locate the special tokens of tokenizer {type(tokenizer).__name__}")
    prefix, suffix = tuple(full[:start]), tuple(full[start + len(probe) :])
    placeholder = next(
        (i for i in (tokenizer.unk_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0
    )
    sep = next((i for i in (tokenizer.sep_token_id, tokenizer.eos_token_id) if i is not None), None)
    frame = SpecialFrame(prefix, () if causal else suffix, placeholder, sep if sep is not None else placeholder)
    cached[causal] = frame
    return frame


def leading_space_matters(tokenizer) -> bool:
    """Whether a leading space changes a word's tokens ('a' vs 'Ġa': byte-level BPE), where PET's spacing differs."""
    if tokenizer not in _SPACED:
        _SPACED[tokenizer] = _encode(tokenizer, " a") != _encode(tokenizer, "a")
    return _SPACED[tokenizer]


_SPACED: "weakref.WeakKeyDictionary[object, bool]" = weakref.WeakKeyDictionary()


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _truncate(pieces: list[list[int]], parts, frame: SpecialFrame, max_length: Optional[int], source: str,
              rule: str = "longest") -> int:
    """Shorten shortenable pieces from their end, one token at a time, until the input fits; `rule` picks the
    piece each token comes off (TRUNCATION_RULES)."""
    if max_length is None:
        return 0
    total = len(frame.prefix) + len(frame.suffix) + sum(len(p) for p in pieces)
    excess = total - max_length
    removed = 0
    while excess > 0:
        candidates = [i for i, part in enumerate(parts) if isinstance(part, Slot) and part.shortenable and pieces[i]]
        if not candidates:
            raise TemplateError(
                f"template {source!r}: the input needs {total - removed} tokens but max_length is {max_length} "
                "and no shortenable text is left (prompt, anchors and target are never truncated)"
            )
        pieces[_piece_to_cut(candidates, pieces, parts, rule)].pop()
        excess -= 1
        removed += 1
    return removed


def _piece_to_cut(candidates: list[int], pieces: list[list[int]], parts, rule: str) -> int:
    if rule == "longest":
        return max(candidates, key=lambda i: len(pieces[i]))
    # `last` (PET's PVP.truncate): the segment with more shortenable tokens, ties to the second; its last slot
    sep = next((i for i, part in enumerate(parts) if isinstance(part, Sep)), len(parts))
    first = [i for i in candidates if i < sep]
    second = [i for i in candidates if i > sep]
    segment = first if sum(len(pieces[i]) for i in first) > sum(len(pieces[i]) for i in second) else second
    return segment[-1]


def word_token_ids(tokenizer, word: str, *, space_before: bool) -> list[int]:
    """Token ids of a target word as it appears in a template (with its leading space where it has one)."""
    ids = _encode(tokenizer, (" " if space_before else "") + word)
    if not ids:
        raise TemplateError(f"word {word!r} encodes to no token")
    return ids
