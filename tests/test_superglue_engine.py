"""The SuperGLUE engine on tiny backbones and real data: a train-and-evaluate run per task on a masked and a
causal LM, every method, result files, same seed -> same numbers, resume, settings, scoring paths, errors."""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from repro.cli import main
from repro.errors import ConfigError, DataError
from repro.methods import get_method
from repro.core.model import PromptedLM
from repro.scorers import classification as classify
from repro.experiment import superglue as engine_module
from repro.experiment.superglue_config import PRESETS, SuperGLUEConfig
from repro.cli import parse_seeds
from repro.experiment.superglue import output_dir, run_superglue
from repro.scorers.base import ScorerContext, make_scorer
from repro.core.template import Template, TemplateError, word_token_ids
from repro.tasks.cb import Cb
from repro.tasks.registry import get_task, task_names

RESULT_KEYS = {"schema", "config", "backbone_name", "backbone_source", "seeds", "mean", "std", "eval_split",
               "eval_file", "n_eval", "n_eval_total", "partial", "notes", "scoring", "environment", "command",
               "git_commit", "wall_time_s"}


def whole_words(backbone, words=("Yes", "No", "Maybe")):
    """The tiny tokenizers learned too little text to hold the verbalizer words as one token each (real
    vocabularies do, and masked LMs need it): add them as whole words, wherever a space precedes them."""
    from tokenizers import AddedToken

    backbone.tokenizer.add_tokens([AddedToken(w, lstrip=True, single_word=True) for w in words])
    torch.manual_seed(0)
    backbone.model.resize_token_embeddings(len(backbone.tokenizer))
    return backbone


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; two threads on a busy 2-core machine wait on each other
    (measured 20x slower here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny(load_tiny):
    """`tiny(name)`: masked and Llama backbones with one-token verbalizer words; GPT-2 as trained, so that
    its words take several tokens (the causal multi-token path)."""
    def load(name: str):
        backbone = load_tiny(name)
        if name == "gpt2":  # tests/corpus.txt keeps "Yes" rare so that this holds
            assert len(word_token_ids(backbone.tokenizer, "Yes", space_before=True)) > 1
            return backbone
        return whole_words(backbone)
    return load


def tiny_config(task: str, method: str = "ptuning", **overrides) -> SuperGLUEConfig:
    train = {"max_steps": 2, "batch_size": 2, "eval_every_steps": 1, **overrides.pop("train", {})}
    config = SuperGLUEConfig(task=task, method=method, preset="cpu", seeds=overrides.pop("seeds", [42]), max_train=4,
                             max_dev=4, max_eval=8, dtype="float32", **overrides)
    config.train = replace(config.train, **train)
    return config


def run(config, shared_data, tmp_path, backbone, runs="runs"):
    return run_superglue(config, root=shared_data, results_root=tmp_path / "results", runs_root=tmp_path / runs,
                         backbone=backbone, quiet=True)


@pytest.mark.parametrize("name", ["bert", "gpt2"])
@pytest.mark.parametrize("task", ["boolq", "cb", "rte", "wic", "multirc"])
def test_train_and_evaluate_every_task(shared_data, tmp_path, tiny, name, task):
    backbone = tiny(name)
    results = run(tiny_config(task), shared_data, tmp_path, backbone)
    expected = [task] + (["axb", "axg"] if task == "rte" else [])
    assert list(results) == expected
    for evaluated in expected:
        path = tmp_path / "results" / "superglue" / "fewshot" / name / "ptuning" / f"{evaluated}.json"
        data = json.loads(path.read_text())
        assert set(data) >= RESULT_KEYS and data["schema"] == "repro.superglue/1"
        metrics = list(get_task(evaluated).metrics)
        assert list(data["mean"]) == metrics and list(data["seeds"]["42"]) == metrics
        assert all(0.0 <= data["mean"][m] <= 100.0 or m == "mcc" for m in metrics)
        cfg = data["config"]
        assert cfg["task"] == evaluated and cfg["setting"] == "fewshot" and cfg["method"] == "ptuning"
        assert cfg["backbone_kind"] == ("causal" if name == "gpt2" else "masked")
        assert cfg["seeds"] == [42] and cfg["pattern"] == "paper" and "[P]" in cfg["template"]
        assert data["n_eval"] <= 8 and data["partial"] is True and "subset" in data["notes"][0]
        assert data["training"]["42"]["steps"] == 2 and data["training"]["42"]["n_train"] == 4
        assert data["scoring"]["scoring"].startswith("summed log-prob" if name == "gpt2" else "logit of the")
        assert data["metric"]["module"] == "repro.evaluate_modules.super_glue" and data["metric"]["config"] == evaluated
    if task == "rte":
        axb = json.loads((tmp_path / "results/superglue/fewshot" / name / "ptuning/axb.json").read_text())
        assert axb["eval_split"] == "diagnostic" and axb["trained_on"] == "rte"


@pytest.mark.parametrize("name, task, method", [
    ("bert", "cb", "cls-ft"), ("gpt2", "rte", "cls-ft"), ("roberta", "rte", "mp-ft"),
    ("albert", "wic", "ptuning-frozen"), ("llama", "boolq", "mp"), ("llama", "cb", "mp"),
    ("llama", "copa", "cls-ft"), ("bert", "wsc", "cls-ft"),
])
def test_every_method_runs(shared_data, tmp_path, tiny, name, task, method):
    results = run(tiny_config(task, method), shared_data, tmp_path, tiny(name))
    data = results[task]
    assert list(data["mean"]) == list(get_task(task).metrics) and data["config"]["method"] == method
    if method == "cls-ft":
        assert data["config"]["pattern"] == "classifier" and "linear head" in data["scoring"]["scoring"]
        assert ("each candidate's input" in data["scoring"]["scoring"]) == (task == "copa")
    if method == "mp":
        assert "training" not in data and any("zero-shot" in n for n in data["notes"])
    if (name, task) == ("llama", "cb") and method == "mp":  # PET's pattern hides the premise from a causal LM
        assert data["config"]["pattern"] == "anchors" and any("invisible to a causal LM" in n for n in data["notes"])


def test_zero_shot_evaluates_once_whatever_the_seeds(shared_data, tmp_path, tiny):
    results = run(tiny_config("cb", "mp", seeds=[42, 43, 44]), shared_data, tmp_path, tiny("bert"))
    assert list(results["cb"]["seeds"]) == ["42"] and results["cb"]["std"] == {"acc": 0.0, "f1_macro": 0.0}
    assert results["cb"]["config"]["pattern"] == "pet"


def test_same_seed_same_numbers(shared_data, tmp_path, tiny):
    first = run(tiny_config("cb", seeds=[42, 43]), shared_data, tmp_path, tiny("gpt2"), runs="a")["cb"]
    second = run(tiny_config("cb", seeds=[42, 43]), shared_data, tmp_path, tiny("gpt2"), runs="b")["cb"]
    assert first["seeds"] == second["seeds"]
    history = [json.loads(p.read_text())["training"]["history"] for p in sorted((tmp_path / "a").rglob("seed*.json"))]
    again = [json.loads(p.read_text())["training"]["history"] for p in sorted((tmp_path / "b").rglob("seed*.json"))]
    assert history == again and len(history) == 2


def _count_computations(monkeypatch) -> list:
    calls = []
    original = engine_module.Engine._compute

    def counting(self, variant, seed):
        calls.append((self.run.train_task.name, variant, seed))
        return original(self, variant, seed)

    monkeypatch.setattr(engine_module.Engine, "_compute", counting)
    return calls


def test_finished_seeds_are_kept_and_reused_by_the_diagnostics(shared_data, tmp_path, tiny, monkeypatch):
    calls = _count_computations(monkeypatch)
    backbone = tiny("bert")
    one = run(tiny_config("rte", seeds=[42]), shared_data, tmp_path, backbone)
    two = run(tiny_config("rte", seeds=[42, 43]), shared_data, tmp_path, backbone)
    assert calls == [("rte", "paper", 42), ("rte", "paper", 43)]
    assert two["rte"]["seeds"]["42"] == one["rte"]["seeds"]["42"]
    axb = run(tiny_config("axb", seeds=[42, 43]), shared_data, tmp_path, backbone)
    assert len(calls) == 2 and axb["axb"]["seeds"] == two["axb"]["seeds"]
    assert axb["axb"]["config"]["task"] == "axb" and set(axb) == {"rte", "axb", "axg"}


def test_axb_alone_trains_on_rte(shared_data, tmp_path, tiny, monkeypatch):
    calls = _count_computations(monkeypatch)
    results = run(tiny_config("axb"), shared_data, tmp_path, tiny("gpt2"))
    assert calls == [("rte", "paper", 42)] and list(results["axb"]["mean"]) == ["mcc"]
    assert results["axb"]["training"]["42"]["n_train"] == 4


def _whole_and_resumed(shared_data, tmp_path, tiny, monkeypatch, method: str, whole_options: dict, options: dict):
    """WiC on the tiny BERT: the uncut run (`whole_options`), and a run with `options` cut at its third training
    batch then resumed (a new process's run into the same folder): (whole results, resumed results)."""
    whole = run(tiny_config("wic", method, **whole_options), shared_data, tmp_path, tiny("bert"), runs="whole")
    original = classify.VerbalizerScorer.loss
    calls = []

    def interrupted(self, items):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, items)

    monkeypatch.setattr(classify.VerbalizerScorer, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_config("wic", method, **options), shared_data, tmp_path, tiny("bert"), runs="cut")
    assert list((tmp_path / "cut").rglob("train_state.pt"))
    monkeypatch.setattr(classify.VerbalizerScorer, "loss", original)
    return whole, run(tiny_config("wic", method, **options), shared_data, tmp_path, tiny("bert"), runs="cut")


