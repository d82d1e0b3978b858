"""The validation layer (repro/validate.py) through the command line: every bad input of issue 16 items 7-9 exits
with status 2, prints one line (`error: ...`) and writes nothing; valid input still passes.

Most cases fail before any model or data is touched; the ones about relations and data files run on a small
LAMA data root built here (two relations, one without a train file), so no benchmark mirror is needed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from repro.cli import main
from repro.core import backbone as backbone_module
from repro.core.backbone import locate_backbone
from repro.core.template import MAX_PROMPT_TOKENS, Template, TemplateError
from repro.data import read_jsonl
from repro.errors import ConfigError, DataError
from repro.experiment.engine import Workspace
from repro.experiment.lama import LamaConfig
from repro.validate import check_device, preflight

FACTS = [("Paris", "France"), ("Berlin", "Germany"), ("Rome", "Italy"), ("Madrid", "Spain")]


def _facts(path: Path, rows=FACTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"sub_label": s, "obj_label": o}) + "\n" for s, o in rows), encoding="utf-8")


@pytest.fixture
def lama_root(tmp_path) -> Path:
    """A LAMA data root: P17 with all three splits, P190 with no train file (as in the real mirror)."""
    root = tmp_path / "data"
    lama = root / "lama"
    facts = lama / "fact-retrieval" / "original"
    for split in ("train", "dev", "test"):
        _facts(facts / "P17" / f"{split}.jsonl")
    for split in ("dev", "test"):
        _facts(facts / "P190" / f"{split}.jsonl")
    (lama / "relations.jsonl").write_text(
        json.dumps({"relation": "P17", "template": "[X] is located in [Y] .", "label": "country"}) + "\n"
        + json.dumps({"relation": "P190", "template": "[X] and [Y] are twin cities .", "label": "twinned"}) + "\n")
    words = sorted({o for _, o in FACTS})
    (lama / "29k-vocab.json").write_text(json.dumps({"bert-base-cased": words, "gpt2-xl": ["Ġ" + w for w in words]}))
    return root


def _cli(capsys, tmp_path, *args: str) -> str:
    """Run the CLI, check the refusal's shape (status 2, one line, nothing written); return the line."""
    out = tmp_path / "out"
    code = main([*args, "--results", str(out / "results"), "--runs", str(out / "runs"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*")), "a refused run wrote files"
    return err


def _lama(tiny_dirs, lama_root, *args: str, backbone: str = "gpt2") -> list[str]:
    return ["lama", "--backbone", str(tiny_dirs.get(backbone, backbone)), "--data-root", str(lama_root),
            "--relations", "P17", *args]


# ------------------------------------------------------------------------------- item 7: accepted before
@pytest.mark.parametrize("args, message", [
    (["--max-steps", "0"], "max_steps (--max-steps) must be a positive number of optimizer steps, got 0"),
    (["--max-steps", "-5"], "max_steps (--max-steps) must be a positive number of optimizer steps, got -5"),
    (["--epochs", "0"], "max_epochs (--epochs) must be a positive number of epochs, got 0"),
    (["--lr", "-1"], "lr_encoder (--lr-encoder, --lr) must be a positive number, got -1.0"),
    (["--lr-encoder", "nan"], "lr_encoder (--lr-encoder, --lr) must be a positive number, got nan"),
    (["--batch-size", "0"], "batch_size must be positive, got 0"),
    (["--eval-every", "0"], "eval_every_steps (--eval-every) must be a positive number of steps, got 0"),
    (["--patience", "0"], "patience (--patience) must be a positive number of evaluations, got 0"),
    (["--warmup-ratio", "1.5"], "warmup_ratio (--warmup-ratio) must be a number in [0, 1), got 1.5"),
    (["--eval-batch-size", "-3"], "encoder_hidden and eval_batch_size must be 0 (default) or positive"),
    (["--seeds=-1,3"], "seeds must be in 0..4294967295, got [-1]"),
])
def test_numeric_ranges_are_refused(capsys, tmp_path, tiny_dirs, lama_root, args, message):
    assert message in _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, *args))


def test_vocab_key_must_be_one_of_the_file(capsys, tmp_path, tiny_dirs, lama_root):
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--method", "mp", "--vocab-key", "nosuchkey"))
    assert "unknown vocab key 'nosuchkey' for vocab 29k; valid: bert-base-cased, gpt2-xl" in err
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--vocab", "full", "--vocab-key", "gpt2-xl"))
    assert "vocab 'full' has none" in err


@pytest.mark.parametrize("method, args, ignored", [
    ("mp", ["--max-steps", "3", "--lr", "1e-3"], "--max-steps (nothing trains), --lr (nothing trains)"),
    ("mp", ["--max-dev", "8"], "--max-dev (nothing trains)"),
    ("mp", ["--encoder", "mlp"], "--encoder (no prompt encoder)"),
    ("mp", ["--encoder", "none"], "--encoder (no prompt encoder)"),
    ("ft", ["--lr-encoder", "1e-3"], "--lr-encoder (no prompt encoder)"),
    ("ptuning", ["--lr-backbone", "1e-5"], "--lr-backbone (the LM stays frozen)"),
])
def test_flags_the_method_ignores_are_refused(capsys, tmp_path, tiny_dirs, lama_root, method, args, ignored):
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--method", method, *args))
    assert f"lama method {method!r} ignores {ignored}; leave" in err


def test_encoder_none_takes_no_width_and_unknown_encoders_are_named(capsys, tmp_path, tiny_dirs, lama_root):
    """`--encoder none` has no hidden layer: a width is refused (it would read as used), for either benchmark."""
    no_width = ("encoder_hidden (--encoder-hidden) 64 sizes the lstm and mlp encoders; --encoder none trains the "
                "prompt embeddings directly and has no hidden layer: leave --encoder-hidden out")
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--encoder", "none", "--encoder-hidden", "64"))
    assert err == f"error: {no_width}"
    err = _cli(capsys, tmp_path, "superglue", "--task", "rte", "--backbone", str(tiny_dirs["gpt2"]),
               "--method", "ptuning-frozen", "--encoder", "none", "--encoder-hidden", "64")
    assert err == f"error: {no_width}"
    with pytest.raises(ConfigError, match="--encoder none trains the prompt embeddings directly"):
        LamaConfig(method="ptuning", encoder="none", encoder_hidden=64)  # outside the CLI too
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--encoder", "gru"))
    assert err == "error: unknown encoder 'gru'; valid: lstm, mlp, none"


def test_superglue_flags_the_method_ignores_are_refused(capsys, tmp_path, tiny_dirs):
    err = _cli(capsys, tmp_path, "superglue", "--task", "rte", "--backbone", str(tiny_dirs["gpt2"]),
               "--method", "cls-ft", "--pattern", "p2")
    assert "superglue method 'cls-ft' ignores --pattern (a classification head reads no pattern)" in err
    err = _cli(capsys, tmp_path, "superglue", "--task", "rte", "--backbone", str(tiny_dirs["gpt2"]),
               "--method", "ptuning-frozen", "--lr-backbone", "1e-5")
    assert "ignores --lr-backbone (the LM stays frozen); leave it out" in err


@pytest.mark.parametrize("spec, message", [
    ("(3,,3)", "item 2 is empty"),
    (None, "got None (NoneType)"),
    (42, "got 42 (int)"),
    ("[P*999999999] {sub} [MASK]", f"999999999 prompt tokens, more than the {MAX_PROMPT_TOKENS}"),
    ((999999999, "sub", "obj"), f"more than the {MAX_PROMPT_TOKENS}"),
    ("[P*600] {sub} [P*600] [MASK]", "1200 prompt tokens"),
    ("(3, sub, 3)", "needs exactly one [MASK] (target), found 0"),
])
def test_template_parse_refuses_bad_specs(spec, message):
    with pytest.raises(TemplateError, match=None) as err:
        Template.parse(spec)
    assert message in str(err.value)


@pytest.mark.parametrize("template, message", [
    ("(3,,3)", "item 2 is empty"),
    ("[P*999999999] {sub} [MASK]", "999999999 prompt tokens"),
    ("(0,sub,0,obj)", "has no prompt token; P-tuning trains"),
    ("[P*3] {obj} [MASK]", "must hold the subject slot once"),
    ("(3,sub,3,obj,3)", "prompt tokens after [MASK] are invisible to a causal LM"),  # gpt2: known before loading
])
def test_templates_are_refused_through_the_cli(capsys, tmp_path, tiny_dirs, lama_root, template, message):
    assert message in _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--template", template))


# ------------------------------------------------------------------------------ item 8: tracebacks before
def test_cuda_on_a_cpu_only_torch(capsys, tmp_path, tiny_dirs, lama_root, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--device", "cuda"))
    assert f"device 'cuda': this torch ({torch.__version__}) is built without CUDA" in err


@pytest.mark.parametrize("device, message", [
    ("tpu9", "unknown device 'tpu9'"),
    ("meta", "the suite runs on cpu, cuda, mps, xpu, not meta"),
    ("cuda:99", "device 'cuda:99'"),  # no CUDA build here, or fewer than 100 GPUs
])
def test_device_strings(capsys, tmp_path, tiny_dirs, lama_root, device, message):
    assert message in _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--device", device))


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


@pytest.mark.parametrize("files, message", [
    ({}, "is a directory but not a model directory: no config.json (it is empty)"),
    ({"notes.txt": "hello"}, "no config.json (it holds notes.txt)"),
    ({"config.json": '{"model_type": "gpt2",'}, "config.json is not valid JSON (line 1 column 23"),
    ({"config.json": '{"hidden_size": 8}'}, "config.json names no model_type"),
    ({"config.json": '{"model_type": "nosuchtype"}'}, "config.json: "),
])
def test_backbone_directories_that_hold_no_model(capsys, tmp_path, tiny_dirs, lama_root, files, message):
    directory = _write(tmp_path / "model", files)
    assert message in _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, backbone=str(directory)))


