"""County shapes: what the census shapefile holds, the equal-area projection, the insets,
and the cache."""

from __future__ import annotations

import numpy as np
import pytest
import shapefile
from matplotlib.path import Path as MplPath

from sdfit.exceptions import DataError
from sdfit.figures import load_county_shapes
from sdfit.figures import shapes as shapes_module
from sdfit.figures.projection import (
    ALASKA_SCALE,
    LOWER_48,
    albers_usa,
    inset_shifts,
    is_geographic,
)

# places whose longitude and latitude are known, and the county holding them
PLACES = [((-77.0365, 38.8977), (11, 1)),  # the White House, District of Columbia
          ((-118.2428, 34.0537), (6, 37)),  # Los Angeles City Hall
          ((-87.6298, 41.8781), (17, 31)),  # Chicago, Cook County
          ((-80.1918, 25.7617), (12, 86)),  # Miami, Miami-Dade
          ((-122.4194, 37.7749), (6, 75))]  # San Francisco


@pytest.fixture(scope="module")
def shapes(county_shapefile, tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setattr(shapes_module, "cache_file",
                               lambda kind, digest: tmp_path_factory.mktemp("cache") / "c.npz")
    return load_county_shapes(county_shapefile)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_census_shapefile_holds_usa_contiguous_albers_metres(county_shapefile):
    """The data README says projected metres; they are ESRI:102003, the projection that
    sdfit's own Albers formula reproduces: known places fall in their counties."""
    with open(county_shapefile, "rb") as shp, \
            open(county_shapefile.with_suffix(".dbf"), "rb") as dbf:
        reader = shapefile.Reader(shp=shp, dbf=dbf)
        assert not is_geographic(tuple(reader.bbox))
        polygons = {}
        for shape, record in zip(reader.iterShapes(), reader.iterRecords(), strict=True):
            polygons[(record["StateFIPSN"], record["CntyFIPSN"])] = np.asarray(shape.points)
    for (lon, lat), county in PLACES:
        x, y = LOWER_48(lon, lat)
        assert MplPath(polygons[county]).contains_point((x, y)), county
        others = [k for k, p in polygons.items() if k != county
                  and MplPath(p).contains_point((x, y))]
        assert not others, (county, others)


def test_albers_is_equal_area():
    """A small cell's projected area is its area on the ellipsoid (closed form: the
    authalic latitude's q), anywhere; Alaska's by ALASKA_SCALE squared."""
    from sdfit.figures.projection import _A, _q

    for lon, lat, state in [(-100, 30, 6), (-75, 44, 36), (-150, 62, 2), (-157, 20, 15)]:
        d = 0.01
        corners = np.array([(lon, lat), (lon + d, lat), (lon + d, lat + d), (lon, lat + d)])
        x, y = albers_usa(corners[:, 0], corners[:, 1], state)
        area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        exact = _A ** 2 / 2 * np.radians(d) * (_q(lat + d) - _q(lat))
        scale = ALASKA_SCALE ** 2 if state == 2 else 1
        assert area == pytest.approx(exact * scale, rel=1e-4)


def test_insets_go_to_the_lower_left_below_the_other_states():
    rng = np.random.default_rng(0)
    lower48 = rng.uniform([-2e6, -1.5e6], [2e6, 1.5e6], size=(200, 2))
    alaska = rng.uniform([-2.5e6, 2e6], [-1.5e6, 2.8e6], size=(50, 2))
    hawaii = rng.uniform([-2.5e6, -1.6e6], [-2e6, -1.2e6], size=(20, 2))
    points = np.concatenate([lower48, alaska, hawaii])
    state = np.repeat([6, 2, 15], [200, 50, 20])
    shifts = inset_shifts(points, state)
    moved_ak, moved_hi = alaska + shifts[2], hawaii + shifts[15]
    assert moved_ak[:, 0].min() == pytest.approx(lower48[:, 0].min())
    assert moved_hi[:, 0].min() > moved_ak[:, 0].max()  # side by side
    for inset in (moved_ak, moved_hi):
        under = lower48[(lower48[:, 0] >= inset[:, 0].min())
                        & (lower48[:, 0] <= inset[:, 0].max())]
        assert inset[:, 1].max() < under[:, 1].min()  # below what is above them


def test_census_shapes_with_names_holes_and_state_borders(shapes):
    assert len(shapes.state) == 3140 and len(shapes.paths) == 3140
    names = shapes.names()
    assert names[(6, 37)] == "Los Angeles County, California"
    assert names[(15, 5)] == "Kalawao County, Hawaii"
    assert shapes.locate([6, 2, 99], [37.0, 68, 1]).tolist()[1:] == [-1, -1]
    assert shapes.name[shapes.locate([6], [37])[0]] == "Los Angeles County, California"
    assert len(shapes.borders()) > 51  # states with islands have several rings
    # the insets sit below the lower 48 (the file keeps Alaska above Washington)
    alaska = shapes.paths[shapes.locate([2], [185])[0]].vertices  # North Slope
    washington = shapes.paths[shapes.locate([53], [33])[0]].vertices  # King County
    assert alaska[:, 1].max() < washington[:, 1].min()
    # 21 rings in the file are holes, e.g. Albemarle County round the independent city of
    # Charlottesville: they stay holes of their county's compound path
    albemarle, charlottesville = (shapes.paths[i] for i in shapes.locate([51, 51], [3, 540]))
    city = charlottesville.vertices[:-1].mean(axis=0)
    assert _drawn(charlottesville, city) and not _drawn(albemarle, city)
    assert _drawn(albemarle, city + [0, 8000])  # 8 km north: the county itself


def test_shapes_are_read_once_then_come_from_the_cache(county_shapefile, tmp_path,
                                                       monkeypatch):
    cache = tmp_path / "shapes.npz"
    monkeypatch.setattr(shapes_module, "cache_file", lambda kind, digest: cache)
    shapes_module._load.cache_clear()
    first = load_county_shapes(county_shapefile)
    assert cache.is_file()
    shapes_module._load.cache_clear()
    monkeypatch.setattr(shapes_module, "_read", lambda *a: pytest.fail("parsed again"))
    again = load_county_shapes(county_shapefile)
    np.testing.assert_array_equal(again.vertices, first.vertices)
    np.testing.assert_array_equal(again.name, first.name)
    # a damaged cache file is read from the shapefile again, and replaced
    monkeypatch.undo()
    monkeypatch.setattr(shapes_module, "cache_file", lambda kind, digest: cache)
    cache.write_bytes(cache.read_bytes()[:1000])
    shapes_module._load.cache_clear()
    np.testing.assert_array_equal(load_county_shapes(county_shapefile).vertices,
                                  first.vertices)
    shapes_module._load.cache_clear()
    assert np.load(cache)["vertices"].shape == first.vertices.shape  # whole again
    shapes_module._load.cache_clear()


def test_a_lon_lat_shapefile_is_projected(tmp_path):
    """A shapefile in degrees (as the Census Bureau's TIGER files are): a square county
    in Kansas and one in Alaska."""
    path = tmp_path / "counties.shp"
    with shapefile.Writer(str(path), shapeType=shapefile.POLYGON) as writer:
        writer.field("STATEFP", "N", 2)
        writer.field("COUNTYFP", "N", 3)
        writer.field("NAMELSAD", "C", 40)
        for state, county, name, (lon, lat) in [(20, 1, "Square County", (-98, 38)),
                                                 (2, 20, "Anchorage Municipality", (-150, 61))]:
            writer.poly([[(lon, lat), (lon, lat + 1), (lon + 1, lat + 1), (lon + 1, lat),
                          (lon, lat)]])
            writer.record(state, county, name)
    shapes = load_county_shapes(path, cache=False)
    kansas, alaska = (shapes.paths[i].vertices for i in shapes.locate([20, 2], [1, 20]))
    expected = np.column_stack(LOWER_48(np.array([-98, -98, -97, -97, -98]),
                                        np.array([38, 39, 39, 38, 38])))
    np.testing.assert_allclose(kansas, np.round(expected / 500) * 500)  # snapped
    # moved to the lower left: below Kansas, which it does not touch, shrunk
    assert not MplPath(kansas).intersects_path(MplPath(alaska), filled=True)
    assert alaska[:, 1].mean() < kansas[:, 1].min()
    assert alaska[:, 0].min() == pytest.approx(kansas[:, 0].min(), abs=500)
    assert np.ptp(alaska[:, 1]) == pytest.approx(ALASKA_SCALE * 111e3, rel=0.05)  # 1° lat
    assert shapes.names()[(2, 20)] == "Anchorage Municipality"


def test_a_shapefile_without_fips_fields_is_one_sentence(tmp_path):
    path = tmp_path / "other.shp"
    with shapefile.Writer(str(path), shapeType=shapefile.POLYGON) as writer:
        writer.field("STATEFIPS", "N", 2)
        writer.poly([[(0, 0), (0, 1), (1, 1), (0, 0)]])
        writer.record(1)
    with pytest.raises(DataError, match="has no state FIPS field.*STATEFIPS"):
        load_county_shapes(path, cache=False)
    with pytest.raises(DataError, match="does not exist"):
        load_county_shapes(tmp_path / "missing.shp")


def _drawn(path: MplPath, point) -> bool:
    """Whether drawing ``path`` filled paints ``point`` (matplotlib's contains_point
    ignores holes; the renderer does not)."""
    from matplotlib.collections import PathCollection

    from sdfit.figures.canvas import new_figure

    fig = new_figure(4, 4)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.add_collection(PathCollection([path], facecolors="red", edgecolors="none"))
    ax.set_xlim(path.vertices[:, 0].min(), path.vertices[:, 0].max())
    ax.set_ylim(path.vertices[:, 1].min(), path.vertices[:, 1].max())
    fig.canvas.draw()
    x, y = ax.transData.transform(point)
    pixels = np.asarray(fig.canvas.buffer_rgba())
    return tuple(pixels[int(pixels.shape[0] - y), int(x), :3]) == (255, 0, 0)
