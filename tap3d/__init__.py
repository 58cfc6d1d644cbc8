"""tap3d: multi-view datasets from 3D meshes and Take-A-Photo pre-training of point-cloud backbones.

Data flows one way: source -> mesh -> views -> shard -> stream -> model
(``tap3d.sources`` -> ``tap3d.render`` -> ``tap3d.views.schema`` -> ``tap3d.train``).
"""

__version__ = "0.1.0"