def test_backbone_directory_with_only_its_config(capsys, tmp_path, tiny_dirs, lama_root):
    directory = _write(tmp_path / "model", {"config.json": (tiny_dirs["gpt2"] / "config.json").read_text()})
    assert "no weights (one of model.safetensors" in _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root,
                                                                                   backbone=str(directory)))
    (directory / "model.safetensors").write_bytes((tiny_dirs["gpt2"] / "model.safetensors").read_bytes())
    assert "no tokenizer files" in _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, backbone=str(directory)))


def test_relations_list_without_names(capsys, tmp_path, tiny_dirs, lama_root):
    err = _cli(capsys, tmp_path, "lama", "--backbone", str(tiny_dirs["gpt2"]), "--data-root", str(lama_root),
               "--relations", ",")
    assert "expected a comma-separated list of names, got ','" in err
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--relations", "P17,P17"))
    assert "relation(s) P17 given more than once" in err
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--relations", "P999"))
    assert "unknown LAMA relation(s) P999; valid: P17, P190" in err


def test_training_only_relations_without_a_train_file(capsys, tmp_path, tiny_dirs, lama_root):
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--relations", "P190", "--method", "ptuning"))
    assert "none of the relations asked for has a train and a dev file (P190: train file not found)" in err


def test_empty_test_file_of_the_only_relation(capsys, tmp_path, tiny_dirs, lama_root):
    (lama_root / "lama" / "fact-retrieval" / "original" / "P17" / "test.jsonl").write_text("\n\n")
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--method", "mp"))
    assert "P17/test.jsonl: empty (no JSON line)" in err


