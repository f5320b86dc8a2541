"""Figures of the analyses, drawn with matplotlib's Agg backend and saved as PNG files."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from xlsafety.analyses.common import RESOURCE_ORDER  # noqa: E402

RESOURCE_COLOURS = {"reference": "#222222", "high": "#1b9e77", "medium": "#d95f02", "low": "#7570b3"}
OTHER_COLOUR = "#999999"


def save(figure, path: str | Path) -> None:
    """Save `figure` to `path` through a temporary file, so that a killed job leaves no partial image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    figure.savefig(temporary, dpi=120, bbox_inches="tight")
    plt.close(figure)
    temporary.replace(path)


def _no_data(axis, message: str) -> None:
    axis.text(0.5, 0.5, message, ha="center", va="center", transform=axis.transAxes)
    axis.set_xticks([])
    axis.set_yticks([])


def _resource_legend(axis, levels) -> None:
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=RESOURCE_COLOURS.get(level, OTHER_COLOUR), label=level)
        for level in RESOURCE_ORDER
        if level in set(levels)
    ]
    if handles:
        axis.legend(handles=handles, title="resource level", fontsize="small")


def jsr_vs_ability(table: pd.DataFrame, path: str | Path) -> None:
    """Scatter JSR (with its Wilson interval) against theta + delta, one point per configuration x language."""
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    usable = table.dropna(subset=["jsr", "ability"])
    if usable.empty:
        _no_data(axis, "no configuration x language with both a JSR and theta + delta")
    else:
        colours = usable["resource"].map(RESOURCE_COLOURS).fillna(OTHER_COLOUR)
        errors = np.clip(np.vstack([usable["jsr"] - usable["jsr_lower"], usable["jsr_upper"] - usable["jsr"]]), 0, None)
        axis.errorbar(usable["ability"], usable["jsr"], yerr=errors, fmt="none", ecolor="#bbbbbb", zorder=1)
        axis.scatter(usable["ability"], usable["jsr"], c=list(colours), zorder=2)
        axis.set_xlabel("robustness theta + delta (higher is safer)")
        axis.set_ylabel("JSR (95% Wilson interval)")
        axis.set_ylim(-0.02, 1.02)
        _resource_legend(axis, usable["resource"])
    axis.set_title("JSR against IRT robustness, per configuration x language")
    save(figure, path)


def entropy_bars(by_language: pd.DataFrame, path: str | Path) -> None:
    """Bar chart of the mean outcome entropy of cells per language, coloured by resource level."""
    figure, axis = plt.subplots(figsize=(6.5, 4))
    if by_language.empty:
        _no_data(axis, "no cell has two or more valid passes")
    else:
        colours = by_language["resource"].map(RESOURCE_COLOURS).fillna(OTHER_COLOUR)
        axis.bar(by_language["language"], by_language["mean_entropy"], color=list(colours))
        axis.set_xlabel("language")
        axis.set_ylabel("mean entropy of safe/unsafe across passes (bits)")
        axis.set_ylim(0, 1)
        _resource_legend(axis, by_language["resource"])
    axis.set_title("Disagreement between passes of the same cell")
    save(figure, path)


def english_worse_panels(table: pd.DataFrame, path: str | Path) -> None:
    """Plot reference-language safety against the low-resource languages, by JSR and by theta + delta."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    panels = [
        ("jsr", "JSR", "English-worse lies above the diagonal"),
        ("ability", "theta + delta", "English-worse lies below the diagonal"),
    ]
    for axis, (column, label, note) in zip(axes, panels):
        usable = table.dropna(subset=[f"{column}_reference", f"{column}_comparison"])
        if usable.empty:
            _no_data(axis, "no low-resource language or no estimate")
            continue
        x, y = usable[f"{column}_comparison"], usable[f"{column}_reference"]
        axis.scatter(x, y, color=RESOURCE_COLOURS["low"])
        low, high = min(x.min(), y.min()), max(x.max(), y.max())
        axis.plot([low, high], [low, high], color="#999999", linestyle="--", linewidth=1)
        axis.set_xlabel(f"{label} in the low-resource languages")
        axis.set_ylabel(f"{label} in English")
        axis.set_title(note, fontsize="medium")
    figure.suptitle("Configurations less safe in English than in low-resource languages")
    save(figure, path)


def tau_panels(by_category: pd.DataFrame, by_language: pd.DataFrame, path: str | Path) -> None:
    """Plot mean tau per harm category with bootstrap intervals, and mean tau per language."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, max(4, 0.35 * len(by_category) + 1.5)))
    if by_category.empty:
        _no_data(left, "no tau estimates with tagged prompts")
    else:
        positions = np.arange(len(by_category))
        means = by_category["mean_tau"]
        errors = np.vstack([means - by_category["lower"], by_category["upper"] - means])
        left.errorbar(by_category["mean_tau"], positions, xerr=np.clip(np.nan_to_num(errors), 0, None), fmt="o",
                      color="#333333")
        left.set_yticks(positions, by_category["tag"])
        left.axvline(0, color="#999999", linestyle="--", linewidth=1)
        left.set_xlabel("mean tau (95% bootstrap interval over prompts)")
    left.set_title("Cross-lingual gap by harm category")

    if by_language.empty:
        _no_data(right, "no tau estimates")
    else:
        colours = by_language["resource"].map(RESOURCE_COLOURS).fillna(OTHER_COLOUR)
        right.bar(by_language["language"], by_language["mean_tau"], color=list(colours))
        right.axhline(0, color="#999999", linewidth=1)
        right.set_xlabel("language")
        right.set_ylabel("mean tau (positive: less safe than predicted)")
        _resource_legend(right, by_language["resource"])
    right.set_title("Cross-lingual gap by language")
    save(figure, path)