def test_an_interrupted_seed_resumes_with_the_same_numbers(shared_data, tmp_path, tiny, monkeypatch):
    config = dict(train={"max_steps": 4})
    whole, resumed = _whole_and_resumed(shared_data, tmp_path, tiny, monkeypatch, "ptuning-frozen", config, config)
    assert resumed["wic"]["training"]["42"]["resumed_from_step"] == 2
    assert resumed["wic"]["seeds"] == whole["wic"]["seeds"]
    assert not list((tmp_path / "cut").rglob("train_state.pt"))  # a finished seed drops its checkpoint


def test_timed_checkpoints_resume_a_fine_tuned_lm_mid_way_under_the_same_fingerprint(shared_data, tmp_path, tiny,
                                                                                      monkeypatch):
    """`--checkpoint-minutes X` on a method that trains the LM (checkpoints on, as `--checkpoint always` would turn
    them on): a seed cut between dev checks resumes from its last timed checkpoint and ends as the uncut run, whose
    settings (default checkpointing) it shares: neither the mode nor the cadence is part of the fingerprint or the
    recorded config."""
    train = {"max_steps": 4, "eval_every_steps": 4}  # one dev check, at the end: only timed checkpoints before it
    timed = dict(train=train, checkpoint_minutes=1e-9)  # a checkpoint after every step
    whole, resumed = _whole_and_resumed(shared_data, tmp_path, tiny, monkeypatch, "mp-ft", dict(train=train), timed)
    assert resumed["wic"]["training"]["42"]["resumed_from_step"] == 2
    assert resumed["wic"]["seeds"] == whole["wic"]["seeds"]
    assert resumed["wic"]["fingerprint"] == whole["wic"]["fingerprint"]
    assert "checkpoint_minutes" not in resumed["wic"]["config"]


