"""Name matching the way Vensim and PySD do it, with helpful suggestions.

Vensim names are case-insensitive and treat runs of spaces and underscores as
one separator, so ``dec_1``, ``Dec 1`` and ``dec  1`` name the same variable.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable
from functools import lru_cache

_SEPARATORS = re.compile(r"[\s_]+")


def canonical(name: str) -> str:
    """Return the comparison key of a model or data name (``'Dec_1'`` -> ``'dec 1'``)."""
    return _canonical(str(name))


# Resolving a problem compares the same few hundred names thousands of times: remembered.
@lru_cache(maxsize=1 << 16)
def _canonical(name: str) -> str:
    name = name.strip().strip('"').strip()
    return _SEPARATORS.sub(" ", name).lower()


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` candidates that look like ``name`` (compared canonically)."""
    by_key = {canonical(c): c for c in candidates}
    keys = difflib.get_close_matches(canonical(name), list(by_key), n=n, cutoff=0.6)
    return [by_key[k] for k in keys]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" Did you mean 'a' or 'b'?"`` or ``""`` when nothing is close."""
    matches = close_matches(name, candidates)
    if not matches:
        return ""
    quoted = [f"'{m}'" for m in matches]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f" Did you mean {listed}?"


def match_pattern(pattern: str, candidates: Iterable[str]) -> list[str]:
    """Return the candidates matching an exact name or a glob such as ``dec * loss rate``.

    Matching is canonical (case, spaces and underscores) and keeps the order
    of ``candidates``.
    """
    key = canonical(pattern)
    if "*" not in key and "?" not in key:
        return [c for c in candidates if canonical(c) == key]
    # brackets are subscripts ("rate[dec 3]"), never glob character classes
    glob = key.replace("[", "[[]")
    return [c for c in candidates if fnmatch.fnmatchcase(canonical(c), glob)]


@lru_cache(maxsize=1 << 16)
def element_key(name: str) -> str:
    """Comparison key of a variable or element name (``"Pop[dec_1, B]"`` ->
    ``"pop[dec 1,b]"``)."""
    return re.sub(r"\s*([\[\],])\s*", r"\1", canonical(name))


def is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def aliased(names: Iterable[str], aliases: dict[str, str]) -> dict[str, str]:
    """Model-side key -> name, for data names read through ``aliases`` (globs whose ``*``
    and ``?`` carry over to the model name: ``{"dec *": "population[dec *]"}`` reads
    ``dec_3`` as ``population[dec 3]``); names no alias matches keep their own key."""
    compiled = []
    for pattern, target in aliases.items():
        regex = "".join("(.*)" if c == "*" else "(.)" if c == "?" else re.escape(c)
                        for c in element_key(pattern))
        compiled.append((re.compile(regex), element_key(target)))
    keys = {}
    for name in names:
        key = element_key(name)
        for regex, target in compiled:
            match = regex.fullmatch(key)
            if match:
                pieces = re.split(r"[*?]", target)
                key = pieces[0] + "".join(g + p for g, p in zip(match.groups(), pieces[1:],
                                                                strict=True))
                break
        keys[key] = name
    return keys
