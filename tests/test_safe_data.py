"""Fetching cannot be steered by a mirror: paths stay inside the data root, and every file must match the sha256
the project pins (`repro/data_pins.tsv`), whatever the mirror's own manifest says (issue 16, item 1)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import tarfile
import urllib.error
from pathlib import Path

import pytest

import repro.data as data
from repro.cli import main
from repro.errors import DataError
from repro.pins import inside, load_pins

RELATIONS = "lama/relations.jsonl"
CB_TRAIN = "fewglue/CB/train.jsonl"
P17_TRAIN = "lama/fact-retrieval/original/P17/train.jsonl"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(manifest: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with open(manifest, newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return list(reader.fieldnames or []), {row["path"]: row for row in reader}


def _mirror(shared: Path, target: Path, rels: list[str], extra: dict[str, bytes] = {}) -> Path:
    """A mirror with a few real files and their real manifest rows, plus `extra` files whose rows carry their
    true sha256 (so only the project's pins can tell them apart)."""
    columns, rows = _rows(shared / "MANIFEST.tsv")
    lines = ["\t".join(columns)]
    for rel in rels:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / rel, target / rel)
        lines.append("\t".join(rows[rel][c] for c in columns))
    for rel, content in extra.items():
        path = Path(os.path.normpath(target / rel))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        row = {**rows[RELATIONS], "path": rel, "bytes": str(len(content)), "sha256": hashlib.sha256(content).hexdigest()}
        lines.append("\t".join(row[c] for c in columns))
    (target / "MANIFEST.tsv").write_text("\n".join(lines) + "\n")
    return target


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_manifest_path_leaving_the_root_is_refused_before_anything_is_written(shared_data, tmp_path, capsys):
    mirror_dir = tmp_path / "m" / "mirror"
    mirror = _mirror(shared_data, mirror_dir, [RELATIONS], extra={"lama/../../../escaped.txt": b"planted\n"})
    root = tmp_path / "a" / "b" / "root"
    code = main(["data", "fetch", "--mirror", str(mirror), "--root", str(root), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert f"{mirror / 'MANIFEST.tsv'}:3:" in err and "lama/../../../escaped.txt" in err and "leaves the data root" in err
    assert not (tmp_path / "a" / "escaped.txt").exists()  # where the row points: root/lama/../../../ = tmp_path/a
    assert _files(root) == [], "a refused manifest writes nothing, not even the files before the bad row"


def test_tampered_mirror_with_a_matching_manifest_row_is_refused(shared_data, tmp_path):
    mirror = _mirror(shared_data, tmp_path / "mirror", [RELATIONS, CB_TRAIN])
    altered = (mirror / CB_TRAIN).read_text().replace("e", "E", 1)
    (mirror / CB_TRAIN).write_text(altered)
    columns, rows = _rows(mirror / "MANIFEST.tsv")  # the mirror's manifest is altered to match the altered file
    rows[CB_TRAIN].update(sha256=_sha(mirror / CB_TRAIN), bytes=str((mirror / CB_TRAIN).stat().st_size))
    (mirror / "MANIFEST.tsv").write_text("\n".join(["\t".join(columns)] + ["\t".join(r[c] for c in columns)
                                                                             for r in rows.values()]) + "\n")
    root = tmp_path / "data"
    with pytest.raises(DataError) as err:
        data.fetch(root, mirror=mirror, progress=False)
    message = str(err.value)
    assert CB_TRAIN in message and "pins" in message and "refused" in message
    assert not (root / CB_TRAIN).exists()
    assert _sha(root / RELATIONS) == _sha(shared_data / RELATIONS)  # the untouched file is still copied
    # the root's manifest records the pinned checksum, not the mirror's altered one
    assert _rows(root / "MANIFEST.tsv")[1][CB_TRAIN]["sha256"] == load_pins()[CB_TRAIN].sha256


def test_mirror_file_the_project_does_not_pin_is_refused(shared_data, tmp_path):
    mirror = _mirror(shared_data, tmp_path / "mirror", [RELATIONS], extra={"lama/extra.jsonl": b"{}\n"})
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"MANIFEST.tsv:3: 1 file\(s\) without a sha256 pinned.*lama/extra.jsonl"):
        data.fetch(root, mirror=mirror, benchmarks="lama", progress=False)
    assert _files(root) == []


def test_pins_are_the_hashes_of_the_reference_mirror(shared_data):
    pins = load_pins()
    _, rows = _rows(shared_data / "MANIFEST.tsv")
    assert set(pins) == set(rows)
    for rel, pin in pins.items():
        assert pin.sha256 == _sha(shared_data / rel), rel
        assert pin.bytes == (shared_data / rel).stat().st_size, rel
        assert pin.published == (rows[rel]["status"] != "reconstructed"), rel
    for task, sha in data.dev32_sha256().items():  # the tasks' own dev32 checksums agree with the pins
        assert pins[f"fewglue/{task}/dev32.jsonl"].sha256 == sha


def test_inside_refuses_absolute_paths_and_symlinks_out(tmp_path):
    root = tmp_path / "root"
    (root / "lama").mkdir(parents=True)
    assert inside(root, "lama/x.jsonl", "M:2") == (root / "lama/x.jsonl").resolve()
    (root / "lama" / "out").symlink_to(tmp_path)
    for bad in ("/etc/passwd", "lama/out/x.jsonl", "..", "."):
        with pytest.raises(DataError, match="M:2: path .* leaves the data root"):
            inside(root, bad, "M:2")


# ------------------------------------------------------------------------------------- official path
def _archive(shared: Path, replace: dict[str, bytes]) -> bytes:
    """A tar.gz laid out like the authors' LAMA archive, with real files and `replace` members (LAMA-relative)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for rel in ("relations.jsonl", "fact-retrieval/original/P17/train.jsonl"):
            if rel not in replace:
                tar.add(shared / "lama" / rel, arcname=f"data/LAMA/{rel}")
        for rel, content in replace.items():
            info = tarfile.TarInfo(f"data/LAMA/{rel}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _serve(monkeypatch, payload: bytes) -> None:
    lama_url = next(s.url for s in data.official_sources() if s.benchmark == "lama")

    def fake_urlopen(request, timeout=None):
        if request.full_url != lama_url:
            raise urllib.error.URLError("no network in this test")
        return io.BytesIO(payload)

    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen)


def test_official_archive_member_differing_from_its_pin_is_refused(shared_data, tmp_path, monkeypatch):
    altered = (shared_data / P17_TRAIN).read_bytes().replace(b"e", b"E", 1)
    _serve(monkeypatch, _archive(shared_data, {"fact-retrieval/original/P17/train.jsonl": altered}))
    root = tmp_path / "data"
    with pytest.raises(DataError) as err:
        data.fetch(root, benchmarks="lama", progress=False)
    assert P17_TRAIN in str(err.value) and "pins" in str(err.value)
    assert not (root / P17_TRAIN).exists()
    assert _sha(root / RELATIONS) == _sha(shared_data / RELATIONS)


def test_official_archive_member_without_a_pin_is_left_out_unless_allowed(shared_data, tmp_path, monkeypatch):
    unknown = "fact-retrieval/original/P9999/test.jsonl"
    _serve(monkeypatch, _archive(shared_data, {unknown: b'{"sub_label": "x"}\n'}))
    root = tmp_path / "data"
    report = data.fetch(root, benchmarks="lama", progress=False)
    assert report.unpinned == [f"lama/{unknown}"] and not (root / "lama" / unknown).exists()
    assert sorted(report.copied) == [P17_TRAIN, RELATIONS]
    assert "1 file(s) left out" in report.summary() and "--allow-unpinned" in report.summary()
    trusted = data.fetch(root, benchmarks="lama", progress=False, allow_unpinned=True, force=True)
    assert f"lama/{unknown}" in trusted.copied and (root / "lama" / unknown).is_file()

