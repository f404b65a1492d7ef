"""File-level DVC dependencies: every stage depends on exactly the deadlib files it can import.

Why: a stage that lists whole package folders (``deadlib/data``) reruns whenever any file there
changes, even one it never imports, so an edit of ``deadlib/data/prepare.py`` would restart hours
of prior training and every study cell. Here a stage's deadlib deps are derived, not written by
hand: the modules its ``python -m deadlib...`` commands run (and a module such a command is given
as an argument, e.g. ``deadlib.train.launch ... deadlib.train.prior``) and the modules its
papermill notebook's code cells import, closed over the package's import graph
(:func:`deadlib.tools.layout.import_graph`: every import of a file, inside functions too), plus
the ``__init__.py`` of every package on the way (importing ``deadlib.a.b`` runs
``deadlib/__init__.py`` and ``deadlib/a/__init__.py``), plus ``deadlib/assets`` when a reached
module reads it (``deadlib.data.facemesh``). The stage's other deps (notebooks, data, models) stay
as written. The analysis is static: an import computed at run time (``importlib``) is not seen;
the package has none.

    python -m deadlib.tools.stage_deps                 # stages whose deadlib deps differ; exit 1 if any
    python -m deadlib.tools.stage_deps --write         # rewrite those deps lists in dvc.yaml, real/dvc.yaml
    python -m deadlib.tools.stage_deps --reruns FILE   # the stages an edit of FILE reruns
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import nbformat
import yaml

from deadlib.tools.layout import (
    PACKAGE_ROOT,
    closure,
    import_graph,
    imported_names,
    module_files,
)

REPO = PACKAGE_ROOT.parent
DVC_FILES = (REPO / "dvc.yaml", REPO / "real" / "dvc.yaml")
ASSETS = "assets"            # the package's data folder, found from a module's own path
WIDTH = 110                  # wrap the rewritten deps lists at this many characters
SEPARATORS = {"&&", "||", ";", "|", "&"}


@dataclass(frozen=True)
class Package:
    """What the analysis reads of the package once: its files and who loads whom."""

    root: Path
    files: dict[str, Path]      # dotted module name → file
    graph: dict[str, set[str]]  # module → the modules loading it loads: its imports and parent packages
    asset_users: frozenset[str]  # modules that read the assets folder


def scan(root: Path = PACKAGE_ROOT) -> Package:
    graph = import_graph(root)
    for name in graph:
        parts = name.split(".")
        graph[name] |= {".".join(parts[:i]) for i in range(1, len(parts))}
    files = module_files(root)
    return Package(root, files, graph, frozenset(name for name, path in files.items() if loads_assets(path)))


def module_closure(entry_modules: Iterable[str], package: Package | None = None) -> set[Path]:
    """The files of every package module that importing or running ``entry_modules`` can load, and
    the ``assets`` folder when one of them reads it."""
    package = package or scan()
    start = set(entry_modules)
    if unknown := start - set(package.files):
        raise ValueError(f"no such module in {package.root}: {sorted(unknown)}")
    reached = closure(start, package.graph)
    files = {package.files[name] for name in reached}
    return files | {package.root / ASSETS} if reached & package.asset_users else files


def loads_assets(path: Path) -> bool:
    """True when the module names the ``assets`` folder in a string (a path or resource name)."""
    text = path.read_text()
    if ASSETS not in text:
        return False
    tree = ast.parse(text, str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    return any(isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
               and ASSETS in re.split(r"[/.]", node.value) for node in ast.walk(tree))


def _command_parts(cmd: str, known: set[str]) -> tuple[set[str], list[str]]:
    """(deadlib modules the shell command runs, notebooks it gives papermill)."""
    lexer = shlex.shlex(cmd, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    for token in lexer:
        if token in SEPARATORS:
            segments.append([])
        else:
            segments[-1].append(token)
    modules, notebooks = set(), []
    for seg in segments:
        runs = [seg[i + 1] for i in range(len(seg) - 1) if seg[i] == "-m" and seg[i + 1].split(".")[0] == "deadlib"]
        if unknown := set(runs) - known:
            raise ValueError(f"command runs {sorted(unknown)}, not a module of deadlib: {' '.join(seg)}")
        if runs:   # python -m a package runs its __main__; a module handed as an argument: the launcher's
            modules |= set(runs) | ({f"{m}.__main__" for m in runs} & known) | {t for t in seg if t in known}
        if "papermill" in seg:
            notebooks += [t for t in seg[seg.index("papermill") + 1:] if not t.startswith("-")][:1]
    return modules, notebooks


def notebook_modules(path: Path, known: set[str]) -> set[str]:
    """Package modules a notebook's code cells import (and its ``!python -m`` lines run)."""
    found = set()
    with warnings.catch_warnings():   # the committed notebooks predate cell ids
        warnings.simplefilter("ignore", nbformat.validator.MissingIDFieldWarning)
        cells = nbformat.read(path, as_version=4).cells
    for cell in cells:
        if cell.cell_type != "code" or cell.source.lstrip().startswith("%%"):
            continue
        lines = cell.source.splitlines()
        shell = [line.lstrip()[1:] for line in lines if line.lstrip().startswith("!")]
        python = [line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
                  for line in lines]
        found |= imported_names(ast.parse("\n".join(python), f"{path} (cell {cell.get('id', '?')})"))
        for command in shell:
            found |= _command_parts(command, known)[0]
    return found & known


