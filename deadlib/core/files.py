"""Writing files so that a reader (or a killed run) never sees half of one.

Every output is written to a temporary name beside its target and moved over it with
``os.replace`` (atomic on one file system); on an error the temporary file is removed and the
old target, if any, is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any, Iterator

PARTIAL = ".partial"  # marks atomic_output's temporary names: .<stem>.<8 hex>.partial<suffix>


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, make_parent: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that replaces it on success and is deleted on error.

    The temporary name keeps the suffix, so writers that pick a format by extension still work.
    ``make_parent`` False: a missing folder is an error (e.g. a user's output path with a typo).
    """
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}{PARTIAL}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def partial_leftovers(path: str | os.PathLike) -> list[Path]:
    """The temporary siblings ``atomic_output`` made for ``path`` that still exist (sorted).

    ``atomic_output`` deletes its temporary file on success and on any error, so one exists only
    while a writer runs or after its process was killed (e.g. a notebook kernel restarted
    mid-write). The match is exact (``.<stem>.<8 hex>.partial<suffix>``): no other file matches."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.[0-9a-f]{{8}}{re.escape(PARTIAL)}{re.escape(path.suffix)}")
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.glob(f".{path.stem}.*") if pattern.fullmatch(p.name))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """``data`` as indented JSON at ``path`` (folders created), atomically. numpy scalars become floats."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    return Path(path)


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` at ``path`` (folders created), atomically; the same ``obj`` gives the same bytes.

    Saved through a file object: given a path, torch names the archive's root folder after the file,
    and the temporary name is random, so two saves of the same weights differed byte for byte (every
    sync expert and audio-to-expression record looked changed to DVC although its metrics matched)."""
    import torch

    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
    return Path(path)
