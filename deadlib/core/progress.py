"""Progress bars that suit where the code runs, without flooding executed notebooks or logs.

* interactive terminal → ``tqdm.auto`` with its usual refresh;
* interactive notebook (kernel started by a Jupyter server or VS Code) → ``tqdm.auto``
  (a widget), refreshed at most twice a second;
* anything else — papermill / nbclient executing a stage notebook, ``dvc repro`` logs, CI,
  pytest capture — → a plain text bar written only every ``percent`` % of the total
  (≤ 100/percent + 1 lines), so the saved notebook or log stays short.

Override with the environment variable ``DEAD_PROGRESS`` = ``auto`` | ``plain`` | ``off``.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
MODES = ("auto", "plain", "off")


def _in_kernel() -> bool:
    """True inside an IPython kernel (Jupyter, VS Code, papermill)."""
    shell = sys.modules.get("IPython") and getattr(sys.modules["IPython"], "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _papermill_ancestor() -> bool:
    """True when a parent process is papermill (best effort; needs psutil)."""
    try:
        import psutil
    except ImportError:
        return False
    try:
        return any("papermill" in " ".join(p.cmdline()) for p in psutil.Process().parents())
    except (psutil.Error, OSError):
        return False


def progress_mode() -> str:
    """'auto' (live tqdm.auto bar), 'plain' (sparse text bar) or 'off' for the current process."""
    forced = os.environ.get("DEAD_PROGRESS", "").strip().lower()
    if forced:
        if forced not in MODES:
            raise ValueError(f"DEAD_PROGRESS must be one of {MODES}, got {forced!r}")
        return forced
    if _in_kernel():
        interactive = "JPY_SESSION_NAME" in os.environ or "VSCODE_PID" in os.environ
        return "auto" if interactive and not _papermill_ancestor() else "plain"
    return "auto" if getattr(sys.stderr, "isatty", lambda: False)() else "plain"


def progress_bar(iterable: Iterable[T] | None = None, total: int | None = None, desc: str | None = None,
                 percent: float = 10.0, **kwargs) -> Iterator[T]:
    """A tqdm bar over ``iterable`` (or a manual bar when it is None; call ``.update(n)``).

    In 'plain' mode the bar prints every ``percent`` % of ``total`` (or every 60 s when the
    total is unknown); in 'off' mode it is a silent tqdm (``disable=True``) with the same API.
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    mode = progress_mode()
    if mode == "auto":
        from tqdm.auto import tqdm

        kwargs.setdefault("mininterval", 0.5 if _in_kernel() else 0.1)
        return tqdm(iterable, total=total, desc=desc, **kwargs)
    from tqdm import tqdm  # text bar; never a widget

    if mode == "plain":
        every = max(1, math.ceil(total * percent / 100)) if total else None
        kwargs.setdefault("miniters", every or 1)
        kwargs.setdefault("mininterval", 0 if every else 60)
        # the monitor thread would lower miniters after maxinterval s; keep the update cadence fixed
        kwargs.setdefault("maxinterval", float("inf"))
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("dynamic_ncols", False)
        kwargs.setdefault("ncols", 100)
        kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, total=total, desc=desc, disable=(mode == "off"), **kwargs)