def test_supervised_searches_the_ptuning_pattern_and_records_it(shared_data, tmp_path, tiny):
    results = run(tiny_config("cb", setting="supervised"), shared_data, tmp_path, tiny("gpt2"))
    data = results["cb"]
    search = data["pattern_search"]["scores"]
    assert list(search) == ["paper", "p2", "p4"] and data["config"]["pattern"] == max(search, key=search.get)
    assert any("early stopping and evaluation on the same SuperGLUE dev set" in n for n in data["notes"])
    assert any("pattern chosen on dev" in n for n in data["notes"])


def test_supervised_boolq_names_the_missing_training_file(shared_data, tmp_path, tiny):
    with pytest.raises(DataError, match=r"superglue/BoolQ/train.jsonl: missing from the data mirror itself.*"
                                         r"python -m repro data fetch"):
        run(tiny_config("boolq", setting="supervised"), shared_data, tmp_path, tiny("bert"))
    empty = tmp_path / "root"
    empty.mkdir()
    with pytest.raises(DataError, match=r"fewglue/CB/train.jsonl: file not found in the data root; fetch the data"):
        run(tiny_config("cb"), empty, tmp_path, tiny("bert"))


def test_a_causal_lm_cannot_use_a_pattern_that_hides_input(shared_data, tmp_path, tiny):
    with pytest.raises(ConfigError, match=r"pattern 'pet' of 'rte' puts \{premise\} after \[MASK\]"):
        run(tiny_config("rte", "mp", pattern="pet"), shared_data, tmp_path, tiny("gpt2"))
    with pytest.raises(ConfigError, match="has no ptuning pattern 'p3'; valid: paper, p2, p4"):
        run(tiny_config("rte", pattern="p3"), shared_data, tmp_path, tiny("gpt2"))


