"""How a checkpoint is written and read: safetensors for the tensors, a JSON state, a sha256 over both.

Why not `torch.save`/`torch.load`: a pickle runs code when it is loaded, so a checkpoint planted in a run folder
(or handed over with `--runs DIR`) would execute on the next resume. Here nothing is unpickled:

- the tensors go into one safetensors file (a JSON header + raw bytes; reading it cannot run code);
- everything else (loop position, history, optimizer hyper-parameters, RNG states) is encoded as JSON with a
  few tagged forms for what JSON lacks (tuples, dicts with non-string keys, numpy arrays, tensor references),
  stored in the safetensors header's metadata, so one atomic rename writes both;
- a sha256 over the JSON and every tensor's dtype, shape and bytes is stored beside them and checked on load.

A file that cannot be read this way (a pickle, another format, a torn or altered file, a checkpoint of another
kind) is never trusted: `load` renames it with a `.rejected` suffix, prints one warning line, and returns None,
so the caller starts from the beginning as if there had been no checkpoint. What a checkpoint holds and where it
lives is the callers' business (`repro.core.training`, `repro.core.joint`, `repro.experiment.superglue`).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from repro.atomic import atomic_write
from repro.core import distributed

FORMAT = "repro-checkpoint/1"
REJECTED = ".rejected"
_TAG = "__repro__"  # marks the tagged JSON forms; a payload dict may not use it as a key


class CheckpointError(Exception):
    """A checkpoint that cannot be trusted (internal: `load` turns it into a set-aside file and a warning)."""


# ------------------------------------------------------------------------------------------- encoding
class _Encoder:
    """Payload -> (JSON-able state, named tensors). Only plain types, tensors and numpy values are accepted."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self._storages: set[int] = set()

    def _tensor_ref(self, tensor: torch.Tensor) -> str:
        key = f"t{len(self.tensors)}"
        tensor = tensor.detach().to("cpu").contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in self._storages:  # safetensors refuses tensors that share storage: copy the second one
            tensor = tensor.clone()
        self._storages.add(tensor.untyped_storage().data_ptr())
        self.tensors[key] = tensor
        return key

    def encode(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, torch.Tensor):
            return {_TAG: "tensor", "key": self._tensor_ref(value)}
        if isinstance(value, np.ndarray):
            raw = torch.from_numpy(np.ascontiguousarray(value).reshape(-1).view(np.uint8).copy())
            return {_TAG: "ndarray", "key": self._tensor_ref(raw), "dtype": value.dtype.str, "shape": list(value.shape)}
        if isinstance(value, np.generic):
            return self.encode(value.item())
        if isinstance(value, tuple):
            return {_TAG: "tuple", "items": [self.encode(v) for v in value]}
        if isinstance(value, list):
            return [self.encode(v) for v in value]
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value) and _TAG not in value:
                return {k: self.encode(v) for k, v in value.items()}
            return {_TAG: "dict", "items": [[self.encode(k), self.encode(v)] for k, v in value.items()]}
        raise TypeError(f"a checkpoint stores tensors and plain values only, not {type(value).__name__}")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of `_Encoder.encode`; anything unexpected is a CheckpointError (the file is not ours)."""
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: _decode(v, tensors) for k, v in value.items()}
    try:
        if tag == "tensor":
            return tensors[value["key"]]
        if tag == "ndarray":
            raw = tensors[value["key"]].numpy().tobytes()
            return np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
        if tag == "tuple":
            return tuple(_decode(v, tensors) for v in value["items"])
        if tag == "dict":
            return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in value["items"]}
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"malformed {tag!r} entry ({err})") from None
    raise CheckpointError(f"unknown entry tag {tag!r}")


def _hashable(key: Any) -> Any:
    if isinstance(key, (list, dict)):
        raise CheckpointError(f"unhashable dict key {key!r}")
    return key


def _digest(state_json: str, tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the JSON state and each tensor's name, dtype, shape and bytes (in name order)."""
    digest = hashlib.sha256(state_json.encode("utf-8"))
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"\0{name}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, no copy
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------- save / load
def save(path: Path, payload: Any, *, kind: str) -> Path:
    """Write `payload` (nested dicts, lists, tuples, plain values, tensors, numpy arrays) to `path` atomically.
    `kind` names what the file holds (e.g. "train_state"); `load` refuses a file of another kind."""
    encoder = _Encoder()
    state_json = json.dumps(encoder.encode(payload), separators=(",", ":"))
    metadata = {"format": FORMAT, "kind": kind, "state": state_json, "sha256": _digest(state_json, encoder.tensors)}
    return atomic_write(Path(path), lambda tmp: save_file(encoder.tensors, str(tmp), metadata=metadata))


def read(path: Path, *, kind: str) -> Any:
    """The payload of a checkpoint written by `save`; CheckpointError when it is not one, of another kind, or
    altered since (checksum). Reading never runs code from the file."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as err:  # safetensors raises its own error type, or OSError/ValueError: all mean unreadable
        raise CheckpointError(f"not a safetensors checkpoint ({type(err).__name__}: {err})".splitlines()[0]) from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"format {metadata.get('format')!r}, expected {FORMAT!r}")
    if metadata.get("kind") != kind:
        raise CheckpointError(f"holds a {metadata.get('kind')!r} checkpoint, expected {kind!r}")
    state_json = metadata.get("state", "")
    if _digest(state_json, tensors) != metadata.get("sha256"):
        raise CheckpointError("sha256 mismatch: the file was altered or torn after it was written")
    try:
        state = json.loads(state_json)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"unreadable state ({err.msg})") from None
    return _decode(state, tensors)


def set_aside(path: Path, reason: str) -> Path:
    """Rename `path` to `<name>.rejected` (`.rejected.1`, ... if taken) and say so in one warning line. In a
    data-parallel run the main process does it; the others only start over without the file, as it does."""
    path = Path(path)
    target = path.with_name(path.name + REJECTED)
    if not distributed.is_main():
        return target
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{REJECTED}.{n}")
    path.rename(target)
    print(f"warning: {path}: {reason}; set aside as {target.name}, starting over without it", file=sys.stderr)
    return target


def load(path: Path, *, kind: str) -> Optional[Any]:
    """The payload at `path`, or None when there is none or it could not be trusted (then set aside)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return read(path, kind=kind)
    except CheckpointError as err:
        set_aside(path, f"unusable checkpoint, {err}")
        return None
