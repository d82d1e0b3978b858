"""The data root: precedence, fetching from the mirror (sha256-verified, atomic, re-runs skip), the official
path against a local fake server, errors that name the fetch command, PARTIAL marks, jsonl errors."""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import shutil
import tarfile
import urllib.error
from pathlib import Path

import pytest

import repro.data as data
from repro.data import data_root, fetch, partial_status, read_jsonl, require
from repro.errors import ConfigError, DataError

P17_TEST = "lama/fact-retrieval/original/P17/test.jsonl"
P19_TEST = "lama/fact-retrieval/original/P19/test.jsonl"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(mirror: Path) -> dict[str, dict[str, str]]:
    with open(mirror / "MANIFEST.tsv", newline="") as handle:
        return {row["path"]: row for row in csv.DictReader(handle, delimiter="\t")}


def _run_cli(argv: list[str]) -> int:
    """The `data` subcommand alone (the full CLI imports the other subcommands' modules)."""
    parser = argparse.ArgumentParser()
    data.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _small_mirror(shared: Path, target: Path, rels: list[str]) -> Path:
    """A mirror with a few real files and the real manifest rows for them."""
    rows = _manifest(shared)
    for rel in rels:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / rel, target / rel)
    columns = list(next(iter(rows.values())))
    lines = ["\t".join(columns)] + ["\t".join(rows[rel][c] for c in columns) for rel in rels]
    (target / "MANIFEST.tsv").write_text("\n".join(lines) + "\n")
    shutil.copyfile(shared / "PARTIAL.tsv", target / "PARTIAL.tsv")
    return target


# ---------------------------------------------------------------------------------------- data root
def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("REPRO_DATA", raising=False)
    assert data_root() == Path(data.__file__).resolve().parents[1] / "data"
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "flag") == tmp_path / "flag"
    assert data_root(str(tmp_path / "flag")) == tmp_path / "flag"


# --------------------------------------------------------------------------------------- mirror fetch
def test_fetch_everything_from_the_mirror_then_rerun_skips(shared_data, tmp_path):
    root = tmp_path / "data"
    report = fetch(root, mirror=shared_data, progress=False)
    manifest = _manifest(shared_data)
    assert sorted(report.copied) == sorted(manifest) and report.skipped == []
    for rel, row in manifest.items():
        assert _sha(root / rel) == row["sha256"], rel
    assert (root / "MANIFEST.tsv").read_bytes() == (shared_data / "MANIFEST.tsv").read_bytes()
    assert (root / "PARTIAL.tsv").read_bytes() == (shared_data / "PARTIAL.tsv").read_bytes()
    assert not [p for p in root.rglob(".*") if p.is_file()], "no temp files left behind"

    again = fetch(root, mirror=shared_data, progress=False)
    assert again.copied == [] and sorted(again.skipped) == sorted(manifest)

    # a file damaged in the root is detected by its sha256 and rewritten; the others are skipped
    (root / P19_TEST).write_text("damaged\n")
    repaired = fetch(root, mirror=shared_data, benchmarks="lama", progress=False)
    assert repaired.copied == [P19_TEST]
    assert _sha(root / P19_TEST) == manifest[P19_TEST]["sha256"]
    assert fetch(root, mirror=shared_data, benchmarks=["lama"], force=True, progress=False).skipped == []


def test_fetch_only_a_subset(shared_data, tmp_path):
    root = tmp_path / "data"
    report = fetch(root, mirror=shared_data, benchmarks="fewglue,superglue", progress=False)
    expected = [p for p in _manifest(shared_data) if p.split("/")[0] in ("fewglue", "superglue", "licences")]
    assert sorted(report.copied) == sorted(expected)
    assert (root / "fewglue/CB/dev32.jsonl").is_file() and (root / "superglue/AX-g/AX-g.jsonl").is_file()
    assert not (root / "lama").exists()
    status = data.data_status(root, verify=True)
    assert not status.corrupt and len(status.absent) == 122 and all(p.startswith("lama/") for p in status.absent)


def test_corrupt_mirror_copy_is_detected(shared_data, tmp_path):
    rels = ["lama/relations.jsonl", "fewglue/CB/train.jsonl"]
    mirror = _small_mirror(shared_data, tmp_path / "mirror", rels)
    text = (mirror / "fewglue/CB/train.jsonl").read_text()
    (mirror / "fewglue/CB/train.jsonl").write_text(text.replace("e", "E", 1))
    root = tmp_path / "data"
    with pytest.raises(DataError) as err:
        fetch(root, mirror=mirror, progress=False)
    message = str(err.value)
    assert "fewglue/CB/train.jsonl" in message and "sha256" in message and "does not match" in message
    assert not (root / "fewglue/CB/train.jsonl").exists(), "a corrupt copy is never renamed into place"
    assert _sha(root / "lama/relations.jsonl") == _sha(shared_data / "lama/relations.jsonl")


