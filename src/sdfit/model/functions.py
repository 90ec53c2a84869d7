"""Vectorised Vensim/XMILE built-ins used by generated programs (imported there as ``F``).

Each function works on scalars and on arrays with a leading batch axis alike,
and mirrors PySD's ``pysd.py_backend.functions`` so that results agree.
"""

from __future__ import annotations

import numpy as np


def if_then_else(condition, value_true, value_false):
    """IF THEN ELSE, element-wise over the batch."""
    if np.ndim(condition) == 0:
        return value_true if condition else value_false
    return np.where(condition, value_true, value_false)
