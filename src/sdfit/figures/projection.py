"""An equal-area map of the United States from longitude and latitude, in NumPy.

The lower 48 states are drawn in the Albers equal-area conic of the USA Contiguous
Albers projection (ESRI:102003, the projection of the census shapefiles sdfit ships
for); Alaska and Hawaii each in their own Albers conic (Alaska shrunk, as d3's
``geoAlbersUsa`` does), then moved into insets at the lower left.  Formulas: Snyder,
*Map Projections: A Working Manual* (1987), eq. 3-12, 14-3 to 14-6, on the GRS 80
ellipsoid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_A = 6378137.0  # GRS 80 semi-major axis, metres
_E2 = 0.00669438002290  # and squared eccentricity
_E = np.sqrt(_E2)


def _q(lat: np.ndarray) -> np.ndarray:
    s = np.sin(np.radians(lat))
    return (1 - _E2) * (s / (1 - _E2 * s * s)
                        - np.log((1 - _E * s) / (1 + _E * s)) / (2 * _E))


def _m(lat: float) -> float:
    s = np.sin(np.radians(lat))
    return np.cos(np.radians(lat)) / np.sqrt(1 - _E2 * s * s)


@dataclass(frozen=True)
class Albers:
    """Albers equal-area conic with standard parallels ``lat1``, ``lat2`` and origin
    (``lon0``, ``lat0``); coordinates in metres."""

    lon0: float
    lat0: float
    lat1: float
    lat2: float

    def __call__(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        m1, m2 = _m(self.lat1), _m(self.lat2)
        q1, q2 = _q(np.float64(self.lat1)), _q(np.float64(self.lat2))
        n = (m1 * m1 - m2 * m2) / (q2 - q1)
        c = m1 * m1 + n * q1
        rho0 = _A * np.sqrt(c - n * _q(np.float64(self.lat0))) / n
        rho = _A * np.sqrt(c - n * _q(np.asarray(lat, float))) / n
        theta = n * np.radians(np.asarray(lon, float) - self.lon0)
        return rho * np.sin(theta), rho0 - rho * np.cos(theta)


LOWER_48 = Albers(-96.0, 37.5, 29.5, 45.5)  # ESRI:102003
ALASKA = Albers(-154.0, 50.0, 55.0, 65.0)  # EPSG:3338
HAWAII = Albers(-157.0, 3.0, 8.0, 18.0)  # ESRI:102007
ALASKA_SCALE = 0.35  # Alaska drawn at this scale (areas times its square), as d3 does
ALASKA_FIPS, HAWAII_FIPS = 2, 15


def albers_usa(lon, lat, state: int) -> tuple[np.ndarray, np.ndarray]:
    """Project longitudes and latitudes (degrees) of a place in state ``state`` (FIPS):
    Alaska and Hawaii each in its own conic (Alaska shrunk), every other state in the
    lower 48's.  Where the insets go on the map is :func:`inset_shifts`'s business."""
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    if state == ALASKA_FIPS:
        x, y = ALASKA(np.where(lon > 0, lon - 360, lon), lat)  # the Aleutians past 180°
        return ALASKA_SCALE * x, ALASKA_SCALE * y
    if state == HAWAII_FIPS:
        return HAWAII(lon, lat)
    return LOWER_48(lon, lat)


def inset_shifts(points: np.ndarray, state: np.ndarray) -> dict[int, np.ndarray]:
    """How far to move Alaska, then Hawaii, to put them at the lower left of the map,
    each just below the lowest point of the other states above it (a compact map: the
    census file keeps Alaska above Washington).  ``points`` (V, 2) in map metres,
    ``state`` (V,) the FIPS number of each point."""
    others = points[~np.isin(state, [ALASKA_FIPS, HAWAII_FIPS])]
    shifts: dict[int, np.ndarray] = {}
    if not len(others):
        return shifts
    left, gap = others[:, 0].min(), 0.01 * np.ptp(others[:, 0])
    for fips in (ALASKA_FIPS, HAWAII_FIPS):
        inset = points[state == fips]
        if not len(inset):
            continue
        width = np.ptp(inset[:, 0])
        above = others[(others[:, 0] >= left) & (others[:, 0] <= left + width), 1]
        top = (above.min() if len(above) else others[:, 1].min()) - gap
        shifts[fips] = np.array([left - inset[:, 0].min(), top - inset[:, 1].max()])
        left += width + 3 * gap
    return shifts


def is_geographic(bbox: tuple[float, float, float, float]) -> bool:
    """Whether a shapefile's bounding box (xmin, ymin, xmax, ymax) can only be degrees:
    projected coordinates of a country are metres, far beyond 180."""
    xmin, ymin, xmax, ymax = bbox
    return -180 <= xmin <= xmax <= 180 and -90 <= ymin <= ymax <= 90