def test_empty_superglue_val_file(capsys, tmp_path, tiny_dirs, shared_data):
    root = tmp_path / "data"
    (root / "fewglue").mkdir(parents=True)
    (root / "fewglue" / "RTE").symlink_to(shared_data / "fewglue" / "RTE")
    (root / "superglue" / "RTE").mkdir(parents=True)
    (root / "superglue" / "RTE" / "val.jsonl").write_text("")
    err = _cli(capsys, tmp_path, "superglue", "--task", "rte", "--method", "mp", "--backbone",
               str(tiny_dirs["gpt2"]), "--data-root", str(root))
    assert "superglue/RTE/val.jsonl: empty (no JSON line)" in err


# ---------------------------------------------------------------------------- item 9: misleading before
def test_non_utf8_byte_is_reported_at_its_line(tmp_path):
    for bad_line in (9, 900):
        path = tmp_path / f"bad{bad_line}.jsonl"
        lines = [json.dumps({"sub_label": f"subject {i}" * 3, "obj_label": "France"}).encode() for i in range(1, 1001)]
        lines[bad_line - 1] = lines[bad_line - 1].replace(b"France", b"Fr\xe9nce")
        path.write_bytes(b"\n".join(lines) + b"\n")
        with pytest.raises(DataError, match=rf"bad{bad_line}\.jsonl:{bad_line}: not UTF-8"):
            read_jsonl(path)


