import numpy as np

from sftvsrl.envs.virl import osm
from sftvsrl.envs.virl.render import VIEW_H, VIEW_W, render_views, style_for_city
from sftvsrl.envs.virl.routes import sample_route


def test_grid_shape_and_views_change_with_heading():
    route = sample_route(osm.load_city("helsinki"), "train", 3)
    a = render_views(route, 0, 0.0)
    b = render_views(route, 0, 180.0)
    assert a.shape == (2 * VIEW_H, 2 * VIEW_W, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)
    # Turning around swaps the front and back views (all but the corner label row).
    assert np.array_equal(a[: VIEW_H - 22, :VIEW_W], b[VIEW_H : 2 * VIEW_H - 22, VIEW_W:])
    assert np.array_equal(a[VIEW_H : 2 * VIEW_H - 22, VIEW_W:], b[: VIEW_H - 22, :VIEW_W])


def test_landmark_facades_are_drawn():
    m = osm.load_city("helsinki")
    route = sample_route(m, "train", 3)
    assert route.landmarks[0], "fixture route should have landmarks at its start"
    with_places = render_views(route, 0, 0.0)
    route.landmarks[0] = []
    without = render_views(route, 0, 0.0)
    assert not np.array_equal(with_places, without)


def test_styles():
    assert style_for_city("helsinki") == "day"
    assert style_for_city("kotka") == "dusk"
