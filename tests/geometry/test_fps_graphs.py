"""The control logic of farthest-point sampling's CUDA-graph path, on the CPU: the graph and
its recording are stood in for by a replay of the same loop, so that the cache (one recording
per shape, at most 32), the copy of new inputs into the recorded ones, the clone of the
recorded output and the eager fallback after a failed recording are checked without a GPU.
The real recording runs in tests/models/test_backbones.py where CUDA is present."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tap3d.geometry import pointops


class ReplayedLoop:
    """Stands in for a recorded ``torch.cuda.CUDAGraph``: replay reruns the loop on the static
    inputs into the static output, as a graph replay does."""

    def __init__(self, xyz, count, first):
        self.xyz, self.count, self.first = xyz, count, first
        self.chosen = pointops._fps_loop(xyz, count, first)
        self.replays = 0

    def replay(self):
        self.chosen.copy_(pointops._fps_loop(self.xyz, self.count, self.first))
        self.replays += 1


@pytest.fixture
def recorder(monkeypatch):
    """Patch the recording: every call is logged; shapes in ``failing`` fail to record."""
    calls, failing = [], set()

    def record(xyz, count, first):
        calls.append((tuple(xyz.shape), count))
        if tuple(xyz.shape) in failing:
            return None
        graph = ReplayedLoop(xyz.clone(), count, first.clone())
        return graph, graph.xyz, graph.first, graph.chosen

    monkeypatch.setattr(pointops, "_record_fps", record)
    monkeypatch.setattr(pointops, "_GRAPHS", {})
    return calls, failing


def _clouds(seed, batch=2, points=300):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(batch, points, 3))
                            .astype(np.float32))


def test_one_recording_per_shape_replayed_with_new_inputs(recorder):
    calls, _ = recorder
    first = torch.zeros(2, dtype=torch.long)
    a, b = _clouds(0), _clouds(1)
    got_a = pointops._graphed_fps(a, 64, first)
    got_b = pointops._graphed_fps(b, 64, first)  # same shape: replayed, not recorded again
    assert calls == [((2, 300, 3), 64)]
    assert torch.equal(got_a, pointops._fps_loop(a, 64, first))
    assert torch.equal(got_b, pointops._fps_loop(b, 64, first))
    assert not torch.equal(got_a, got_b)
    # the result is a copy: the next replay does not overwrite what was returned
    kept = got_a.clone()
    pointops._graphed_fps(b, 64, first)
    assert torch.equal(got_a, kept)
    pointops._graphed_fps(a, 32, first)  # another count is another recording
    assert calls[-1] == ((2, 300, 3), 32) and len(calls) == 2


def test_a_failed_recording_falls_back_to_the_loop_once(recorder):
    calls, failing = recorder
    failing.add((2, 300, 3))
    first = torch.zeros(2, dtype=torch.long)
    for seed in range(3):
        xyz = _clouds(seed)
        assert torch.equal(pointops._graphed_fps(xyz, 16, first),
                           pointops._fps_loop(xyz, 16, first))
    assert calls == [((2, 300, 3), 16)]  # not recorded again after failing


def test_the_cache_keeps_at_most_32_shapes(recorder):
    calls, _ = recorder
    first = torch.zeros(1, dtype=torch.long)
    for points in range(20, 60):
        pointops._graphed_fps(_clouds(points, batch=1, points=points), 8, first)
    assert len(calls) == 40 and len(pointops._GRAPHS) == 32
    assert ((1, 20, 3), 8, torch.float32, torch.device("cpu")) not in pointops._GRAPHS
    assert ((1, 59, 3), 8, torch.float32, torch.device("cpu")) in pointops._GRAPHS
