"""The data root: where it is, how it is filled (local mirror or official sources), how files are read.

The data root (default `<project>/data`, git-ignored) mirrors the layout of `../shared/data`:
`lama/`, `superglue/<Task>/`, `fewglue/<Task>/`, plus `MANIFEST.tsv` (path, source, sha256, status per
file) and `PARTIAL.tsv` (files that are rebuilt or missing, with the reason). Nothing here reads the
mirror at import time; `fetch` copies from it (or downloads), verifying sha256 per file.

Validation: `iter_jsonl` is the validation layer, the one place a JSONL line is parsed by hand: a malformed
line must fail with `file:line` and the field, which the `datasets` json builder does not report. Reading is
`repro.splits`: once a file passes here, the json builder makes it a `datasets.Dataset` (cached by the file's
sha256), and the tasks take their rows from that Dataset.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Optional, Sequence, Union

from repro.atomic import atomic_write, atomic_write_text
from repro.errors import ConfigError, DataError
from repro.pins import PINS_FILE, Pin, inside, load_pins, write_pins

PathLike = Union[str, Path]

BENCHMARKS = ("lama", "fewglue", "superglue")
MANIFEST = "MANIFEST.tsv"
PARTIAL = "PARTIAL.tsv"
MANIFEST_COLUMNS = ("path", "source_repo", "source_path", "commit", "bytes", "lines", "sha256", "licence", "status", "note")
PARTIAL_COLUMNS = ("path", "status", "reason")
ENV_ROOT = "REPRO_DATA"
ENV_MIRROR = "REPRO_DATA_MIRROR"
MIRROR_HINT = "../shared/data"
_CHUNK = 1 << 20
LINE = "_line"  # the key under which `_read_tsv` keeps each row's line number


# ----------------------------------------------------------------------------------------------- the root
def project_root() -> Path:
    """The checkout: the parent of the `repro` package directory."""
    return Path(__file__).resolve().parents[1]


def data_root(explicit: Optional[PathLike] = None) -> Path:
    """The data root: an explicit path (a `--root` flag) > env `REPRO_DATA` > `<project root>/data`."""
    if explicit not in (None, ""):
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser()
    return project_root() / "data"


def fetch_command(root: Optional[PathLike] = None) -> str:
    """The commands that fill `root` (with `--root` when it is not the default root)."""
    extra = ""
    if root is not None and Path(root).resolve() != data_root().resolve():
        extra = f" --root {root}"
    return f"`bash scripts/fetch_data.sh{extra}` or `python -m repro data fetch --mirror {MIRROR_HINT}{extra}`"


# ------------------------------------------------------------------------------------ manifest, partial
def sha256_file(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_tsv(path: Path, key_columns: Sequence[str]) -> dict[str, dict[str, str]]:
    """Rows of a TSV keyed by `path`; a missing file is an empty table, a bad header a DataError."""
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in key_columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}:1: missing column(s) {', '.join(missing)} (found {reader.fieldnames})")
        rows: dict[str, dict[str, str]] = {}
        for line, row in enumerate(reader, start=2):
            if not row.get("path"):
                raise DataError(f"{path}:{line}: empty field 'path'")
            rows[row["path"]] = {k: (v or "") for k, v in row.items() if k is not None}
            rows[row["path"]][LINE] = str(line)  # for errors that name the row; not a column, never written
        return rows


def _write_tsv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    lines = ["\t".join(columns)]
    lines += ["\t".join(str(row.get(c, "")).replace("\t", " ").replace("\n", " ") for c in columns) for row in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_manifest(root_or_mirror: PathLike) -> dict[str, dict[str, str]]:
    """`MANIFEST.tsv` of a data root or mirror, keyed by relative path ({} when absent)."""
    return _read_tsv(Path(root_or_mirror) / MANIFEST, ("path", "sha256"))


def read_partial(root: PathLike) -> dict[str, tuple[str, str]]:
    """`PARTIAL.tsv` of a data root: relative path -> (status, reason); {} when absent."""
    rows = _read_tsv(Path(root) / PARTIAL, PARTIAL_COLUMNS)
    return {path: (row["status"], row["reason"]) for path, row in rows.items()}


def partial_status(root: PathLike, relpath: str) -> Optional[str]:
    """`"reconstructed: <reason>"` / `"missing: <reason>"` for a file listed in PARTIAL.tsv, else None.

    Every result computed on a listed file must carry this mark.
    """
    entry = read_partial(root).get(_relkey(relpath))
    return None if entry is None else f"{entry[0]}: {entry[1]}"


def _relkey(relpath: PathLike) -> str:
    return Path(relpath).as_posix()


# -------------------------------------------------------------------------------------------- require
def require(root: PathLike, relpath: PathLike, *, fetch_hint: bool = True) -> Path:
    """The path of `relpath` under the root, or a DataError that says what is missing and how to fetch it."""
    root = Path(root)
    path = root / relpath
    if path.is_file():
        return path
    partial = partial_status(root, str(relpath))
    if partial is not None and partial.startswith("missing"):
        raise DataError(
            f"{path}: missing from the data mirror itself ({partial}); it cannot be copied from the mirror. "
            "The official sources provide it: `python -m repro data fetch` without --mirror (needs network)"
        )
    if not root.is_dir():
        message = f"{path}: the data root {root} does not exist"
    else:
        message = f"{path}: file not found in the data root"
    if fetch_hint:
        message += f"; fetch the data with {fetch_command(root)}"
    raise DataError(message)


# ---------------------------------------------------------------------------------------------- jsonl
def iter_jsonl(path: PathLike, *, required: Sequence[str] = (), allow_empty: bool = True) -> Iterator[tuple[int, dict]]:
    """Yield `(line number, object)` for each non-empty line; errors name `file:line` (and the field).

    Lines are split on bytes and decoded one by one: a text-mode reader decodes ahead in 8 KiB chunks, so a
    bad byte would be reported at the line being read when its chunk was decoded (line 1 for a byte on line 9).
    `allow_empty=False`: a file without a single JSON line is a DataError (a benchmark split is never empty)."""
    path = Path(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a directory, not a jsonl file") from None
    found = False
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{lineno}: not UTF-8 ({err.reason} at byte {err.start + 1} of the line)") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: invalid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            for name in required:
                if name not in obj:
                    raise DataError(f"{path}:{lineno}: missing field {name!r}")
            found = True
            yield lineno, obj
    if not found and not allow_empty:
        raise DataError(f"{path}: empty (no JSON line); the file is truncated or was not fetched completely")


def read_jsonl(path: PathLike, *, required: Sequence[str] = (), allow_empty: bool = True) -> list[dict]:
    """All objects of a jsonl file (empty lines skipped); see `iter_jsonl` for the errors."""
    return [obj for _, obj in iter_jsonl(path, required=required, allow_empty=allow_empty)]


def check_jsonl(path: PathLike, *, required: Sequence[str] = ()) -> dict:
    """A cheap check of a whole jsonl file before any model loads: UTF-8 throughout (a bad byte named by its line),
    not empty, its first object parses with the required fields. Returns that object. Decoding every file of a
    LAMA run takes a fraction of a second; parsing them all as JSON would take seconds, so later lines' JSON is
    checked where the run reads them (with `file:line` too)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        lineno = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(f"{path}:{lineno}: not UTF-8 ({err.reason} at byte {column} of the line)") from None
    records = iter_jsonl(path, required=required, allow_empty=False)
    try:
        return next(records)[1]
    finally:
        records.close()