# ---------------------------------------------------------------------------------------- scoring paths
def _context(backbone, task, style="ptuning", variant="paper", method="ptuning"):
    template = task.template(style, variant)
    model = PromptedLM(backbone, None, train_backbone=False)
    return ScorerContext(task, get_method(method, "superglue"), model, template, variant, 128, 8)


class _LongWordCb(Cb):
    verbalizer = {"contradiction": "No", "entailment": "Yes", "neutral": "Perhaps entirely"}


def test_multi_token_words_are_summed_on_causal_lms_and_refused_on_masked(shared_data, tiny):
    task = _LongWordCb()
    examples = task.read(shared_data / task.files().fewshot_dev)[:6]
    scorer = make_scorer(_context(tiny("gpt2"), task, "manual", "anchors", "mp"))
    assert not scorer.single_token and len(scorer.word_ids[2]) > 1
    predicted = scorer.predict(examples)
    sums = scorer.label_scores(scorer.train_items(examples)).detach()
    assert predicted == [task.labels[i] for i in sums.argmax(dim=1).tolist()]
    with pytest.raises(ConfigError, match=r"verbalizer word\(s\) of several tokens.*'Perhaps entirely'"):
        make_scorer(_context(tiny("bert"), task, "manual", "anchors", "mp"))


def test_the_one_pass_causal_reading_equals_per_label_log_probs(shared_data, tiny):
    task = get_task("cb")
    examples = task.read(shared_data / task.files().fewshot_dev)[:8]
    backbone = tiny("llama")
    fast = make_scorer(_context(backbone, task))
    slow = make_scorer(_context(backbone, task))
    slow.single_token = False
    assert fast.single_token and fast.predict(examples) == slow.predict(examples)
    logits = fast.label_scores(fast.train_items(examples))
    log_probs = slow.label_scores(slow.train_items(examples))
    torch.testing.assert_close(torch.log_softmax(logits, -1), torch.log_softmax(log_probs, -1), atol=1e-4, rtol=1e-4)


def test_classifier_input_is_read_at_cls_or_the_last_token(shared_data, tiny):
    task = get_task("rte")
    ex = task.read(shared_data / task.files().fewshot_dev)[0]
    with pytest.raises(TemplateError, match="exactly one"):
        Template.parse(task.classifier_pattern)
    template = task.template("classifier")
    assert not template.has_target
    masked = template.render(tiny("bert").tokenizer, ex.values, causal=False)
    causal = template.render(tiny("gpt2").tokenizer, ex.values, causal=True)
    assert masked.target_positions == [0] and causal.target_positions == [len(causal.input_ids) - 1]


# ------------------------------------------------------------------------------------------ config, CLI
def test_config_round_trips_through_json_and_presets_follow_the_paper():
    config = SuperGLUEConfig(task="axb", method="mp-ft", preset="paper", seeds=[1, 2])
    again = SuperGLUEConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.fingerprint() == config.fingerprint()
    assert config.train_task == "rte" and config.train.max_steps == 3500 and config.max_length == 256
    assert SuperGLUEConfig(task="rte").fingerprint() == SuperGLUEConfig(task="axg").fingerprint()
    paper = PRESETS["paper"]
    few = paper.train_config(get_task("cb"), "fewshot")
    assert (few.lr_backbone, few.lr_encoder, few.weight_decay, few.batch_size, few.max_steps, few.eval_every_steps,
            few.patience, few.max_grad_norm, few.schedule) == (1e-5, 1e-4, 0.1, 16, 250, 20, 10, 1.0, "linear")
    assert paper.train_config(get_task("wic"), "supervised").max_epochs == 10
    assert paper.train_config(get_task("cb"), "supervised").max_epochs == 20
    assert paper.max_length_for(get_task("multirc")) == 512 and PRESETS["cpu"].max_eval_for(get_task("boolq")) == 500