def test_mirror_without_manifest_is_rejected(tmp_path):
    (tmp_path / "mirror").mkdir()
    with pytest.raises(DataError, match="not a data mirror"):
        fetch(tmp_path / "data", mirror=tmp_path / "mirror", progress=False)


def test_unknown_benchmark_lists_valid_ones(tmp_path, shared_data):
    with pytest.raises(ConfigError, match="valid: lama, fewglue, superglue"):
        fetch(tmp_path, mirror=shared_data, benchmarks="lama,glue")


# ------------------------------------------------------------------------------------- official path
def _lama_archive(shared: Path) -> bytes:
    """A tar.gz laid out like the authors' packed LAMA archive (data/LAMA/...), with a few real files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for rel in ("relations.jsonl", "29k-vocab.json", "fact-retrieval/original/P17/test.jsonl",
                    "fact-retrieval/original/P17/train.jsonl"):
            tar.add(shared / "lama" / rel, arcname=f"data/LAMA/{rel}")
        tar.add(shared / "README.md", arcname="data/LAMA/notes/README.md")  # not part of the layout
    return buffer.getvalue()


def test_official_fetch_unpacks_archive_and_reruns_skip(shared_data, tmp_path, monkeypatch):
    payload = _lama_archive(shared_data)
    lama_url = next(s.url for s in data.official_sources() if s.benchmark == "lama")
    calls: list[str] = []

    def fake_urlopen(request, timeout=None):
        calls.append(request.full_url)
        if request.full_url != lama_url:
            raise urllib.error.URLError("no network in this test")
        return io.BytesIO(payload)

    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen)
    root = tmp_path / "data"
    report = fetch(root, mirror=None, benchmarks="lama", progress=False)
    assert calls == [lama_url]
    assert sorted(report.copied) == ["lama/29k-vocab.json", "lama/fact-retrieval/original/P17/test.jsonl",
                                     "lama/fact-retrieval/original/P17/train.jsonl", "lama/relations.jsonl"]
    assert _sha(root / P17_TEST) == _sha(shared_data / P17_TEST)
    manifest = _manifest(root)
    assert manifest[P17_TEST]["source_repo"] == lama_url
    assert manifest[P17_TEST]["sha256"] == _sha(shared_data / P17_TEST)
    assert not (root / ".downloads").exists()

    again = fetch(root, mirror=None, benchmarks="lama", progress=False)
    assert calls == [lama_url] and again.copied == [] and len(again.skipped) == 4


def test_network_error_names_url_and_mirror_option(tmp_path, monkeypatch):
    def offline(request, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as err:
        fetch(tmp_path / "data", mirror=None, benchmarks="superglue", progress=False)
    message = str(err.value)
    assert "https://dl.fbaipublicfiles.com/glue/superglue/data/v2/combined.zip" in message
    assert "--mirror DIR" in message and "name resolution" in message


def test_archive_mappers_follow_the_official_layouts():
    superglue = data.official_sources()[1].mapper(
        ["combined/BoolQ/train.jsonl", "AX-b/AX-b.jsonl", "AX-g/AX-g.jsonl", "CB/val.jsonl", "README.txt"])
    assert superglue == {"combined/BoolQ/train.jsonl": "superglue/BoolQ/train.jsonl",
                         "AX-b/AX-b.jsonl": "superglue/AX-b/AX-b.jsonl",
                         "AX-g/AX-g.jsonl": "superglue/AX-g/AX-g.jsonl", "CB/val.jsonl": "superglue/CB/val.jsonl"}
    fewglue = data.official_sources()[2].mapper(
        ["fewglue-master/FewGLUE/WiC/train.jsonl", "fewglue-master/FewGLUE/WiC/unlabeled.jsonl",
         "fewglue-master/README.md"])
    assert fewglue == {"fewglue-master/FewGLUE/WiC/train.jsonl": "fewglue/WiC/train.jsonl",
                       "fewglue-master/FewGLUE/WiC/unlabeled.jsonl": "fewglue/WiC/unlabeled.jsonl"}
    with pytest.raises(DataError, match="ambiguous"):
        data.official_sources()[2].mapper(["a/FewGLUE/CB/train.jsonl", "b/FewGLUE/CB/train.jsonl"])
    dev32 = [s for s in data.official_sources() if s.target and s.target.endswith("dev32.jsonl")]
    assert len(dev32) == 8 and all(s.sha256 and len(s.sha256) == 64 for s in dev32)


def test_task_folders_and_dev32_checksums_come_from_the_task_declarations():
    """The fetched set is what it was when these lists were constants; a task registered with FewGLUE files
    and a pinned dev32 joins both lists (and the downloads), a diagnostic-like task only SuperGLUE's."""
    from repro.tasks.base import Task, TaskFiles
    from repro.tasks.registry import register_task, unregister_task

    assert sorted(data.superglue_tasks()) == sorted(
        ("BoolQ", "CB", "COPA", "MultiRC", "ReCoRD", "RTE", "WiC", "WSC", "AX-b", "AX-g"))
    assert sorted(data.fewglue_tasks()) == sorted(("BoolQ", "CB", "COPA", "MultiRC", "ReCoRD", "RTE", "WiC", "WSC"))
    assert sorted(data.dev32_sha256()) == sorted(data.fewglue_tasks())

    class Toy(Task):
        name, folder, dev32_sha256 = "toy", "Toy", "0" * 64

    class ToyDiagnostic(Task):
        name, folder = "toy-diag", "TOY-d"

        def files(self) -> TaskFiles:
            return TaskFiles(fewshot_train=None, fewshot_dev=None, eval="superglue/TOY-d/TOY-d.jsonl",
                             supervised_train=None)

    register_task(Toy)
    register_task(ToyDiagnostic)
    try:
        assert data.superglue_tasks()[-2:] == ("Toy", "TOY-d") and data.fewglue_tasks()[-1] == "Toy"
        assert "fewglue/Toy/dev32.jsonl" in {s.target for s in data.official_sources()}
        assert data.official_sources()[2].mapper(["FewGLUE/Toy/train.jsonl"]) == {
            "FewGLUE/Toy/train.jsonl": "fewglue/Toy/train.jsonl"}
    finally:
        unregister_task("toy")
        unregister_task("toy-diag")


