"""Camera distances jittered per object and view (CLIP2Point's pre-training renders): recorded
in ``cameras/distance``, consistent with ``T`` and ``world_to_camera``, points still on masks."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from tap3d.builder import BuildConfig
from tap3d.buildconfig import load_build_config
from tap3d.render.cameras import DEFAULT_DISTANCE, make_layout

from helpers import assert_points_on_masks


@pytest.fixture(scope="module")
def jittered(make_dataset):
    """The clip2point-pretrain preset: CLIP2Point's 10 views, distance x U[0.9, 1.1)."""
    config = load_build_config(None, preset="clip2point-pretrain", image_size=64, points=512,
                               shard_size=4)
    assert config.distance_jitter == (0.9, 1.1) and config.layout == "clip2point"
    import dataclasses

    return make_dataset("jitter", **dataclasses.asdict(config))


def test_distances_are_jittered_within_the_range(jittered):
    g = zarr.open_group(jittered, mode="r")
    distance = g["cameras/distance"][:]
    assert distance.shape == (8, 10)
    ratio = distance / DEFAULT_DISTANCE
    assert (ratio >= 0.9).all() and (ratio < 1.1).all()
    assert np.unique(np.round(ratio, 5)).size > 70  # per object and view, not one draw
    assert g.attrs["distance_jitter"] == [0.9, 1.1] and g.attrs["layout"]["distance"] is None
    # the stored cameras are the jittered ones: the camera centre sits at that distance
    w2c = g["cameras/world_to_camera"][:].astype(np.float64)
    centres = -np.einsum("nvji,nvj->nvi", w2c[..., :3, :3], w2c[..., :3, 3])
    np.testing.assert_allclose(np.linalg.norm(centres, axis=-1), distance, rtol=1e-5)
    T = g["cameras/T"][:]
    np.testing.assert_allclose(np.linalg.norm(T, axis=-1), distance, rtol=1e-5)


def test_points_land_on_the_masks_of_jittered_views(jittered):
    g = zarr.open_group(jittered, mode="r")
    assert_points_on_masks(g["points"][:], g["cameras/K"][:], g["cameras/world_to_camera"][:],
                           g["mask"][:])


def test_the_jitter_is_seeded_and_any_layout_takes_it():
    def draw(seed):
        return make_layout("mvcnn", 12, 2.0, np.random.default_rng(seed), (0.8, 1.25)).distance

    np.testing.assert_array_equal(draw(3), draw(3))
    assert not np.array_equal(draw(3), draw(4))
    assert ((draw(3) >= 1.6) & (draw(3) < 2.5)).all()
    fixed = make_layout("mvcnn", 12, 2.0)
    assert (fixed.distance == 2.0).all()  # no jitter: the layout's own distance
    with pytest.raises(ValueError, match="distance_jitter"):
        BuildConfig(distance_jitter=(1.1, 0.9)).validate()
    with pytest.raises(ValueError, match="Generator"):
        make_layout("mvcnn", 12, 2.0, None, (0.9, 1.1))
