"""The methods the paper compares: which parameters train and which template family they use.

LAMA (Table 2): MP (manual prompt, zero-shot), FT (fine-tune the LM on subject -> object), MP+FT (fine-tune
with the manual prompt), P-tuning (frozen LM, one prompt encoder per relation).
SuperGLUE (Tables 3-5): CLS-FT (classification head, LM fine-tuned), MP (PET's pattern, zero-shot), MP-FT
(PET's pattern, LM fine-tuned), P-tuning (encoder and LM trained jointly, as the paper did on SuperGLUE),
P-tuning-frozen (only the encoder trains).
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.errors import ConfigError


@dataclass(frozen=True)
class Method:
    name: str
    paper_name: str
    template: str  # "manual" | "ptuning" | "bare" (subject then target) | "classifier"
    uses_encoder: bool
    trains_backbone: bool
    description: str

    @property
    def zero_shot(self) -> bool:
        return not self.uses_encoder and not self.trains_backbone


LAMA_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("mp", "MP", "manual", False, False, "the relation's manual prompt, zero-shot"),
        Method("ft", "FT", "bare", False, True, "fine-tune the LM to predict the object right after the subject"),
        Method("mp+ft", "MP+FT", "manual", False, True, "fine-tune the LM with the manual prompt"),
        Method("ptuning", "P-tuning", "ptuning", True, False, "frozen LM, one prompt encoder per relation"),
    )
}

SUPERGLUE_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("cls-ft", "CLS-FT", "classifier", False, True, "classification head on the LM, LM fine-tuned"),
        Method("mp", "PET-zero-shot", "manual", False, False, "PET's manual pattern, zero-shot"),
        Method("mp-ft", "PET-FT", "manual", False, True, "PET's manual pattern, LM fine-tuned"),
        Method("ptuning", "P-tuning", "ptuning", True, True, "prompt encoder and LM trained jointly"),
        Method("ptuning-frozen", "P-tuning (frozen LM)", "ptuning", True, False, "only the prompt encoder trains"),
    )
}


def get_method(name: str, family: dict[str, Method]) -> Method:
    if name not in family:
        raise ConfigError(f"unknown method {name!r}; valid: {', '.join(family)}")
    return family[name]
