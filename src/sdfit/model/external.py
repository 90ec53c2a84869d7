"""External data placeholder."""
from __future__ import annotations


def constants(em, node):
    raise em.unsupported("GET CONSTANTS")


def lookups(em, node):
    raise em.unsupported("GET LOOKUPS")


def data(em, node):
    raise em.unsupported("data variables")


def lookup_points(compiler, var, node):
    from ..exceptions import UnsupportedFeatureError
    raise UnsupportedFeatureError("GET LOOKUPS", var.name, compiler.path)
