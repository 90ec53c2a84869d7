"""The scale on which a pooled parameter's population is normal: its own, log or logit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import SpecError

TRANSFORMS = ("none", "log", "logit")


@dataclass(frozen=True)
class Transforms:
    """The scale of each parameter on which its population is normal."""

    kinds: tuple[str, ...]
    names: list[str]

    def __post_init__(self):
        for kind, name in zip(self.kinds, self.names, strict=True):
            if kind not in TRANSFORMS:
                raise SpecError(f"The transform of parameter '{name}' must be one of "
                                f"{TRANSFORMS}; got {kind!r}.")

    def check(self, x: np.ndarray) -> None:
        for j, kind in enumerate(self.kinds):
            bad = ~(x[:, j] > 0) if kind == "log" else ~((x[:, j] > 0) & (x[:, j] < 1))
            if kind != "none" and bad.any():
                domain = "> 0" if kind == "log" else "strictly between 0 and 1"
                raise SpecError(f"Parameter '{self.names[j]}' is pooled on the {kind} scale, "
                                f"so its x0 must be {domain}; got {x[bad, j][0]:g}.")

    def forward(self, x: np.ndarray) -> np.ndarray:
        phi = np.array(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            for j, kind in enumerate(self.kinds):
                if kind == "log":
                    phi[..., j] = np.log(x[..., j])
                elif kind == "logit":
                    phi[..., j] = np.log(x[..., j]) - np.log1p(-x[..., j])
        return phi

    def inverse(self, phi: np.ndarray) -> np.ndarray:
        x = np.array(phi, dtype=float)
        with np.errstate(over="ignore"):
            for j, kind in enumerate(self.kinds):
                if kind == "log":
                    x[..., j] = np.exp(phi[..., j])
                elif kind == "logit":
                    x[..., j] = 1 / (1 + np.exp(-phi[..., j]))
        return x

    def forward_bounds(self, lower, upper):
        """Bounds on the transformed scale (a bound outside the domain becomes infinite)."""
        domain = {"none": (-np.inf, np.inf), "log": (0.0, np.inf), "logit": (0.0, 1.0)}
        lo_edge = np.array([domain[k][0] for k in self.kinds])
        hi_edge = np.array([domain[k][1] for k in self.kinds])
        lo = self.forward(np.maximum(lower, lo_edge))
        hi = self.forward(np.minimum(upper, hi_edge))
        return np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)