def tau_quality_scatter(tau: pd.DataFrame, quality: pd.DataFrame, path: str | Path) -> None:
    """Plot tau against the back-translation chrF of each translated prompt, one colour per language."""
    joined = tau.merge(quality[["language", "id", "chrf"]], on=["language", "id"], how="inner")
    figure, axes = plt.subplots(figsize=(7, 5))
    if joined.empty:
        _no_data(axes, "no translated prompt has a tau estimate")
    else:
        for language, group in joined.groupby("language", sort=True):
            axes.scatter(group["chrf"], group["tau"], s=14, alpha=0.7, label=language)
        axes.axhline(0, color="#999999", linewidth=1)
        axes.set_xlabel("back-translation chrF of the translated prompt")
        axes.set_ylabel("tau (positive: less safe than predicted)")
        axes.legend(title="language", fontsize="small")
    axes.set_title("Cross-lingual gap and translation quality")
    save(figure, path)


def scree_plot(eigenvalues: np.ndarray, path: str | Path) -> None:
    """Scree plot of the eigenvalues of the prompt correlation matrix, with the Kaiser line at 1."""
    figure, axis = plt.subplots(figsize=(6, 4))
    if len(eigenvalues) == 0:
        _no_data(axis, "too few configurations or varying prompts for a correlation matrix")
    else:
        components = np.arange(1, len(eigenvalues) + 1)
        axis.plot(components, eigenvalues, marker="o", color="#333333")
        axis.axhline(1, color="#999999", linestyle="--", linewidth=1)
        axis.set_xlabel("component")
        axis.set_ylabel("eigenvalue")
    axis.set_title("Scree plot of prompt safe-rate correlations across configurations")
    save(figure, path)


def validation_bars(scores: pd.DataFrame, path: str | Path) -> None:
    """Plot pooled held-out log-loss and AUC per model, one group of bars per split."""
    pooled = scores[scores["fold"] == "all"]
    if "split" not in pooled.columns:
        pooled = pooled.assign(split="k-fold")
    splits = list(dict.fromkeys(pooled["split"]))
    models = list(dict.fromkeys(pooled["model"]))
    width = 0.8 / max(1, len(splits))
    positions = np.arange(len(models))

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, split in enumerate(splits):
        part = pooled[pooled["split"] == split].set_index("model").reindex(models)
        offset = positions + (index - (len(splits) - 1) / 2) * width
        left.bar(offset, part["log_loss"], width=width, label=split)
        right.bar(offset, part["auc"].fillna(0), width=width, label=split)
    left.set_ylabel("held-out log-loss per pass (nats, lower is better)")
    right.set_ylabel("held-out AUC (higher is better)")
    right.set_ylim(0, 1)
    for axis in (left, right):
        axis.set_xticks(positions, models, rotation=20)
    left.legend(fontsize="small")
    figure.suptitle("Predictive validation on held-out cells")
    save(figure, path)