def stage_entry_modules(stage_cmd: str, workdir: Path, known: Iterable[str] | None = None) -> set[str]:
    """The deadlib modules a stage starts from: ``python -m`` ones (and their MODULE arguments) and
    the imports of the notebooks it runs with papermill (paths relative to ``workdir``)."""
    known = set(known) if known is not None else set(module_files())
    modules, notebooks = _command_parts(stage_cmd, known)
    for notebook in notebooks:
        if "$" in notebook:
            raise ValueError(f"cannot read a notebook whose path is interpolated: {notebook}")
        modules |= notebook_modules(workdir / notebook, known)
    return modules


def _in_package(dep: str, workdir: Path, root: Path) -> bool:
    return "${" not in dep and Path(os.path.abspath(workdir / dep)).is_relative_to(os.path.abspath(root))


def expected_deps(stage: dict, workdir: Path, package: Package | None = None) -> list[str]:
    """The stage's deps as they should read: its non-package deps in place, the package files (and
    ``assets``) it can load where its first package dep was, sorted, relative to ``workdir``."""
    package = package or scan()
    body = stage.get("do", stage)
    cmd = " && ".join(body["cmd"]) if isinstance(body["cmd"], list) else body["cmd"]
    files = module_closure(stage_entry_modules(cmd, workdir, package.files), package)
    ours = sorted(Path(os.path.relpath(f, workdir)).as_posix() for f in files)
    deps = [d for d in body.get("deps", []) if isinstance(d, str)]
    inside = [_in_package(d, workdir, package.root) for d in deps]
    others = [d for d, ours_ in zip(deps, inside) if not ours_]
    at = inside.index(True) if True in inside else next((i for i, d in enumerate(deps) if not d.endswith(".ipynb")),
                                                        len(deps))
    return others[:at] + ours + others[at:]


def _stages(text: str) -> dict[str, dict]:
    return (yaml.safe_load(text) or {}).get("stages", {})


def _workdir(dvc_path: Path, stage: dict) -> Path:
    return dvc_path.parent / stage.get("do", stage).get("wdir", ".")


def mismatch(dvc_yaml_path: Path, root: Path = PACKAGE_ROOT, text: str | None = None
             ) -> dict[str, tuple[list[str], list[str]]]:
    """Stage → (package deps it lacks, package deps it should not have), for every stage of the file
    (``text``: its contents instead of the file's) whose deadlib deps differ from what it can load."""
    dvc_yaml_path = Path(dvc_yaml_path)
    return _stale(dvc_yaml_path, text if text is not None else dvc_yaml_path.read_text(), scan(root))


def _stale(dvc_yaml_path: Path, text: str, package: Package) -> dict[str, tuple[list[str], list[str]]]:
    found = {}
    for name, stage in _stages(text).items():
        workdir = _workdir(dvc_yaml_path, stage)
        want = {d for d in expected_deps(stage, workdir, package) if _in_package(d, workdir, package.root)}
        have = {d for d in stage.get("do", stage).get("deps", [])
                if isinstance(d, str) and _in_package(d, workdir, package.root)}
        if want != have:
            found[name] = (sorted(want - have), sorted(have - want))
    return found


