"""Panels of observations and their readers."""

from .panel import Panel, describe_ids
from .readers import from_long, from_tidy, from_wide, read_panel

__all__ = ["Panel", "describe_ids", "from_long", "from_tidy", "from_wide", "read_panel"]
