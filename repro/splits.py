"""The data layer: every benchmark split as a `datasets.Dataset`, read by the `json` builder once the
validation layer has passed it.

Two steps per file, each with one job:

1. Validation (`repro.data.iter_jsonl`, the one place a JSONL line is parsed by hand): UTF-8 line by line,
   one JSON object per line, the required fields present. A bad line fails as `file:line: ...` with the field,
   which the builder cannot say (pyarrow reports a byte block, not a line).
2. Reading (`load_jsonl`): the `json` builder turns the file into Arrow (`Dataset.from_json`, the builder
   `load_dataset("json")` uses, without its hub look-up), cached under `$REPRO_CACHE_DIR/datasets/<sha256 of
   the file>/`: keyed by the bytes, so an edited file is never read from a stale cache, whatever its mtime.
   The line number of every row (from step 1) is a column of the Dataset, so messages and example ids still
   point at `file:line`.

Both steps are done once per file content: beside the Arrow files, `lines-<fields>.json` records that these
bytes passed the scan with these required fields (and their rows' line numbers), and where the builder wrote
them; a later read of the same bytes maps those Arrow files (`Dataset.from_file`) without scanning again. A file
that fails the scan gets no record, so its error comes back on every read.

Readers (`Task.read`, LAMA's `load_facts` and `load_relations`) take their rows from the Dataset (`rows`).
Arrow gives every row the same keys: a key that some rows of a file have and others lack reads as None in
the latter (AX-b's optional phenomenon columns are the only case in the benchmark files; no reader uses them).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

from repro.atomic import atomic_write_json
from repro.data import PathLike, iter_jsonl, sha256_file
from repro.errors import DataError

if TYPE_CHECKING:  # datasets is imported when a split is read (its import takes a second)
    import datasets

LINE_COLUMN = "__line__"  # the row's line number in its file, added by `load_jsonl`
CACHE_SUBDIR = "datasets"


def cache_dir() -> Path:
    """Where the builder keeps the Arrow files: `$REPRO_CACHE_DIR/datasets` (default ~/.cache/ptuning-repro)."""
    from repro.core.backbone import cache_root

    return cache_root() / CACHE_SUBDIR


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """No `datasets` progress bars while the suite reads or maps (its own bars say what runs)."""
    import datasets

    was_enabled = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def load_jsonl(path: PathLike, *, required: Sequence[str] = (), allow_empty: bool = True) -> "datasets.Dataset":
    """A validated JSONL file as a Dataset with its rows' line numbers (`LINE_COLUMN`); the validation errors
    are `iter_jsonl`'s (`file:line` and the field; an empty file by name when `allow_empty` is False)."""
    import datasets

    path = Path(path)
    if not path.is_file():
        next(iter_jsonl(path), None)  # raises the scan's own error (file not found, a directory)
    digest = sha256_file(path)
    where = cache_dir() / digest[:32]
    record = where / f"lines-{hashlib.sha256(repr((tuple(required), allow_empty)).encode()).hexdigest()[:16]}.json"
    known = _read_record(record)
    if known is not None:
        lines, dataset = known
    else:
        lines = [lineno for lineno, _ in iter_jsonl(path, required=required, allow_empty=allow_empty)]
        if not lines:
            return datasets.Dataset.from_dict({LINE_COLUMN: []})
        dataset = _build(path, where)
        if len(dataset) != len(lines):
            raise DataError(f"{path}: the json builder read {len(dataset)} rows where the file has {len(lines)} "
                            "JSON lines")
        if LINE_COLUMN in dataset.column_names:
            raise DataError(f"{path}: a field is named {LINE_COLUMN!r}, the column the suite keeps line numbers in")
        atomic_write_json(record, {"lines": lines, "arrow": [f["filename"] for f in dataset.cache_files]})
    # an explicit fingerprint: datasets would otherwise hash the whole column to make one
    return dataset.add_column(LINE_COLUMN, lines, new_fingerprint=f"{digest[:32]}lines")


def _build(path: Path, where: Path) -> "datasets.Dataset":
    import datasets

    try:
        with quiet_datasets():
            return datasets.Dataset.from_json(str(path), cache_dir=str(where))
    except Exception as err:  # the line scan passed: what is left is a schema the builder cannot hold
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise DataError(f"{path}: the json builder cannot read it ({type(err).__name__}: {message})") from None


def _read_record(record: Path) -> Optional[tuple[list[int], "datasets.Dataset"]]:
    """(line numbers, the Dataset) of a file these bytes were read from before; None when there is no usable
    record (none yet, its Arrow files removed, unreadable): the file is then scanned and built again."""
    import datasets

    try:
        data = json.loads(record.read_text())
        parts = [datasets.Dataset.from_file(name) for name in data["arrow"]]
        dataset = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    lines = data.get("lines")
    if not isinstance(lines, list) or len(lines) != len(dataset):
        return None
    return lines, dataset


def rows(dataset: "datasets.Dataset", columns: Sequence[str] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """`(line number, row)` for each row of a Dataset from `load_jsonl` (`columns`: only these fields)."""
    if columns:
        kept = [c for c in columns if c in dataset.column_names] + [LINE_COLUMN]
        dataset = dataset.select_columns(kept, new_fingerprint=hashlib.sha256(
            f"{dataset._fingerprint}{kept}".encode()).hexdigest()[:32])
    for row in dataset.to_list():
        yield row.pop(LINE_COLUMN), row