# ---------------------------------------------------------------------------------- official sources
# Official download locations. UNVERIFIED HERE: this machine reaches no network beyond PyPI, so none of these
# URLs was fetched; the archive layouts are handled by matching member paths (see the mappers), not fixed
# prefixes. sha256 is pinned where it is known: the dev32 files are the P-tuning authors' own
# (THUDM/P-tuning, FewGLUE_32dev), read at the commit whose sha256 the shared mirror's MANIFEST.tsv records.
# The three archives have no published checksum: the files they yield are checked against the project's pins
# (`repro.pins`); their hashes go into the root's MANIFEST.tsv so that a re-run skips what is already there and
# `data status --verify` detects later corruption.
_DEV32_COMMIT = "f4225d4d8003868b31ed659dfe9732a351ad42d9"
_DEV32_URL = "https://raw.githubusercontent.com/THUDM/P-tuning/{commit}/FewGLUE_32dev/{task}/dev32.jsonl"


def superglue_tasks() -> tuple[str, ...]:
    """SuperGLUE folders of every registered task (the diagnostics' own folders included), from the task
    declarations. The registry is imported here, not at module import: `tasks.base` imports this module."""
    from repro.tasks.registry import all_tasks

    return tuple(t.folder for t in all_tasks())


def fewglue_tasks() -> tuple[str, ...]:
    """FewGLUE folders: the registered tasks that have a few-shot training set (not the diagnostics)."""
    from repro.tasks.registry import all_tasks

    return tuple(t.folder for t in all_tasks() if t.files().fewshot_train is not None)


