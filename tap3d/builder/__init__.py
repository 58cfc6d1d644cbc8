"""The Dask build: plan, one object, shard task, containment, resume, driver.

``tap3d.builder.build(...)`` is what ``tap-cli build-dataset`` calls.
"""

from tap3d.builder.driver import BuildSummary, build
from tap3d.builder.plan import Plan, make_plan, object_seed
from tap3d.buildconfig import BuildConfig
from tap3d.builder.shard import ShardReport, make_renderer, render_object, render_shard

__all__ = ["BuildConfig", "BuildSummary", "build", "Plan", "make_plan", "object_seed",
           "ShardReport", "make_renderer", "render_object", "render_shard"]
