"""Plain-torch geometry of point clouds, the bottom layer: point operations (farthest-point
sampling, kNN, ball query, gather: :mod:`~tap3d.geometry.pointops`) and the backbone's input
features (centroid, unit radius, height: :mod:`~tap3d.geometry.features`), shared by the stream,
the point-cloud pipeline, the metrics and the networks."""