def dev32_sha256() -> dict[str, str]:
    """FewGLUE folder -> the pinned sha256 of the authors' dev32 file, for the tasks that declare one (a task
    without it has no dev32 among the authors' files, so there is nothing to download for it)."""
    from repro.tasks.registry import all_tasks

    return {t.folder: t.dev32_sha256 for t in all_tasks() if t.dev32_sha256}


@dataclass(frozen=True)
class Source:
    """One official download: an archive whose members map into the root, or a single file."""

    benchmark: str
    url: str
    licence: str
    mapper: Optional[Callable[[list[str]], dict[str, str]]] = None  # archive member names -> {member: relpath}
    target: Optional[str] = None  # single file: its relpath in the root
    sha256: Optional[str] = None  # of the downloaded bytes, where known


def _map_lama(members: list[str]) -> dict[str, str]:
    """The packed LAMA archive unpacks as `data/LAMA/...`: everything beside `relations.jsonl` goes to `lama/`."""
    anchors = [m for m in members if m.rsplit("/", 1)[-1] == "relations.jsonl"]
    if len(anchors) != 1:
        raise DataError(f"LAMA archive: expected one relations.jsonl, found {len(anchors)}")
    base = anchors[0][: -len("relations.jsonl")]
    wanted = re.compile(r"^(29k-vocab\.json|34k-vocab\.json|relations\.jsonl|fact-retrieval/original/P\d+/(train|dev|test)\.jsonl)$")
    return {m: "lama/" + m[len(base):] for m in members if m.startswith(base) and wanted.match(m[len(base):])}


def _map_by_task(prefix: str, tasks: Sequence[str], names: str) -> Callable[[list[str]], dict[str, str]]:
    pattern = re.compile(rf"(?:^|/)({'|'.join(map(re.escape, tasks))})/({names})\.jsonl$")

    def mapper(members: list[str]) -> dict[str, str]:
        mapping: dict[str, str] = {}
        seen: dict[str, str] = {}
        for member in members:
            match = pattern.search(member)
            if not match:
                continue
            relpath = f"{prefix}/{match.group(1)}/{match.group(2)}.jsonl"
            if relpath in seen:
                raise DataError(f"archive layout is ambiguous: {seen[relpath]} and {member} both map to {relpath}")
            seen[relpath] = member
            mapping[member] = relpath
        return mapping

    return mapper


