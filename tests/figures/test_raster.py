"""The county index raster: each pixel names the county drawn there, the state borders'
coverage beside it, and the cache that keeps it is keyed by what it is made of."""

from __future__ import annotations

import numpy as np
import pytest

from sdfit.figures import load_county_shapes
from sdfit.figures import raster as raster_module

GRID = dict(width=300, height=200, border_pixels=0.7)


@pytest.fixture
def shapes(county_shapefile):
    return load_county_shapes(county_shapefile)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Rasters cached in ``tmp_path`` only, none remembered in memory."""
    monkeypatch.setattr(raster_module, "cache_file",
                        lambda kind, digest: tmp_path / f"{kind}-{digest[:32]}.npz")
    monkeypatch.setattr(raster_module, "_MEMO", {})
    return tmp_path


def _grid(shapes):
    (xmin, ymin), (xmax, ymax) = shapes.vertices.min(axis=0), shapes.vertices.max(axis=0)
    scale = min(GRID["width"] / (xmax - xmin), GRID["height"] / (ymax - ymin))
    return (xmin, ymin), [scale, scale]


def test_each_pixel_names_the_county_drawn_there(shapes, cache):
    origin, scale = _grid(shapes)
    made = raster_module.raster(shapes, origin, scale, **GRID)
    assert made.index.shape == made.border.shape == (GRID["height"], GRID["width"])
    # the middle of a large county, by its own vertices: San Bernardino, Elko (Nevada)
    for state, county in [(6, 71), (32, 7)]:
        record = shapes.locate([state], [county])[0]
        middle = shapes.paths[record].vertices.mean(axis=0)
        column, row = ((middle - origin) * scale).astype(int)  # row 0 is the bottom
        assert made.index[row, column] == record + 1
    assert made.index[0, -1] == 0  # the sea south-east of Texas
    assert len(np.unique(made.index)) > 2500  # most counties cover a pixel at this size
    assert made.border.max() == 255 and 0.01 < (made.border > 0).mean() < 0.2


def test_the_cache_is_keyed_by_sdfit_version_and_grid(shapes, cache, monkeypatch):
    origin, scale = _grid(shapes)
    first = raster_module.raster(shapes, origin, scale, **GRID)
    files = set(cache.iterdir())
    assert len(files) == 1
    # read back, not drawn again
    monkeypatch.setattr(raster_module, "_MEMO", {})
    monkeypatch.setattr(raster_module, "_draw", lambda *a: pytest.fail("drawn again"))
    again = raster_module.raster(shapes, origin, scale, **GRID)
    np.testing.assert_array_equal(again.index, first.index)
    np.testing.assert_array_equal(again.border, first.border)
    monkeypatch.undo()
    monkeypatch.setattr(raster_module, "cache_file",
                        lambda kind, digest: cache / f"{kind}-{digest[:32]}.npz")
    # another version of sdfit, another pixel size: never the old file
    for change in ({"__version__": "0.0.0-other"}, {"RASTER_VERSION": 99}):
        with monkeypatch.context() as patch:
            patch.setattr(raster_module, "_MEMO", {})
            for name, value in change.items():
                patch.setattr(raster_module, name, value)
            raster_module.raster(shapes, origin, scale, **GRID)
    monkeypatch.setattr(raster_module, "_MEMO", {})
    raster_module.raster(shapes, origin, [scale[0] * 0.5, scale[1] * 0.5], **GRID)
    assert len(set(cache.iterdir()) - files) == 3


def test_a_damaged_cache_file_is_drawn_again(shapes, cache, monkeypatch):
    origin, scale = _grid(shapes)
    first = raster_module.raster(shapes, origin, scale, **GRID)
    (path,) = cache.iterdir()
    path.write_bytes(path.read_bytes()[:500])
    monkeypatch.setattr(raster_module, "_MEMO", {})
    again = raster_module.raster(shapes, origin, scale, **GRID)
    np.testing.assert_array_equal(again.index, first.index)
    assert np.load(path)["index"].shape == first.index.shape  # whole again
