"""The house's rooms and what each may import: every import inside sdfit goes down the list
below (or stays in its room), so there is no import cycle between rooms.  README's
ARCHITECTURE section is this table in words."""

from __future__ import annotations

import ast
from pathlib import Path

import sdfit

SRC = Path(sdfit.__file__).parent

#: Rooms from the bottom up: a room may import the rooms before it in this list (earlier
#: lines, or earlier in its own line), never a room after it.
LAYERS = [
    ["_version", "exceptions", "names", "files", "native", "lazy"],  # leaves; compiled C;
    # names imported on first use
    ["settings", "progress"],  # validation at the boundary; progress on stderr
    ["model.sanitize", "model.sources", "model.translate"],  # untrusted model text; PySD's
    # translators and what sdfit reads beyond them
    ["model.runtime"],  # BatchModel, its generated program, PySD's runtime per unit
    ["model.compiler"],  # AbstractModel -> BatchModel
    ["model"],  # the engine contract and the choice of engine
    ["data"],  # panels and their readers
    ["problem", "datasets"],  # what to fit; data shipped or fetched
    ["resolved", "validate_units", "resolution"],  # problem x model x panel -> typed blocks
    ["likelihoods", "objective", "compiled_residuals", "solvers", "diagnostics"],  # residuals
    # (in C for the compiled solver loop), solvers, diagnostics
    ["fitting"],  # one chunk on a worker: starts, dispersion, best start
    ["results", "assemble", "checkpoint", "rundir", "backends"],  # tables, files; where chunks run
    ["calibrate"],  # sdfit.fit(): chunk, map, save, assemble
    ["spec", "stories", "figures", "report", "demo", "conformance"],  # specs; looking
    ["cli", "sdfit"],  # the command line and the package's public names
]
LAYER = {room: rank for rank, room in enumerate(r for rooms in LAYERS for r in rooms)}
#: The documented exceptions: conveniences on FitResult that import the rooms that draw it
#: when called (``result.stories()``, ``result.plot(unit)``), so a notebook needs no import.
UPWARD = {("results", "stories"), ("results", "figures")}


def room(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "sdfit"
    if parts[0] == "model" and len(parts) > 1 and parts[1] in ("compiler", "runtime",
                                                               "sanitize", "sources",
                                                               "translate"):
        return "model." + parts[1]
    return parts[0]


def imports() -> list[tuple[str, str, str]]:
    """(importing module, imported module, where) for every import of sdfit inside sdfit,
    at module level or inside functions (a lazy import is a dependency all the same)."""
    found = []
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
            package = parts
        else:
            package = parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - node.level + 1]
                names = [node.module] if node.module else [a.name for a in node.names]
                for name in names:
                    found.append((".".join(parts), ".".join(base + name.split(".")),
                                  f"{path.name}:{node.lineno}"))
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [
                    a.name for a in node.names]
                found += [(".".join(parts), n, f"{path.name}:{node.lineno}") for n in names
                          if n and n.split(".")[0] == "sdfit"]
    return found


def test_every_room_is_in_the_table():
    rooms = {room(m) for m, _, _ in imports()} | {room(t) for _, t, _ in imports()}
    assert rooms <= set(LAYER), sorted(rooms - set(LAYER))


def test_imports_only_go_down():
    upward = [f"{where}: {room(m)} imports {room(t)} ({t})" for m, t, where in imports()
              if room(m) != room(t) and LAYER[room(t)] >= LAYER[room(m)]
              and (room(m), room(t)) not in UPWARD]
    assert not upward, "\n".join(upward)