def official_sources() -> tuple[Source, ...]:
    """The official downloads; the SuperGLUE/FewGLUE task folders and the dev32 checksums come from the
    task declarations (a function, not a constant: the registry can only be read after import)."""
    superglue, fewglue, dev32 = superglue_tasks(), fewglue_tasks(), dev32_sha256()
    return (
        # THUDM/P-tuning README: "The LAMA dataset ... [THU Cloud Drive]"; P-tune_LAMA.tar.gz -> data/LAMA/.
        Source("lama", "https://cloud.tsinghua.edu.cn/f/21b9dcf05cc44adfad25/?dl=1",
               "CC BY-NC 4.0 (LAMA T-REx); AutoPrompt train/dev", mapper=_map_lama),
        # SuperGLUE v2, all tasks + diagnostics: <Task>/{train,val,test}.jsonl, AX-b/AX-b.jsonl, AX-g/AX-g.jsonl.
        Source("superglue", "https://dl.fbaipublicfiles.com/glue/superglue/data/v2/combined.zip",
               "per task (see super.gluebenchmark.com)",
               mapper=_map_by_task("superglue", superglue, r"train|val|test|AX-b|AX-g")),
        # timoschick/fewglue: FewGLUE/<Task>/{train,unlabeled}.jsonl.
        Source("fewglue", "https://github.com/timoschick/fewglue/archive/refs/heads/master.zip",
               "as SuperGLUE (FewGLUE, timoschick/fewglue)",
               mapper=_map_by_task("fewglue", fewglue, r"train|unlabeled")),
    ) + tuple(
        Source("fewglue", _DEV32_URL.format(commit=_DEV32_COMMIT, task=task), "as SuperGLUE (THUDM/P-tuning FewGLUE_32dev)",
               target=f"fewglue/{task}/dev32.jsonl", sha256=sha)
        for task, sha in dev32.items()
    )


# ---------------------------------------------------------------------------------------------- fetch
@dataclass
class FetchReport:
    """What a fetch did, per relative path."""

    root: Path
    source: str
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unpinned: list[str] = field(default_factory=list)  # official files left out: no pinned sha256 to check

    def summary(self) -> str:
        text = (f"{self.root}: {len(self.copied)} file(s) written, {len(self.skipped)} already up to date "
                f"(sha256 verified) from {self.source}")
        if self.unpinned:
            text += (f"; {len(self.unpinned)} file(s) left out, no sha256 pinned by the project to check them "
                     f"(e.g. {self.unpinned[0]}; --allow-unpinned takes them on trust)")
        return text


def _benchmarks(benchmarks: Union[str, Sequence[str]]) -> tuple[str, ...]:
    names = [b.strip() for b in (benchmarks.split(",") if isinstance(benchmarks, str) else benchmarks) if b.strip()]
    unknown = [b for b in names if b not in BENCHMARKS]
    if unknown or not names:
        raise ConfigError(f"unknown benchmark(s) {', '.join(unknown) or '(none)'}; valid: {', '.join(BENCHMARKS)}")
    return tuple(dict.fromkeys(names))


def fetch(
    root: PathLike,
    *,
    mirror: Optional[PathLike] = None,
    benchmarks: Union[str, Sequence[str]] = BENCHMARKS,
    force: bool = False,
    progress: bool = True,
    allow_unpinned: bool = False,
) -> FetchReport:
    """Fill the data root from a local mirror (copy + sha256 check) or, without one, the official sources.

    Every path must stay inside the root and every file must match the sha256 the project pins for it
    (`repro/data_pins.tsv`), never only the mirror's own manifest. Mirror: every MANIFEST.tsv file of the chosen
    benchmarks (plus `licences/`) is copied; the root gets the mirror's MANIFEST.tsv rows with the pinned
    checksums, and its PARTIAL.tsv. Official: the archives of `official_sources()` are downloaded and unpacked
    into the same layout (files without a usable pin left out unless `allow_unpinned`), and the root's
    MANIFEST.tsv records each file's URL and sha256. Either way, files whose sha256 already matches are skipped unless `force`,
    and each file is written atomically (temp file + rename), so an interrupted fetch leaves no torn file.
    """
    root = Path(root)  # created by the first file written (`atomic_write`): a refused fetch leaves no trace
    chosen = _benchmarks(benchmarks)
    if mirror is not None:
        return _fetch_mirror(root, Path(mirror), chosen, force=force, progress=progress)
    return _fetch_official(root, chosen, force=force, progress=progress, allow_unpinned=allow_unpinned)


def _bar(items, total: int, desc: str, progress: bool):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return items
    return tqdm(items, total=total, desc=desc, unit="file", disable=not progress, leave=False)


