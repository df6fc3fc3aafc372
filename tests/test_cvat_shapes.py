"""CVAT shapes to masks and back (`sfcprop.integrations.cvat_shapes`), with the SDK's own
mask codec (`cvat_sdk.masks`)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip(
    "cvat_sdk", reason="the cvat extra (cvat-sdk >= 2.80, Python >= 3.11) is not installed"
)

from cvat_sdk.masks import decode_mask, encode_mask  # noqa: E402

from sfcprop.integrations import cvat_shapes as shapes  # noqa: E402

HW = (60, 80)


def ellipse(cx=40, cy=30, a=25, b=15) -> np.ndarray:
    yy, xx = np.mgrid[: HW[0], : HW[1]]
    return ((xx + 0.5 - cx) / a) ** 2 + ((yy + 0.5 - cy) / b) ** 2 < 1


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_a_mask_shape_is_cvats_rle_both_ways():
    m = ellipse()
    points = shapes.mask_to_shape("mask", m)
    assert decode_mask(points, image_width=80, image_height=60).tolist() == m.tolist()
    assert shapes.shape_to_mask("mask", encode_mask(m), HW).tolist() == m.tolist()
    assert shapes.mask_to_shape("mask", np.zeros(HW, bool)) is None
    with pytest.raises(shapes.ShapeError, match="does not fit the 40x30 image"):
        shapes.shape_to_mask("mask", points, (30, 40))
    with pytest.raises(shapes.ShapeError, match="holds no pixel"):
        shapes.shape_to_mask("mask", encode_mask(np.zeros(HW, bool), bbox=[0, 0, 4, 4]), HW)


@pytest.mark.parametrize("vertices", [4, 12, 40])
def test_a_polygon_is_traced_with_the_vertex_count_asked(vertices):
    m = ellipse()
    poly = shapes.mask_to_shape("polygon", m, vertices)
    assert len(poly) == 2 * vertices
    back = shapes.shape_to_mask("polygon", poly, HW)
    assert iou(back, m) > {4: 0.55, 12: 0.9, 40: 0.95}[vertices]


def test_a_rectangle_region_traces_to_its_four_corners_and_back_exactly():
    m = np.zeros(HW, bool)
    m[10:25, 20:50] = True
    poly = np.array(shapes.mask_to_shape("polygon", m, 4)).reshape(-1, 2)
    assert sorted(map(tuple, poly)) == [(20.5, 10.5), (20.5, 24.5), (49.5, 10.5), (49.5, 24.5)]
    assert shapes.shape_to_mask("polygon", poly.ravel(), HW).tolist() == m.tolist()


def test_the_polygon_goes_round_the_largest_region():
    m = ellipse(cx=50, a=20)
    m[2:6, 2:6] = True  # a small island, left out
    poly = shapes.mask_to_shape("polygon", m, 30)
    assert np.array(poly).reshape(-1, 2)[:, 0].min() > 25
    assert shapes.largest_region(m).sum() == ellipse(cx=50, a=20).sum()
    diagonal = np.eye(6, dtype=bool)  # 8-connected: one region
    assert shapes.largest_region(diagonal).sum() == 6
    single = np.zeros(HW, bool)
    single[5, 7] = True
    assert shapes.trace_polygon(single, 10).tolist() == [[7, 5], [8, 5], [8, 6], [7, 6]]


def test_a_box_is_filled_and_the_box_of_a_region_comes_back():
    m = shapes.box_to_mask([10, 5, 30, 20], HW)
    assert m.sum() == 20 * 15 and m[5, 10] and m[19, 29] and not m[20, 30]
    assert shapes.mask_to_shape("rectangle", m) == [10, 5, 30, 20]
    assert shapes.mask_to_shape("rectangle", ellipse()) == [15, 15, 65, 45]
    assert shapes.box_to_mask([10.2, 5.2, 10.4, 5.4], HW).sum() == 1  # thinner than a pixel
    with pytest.raises(shapes.ShapeError, match="outside the 80x60 image"):
        shapes.box_to_mask([100, 100, 120, 120], HW)


def test_points_stay_inside_the_image_and_bad_ones_are_named():
    xy = shapes.points_to_array([0, 0, 80, 60, 10.5, 20.25], HW)
    assert xy.shape == (3, 2) and (xy[:, 0] < 80).all() and (xy[:, 1] < 60).all()
    assert shapes.array_to_points(xy)[4:] == [10.5, 20.25]
    with pytest.raises(shapes.ShapeError, match=r"\(x=200, y=5\) lies outside the 80x60"):
        shapes.points_to_array([1, 1, 200, 5], HW)
    with pytest.raises(shapes.ShapeError, match="even number of at least 2"):
        shapes.points_to_array([1], HW)


def test_unsupported_types_and_malformed_points_are_refused():
    with pytest.raises(shapes.ShapeError, match="'cuboid'.*supported types are mask, polygon"):
        shapes.shape_to_mask("cuboid", [1, 2, 3, 4], HW)
    with pytest.raises(shapes.ShapeError, match="polygon needs an even number of at least 6"):
        shapes.shape_to_mask("polygon", [1, 2, 3, 4], HW)
    with pytest.raises(shapes.ShapeError, match="NaN or infinite"):
        shapes.shape_to_mask("rectangle", [1, 2, float("nan"), 4], HW)
    with pytest.raises(shapes.ShapeError, match="not a region"):
        shapes.shape_to_mask("points", [1, 2], HW)