def test_the_long_cpu_preset_changes_only_the_few_shot_schedule_and_has_its_own_folder():
    """`cpu-long` tests the schedule's length: the cpu recipe (learning rates, batch, bf16) with 5x its steps."""
    cpu, long = PRESETS["cpu"], PRESETS["cpu-long"]
    few_cpu, few_long = cpu.train_config(get_task("rte"), "fewshot"), long.train_config(get_task("rte"), "fewshot")
    assert (few_long.max_steps, few_long.eval_every_steps, few_long.patience) == (5 * few_cpu.max_steps, 20, 10)
    assert replace(few_long, max_steps=few_cpu.max_steps, eval_every_steps=few_cpu.eval_every_steps,
                   patience=few_cpu.patience) == few_cpu
    assert (long.dtype, long.max_length, long.supervised) == (cpu.dtype, cpu.max_length, cpu.supervised)
    config = SuperGLUEConfig(task="cb", method="ptuning", preset="cpu-long", seeds=[42])
    assert config.train.max_steps == 100 and config.variant == "cpu-long"
    assert config.fingerprint() != SuperGLUEConfig(task="cb", method="ptuning", preset="cpu", seeds=[42]).fingerprint()
    assert output_dir(Path("r"), "m", config) == Path("r/superglue/fewshot/m/ptuning-cpu-long")


@pytest.mark.parametrize("argv, message", [
    (["superglue", "--task", "nope"], "error: unknown task 'nope'; valid: boolq, cb"),
    (["superglue", "--task", "cb", "--method", "ft"], "error: unknown superglue method 'ft'; valid: cls-ft, mp, mp-ft"),
    (["superglue", "--task", "cb", "--setting", "full"], "error: unknown setting 'full'; valid: fewshot, supervised"),
    (["superglue", "--task", "cb", "--seeds", "x"], "error: --seeds takes a count or a comma-separated list"),
    (["superglue", "--task", "cb", "--seeds", "42"], "error: --seeds 42 asks for 42 seeds (42..83); for seed 42 alone write '42,'"),
    (["superglue", "--task", "cb", "--checkpoint-minutes", "-5"], "error: --checkpoint-minutes must be 0 (off) or"),
    (["superglue", "--task", "cb", "--checkpoint-minutes", "20", "--checkpoint", "never"],
     "error: --checkpoint-minutes writes mid-seed checkpoints, which --checkpoint never turns off"),
])
def test_cli_errors_are_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err


def test_seed_arguments():
    assert parse_seeds("3", 42) == [42, 43, 44] and parse_seeds("7,9", 42) == [7, 9] and parse_seeds("2", 34) == [34, 35]
    assert parse_seeds("10", 42) == list(range(42, 52)) and parse_seeds("42,", 34) == [42]
    assert parse_seeds(",".join(map(str, range(12))), 42) == list(range(12))  # a long list is fine when named
    with pytest.raises(ConfigError, match=r"--seeds 11 asks for 11 seeds \(42\.\.52\)"):
        parse_seeds("11", 42)


def test_committed_fewshot_results_cover_every_task_and_their_means_are_the_seed_means():
    """The committed few-shot run (REPRODUCING.md quotes it): every task and both methods, 3 seeds for
    P-tuning, mean and sample std recomputed from the per-seed metrics."""
    root = Path(__file__).resolve().parents[1] / "results/superglue/fewshot/smollm2-135m"
    expected = set(task_names())
    for method in ("mp", "ptuning"):
        assert {p.stem for p in (root / method).glob("*.json")} == expected
        for path in (root / method).glob("*.json"):
            result = json.loads(path.read_text())
            assert result["config"]["method"] == method and RESULT_KEYS <= set(result)
            seeds = list(result["seeds"].values())
            assert len(seeds) == (1 if method == "mp" else 3), path.name
            for key, mean in result["mean"].items():
                values = [s[key] for s in seeds]
                assert mean == pytest.approx(statistics.fmean(values)), (path.name, key)
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                assert result["std"][key] == pytest.approx(spread), (path.name, key)


def test_a_run_of_fewer_seeds_never_shrinks_the_result_and_threads_key_the_seeds(shared_data, tmp_path, tiny, capsys):
    """Issue 16: seeds 42,43 then seed 42 alone -> the result still holds both (same settings, same folder);
    another thread count is other settings: its seed is recomputed in its own resume folder, and says why."""
    backbone = tiny("bert")
    both = run(tiny_config("cb", seeds=[42, 43]), shared_data, tmp_path, backbone)["cb"]
    capsys.readouterr()
    one = run(tiny_config("cb", seeds=[42]), shared_data, tmp_path, backbone)["cb"]
    assert "reused 1 of 1 seeds" in capsys.readouterr().err
    assert one["seeds"] == both["seeds"] and one["mean"] == both["mean"]
    threads = torch.get_num_threads()
    try:
        run_superglue(tiny_config("cb", seeds=[42]), root=shared_data, results_root=tmp_path / "results",
                      runs_root=tmp_path / "runs", backbone=backbone, quiet=True, threads=threads + 1)
    finally:
        torch.set_num_threads(threads)
    assert f"threads {threads} -> {threads + 1}" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["ptuning", "ptuning-frozen"])
