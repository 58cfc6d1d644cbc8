"""Pictures of frozen backbone features: t-SNE of the test set coloured by class, as the TAP
supplement's Fig. 2 shows them (pre-trained against randomly initialized), for
``tap-cli probe DATA --tsne FILE.png``.

The 2D embedding is scikit-learn's ``TSNE`` (van der Maaten and Hinton, JMLR 2008; PCA
initialization, seeded, perplexity 30 or a third of the samples when there are fewer than 91);
each panel also reports the silhouette score of the classes in the embedding (scikit-learn's
``silhouette_score``, -1 to 1, higher: classes more separated), a number to set beside the
picture.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["embed", "draw_tsne"]


def embed(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """``(N, 2)`` float32 t-SNE embedding of ``(N, D)`` features (standardized first).

    Raises:
        ValueError: fewer than 4 samples.
    """
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    if len(features) < 4:
        raise ValueError(f"t-SNE needs at least 4 samples, got {len(features)}")
    perplexity = min(30.0, (len(features) - 1) / 3)
    scaled = StandardScaler().fit_transform(np.asarray(features, dtype=np.float64))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        scaled).astype(np.float32)


def draw_tsne(output: str | os.PathLike, panels: dict[str, np.ndarray], labels: np.ndarray,
              classes: list[str], seed: int = 0) -> dict[str, float]:
    """Write ``output`` (PNG): one t-SNE panel per entry of ``panels`` side by side, points
    coloured by class, with a shared legend.

    Args:
        output: the PNG file.
        panels: title -> ``(N, D)`` features of the same ``N`` samples.
        labels: ``(N,)`` int class indices into ``classes``.
        classes: class names.
        seed: t-SNE's seed.

    Returns:
        title -> silhouette score of the classes in that panel's embedding.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5), dpi=100,
                                squeeze=False)
    palette = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    scores = {}
    for ax, (title, features) in zip(axes[0], panels.items()):
        points = embed(features, seed)
        score = float(silhouette_score(points, labels)) if len(set(labels.tolist())) > 1 \
            else float("nan")
        scores[title] = score
        for k in np.unique(labels):
            chosen = labels == k
            ax.scatter(points[chosen, 0], points[chosen, 1], s=12, color=palette(int(k) % 20),
                       label=classes[int(k)] if int(k) < len(classes) else str(k))
        ax.set_title(f"{title} (silhouette {score:.2f})", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, names = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=min(len(names), 8), fontsize=8,
                  frameon=False)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    figure.savefig(output)
    plt.close(figure)
    return scores