def test_dev32_checksums_match_the_mirror(shared_data):
    for source in (s for s in data.official_sources() if s.target):
        assert _sha(shared_data / source.target) == source.sha256, source.target


# ------------------------------------------------------------------------------------ require, partial
def test_require_in_a_missing_root_names_the_fetch_command(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        require(root, "lama/relations.jsonl")
    message = str(err.value)
    assert str(root / "lama/relations.jsonl") in message and "does not exist" in message
    assert "bash scripts/fetch_data.sh" in message
    assert f"python -m repro data fetch --mirror ../shared/data --root {root}" in message


def test_require_a_file_missing_from_the_mirror_says_so(shared_data):
    with pytest.raises(DataError) as err:
        require(shared_data, "lama/fact-retrieval/original/P190/train.jsonl")
    message = str(err.value)
    assert "missing from the data mirror itself" in message and "no public copy under the snapshot size limit" in message
    assert require(shared_data, P17_TEST) == shared_data / P17_TEST


def test_partial_status(shared_data, tmp_path):
    assert partial_status(shared_data, P17_TEST).startswith("reconstructed: rebuilt from public LAMA subsets")
    assert partial_status(shared_data, "superglue/BoolQ/train.jsonl").startswith("missing: over the snapshot")
    assert partial_status(shared_data, P19_TEST) is None
    assert partial_status(tmp_path, P17_TEST) is None  # a root without PARTIAL.tsv


# ----------------------------------------------------------------------------------------------- jsonl
def test_read_jsonl_reports_file_line_and_field(shared_data, tmp_path):
    real = (shared_data / P17_TEST).read_text().splitlines()[:2]
    path = tmp_path / "test.jsonl"
    path.write_text(real[0] + "\n\n" + real[1] + "\n")
    rows = read_jsonl(path, required=("sub_label", "obj_label"))
    assert [r["obj_label"] for r in rows] == [json.loads(line)["obj_label"] for line in real]

    path.write_text(real[0] + "\n\n" + real[1][:-5] + "\n")
    with pytest.raises(DataError, match=rf"^{path}:3: invalid JSON"):
        read_jsonl(path)

    no_obj = json.loads(real[1])
    del no_obj["obj_label"]
    path.write_text(real[0] + "\n" + json.dumps(no_obj) + "\n")
    with pytest.raises(DataError) as err:
        read_jsonl(path, required=("sub_label", "obj_label"))
    assert str(err.value) == f"{path}:2: missing field 'obj_label'"

    path.write_text("[1, 2]\n")
    with pytest.raises(DataError, match=rf"{path}:1: expected a JSON object"):
        read_jsonl(path)
    with pytest.raises(DataError, match="file not found"):
        read_jsonl(tmp_path / "absent.jsonl")


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_fetch_uses_env_mirror_and_status(shared_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REPRO_DATA_MIRROR", str(shared_data))
    root = tmp_path / "data"
    assert _run_cli(["data", "fetch", "--root", str(root), "--only", "fewglue", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "24 file(s) written" in out and "partial or missing" in out  # 20 fewglue + 4 licences
    assert _run_cli(["data", "status", "--root", str(root)]) == 1  # lama and superglue not fetched
    out = capsys.readouterr().out
    assert "fewglue: 20/20 files present" in out and "lama: 0/122 files present" in out
    assert "missing (PARTIAL.tsv): lama/fact-retrieval/original/P47/dev.jsonl" in out
    assert "python -m repro data fetch --mirror ../shared/data" in out
    with pytest.raises(DataError, match="fetch_data.sh"):
        _run_cli(["data", "status", "--root", str(tmp_path / "empty")])
