"""A classical baseline that needs no learned features: global shape descriptors of each cloud
and a scikit-learn classifier, so every learned score stands beside what needs no learning.

Descriptors of a cloud (:func:`shape_descriptors`), after centring on the centroid and scaling
to unit radius, all invariant to rotation about the up axis:

- PCA: the covariance eigenvalues, largest first, divided by their sum, and the linearity,
  planarity and sphericity made of them (Weinmann et al., ISPRS J. 2015): 6 values;
- D2 shape distribution (Osada et al., ACM TOG 2002): the histogram of the distances between
  ``pairs`` random point pairs, 32 bins over [0, 2];
- radial histogram: the distances of the points to the centroid, 16 bins over [0, 1];
- height histogram: the coordinate along the up axis, 16 bins over [-1, 1].

Histograms are normalized to sum to 1. Classifiers (:func:`descriptor_accuracy`): a random
forest (500 trees) or an RBF SVM (standardized descriptors, ``C = 10``, ``gamma="scale"``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["shape_descriptors", "descriptor_accuracy", "classical_baseline", "CLASSIFIERS"]

#: classifier names of :func:`descriptor_accuracy`
CLASSIFIERS = ("forest", "svm")


def _histogram(values: np.ndarray, bins: int, low: float, high: float) -> np.ndarray:
    """``(N, M)`` values -> ``(N, bins)`` histograms summing to 1 (values clipped to range)."""
    index = np.clip(((values - low) / (high - low) * bins).astype(np.int64), 0, bins - 1)
    rows = np.repeat(np.arange(len(values)), values.shape[1])
    counts = np.zeros((len(values), bins))
    np.add.at(counts, (rows, index.ravel()), 1.0)
    return counts / values.shape[1]


def shape_descriptors(points: np.ndarray, up_axis: int = 1, pairs: int = 4096,
                      seed: int = 0) -> np.ndarray:
    """Global shape descriptors (module docstring).

    Args:
        points: ``(N, P, 3)`` float clouds (any scale and position).
        up_axis: index of the up axis (for the height histogram).
        pairs: random point pairs per cloud for D2.
        seed: draws the pairs.

    Returns:
        ``(N, 70)`` float32: 6 PCA values, 32 D2 bins, 16 radial bins, 16 height bins.

    Raises:
        ValueError: ``points`` is not ``(N, P, 3)`` with ``P >= 2``.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[2] != 3 or points.shape[1] < 2:
        raise ValueError(f"points have shape {points.shape}, expected (N, P >= 2, 3)")
    centred = points - points.mean(1, keepdims=True)
    radius = np.linalg.norm(centred, axis=2)
    scale = np.maximum(radius.max(1), 1e-12)
    centred, radius = centred / scale[:, None, None], radius / scale[:, None]
    eigen = np.linalg.eigvalsh(np.einsum("npi,npj->nij", centred, centred) / points.shape[1])
    eigen = np.clip(eigen[:, ::-1], 0, None)
    eigen = eigen / np.maximum(eigen.sum(1, keepdims=True), 1e-12)
    l1 = np.maximum(eigen[:, 0], 1e-12)
    pca = np.column_stack([eigen, (eigen[:, 0] - eigen[:, 1]) / l1,
                           (eigen[:, 1] - eigen[:, 2]) / l1, eigen[:, 2] / l1])
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, points.shape[1], (2, len(points), pairs))
    rows = np.arange(len(points))[:, None]
    d2 = np.linalg.norm(centred[rows, a] - centred[rows, b], axis=2)
    return np.concatenate([pca, _histogram(d2, 32, 0.0, 2.0), _histogram(radius, 16, 0.0, 1.0),
                           _histogram(centred[..., up_axis], 16, -1.0, 1.0)],
                          axis=1).astype(np.float32)


def descriptor_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                        test_y: np.ndarray, classifier: str = "forest", seed: int = 0) -> float:
    """Test accuracy (percent) of ``classifier`` (``"forest"`` or ``"svm"``) trained on the
    descriptors ``train_x`` ``(N, D)`` and labels ``train_y`` ``(N,)``.

    Raises:
        ValueError: an unknown classifier.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if classifier == "forest":
        model = RandomForestClassifier(n_estimators=500, random_state=seed, n_jobs=1)
    elif classifier == "svm":
        model = make_pipeline(StandardScaler(), SVC(C=10.0, gamma="scale"))
    else:
        raise ValueError(f"unknown classifier {classifier!r}; choose one of "
                         f"{', '.join(CLASSIFIERS)}")
    model.fit(train_x, train_y)
    return 100.0 * float((model.predict(test_x) == test_y).mean())


def classical_baseline(data: str, classifiers=CLASSIFIERS, variant: str = "pb_t50_rs",
                       seed: int = 0) -> dict:
    """Test OA (percent) of each classifier on the shape descriptors of a labelled dataset
    (:func:`tap3d.clouds.labelled.load_labelled`): ``{"forest": OA, "svm": OA}``.

    Raises:
        LabelledDataError: ``data`` is not a labelled dataset.
        ValueError: an unknown classifier.
    """
    from tap3d.clouds.labelled import load_labelled

    labelled = load_labelled(data, variant, seed=seed)
    train_x = shape_descriptors(labelled.train_points, labelled.up_axis, seed=seed)
    test_x = shape_descriptors(labelled.test_points, labelled.up_axis, seed=seed + 1)
    return {name: descriptor_accuracy(train_x, labelled.train_labels, test_x,
                                      labelled.test_labels, name, seed)
            for name in classifiers}