def test_non_utf8_fact_through_the_cli(capsys, tmp_path, tiny_dirs, lama_root):
    test_file = lama_root / "lama" / "fact-retrieval" / "original" / "P17" / "test.jsonl"
    _facts(test_file, FACTS * 3)
    lines = test_file.read_bytes().splitlines()
    lines[8] = lines[8].replace(b"France", b"Fr\xe9nce")
    test_file.write_bytes(b"\n".join(lines) + b"\n")
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--method", "mp"))
    assert "P17/test.jsonl:9: not UTF-8" in err


def test_broken_config_json_is_named_not_blamed_on_the_hub(capsys, tmp_path, tiny_dirs, lama_root):
    directory = _write(tmp_path / "model", {"config.json": "{broken"})
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, backbone=str(directory)))
    assert "config.json is not valid JSON" in err and "hub" not in err


def test_hub_id_offline_fails_at_once(monkeypatch, capsys, tmp_path, tiny_dirs, lama_root):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, backbone="nosuchorg/nosuchmodel"))
    assert time.perf_counter() - started < 5
    assert ("tried an embedded name: not one of gemma3-270m, smollm2-135m; a local directory:" in err
            and "a hub id: not in the local hub cache, and the hub is switched off" in err)


def test_hub_id_without_network_probes_once(monkeypatch):
    """HF_HUB_OFFLINE unset and no network: one short connection attempt, no retries."""
    calls = []

    def unreachable(address, timeout):
        calls.append((address, timeout))
        raise OSError(-2, "Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(backbone_module.socket, "create_connection", unreachable)
    with pytest.raises(ConfigError, match=r"the hub does not answer: huggingface\.co:443 unreachable"):
        locate_backbone("nosuchorg/nosuchmodel")
    assert len(calls) == 1 and calls[0][1] <= 5


def test_cached_hub_id_is_read_from_the_cache_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda repo, name: f"/cache/{repo}/{name}")
    found = locate_backbone("someorg/cached-model")
    assert found.kind == "hub" and found.local_files_only and found.short == "cached-model"


# ----------------------------------------------------------------------------------- valid input passes
def test_valid_input_passes_every_check(tiny_dirs, lama_root):
    config = LamaConfig(backbone=str(tiny_dirs["bert"]), method="ptuning", relations=["P17", "P190"],
                        template="(3, sub, 3, obj, 3)", vocab_key="bert-base-cased")
    source = preflight(config, Workspace(root=lama_root, device="cpu"))
    assert source.kind == "directory" and source.is_causal is False
    check_device("cpu")
    assert locate_backbone("smollm2-135m").kind == "embedded"


def test_template_with_a_method_that_reads_none(capsys, tmp_path, tiny_dirs, lama_root):
    err = _cli(capsys, tmp_path, *_lama(tiny_dirs, lama_root, "--method", "mp", "--template", "(3, sub, 3, obj)"))
    assert "--template sets P-tuning's template; LAMA method 'mp' reads the relation's manual prompt" in err


def test_a_refused_config_is_refused_outside_the_cli_too():
    with pytest.raises(ConfigError, match="has no prompt token"):
        LamaConfig(template="(0, sub, 0, obj)")
    with pytest.raises(ConfigError, match="--template sets P-tuning's template"):
        LamaConfig(method="mp", template="(3, sub, 3, obj)")