def _copy_verified(src: Path, dest: Path, expected: Optional[str]) -> str:
    """Copy `src` to `dest` atomically, hashing on the way; a sha256 mismatch leaves `dest` untouched."""
    digest = hashlib.sha256()

    def write(tmp: Path) -> None:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            for chunk in iter(lambda: fin.read(_CHUNK), b""):
                digest.update(chunk)
                fout.write(chunk)
        if expected and digest.hexdigest() != expected:
            raise DataError(f"{src}: sha256 {digest.hexdigest()} does not match the sha256 the project pins "
                            f"({expected}, {PINS_FILE.name}); the copy is corrupt or was changed, refused")

    atomic_write(dest, write)
    return digest.hexdigest()


def _fetch_mirror(root: Path, mirror: Path, chosen: tuple[str, ...], *, force: bool, progress: bool) -> FetchReport:
    """Copy the chosen benchmarks' files listed in the mirror's manifest. Every row is checked before anything is
    written: its path must stay inside the root (and the mirror) and be one the project pins; each copy must
    match the pinned sha256 (`repro/data_pins.tsv`), whatever the mirror's manifest says."""
    if not (mirror / MANIFEST).is_file():
        raise DataError(f"{mirror}: not a data mirror (no {MANIFEST}); expected a directory laid out like {MIRROR_HINT}")
    manifest = read_manifest(mirror)
    pins = load_pins()
    for rel, row in manifest.items():
        where = f"{mirror / MANIFEST}:{row[LINE]}"
        inside(root, rel, where)
        inside(mirror, rel, where)
    wanted = [p for p in manifest if p.split("/", 1)[0] in chosen or p.startswith("licences/")]
    unpinned = [p for p in wanted if p not in pins]
    if unpinned:
        raise DataError(f"{mirror / MANIFEST}:{manifest[unpinned[0]][LINE]}: {len(unpinned)} file(s) without a sha256 "
                        f"pinned by the project ({PINS_FILE.name}), e.g. {unpinned[0]!r}; refused, nothing written")
    report = FetchReport(root, f"mirror {mirror}")
    failures: list[str] = []
    for rel in _bar(wanted, len(wanted), "copying", progress):
        expected = pins[rel].sha256
        src, dest = mirror / rel, root / rel
        if not force and dest.is_file() and sha256_file(dest) == expected:
            report.skipped.append(rel)
            continue
        if not src.is_file():
            failures.append(f"{src}: listed in {mirror / MANIFEST} but absent")
            continue
        try:
            _copy_verified(src, dest, expected)
        except DataError as err:
            failures.append(str(err))
            continue
        report.copied.append(rel)
    # The root's manifest is the mirror's when it agrees with the pins; otherwise its rows with the pinned sizes
    # and checksums (what the copies were checked against), so `data status --verify` checks against the pins.
    if all(p in pins and row["sha256"] == pins[p].sha256 for p, row in manifest.items()):
        atomic_write(root / MANIFEST, lambda tmp: shutil.copyfile(mirror / MANIFEST, tmp))
    else:
        _write_tsv(root / MANIFEST, MANIFEST_COLUMNS,
                   [{**manifest[p], "bytes": pins[p].bytes, "sha256": pins[p].sha256} for p in manifest if p in pins])
    if (mirror / PARTIAL).is_file():
        atomic_write(root / PARTIAL, lambda tmp: shutil.copyfile(mirror / PARTIAL, tmp))
    if failures:
        raise DataError(f"{len(failures)} file(s) failed verification: " + "; ".join(failures))
    return report