def _flow_items(text: str, start: int) -> tuple[list[str], int]:
    """The raw items of the YAML flow list whose ``[`` is at ``text[start]``, and the index after ``]``."""
    items, current, quote, i = [], "", None, start + 1
    while i < len(text):
        ch = text[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{#":
            raise ValueError(f"a deps list with a nested list, mapping or comment: {text[start:i + 1]!r}")
        elif ch in ",]":
            if current.strip():
                items.append(current.strip())
            current = ""
            if ch == "]":
                return items, i + 1
            i += 1
            continue
        current += ch
        i += 1
    raise ValueError(f"unclosed deps list: {text[start:start + 80]!r}")


def _scalar(value: str) -> str:
    return value if re.fullmatch(r"[\w./-]+", value) else json.dumps(value)


def _flow_lines(head: str, items: list[str]) -> list[str]:
    """``head`` + ``[items]``, wrapped at WIDTH with continuation lines aligned under the first item."""
    if not items:
        return [head + "[]"]
    lines, line, pad = [], head + "[", " " * (len(head) + 1)
    for i, item in enumerate(items):
        piece = item + ("]" if i == len(items) - 1 else ",")
        if i and len(line) + 1 + len(piece) > WIDTH:
            lines.append(line)
            line = pad + piece
        else:
            line += (" " if i else "") + piece
    return lines + [line]


def rewritten(text: str, dvc_yaml_path: Path, root: Path = PACKAGE_ROOT) -> tuple[str, list[str]]:
    """``text`` (a dvc.yaml) with the deps list of every mismatched stage rewritten (other lines and
    the stage's non-package deps as written), and the names of those stages."""
    package = scan(root)
    stale = _stale(dvc_yaml_path, text, package)
    stages, lines = _stages(text), text.splitlines(keepends=True)
    section, child, stage, spans = False, None, None, {}
    for n, line in enumerate(lines):
        bare = line.split("#", 1)[0].rstrip()
        if not bare:
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            section, child = bare == "stages:", None
        elif section:
            child = child if child is not None else indent
            if indent == child:
                stage = bare.rstrip(":").strip()
            elif re.match(r"\s*deps:\s*\[", line):
                if stage in spans:
                    raise ValueError(f"{dvc_yaml_path}: stage {stage} has two deps lists")
                spans[stage] = n
            elif re.match(r"\s*deps:\s*$", bare):
                raise ValueError(f"{dvc_yaml_path}: write stage {stage}'s deps as a flow list: deps: [...]")
    for name in sorted(stale, key=lambda s: -spans[s]):   # bottom up: line numbers above stay valid
        first = spans[name]
        block = "".join(lines[first:])
        open_at = block.index("[")
        raw, end = _flow_items(block, open_at)
        last = first + block[:end].count("\n")
        tail = block[end:].split("\n", 1)[0]
        as_written = {yaml.safe_load(item): item for item in raw}
        workdir = _workdir(dvc_yaml_path, stages[name])
        items = [as_written.get(d, _scalar(d)) for d in expected_deps(stages[name], workdir, package)]
        new = _flow_lines(block[:open_at], items)
        new[-1] += tail
        lines[first:last + 1] = [row + "\n" for row in new]
    return "".join(lines), sorted(stale)


def _without_deps(text: str) -> dict:
    doc = yaml.safe_load(text) or {}
    for stage in doc.get("stages", {}).values():
        stage.get("do", stage).pop("deps", None)
    return doc


def write(dvc_yaml_path: Path, root: Path = PACKAGE_ROOT) -> list[str]:
    """Rewrite the file's stale deps lists in place (checked: nothing else of the YAML changes, and
    no stage mismatches after); the stages rewritten."""
    dvc_yaml_path = Path(dvc_yaml_path)
    old = dvc_yaml_path.read_text()
    new, changed = rewritten(old, dvc_yaml_path, root)
    if _without_deps(new) != _without_deps(old) or mismatch(dvc_yaml_path, root, new):
        raise RuntimeError(f"{dvc_yaml_path}: rewriting the deps lists went wrong; the file is left as it was")
    if changed:
        dvc_yaml_path.write_text(new)
    return changed


def dependents(path: str, dvc_files: Iterable[Path] = DVC_FILES) -> list[str]:
    """The stages (``file:stage``) that list ``path`` (repository-relative) or a folder above it."""
    target = Path(os.path.abspath(REPO / path))
    found = []
    for dvc_path in dvc_files:
        for name, stage in _stages(dvc_path.read_text()).items():
            deps = [Path(os.path.abspath(_workdir(dvc_path, stage) / d)) for d in stage.get("do", stage).get("deps", [])
                    if isinstance(d, str) and "${" not in d]
            if any(target == d or target.is_relative_to(d) for d in deps):
                found.append(f"{dvc_path.relative_to(REPO).as_posix()}:{name}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deadlib.tools.stage_deps", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the stale deps lists in place")
    parser.add_argument("--reruns", metavar="FILE", help="print the stages whose deps include FILE and exit")
    parser.add_argument("files", nargs="*", type=Path, default=list(DVC_FILES), help="dvc.yaml files")
    args = parser.parse_args(argv)
    if args.reruns:
        print("\n".join(dependents(args.reruns, args.files)) or "no stage")
        return 0
    stale = 0
    for path in args.files:
        if args.write and (changed := write(path)):
            print(f"{path}: rewrote the deps of {', '.join(changed)}")
        for name, (missing, extra) in mismatch(path).items():
            stale += 1
            print(f"{path}:{name}: missing {missing or '-'}; not imported {extra or '-'}")
    print(f"{stale} stage(s) with stale deps: python -m deadlib.tools.stage_deps --write" if stale else "stage deps ok")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
