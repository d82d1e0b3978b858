"""Tiny random backbones with tokenizers trained offline on the suite's own text (tests/corpus.txt).

Each builder writes a Hugging Face model directory (config, weights, tokenizer), so tests also exercise
`load_backbone` on local directories. Masked: BERT (WordPiece), RoBERTa (byte-level BPE), ALBERT (unigram
SentencePiece). Causal: GPT-2 (byte-level BPE) and a Llama-style model (byte-level BPE with a BOS token).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SPECIALS_BERT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY = dict(hidden=32, layers=2, heads=2, intermediate=64, positions=512)
# Larger than the usual 0.02 so that a random tiny model reacts to its inputs (prompt tuning can move it).
INIT_RANGE = 0.3
CORPUS = Path(__file__).resolve().with_name("corpus.txt")


def corpus(path: Path = CORPUS) -> list[str]:
    """The lines of the suite's own training text (tests/corpus.txt), without comments and blank lines."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]


def _save(model, tokenizer, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _byte_bpe(texts: list[str], specials: list[str], vocab_size: int = 1200):
    from tokenizers import ByteLevelBPETokenizer

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=specials)
    vocab = trainer.get_vocab()
    merges = [tuple(pair) if isinstance(pair, list) else tuple(pair.split(" "))
              for pair in json.loads(trainer._tokenizer.to_str())["model"]["merges"]]
    return vocab, merges


def build_bert(directory: Path, texts: list[str]) -> Path:
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    trainer = BertWordPieceTokenizer(lowercase=False)
    trainer.train_from_iterator(texts, vocab_size=1500, min_frequency=1, special_tokens=SPECIALS_BERT)
    tokenizer = BertTokenizer(vocab=trainer.get_vocab(), do_lower_case=False)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=TINY["hidden"], num_hidden_layers=TINY["layers"],
        num_attention_heads=TINY["heads"], intermediate_size=TINY["intermediate"],
        max_position_embeddings=TINY["positions"], pad_token_id=tokenizer.pad_token_id, initializer_range=INIT_RANGE,
    )
    return _save(BertForMaskedLM(config), tokenizer, directory)


def build_roberta(directory: Path, texts: list[str]) -> Path:
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaTokenizer

    vocab, merges = _byte_bpe(texts, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer = RobertaTokenizer(vocab=vocab, merges=merges)
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=TINY["hidden"], num_hidden_layers=TINY["layers"],
        num_attention_heads=TINY["heads"], intermediate_size=TINY["intermediate"],
        max_position_embeddings=TINY["positions"] + 2, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, type_vocab_size=1, initializer_range=INIT_RANGE,
    )
    return _save(RobertaForMaskedLM(config), tokenizer, directory)


def build_albert(directory: Path, texts: list[str], extra_pieces: tuple[str, ...] = ()) -> Path:
    """`extra_pieces`: whole-word pieces added with the best score (a test that needs "▁yes" as one token)."""
    from tokenizers import SentencePieceUnigramTokenizer
    from transformers import AlbertConfig, AlbertForMaskedLM, AlbertTokenizer

    trainer = SentencePieceUnigramTokenizer()
    specials = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    trainer.train_from_iterator(texts, vocab_size=1500, special_tokens=specials, unk_token="<unk>")
    pieces = json.loads(trainer._tokenizer.to_str())["model"]["vocab"] + [[p, 0.0] for p in extra_pieces]
    tokenizer = AlbertTokenizer(vocab=[(p, s) for p, s in pieces], do_lower_case=True)
    torch.manual_seed(0)
    config = AlbertConfig(
        vocab_size=len(tokenizer), embedding_size=16, hidden_size=TINY["hidden"],
        num_hidden_layers=TINY["layers"], num_attention_heads=TINY["heads"],
        intermediate_size=TINY["intermediate"], max_position_embeddings=TINY["positions"],
        pad_token_id=tokenizer.pad_token_id, initializer_range=INIT_RANGE,
    )
    return _save(AlbertForMaskedLM(config), tokenizer, directory)


def build_gpt2(directory: Path, texts: list[str]) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    vocab, merges = _byte_bpe(texts, ["<|endoftext|>"])
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=TINY["hidden"], n_layer=TINY["layers"], n_head=TINY["heads"],
        n_positions=TINY["positions"], bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, initializer_range=INIT_RANGE,
    )
    return _save(GPT2LMHeadModel(config), tokenizer, directory)


def build_llama(directory: Path, texts: list[str]) -> Path:
    """Llama architecture with a byte-level BPE tokenizer that prepends BOS (like many causal LMs)."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab, merges = _byte_bpe(texts, ["<unk>", "<s>", "</s>"])
    from tokenizers import ByteLevelBPETokenizer

    raw = ByteLevelBPETokenizer(vocab, merges)
    raw.add_special_tokens(["<unk>", "<s>", "</s>"])
    backend: Tokenizer = raw._tokenizer
    backend.post_processor = TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=TINY["hidden"], intermediate_size=TINY["intermediate"],
        num_hidden_layers=TINY["layers"], num_attention_heads=TINY["heads"], num_key_value_heads=1,
        max_position_embeddings=TINY["positions"], bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, initializer_range=INIT_RANGE,
    )
    return _save(LlamaForCausalLM(config), tokenizer, directory)


BUILDERS = {
    "bert": build_bert,
    "roberta": build_roberta,
    "albert": build_albert,
    "gpt2": build_gpt2,
    "llama": build_llama,
}
MASKED = ("bert", "roberta", "albert")
CAUSAL = ("gpt2", "llama")