def _download(url: str, dest: Path, expected: Optional[str]) -> str:
    """Download `url` to `dest` atomically; a network error names the URL and suggests `--mirror DIR`."""
    digest = hashlib.sha256()

    def write(tmp: Path) -> None:
        request = urllib.request.Request(url, headers={"User-Agent": "ptuning-repro (python urllib)"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response, open(tmp, "wb") as out:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            raise DataError(
                f"could not download {url} ({reason}). Without network access, copy from a local mirror: "
                f"`python -m repro data fetch --mirror DIR` (a directory laid out like {MIRROR_HINT}), "
                f"or set {ENV_MIRROR}=DIR"
            ) from None
        if expected and digest.hexdigest() != expected:
            raise DataError(f"{url}: sha256 {digest.hexdigest()} does not match the expected {expected}")

    atomic_write(dest, write)
    return digest.hexdigest()


@contextlib.contextmanager
def _open_archive(path: Path) -> Iterator[tuple[list[str], Callable[[str], IO[bytes]]]]:
    """Member file names of a zip or tar archive and a function that opens one member for reading."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            yield [n for n in archive.namelist() if not n.endswith("/")], archive.open
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            members = {m.name.removeprefix("./"): m for m in archive.getmembers() if m.isfile()}

            def open_member(name: str) -> IO[bytes]:
                handle = archive.extractfile(members[name])
                if handle is None:
                    raise DataError(f"{path}: cannot read member {name}")
                return handle

            yield list(members), open_member
    else:
        raise DataError(f"{path}: neither a zip nor a tar archive")


class _Unpinned(Exception):
    """An archive member whose bytes the project cannot check (no pin, or only a reconstruction's)."""


def _extract(open_member: Callable[[str], IO[bytes]], member: str, dest: Path, pin: Optional[Pin],
             allow_unpinned: bool) -> str:
    """Write one archive member to `dest` atomically when it matches its pin; return its sha256. A member that
    differs from the published bytes pinned for it is a DataError; one the project cannot check (no pin, or a
    pin of a reconstruction) raises `_Unpinned` unless `allow_unpinned`. Either way `dest` is left untouched."""
    digest = hashlib.sha256()

    def write(tmp: Path) -> None:
        with open_member(member) as fin, open(tmp, "wb") as fout:
            for chunk in iter(lambda: fin.read(_CHUNK), b""):
                digest.update(chunk)
                fout.write(chunk)
        sha = digest.hexdigest()
        if pin is not None and sha == pin.sha256:
            return
        if pin is not None and pin.published:
            raise DataError(f"{member}: sha256 {sha} does not match the sha256 the project pins for {pin.path} "
                            f"({pin.sha256}, {PINS_FILE.name}); refused")
        if not allow_unpinned:
            raise _Unpinned(member)

    atomic_write(dest, write)
    return digest.hexdigest()


def _fetch_official(root: Path, chosen: tuple[str, ...], *, force: bool, progress: bool,
                    allow_unpinned: bool = False) -> FetchReport:
    """Download the official sources. A single file must match its pin (or the task's dev32 checksum); the
    archives have no published checksum, so each file they yield must match the file pinned for its path, and
    files the project cannot check are left out (listed in the report) unless `allow_unpinned`."""
    manifest = read_manifest(root)
    pins = load_pins()
    report = FetchReport(root, "the official sources")
    downloads = root / ".downloads"
    for source in (s for s in official_sources() if s.benchmark in chosen):
        rows = [r for r in manifest.values() if r.get("source_repo") == source.url]
        if not force and rows and all(_matches(root / r["path"], r["sha256"]) for r in rows):
            report.skipped += [r["path"] for r in rows]
            continue
        if progress:
            print(f"downloading {source.url}", file=sys.stderr)
        if source.target is not None:
            pin = pins.get(source.target)
            expected = pin.sha256 if pin is not None else source.sha256
            if expected is None and not allow_unpinned:
                report.unpinned.append(source.target)
                continue
            sha = _download(source.url, inside(root, source.target, source.url), expected)
            manifest[source.target] = _row(root, source.target, source, source.target, sha)
            report.copied.append(source.target)
            _record(root, manifest, report.copied)
            continue
        archive = downloads / hashlib.sha256(source.url.encode()).hexdigest()[:16]
        _download(source.url, archive, source.sha256)
        with _open_archive(archive) as (names, open_member):
            mapping = source.mapper(names) if source.mapper else {}
            if not mapping:
                raise DataError(f"{source.url}: the archive holds none of the expected files (layout changed?)")
            items = sorted(mapping.items(), key=lambda kv: kv[1])
            failures: list[str] = []
            for member, rel in _bar(items, len(items), "unpacking", progress):
                dest = inside(root, rel, f"{source.url} member {member}")
                try:
                    sha = _extract(open_member, member, dest, pins.get(rel), allow_unpinned)
                except _Unpinned:
                    report.unpinned.append(rel)
                    continue
                except DataError as err:
                    failures.append(str(err))
                    continue
                manifest[rel] = _row(root, rel, source, member, sha)
                report.copied.append(rel)
        archive.unlink(missing_ok=True)
        if failures:
            _record(root, manifest, report.copied)
            raise DataError(f"{source.url}: {len(failures)} file(s) failed verification: " + "; ".join(failures))
        _record(root, manifest, report.copied)  # after each source, so a later failure keeps this one's record
    _record(root, manifest, report.copied)
    shutil.rmtree(downloads, ignore_errors=True)
    return report


def _record(root: Path, manifest: dict[str, dict[str, Any]], fetched: Sequence[str]) -> None:
    """Write the root's MANIFEST.tsv; drop fetched files from PARTIAL.tsv (the originals are complete)."""
    _write_tsv(root / MANIFEST, MANIFEST_COLUMNS, [manifest[p] for p in sorted(manifest)])
    done = set(fetched)
    partial = read_partial(root)
    _write_tsv(root / PARTIAL, PARTIAL_COLUMNS,
               [{"path": p, "status": s, "reason": r} for p, (s, r) in sorted(partial.items()) if p not in done])


def _matches(path: Path, sha: str) -> bool:
    return path.is_file() and sha256_file(path) == sha


def _row(root: Path, rel: str, source: Source, member: str, sha: str) -> dict[str, Any]:
    path = root / rel
    with open(path, "rb") as handle:
        lines = sum(1 for _ in handle)
    return {"path": rel, "source_repo": source.url, "source_path": member, "commit": "", "bytes": path.stat().st_size,
            "lines": lines, "sha256": sha, "licence": source.licence, "status": "complete",
            "note": "fetched from the official source"}


# --------------------------------------------------------------------------------------------- status
@dataclass
class DataStatus:
    """What the root holds against its manifest."""

    root: Path
    present: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)  # listed in MANIFEST.tsv, not in the root
    corrupt: list[str] = field(default_factory=list)  # present, sha256 differs (only with verify)
    partial: dict[str, tuple[str, str]] = field(default_factory=dict)  # PARTIAL.tsv

    @property
    def ok(self) -> bool:
        return bool(self.present) and not self.absent and not self.corrupt


def data_status(root: PathLike, *, verify: bool = False) -> DataStatus:
    root = Path(root)
    if not (root / MANIFEST).is_file():
        raise DataError(f"{root}: no {MANIFEST} (the data root is empty or missing); fetch the data with "
                        f"{fetch_command(root)}")
    status = DataStatus(root, partial=read_partial(root))
    for rel, row in read_manifest(root).items():
        path = root / rel
        if not path.is_file():
            status.absent.append(rel)
        elif verify and sha256_file(path) != row["sha256"]:
            status.corrupt.append(rel)
        else:
            status.present.append(rel)
    return status


def format_status(status: DataStatus) -> str:
    lines = [f"data root: {status.root}"]
    groups = sorted({p.split("/", 1)[0] for p in status.present + status.absent + status.corrupt + list(status.partial)})
    for group in groups:
        def count(items):
            return sum(1 for p in items if p.split("/", 1)[0] == group)
        listed = count(status.present) + count(status.absent) + count(status.corrupt)
        rebuilt = [p for p, (s, _) in status.partial.items() if p.startswith(group + "/") and s != "missing"]
        lacking = [p for p, (s, _) in status.partial.items() if p.startswith(group + "/") and s == "missing"]
        lines.append(f"{group}: {count(status.present)}/{listed} files present, {len(rebuilt)} partial (rebuilt), "
                     f"{len(lacking)} missing from the mirror itself")
    for title, items in (("not fetched", status.absent), ("sha256 mismatch", status.corrupt)):
        lines += [f"  {title}: {p}" for p in sorted(items)]
    for path, (state, reason) in sorted(status.partial.items()):
        lines.append(f"  {state} (PARTIAL.tsv): {path} ({reason})")
    if status.absent or status.corrupt:
        lines.append(f"fetch with {fetch_command(status.root)}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- pins
def pin_mirror(mirror: PathLike) -> list[Pin]:
    """Pins for every file of a trusted reference mirror, from the bytes of its files (the manifest gives the
    paths and the mirror's status; its sha256 column is compared, never copied). Maintainer's use: the result
    is written into the package by `python -m repro data pin --mirror DIR`."""
    mirror = Path(mirror)
    manifest = read_manifest(mirror)
    if not manifest:
        raise DataError(f"{mirror}: not a data mirror (no {MANIFEST})")
    pins, disagree = [], []
    for rel, row in manifest.items():
        path = inside(mirror, rel, f"{mirror / MANIFEST}:{row[LINE]}")
        if not path.is_file():
            raise DataError(f"{mirror / MANIFEST}:{row[LINE]}: {rel} is listed but absent")
        sha = sha256_file(path)
        if sha != row["sha256"]:
            disagree.append(rel)
        pins.append(Pin(rel, path.stat().st_size, sha, "reconstructed" if row.get("status") == "reconstructed"
                        else "complete"))
    if disagree:
        raise DataError(f"{mirror}: {len(disagree)} file(s) differ from the mirror's own manifest (e.g. {disagree[0]}); "
                        "a reference mirror must be consistent before it is pinned")
    return pins


# ------------------------------------------------------------------------------------------------ CLI
def register(subparsers) -> None:
    """`python -m repro data {fetch,status}`."""
    parser = subparsers.add_parser("data", help="fetch the benchmark data into the data root, or show what it holds",
                                   description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="{fetch,status,pin}")
    root_help = f"data root (default: ${ENV_ROOT}, else <project>/data)"

    fetch_parser = sub.add_parser("fetch", help="copy from a local mirror (sha256-verified) or download the originals")
    fetch_parser.add_argument("--root", "--data-root", dest="root", default=None, help=root_help)
    fetch_parser.add_argument("--mirror", default=None,
                              help=f"a local directory laid out like {MIRROR_HINT} (default: ${ENV_MIRROR}); "
                                   "without one, the official URLs")
    fetch_parser.add_argument("--only", default=",".join(BENCHMARKS),
                              help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    fetch_parser.add_argument("--force", action="store_true", help="rewrite files even when their sha256 matches")
    fetch_parser.add_argument("--quiet", action="store_true", help="no progress output")
    fetch_parser.add_argument("--allow-unpinned", action="store_true",
                              help="official sources: also keep files the project pins no sha256 for (on trust)")
    fetch_parser.set_defaults(func=_cmd_fetch)

    pin_parser = sub.add_parser("pin", help=f"maintainers: rewrite the package's {PINS_FILE.name} from a reference mirror")
    pin_parser.add_argument("--mirror", required=True, help=f"the reference mirror (e.g. {MIRROR_HINT})")
    pin_parser.set_defaults(func=_cmd_pin)

    status_parser = sub.add_parser("status", help="list present, missing and partial files")
    status_parser.add_argument("--root", "--data-root", dest="root", default=None, help=root_help)
    status_parser.add_argument("--verify", action="store_true", help="also check every file's sha256")
    status_parser.set_defaults(func=_cmd_status)


def _cmd_fetch(args: argparse.Namespace) -> int:
    mirror = args.mirror or os.environ.get(ENV_MIRROR) or None
    report = fetch(data_root(args.root), mirror=mirror, benchmarks=args.only, force=args.force,
                   progress=not args.quiet, allow_unpinned=args.allow_unpinned)
    print(report.summary())
    partial = read_partial(report.root)
    if partial:
        print(f"{len(partial)} file(s) are partial or missing, see {report.root / PARTIAL}; "
              "results computed on them are marked")
    return 0


def _cmd_pin(args: argparse.Namespace) -> int:
    pins = pin_mirror(args.mirror)
    print(f"{write_pins(pins)}: {len(pins)} file(s) pinned from {args.mirror}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    status = data_status(data_root(args.root), verify=args.verify)
    print(format_status(status))
    return 0 if status.ok else 1
