"""Plots used by the lessons (matplotlib/seaborn). Each function draws on a new figure and returns it."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .dataset import CLASSES
from .images import ImageSet
from .metrics import METRICS


def plot_counts(counts: dict[str, dict[str, int]]):
    """Bar chart of images per split and class (``{split: {class: n}}``)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    splits = list(counts)
    width = 0.38
    for i, cls in enumerate(CLASSES):
        values = [counts[s].get(cls, 0) for s in splits]
        bars = ax.bar(np.arange(len(splits)) + (i - 0.5) * width, values, width, label=cls)
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(np.arange(len(splits)), splits)
    ax.set_ylabel("images")
    ax.legend()
    ax.set_title("Images per split and class")
    fig.tight_layout()
    return fig


def show_samples(data: ImageSet, per_class: int = 6, seed: int = 0):
    """A grid of random images, one row per class, titled with their file names."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(CLASSES), per_class, figsize=(2 * per_class, 2.2 * len(CLASSES)), squeeze=False)
    for row, cls in enumerate(CLASSES):
        pool = np.flatnonzero(data.labels == row)
        picks = rng.choice(pool, min(per_class, len(pool)), replace=False) if len(pool) else []
        for col, ax in enumerate(axes[row]):
            ax.axis("off")
            if col < len(picks):
                ax.imshow(data.images[picks[col]], cmap="gray", vmin=0, vmax=255)
                ax.set_title(f"{cls}\n{data.names[picks[col]].split('/')[-1]}", fontsize=7)
    fig.tight_layout()
    return fig


def plot_intensity_histograms(data: ImageSet, max_images: int = 300, seed: int = 0):
    """Pixel-intensity histograms per class (a random sample of images)."""
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, cls in enumerate(CLASSES):
        pool = np.flatnonzero(data.labels == label)
        picks = rng.choice(pool, min(max_images, len(pool)), replace=False)
        ax.hist(data.images[picks].ravel(), bins=64, range=(0, 255), density=True, histtype="step",
                linewidth=1.5, label=cls)
    ax.set_xlabel("pixel value")
    ax.set_ylabel("density")
    ax.legend()
    ax.set_title("Pixel intensities per class")
    fig.tight_layout()
    return fig


def plot_history(history):
    """Learning curves (loss and accuracy, training and validation) from a Keras History or its dict."""
    hist = history.history if hasattr(history, "history") else history
    keys = [k for k in ("loss", "accuracy") if k in hist]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        epochs = np.arange(1, len(hist[key]) + 1)
        ax.plot(epochs, hist[key], "o-", label="training")
        if f"val_{key}" in hist:
            ax.plot(epochs, hist[f"val_{key}"], "o-", label="validation")
            best = int(np.argmin(hist["val_loss"])) + 1 if "val_loss" in hist else None
            if best:
                ax.axvline(best, color="gray", linestyle=":", label=f"best val loss (epoch {best})")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_confusion(result: dict, title: str = "Test confusion matrix"):
    """Heatmap of the confusion matrix in an :func:`workshop_utils.metrics.evaluate` result."""
    fig, ax = plt.subplots(figsize=(3.8, 3.2))
    sns.heatmap(np.array(result["confusion"]), annot=True, fmt="d", cmap="Blues", cbar=False,
                xticklabels=CLASSES, yticklabels=CLASSES, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_comparison(results: list[dict], metrics: tuple[str, ...] = ("accuracy", "sensitivity", "specificity", "auc")):
    """Each lesson's test metrics side by side, with their 95% CIs as error bars and each value written on its
    bar (so a zero is seen, not missed); the legend sits below the plot, clear of the bars."""
    metrics = tuple(m for m in metrics if m in METRICS)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(results) + 2), 4.6), layout="constrained")
    width = 0.8 / max(1, len(results))
    for i, r in enumerate(results):
        values = np.array([r["metrics"][m]["value"] for m in metrics], dtype=float)
        low = values - np.array([r["metrics"][m]["low"] for m in metrics])
        high = np.array([r["metrics"][m]["high"] for m in metrics]) - values
        bars = ax.bar(np.arange(len(metrics)) + (i - (len(results) - 1) / 2) * width, np.nan_to_num(values), width,
                      yerr=np.nan_to_num([low, high]), capsize=3, label=r["lesson"])
        ax.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.2f}" for v in values], padding=2, fontsize=6,
                     rotation=90)
    ax.set_xticks(np.arange(len(metrics)), metrics)
    ax.set_ylim(0, 1.2)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("test value (95% CI)")
    ax.set_title("Lessons compared on the test split")
    fig.legend(loc="outside lower center", ncol=min(len(results), 4) or 1, fontsize=7, frameon=False)
    return fig