def dif_screen(dif: pd.DataFrame, significance: float, path: str | Path) -> None:
    """Plot Lord's -log10 p against delta_MH per prompt and focal language, marking the selected anchors."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    usable = dif.dropna(subset=["lord_p", "delta_mh"])
    if usable.empty:
        _no_data(axis, "no prompt with both a Lord's test and a Mantel-Haenszel delta")
    else:
        strength = -np.log10(np.clip(usable["lord_p"].astype(float), 1e-300, None))
        # An infinite delta (a prompt never or always safe in one language at matched scores) is drawn at the edge.
        delta = usable["delta_mh"].astype(float)
        edge = max(10.0, float(delta[np.isfinite(delta)].abs().max()) if np.isfinite(delta).any() else 10.0)
        delta = delta.clip(-edge, edge)
        chosen = usable["selected"].astype(bool).to_numpy()
        axis.scatter(delta[~chosen], strength[~chosen], color=OTHER_COLOUR, label="not selected")
        axis.scatter(delta[chosen], strength[chosen], color=RESOURCE_COLOURS["high"], label="selected anchor")
        axis.axhline(-np.log10(significance), color="#d95f02", linestyle="--", linewidth=1,
                     label=f"Lord's test at {significance:g}")
        for bound, style in ((1.0, ":"), (1.5, "-.")):
            for sign in (-1, 1):
                axis.axvline(sign * bound, color="#999999", linestyle=style, linewidth=1)
        axis.set_xlabel("Mantel-Haenszel delta (ETS B beyond |1|, C beyond |1.5|; negative: less safe in the language)")
        axis.set_ylabel("Lord's chi-square, -log10 p")
        axis.legend(fontsize="small")
    axis.set_title("DIF screens of each prompt against the reference language")
    save(figure, path)


def model_comparison_bars(comparison: pd.DataFrame, path: str | Path) -> None:
    """Plot AIC and BIC above the best model of the same response, per fitted model."""
    figure, axis = plt.subplots(figsize=(7, 4))
    if comparison.empty:
        _no_data(axis, "no fitted model")
    else:
        labels = [f"{row.model}\n({row.response})" for row in comparison.itertuples()]
        positions = np.arange(len(comparison))
        axis.bar(positions - 0.2, comparison["delta_aic"], width=0.4, color="#1b9e77", label="AIC")
        axis.bar(positions + 0.2, comparison["delta_bic"], width=0.4, color="#7570b3", label="BIC")
        axis.set_xticks(positions, labels, fontsize="small")
        axis.set_ylabel("above the best model of the same response (lower is better)")
        axis.legend()
    axis.set_title("Information criteria of the fitted IRT models")
    save(figure, path)


def fit_scatter(items: pd.DataFrame, persons: pd.DataFrame, fit_range: tuple[float, float], path: str | Path) -> None:
    """Plot infit against outfit mean squares of items and of configurations, with the acceptable range shaded."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, (table, unit) in zip(axes, ((items, "prompts"), (persons, "configurations"))):
        usable = table.dropna(subset=["infit", "outfit"])
        if usable.empty:
            _no_data(axis, f"no {unit} with a fit statistic")
            continue
        flagged = (usable["misfit"].notna() & (usable["misfit"].astype(str) != "")).to_numpy()
        axis.axvspan(*fit_range, color="#eeeeee", zorder=0)
        axis.axhspan(*fit_range, color="#eeeeee", zorder=0)
        axis.scatter(usable["infit"][~flagged], usable["outfit"][~flagged], color=RESOURCE_COLOURS["high"],
                     label="within range")
        axis.scatter(usable["infit"][flagged], usable["outfit"][flagged], color=RESOURCE_COLOURS["medium"],
                     label="flagged")
        axis.set_xlabel("infit mean square")
        axis.set_ylabel("outfit mean square")
        axis.set_title(f"{unit} (shaded: {fit_range[0]:g} to {fit_range[1]:g})", fontsize="medium")
        axis.legend(fontsize="small")
    figure.suptitle("Item and configuration fit on the binomial cells")
    save(figure, path)


def information_plot(curves: pd.DataFrame, path: str | Path) -> None:
    """Plot the test information curve of each language, one colour per language and one line style per resource level."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    if curves.empty:
        _no_data(axis, "no item parameters")
    else:
        styles = {"reference": "-", "high": "--", "medium": "-.", "low": ":"}
        colours = plt.get_cmap("tab10")
        for position, (language, curve) in enumerate(curves.groupby("language", sort=True)):
            resource = curve["resource"].iloc[0]
            axis.plot(curve["ability"], curve["information"], color=colours(position % 10),
                      linestyle=styles.get(resource, "-"), label=f"{language} ({resource})")
        axis.set_xlabel("robustness theta + delta (higher is safer)")
        axis.set_ylabel("test information of one pass per prompt")
        axis.legend(title="language (resource level)", fontsize="small", ncol=2)
    axis.set_title("Test information curves per language")
    save(figure, path)
