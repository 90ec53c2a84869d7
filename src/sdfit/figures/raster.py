"""Which county each pixel of a map shows.

Drawing 3,000 county polygons again for every parameter's map was most of a map's cost.
The polygons are instead rasterised once per pixel grid into an index raster (the record
each pixel shows), with the state borders' coverage of each pixel beside it, and cached in
the user cache beside the projected shapes; a map panel is then one table lookup of its
colours, drawn as an image at exactly its own pixels.  Rasterised by Agg as the polygons
were drawn before (aliased, so no seams; borders antialiased), the maps look the same.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np
from matplotlib.image import AxesImage
from matplotlib.transforms import Affine2D, IdentityTransform

from .._version import __version__
from .shapes import CountyShapes, cache_file, cached_arrays

RASTER_VERSION = 1  # bump when what is cached changes
BORDER_POINTS = 0.5  # width of the state borders
BORDER_RGB = 255  # drawn white


@dataclass(frozen=True)
class Raster:
    """One pixel grid of a map, bottom row first (as the renderer takes an image).

    Attributes
    ----------
    index : ndarray of uint16 (int32 beyond 65,535 records), shape (H, W)
        1 + the record of the county each pixel shows; 0 where no county is.
    border : ndarray of uint8, shape (H, W)
        How much of each pixel the state borders cover, 0 to 255.
    """

    index: np.ndarray
    border: np.ndarray

    def paint(self, colours: np.ndarray) -> np.ndarray:
        """RGBA bytes of the grid with record ``r`` in ``colours[r]`` (RGBA in 0-1) and
        the borders over it; transparent where no county is."""
        table = np.zeros((len(colours) + 1, 4), dtype=np.uint8)
        table[1:] = np.round(np.asarray(colours, float) * 255)
        rgba = table[self.index]
        at, cover = self._bordered
        flat = rgba.reshape(-1, 4)
        rgb = flat[at, :3].astype(np.uint16)
        flat[at, :3] = (rgb + ((BORDER_RGB - rgb) * cover + 127) // 255).astype(np.uint8)
        return rgba

    @functools.cached_property
    def _bordered(self) -> tuple[np.ndarray, np.ndarray]:
        """The pixels of counties a border crosses, and how much of each it covers: the
        borders are blended as Agg blends an antialiased line, over the counties only."""
        at = np.flatnonzero((self.border.ravel() > 0) & (self.index.ravel() > 0))
        return at, self.border.ravel()[at, None].astype(np.uint16)


class CountyImage(AxesImage):
    """The counties of one map, coloured per record, drawn at the exact pixels of its
    axes whatever the figure's dpi: at draw time it takes the raster of the axes' pixel
    grid (made once, then cached), paints it and hands it to the renderer as it is (no
    resampling, no clipping: the grid is the axes' box in whole pixels)."""

    def __init__(self, ax, shapes: CountyShapes, colours: np.ndarray, **kwargs):
        super().__init__(ax, origin="upper", **kwargs)
        self.shapes = shapes
        self.colours = np.asarray(colours, float)
        self.raster: Raster | None = None  # the last one drawn
        self.set_clip_on(False)
        self.set_data(np.zeros((1, 1, 4), dtype=np.uint8))
        self._extent = [*ax.get_xlim(), *ax.get_ylim()]

    def make_image(self, renderer, magnification=1.0, unsampled=False):
        # the grid: the axes' view at its pixel scale, placed at the nearest whole pixel
        # (half a pixel off at most), so that every map of a figure shares one raster
        box = self.axes.bbox  # Axes.draw has applied the aspect by now
        (x0, x1), (y0, y1) = self.axes.get_xlim(), self.axes.get_ylim()
        scale = [float(f"{box.width / (x1 - x0):.9g}"), float(f"{box.height / (y1 - y0):.9g}")]
        width, height = math.ceil(box.width - 1e-3), math.ceil(box.height - 1e-3)
        self.raster = raster(self.shapes, (x0, y0), scale, width, height,
                             renderer.points_to_pixels(BORDER_POINTS))
        return (self.raster.paint(self.colours), round(box.x0), round(box.y0),
                IdentityTransform())


def raster(shapes: CountyShapes, origin: tuple[float, float], scale: list[float],
           width: int, height: int, border_pixels: float) -> Raster:
    """The raster of ``shapes`` on a grid of ``width`` x ``height`` pixels whose lower left
    corner is the point ``origin`` (map metres), ``scale`` pixels per metre along x and y,
    state borders ``border_pixels`` wide: from memory, the user cache or drawn."""
    key = hashlib.sha256(repr((RASTER_VERSION, __version__, shapes.digest,
                               [float(v) for v in (*origin, *scale)], int(width),
                               int(height), round(float(border_pixels), 9))).encode())
    to_grid = Affine2D().translate(-origin[0], -origin[1]).scale(*scale).get_matrix()
    key = key.hexdigest()
    if key not in _MEMO:
        while len(_MEMO) >= 8:  # a few grids: the file's, the report's, one large map
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = _cached(shapes, key, to_grid, int(width), int(height),
                             float(border_pixels))
    return _MEMO[key]


_MEMO: dict[str, Raster] = {}  # by the key that says everything a raster is made of


def _cached(shapes: CountyShapes, key: str, to_grid: np.ndarray, width: int, height: int,
            border_pixels: float) -> Raster:
    arrays = cached_arrays(
        cache_file("county-raster", key),
        lambda: vars(_draw(shapes, to_grid, width, height, border_pixels)),
        lambda found: found["index"].shape == found["border"].shape == (height, width))
    return Raster(arrays["index"], arrays["border"])


def _draw(shapes: CountyShapes, to_grid: np.ndarray, width: int, height: int,
          border_pixels: float) -> Raster:
    """Rasterise with Agg: each county filled, aliased, in a colour that is its number;
    the borders antialiased in white on black, whose brightness is their coverage."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.path import Path as MplPath

    transform = Affine2D(to_grid)
    number = np.arange(1, len(shapes.state) + 1)
    colours = np.column_stack([number & 255, (number >> 8) & 255, (number >> 16) & 255,
                               np.full(len(number), 255)]) / 255
    counties = _collection(RendererAgg(width, height, 72), transform, shapes.paths,
                           faces=colours, edges=np.zeros((0, 4)), linewidth=0.0,
                           antialiased=False)
    index = (counties[..., 0].astype(np.int32) | counties[..., 1].astype(np.int32) << 8
             | counties[..., 2].astype(np.int32) << 16)
    index[counties[..., 3] == 0] = 0  # Agg's empty canvas is transparent white
    if len(number) < 2**16:  # half the bytes to cache and read
        index = index.astype(np.uint16)
    borders = [MplPath(line) for line in shapes.borders()]
    lines = _collection(RendererAgg(width, height, 72), transform, borders,
                        faces=np.zeros((0, 4)), edges=np.ones((1, 4)),
                        linewidth=border_pixels, antialiased=True) if borders else None
    border = lines[..., 3] if lines is not None else np.zeros(index.shape, np.uint8)
    return Raster(index[::-1].copy(), border[::-1].copy())  # Agg's buffer is top row first


def _collection(renderer, transform, paths, *, faces, edges, linewidth, antialiased):
    """Draw ``paths`` with one call of Agg (no figure: nothing is laid out) and return
    the pixels, RGBA bytes, top row first."""
    gc = renderer.new_gc()
    gc.set_antialiased(antialiased)
    renderer.draw_path_collection(
        gc, transform.frozen(), paths, np.empty((0, 3, 3)), np.zeros((0, 2)),
        IdentityTransform(), faces, edges, [linewidth], [(0, None)], [antialiased], [None],
        "screen")
    gc.restore()
    return np.asarray(renderer.buffer_rgba())
