"""Writing files so that a reader (or a killed run) never sees half of one.

Every output is written to a temporary name beside its target and moved over it with
``os.replace`` (atomic on one file system); on an error the temporary file is removed and the
old target, if any, is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterator


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
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """``data`` as indented JSON at ``path`` (folders created), atomically. numpy scalars become floats."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    return Path(path)


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` at ``path`` (folders created), atomically."""
    import torch

    with atomic_output(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)
