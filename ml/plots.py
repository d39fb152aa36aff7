"""Figures for MLflow artifacts and the drift report.

Figures are built with `matplotlib.figure.Figure` and rendered by the Agg canvas: no pyplot, no global backend
switch, no figure registry to leak memory in long-lived workers.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.decomposition import PCA


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_png(fig: Figure, path: Path, dpi: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(fig, dpi))
    return path


def data_uri(fig: Figure, dpi: int = 100) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig, dpi)).decode("ascii")


def model_selection(metrics_by_k: Mapping[int, Mapping[str, float]], chosen_k: int) -> Figure:
    """Elbow (inertia by k) and silhouette by k, the chosen k marked."""
    ks = sorted(metrics_by_k)
    fig, (ax_elbow, ax_sil) = _figure(10, 4, ncols=2)
    ax_elbow.plot(ks, [metrics_by_k[k]["inertia"] for k in ks], marker="o")
    ax_elbow.set(title="Elbow: inertia by k", xlabel="k", ylabel="inertia (fit sample)")
    ax_sil.plot(ks, [metrics_by_k[k]["silhouette"] for k in ks], marker="o", color="tab:green")
    ax_sil.set(title="Silhouette by k", xlabel="k", ylabel="mean silhouette (subsample)")
    for ax in (ax_elbow, ax_sil):
        ax.axvline(chosen_k, color="tab:red", linestyle="--", label=f"chosen k={chosen_k}")
        ax.set_xticks(ks)
        ax.legend()
    return fig


def pca_scatter(
    x: np.ndarray, labels: np.ndarray, names: Mapping[str, str], sample_size: int, random_state: int
) -> Figure:
    """Preprocessed features projected on their first two principal components, coloured by segment."""
    rng = np.random.default_rng(random_state)
    idx = np.sort(rng.choice(x.shape[0], size=min(sample_size, x.shape[0]), replace=False))
    n_components = min(2, x.shape[1])
    coords = PCA(n_components=n_components, random_state=random_state).fit_transform(x[idx])
    if n_components == 1:
        coords = np.column_stack([coords[:, 0], np.zeros(len(idx))])
    fig, (ax,) = _figure(8, 6)
    for seg in np.unique(labels):
        pts = coords[labels[idx] == seg]
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.6, label=f"{seg}: {names.get(str(seg), '')}")
    ax.set(title="Segments on the first two principal components", xlabel="PC1", ylabel="PC2")
    ax.legend(fontsize="small", markerscale=3, loc="best")
    return fig


def profile_heatmap(profile: pd.DataFrame, names: Mapping[str, str]) -> Figure:
    """Segments x features, coloured by the standardised difference from the population."""
    values = profile.to_numpy(dtype="float64")
    limit = max(1.0, float(np.nanmax(np.abs(values))) if values.size else 1.0)
    row_labels = [f"{seg}: {names.get(str(seg), '')}" for seg in profile.index]
    label_width = 0.09 * max((len(label) for label in row_labels), default=10)
    fig, (ax,) = _figure(max(8.0, 0.6 * profile.shape[1] + label_width + 2), max(3.5, 0.5 * profile.shape[0] + 2.5))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(profile.shape[1]), list(profile.columns), rotation=60, ha="right")
    ax.set_yticks(range(profile.shape[0]), row_labels)
    for (i, j), v in np.ndenumerate(values):
        color = "white" if abs(v) > 0.6 * limit else "black"
        ax.text(j, i, f"{round(v, 1) + 0.0:.1f}", ha="center", va="center", fontsize=7, color=color)
    ax.set_title("Segment profiles: (segment mean - population mean) / population std", loc="right")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def psi_bars(psi_by_feature: Mapping[str, float], watch: float, act: float) -> Figure:
    """PSI per feature with the watch / act thresholds."""
    items = sorted(psi_by_feature.items(), key=lambda kv: -kv[1])
    fig, (ax,) = _figure(8, max(3.0, 0.35 * len(items) + 1.5))
    labels = [k for k, _ in items]
    values = [v for _, v in items]
    colors = ["tab:red" if v >= act else "tab:orange" if v >= watch else "tab:green" for v in values]
    ax.barh(range(len(items)), values, color=colors)
    ax.set_yticks(range(len(items)), labels)
    ax.invert_yaxis()
    ax.axvline(watch, color="tab:orange", linestyle="--", label=f"watch {watch}")
    ax.axvline(act, color="tab:red", linestyle="--", label=f"act {act}")
    ax.set(title="Population Stability Index by feature", xlabel="PSI")
    ax.legend()
    return fig


def distribution_shift(feature: str, bin_labels: Sequence[str], ref: Sequence[float], cur: Sequence[float]) -> Figure:
    """Reference vs current share per bin for one feature."""
    fig, (ax,) = _figure(9, 4)
    pos = np.arange(len(bin_labels))
    ax.bar(pos - 0.2, ref, width=0.4, label="reference (training)")
    ax.bar(pos + 0.2, cur, width=0.4, label="current")
    ax.set_xticks(pos, list(bin_labels), rotation=45, ha="right", fontsize="small")
    ax.set(title=f"{feature}: share of customers per reference bin", ylabel="share")
    ax.legend()
    return fig
