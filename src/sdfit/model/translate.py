"""Parse Vensim and XMILE files into PySD's AbstractModel (parse only, no code generation),
with the extensions of :mod:`.sources` (inline comments, SINTEG, located parse errors)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from ..exceptions import ModelError
from .sanitize import check_xml, guard_translators

__all__ = ["element_kind", "translate"]

VENSIM_SUFFIXES = {".mdl"}
XMILE_SUFFIXES = {".xmile", ".xml", ".stmx"}


def translate(path: str | Path):
    """Return PySD's ``AbstractModel`` of a Vensim (``.mdl``) or XMILE model file.

    Raises
    ------
    ModelError
        If the file is missing, has an unknown suffix or cannot be parsed.
    """
    from .sources import extend, locate, prepare_xmile, read_vensim  # PySD's grammar: slow

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VENSIM_SUFFIXES | XMILE_SUFFIXES:
        known = ", ".join(sorted(VENSIM_SUFFIXES | XMILE_SUFFIXES))
        raise ModelError(
            f"Model file '{path}' has suffix '{path.suffix}'; expected one of {known}.")
    if not path.is_file():
        raise ModelError(f"Model file '{path}' does not exist.")
    if path.stat().st_size == 0:
        raise ModelError(f"Model file '{path}' is empty.")
    kind = "a Vensim" if suffix in VENSIM_SUFFIXES else "an XMILE"
    with open(path, "rb") as handle:
        if b"\0" in handle.read(1 << 16):  # binary: the parser's complaint would be noise
            raise ModelError(f"Model file '{path}' is not {kind} model file (it is binary).")
    if suffix in XMILE_SUFFIXES:
        check_xml(path)
    guard_translators()  # model text is untrusted: PySD's translators may eval literals only
    source, text = None, ""
    try:
        with warnings.catch_warnings():
            # PySD warns about a missing encoding header and assumes UTF-8, which is right
            warnings.simplefilter("ignore", UserWarning)
            if suffix in VENSIM_SUFFIXES:
                source, text = read_vensim(path)
            else:
                from pysd.translators.xmile.xmile_file import XmileFile

                text = path.read_text(errors="ignore")
                source = XmileFile(path)
                prepare_xmile(source.xmile_root, source.ns)
            source.parse()
            model = source.get_abstract_model()
    except Exception as error:  # the translators raise parser-specific errors
        reason = " ".join(str(error).split())
        if reason in ("", "None") or isinstance(error, TypeError | UnicodeError):
            # foreign content: the translators' own words would not help
            raise ModelError(f"Model file '{path}' is not {kind} model file.") from error
        where = locate(error, text, getattr(source, "sections", ()),
                       xml=suffix in XMILE_SUFFIXES)
        if where:  # PySD's position counts within one equation: give the file's instead
            reason = re.sub(r"\s*\(line \d+, column \d+\)\.?$", "", reason)
            reason = re.sub(r"^Rule '.*' matched in its entirety, but it didn't consume all "
                            r"the text\. The non-matching portion of the text begins with ",
                            "cannot read from ", reason)
        raise ModelError(f"Model file '{path}' could not be parsed{where}: {reason}") from error
    for section in model.sections:
        extend(section)
    return model


def element_kind(element) -> str:
    """"control", "lookup", "stock" or "auxiliary" (constants are told apart later,
    once the dependency graph says what changes over time)."""
    from pysd.translators.structures import abstract_expressions as ae
    from pysd.translators.structures import abstract_model as am

    component = element.components[0]
    if isinstance(element, am.AbstractControlElement):
        return "control"
    if isinstance(component, am.AbstractLookup):
        return "lookup"
    if isinstance(component.ast, ae.IntegStructure):
        return "stock"
    return "auxiliary"