def test_encoder_none_through_the_cli(shared_data, tmp_path, tiny_dirs, monkeypatch, capsys, method):
    """`--encoder none`: bare prompt embeddings, trained with the LM (ptuning) or alone (ptuning-frozen, the joint
    seeds pass); the result records the encoder."""
    from repro.experiment import engine
    from repro.experiment import joint as joint_engine
    from repro.ptuning import PromptEncoderReparameterizationType

    built, real = [], engine.new_encoder

    def spying(*args):
        built.append(real(*args))
        built[-1].start = built[-1].embedding.weight.detach().clone()
        return built[-1]

    monkeypatch.setattr(engine, "new_encoder", spying)
    monkeypatch.setattr(joint_engine, "new_encoder", spying)
    code = main(["superglue", "--task", "cb", "--backbone", str(tiny_dirs["gpt2"]), "--method", method,
                 "--encoder", "none", "--seeds", "42,43", "--max-steps", "2", "--batch-size", "2", "--eval-every", "1",
                 "--max-train", "4", "--max-dev", "4", "--max-eval", "8", "--dtype", "float32", "--lr-encoder", "0.1",
                 "--data-root", str(shared_data), "--results", str(tmp_path / "results"),
                 "--runs", str(tmp_path / "runs"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert len(built) == 2  # one per seed
    for encoder in built:
        assert encoder.encoder_type is PromptEncoderReparameterizationType.NONE
        assert [name for name, _ in encoder.named_parameters()] == ["embedding.weight"]
        assert not torch.equal(encoder.embedding.weight, encoder.start)  # the prompts themselves were trained
    data = json.loads(next((tmp_path / "results" / "superglue" / "fewshot").glob(f"*/{method}-none/cb.json")).read_text())
    assert data["config"]["encoder"] == "none" and data["config"]["method"] == method
    assert all(t["steps"] == 2 for t in data["training"].values()) and list(data["seeds"]) == ["42", "43"]


@pytest.mark.parametrize("method", ["ptuning", "mp-ft"])
def test_every_dev_check_scores_what_a_fresh_copy_of_the_model_scores(shared_data, tmp_path, tiny, monkeypatch,
                                                                       method):
    """Selection reads dev checks taken between optimizer steps; whatever a model keeps between calls (sliced
    heads, prompt tables) must not outlive a step. Each check's candidate logits are compared with those of a
    deep copy of the scorer, which starts with empty caches."""
    import copy

    from repro.experiment import engine

    predict, head_logits = engine.predict, PromptedLM.hidden_candidate_logits
    logits: list[torch.Tensor] = []
    checks: list[tuple[torch.Tensor, torch.Tensor]] = []

    def recorded_head_logits(self, hidden, candidate_ids):
        logits.append(head_logits(self, hidden, candidate_ids))
        return logits[-1]

    def predict_and_compare(scorer, examples, desc):
        if desc != "dev":
            return predict(scorer, examples, desc)
        logits.clear()
        predictions = predict(scorer, examples, desc)
        ours = torch.cat(logits)
        logits.clear()
        assert predict(copy.deepcopy(scorer), examples, desc) == predictions
        checks.append((ours, torch.cat(logits)))
        return predictions

    monkeypatch.setattr(PromptedLM, "hidden_candidate_logits", recorded_head_logits)
    monkeypatch.setattr(engine, "predict", predict_and_compare)
    train = {"max_steps": 6, "eval_every_steps": 2, "lr_backbone": 1e-2, "lr_encoder": 1e-2, "patience": 99}
    config = tiny_config("cb", method, train=train)
    config.max_dev, config.max_train = 32, 16
    run(config, shared_data, tmp_path, tiny("llama"))
    assert len(checks) == 3 and not torch.allclose(checks[0][0], checks[-1][0])  # the model moved between checks
    for ours, fresh in checks:
        torch.testing.assert_close(ours, fresh, atol=1e-6, rtol=1e-6)
