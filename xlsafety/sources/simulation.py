"""Simulated judged passes with known parameters, and how well a fit recovers them.

The parameters and cells come from `xlsafety.irt.simulate.simulate_cells`
with graded scores: every pass gets a rubric score 1..5 from the graded
response model, and P(score >= 4) is exactly the multigroup 2PL's P(safe),
so both the binary and the graded models have a true value to recover. Tau is
heavy-tailed (a scaled Student t with 3 degrees of freedom) and the first
`anchors` prompts have tau = 0 in every language.
"""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from xlsafety.errors import ConfigError
from xlsafety.irt.simulate import Simulation, simulate_cells
from xlsafety.sources import SIMULATE, Source, check_languages_known
from xlsafety.sources.tables import judgments_frame

log = logging.getLogger(__name__)

JUDGE = "simulated"
TRUTH_FILE = "results/simulation/truth.parquet"

# The first tags of MultiJail's 18 harm categories, given to simulated prompts in
# turn so that the analyses by harm category have groups to compare.
CATEGORIES = (
    "Violence & incitement", "Hate speech & offensive language", "Discrimination & injustice",
    "Non-violent unethical behavior (e.g. lying, cheating, etc.)", "Conspiracy theories & misinformation",
    "Theft", "Fraud & deception", "Terrorism & organized crime", "Substance abuse & banned substances",
    "Weapons", "Bullying & harassment", "Adult content", "Animal abuse", "Property crime & vandalism",
    "Sexual exploitation & human trafficking", "Soliciting personally identifiable information",
    "Child abuse", "Self-harm",
)

# Simulated configurations are named as models with five decoding variants each,
# as in the reference study, so that analyses by model family have families.
VARIANTS = ("greedy", "low-creativity", "standard-real", "high-risk", "chaos")

# Parameter families of the truth table and the labels that identify their rows.
FAMILY_KEYS = {
    "theta": ("configuration",),
    "delta": ("configuration", "language"),
    "beta": ("id",),
    "gamma": ("language",),
    "tau": ("id", "language"),
    "alpha": ("id",),
    "step_2": ("id",),
    "step_3": ("id",),
    "step_5": ("id",),
}

TRUTH = pa.schema([
    ("parameter", pa.string()),
    pa.field("configuration", pa.string(), nullable=True),
    pa.field("id", pa.int64(), nullable=True),
    pa.field("language", pa.string(), nullable=True),
    ("value", pa.float64()),
    # True for the tau of anchor prompts, which is 0 by construction.
    ("anchor", pa.bool_()),
])

RECOVERY = pa.schema([
    ("model", pa.string()),
    ("parameter", pa.string()),
    # Estimated parameters matched to a true value; fixed ones (anchored tau, alpha of 1PL models) are left out.
    ("count", pa.int64()),
    ("correlation", pa.float64()),
    ("rmse", pa.float64()),
    # Mean of estimate minus truth.
    ("bias", pa.float64()),
    # Share of true values inside the estimate's 95% interval.
    ("coverage", pa.float64()),
])


@dataclass
class SimulationSettings:
    """The shape and seed of a simulated study (source.simulation in the config)."""

    configurations: int
    prompts: int
    passes: int
    anchors: int
    tau_scale: float
    missing_share: float
    invalid_share: float
    seed: int

    @classmethod
    def from_config(cls, config: dict) -> "SimulationSettings":
        settings = dict(config["source"]["simulation"])
        if settings["seed"] is None:
            settings["seed"] = config["seed"]
        return cls(**settings)


@dataclass
class SimulatedStudy:
    """Judged passes, prompts and the true parameters of one simulated study."""

    judgments: pd.DataFrame
    prompts: pd.DataFrame
    truth: pd.DataFrame


def configuration_names(count: int) -> list[str]:
    """Return `count` configuration ids: models `sim-model-00`, ... with the VARIANTS in turn."""
    return [f"sim-model-{position // len(VARIANTS):02d}_{VARIANTS[position % len(VARIANTS)]}"
            for position in range(count)]


def study_languages(config: dict) -> list[str]:
    """Return the languages with the reference first, as simulate_cells lays them out."""
    reference = config["reference_language"]
    return [reference, *(language for language in config["languages"] if language != reference)]


def prepare_simulation(config: dict) -> Source:
    """Check the simulation settings, fill irt.anchors with the true anchors if empty, describe the source."""
    check_languages_known(config)
    settings = SimulationSettings.from_config(config)
    if len(config["languages"]) < 2:
        raise ConfigError(
            f"config key languages: a simulation needs the reference language and at least one "
            f"other, got {config['languages']}"
        )
    if settings.anchors >= settings.prompts:
        raise ConfigError(
            f"config key source.simulation.anchors: {settings.anchors} anchors leave no prompt with a "
            f"cross-lingual gap among {settings.prompts} prompts; use fewer anchors than prompts"
        )

    if config["irt"]["anchors"] == []:
        config["irt"]["anchors"] = list(range(settings.anchors))

    configurations = {
        name: {"model": name.split("_")[0], "decoding": name.split("_")[1], "passes": settings.passes,
               "origin": "simulated", "name": name}
        for name in configuration_names(settings.configurations)
    }
    label = (f"simulated (seed {settings.seed}): {settings.configurations} configurations x "
             f"{settings.prompts} prompts ({settings.anchors} anchors) x {len(config['languages'])} languages "
             f"x {settings.passes} passes, tau ~ {settings.tau_scale} x t(3)")
    return Source(SIMULATE, configurations, JUDGE, TRUTH_FILE, label)


def simulate_study(settings: SimulationSettings, languages: list[str]) -> SimulatedStudy:
    """Simulate judged passes; `languages` starts with the reference language."""
    simulation = simulate_cells(
        settings.seed, configurations=settings.configurations, prompts=settings.prompts,
        languages=len(languages), passes=settings.passes, anchors=settings.anchors,
        tau_scale=settings.tau_scale, missing_share=settings.missing_share, graded=True,
    )
    configurations = configuration_names(settings.configurations)
    rename = {
        "configuration": dict(zip(simulation.configurations, configurations)),
        "language": dict(zip(simulation.languages, languages)),
    }
    cells = simulation.cells.assign(
        configuration=simulation.cells["configuration"].map(rename["configuration"]),
        language=simulation.cells["language"].map(rename["language"]),
    )

    # A separate stream, so that the passes' order and invalid scores do not change the cells.
    rng = np.random.default_rng([settings.seed, 1])
    passes = _passes(cells, rng, settings.invalid_share)
    judgments = judgments_frame(passes, JUDGE, f"simulation seed {settings.seed}")
    return SimulatedStudy(judgments, _prompts(settings.prompts, languages),
                          truth_table(simulation, configurations, languages))


def _passes(cells: pd.DataFrame, rng: np.random.Generator, invalid_share: float) -> pd.DataFrame:
    """Expand per-score counts into one row per pass, in random order within each cell."""
    counts = cells[[f"n_score_{score}" for score in range(1, 6)]].to_numpy()
    per_cell = counts.sum(axis=1)
    cell = np.repeat(np.arange(len(cells)), per_cell)
    score = np.repeat(np.tile(np.arange(1, 6), len(cells)), counts.ravel())

    order = np.lexsort((rng.random(len(cell)), cell))
    cell, score = cell[order], score[order]
    starts = np.repeat(np.cumsum(per_cell) - per_cell, per_cell)
    score = np.where(rng.random(len(score)) < invalid_share, 0, score)

    return pd.DataFrame({
        "configuration": cells["configuration"].to_numpy()[cell],
        "language": cells["language"].to_numpy()[cell],
        "id": cells["id"].to_numpy()[cell],
        "pass": np.arange(len(cell)) - starts,
        "score": score,
        "reason": "",
    })


def _prompts(count: int, languages: list[str]) -> pd.DataFrame:
    rows = [
        {"id": prompt, "language": language, "text": f"Simulated prompt {prompt} ({language})",
         "tags": [CATEGORIES[prompt % len(CATEGORIES)]], "source": "simulation", "origin": "simulation"}
        for language in languages
        for prompt in range(count)
    ]
    return pd.DataFrame(rows)


def truth_table(simulation: Simulation, configurations: list[str], languages: list[str]) -> pd.DataFrame:
    """Lay the true parameters out like the IRT parameter table (reference-language zeros left out)."""
    truth = simulation.truth
    prompts = np.asarray(simulation.prompts)
    others = np.arange(1, len(languages))
    anchors = np.isin(prompts, simulation.anchors)
    frames = [
        _family("theta", truth["theta"], configuration=configurations),
        _family("delta", truth["delta"][:, others].ravel(),
                configuration=np.repeat(configurations, len(others)),
                language=np.tile(np.asarray(languages)[others], len(configurations))),
        _family("beta", truth["beta"], id=prompts),
        _family("gamma", truth["gamma"][others], language=np.asarray(languages)[others]),
        _family("tau", truth["tau"][:, others].ravel(), id=np.repeat(prompts, len(others)),
                language=np.tile(np.asarray(languages)[others], len(prompts)),
                anchor=np.repeat(anchors, len(others))),
        _family("alpha", truth["alpha"], id=prompts),
        *(_family(name, truth["steps"][:, position], id=prompts)
          for position, name in enumerate(("step_2", "step_3", "step_5"))),
    ]
    return pd.concat(frames, ignore_index=True)[TRUTH.names]


def _family(parameter: str, values, configuration=None, id=None, language=None, anchor=None) -> pd.DataFrame:
    values = np.asarray(values, dtype=float)
    return pd.DataFrame({
        "parameter": parameter,
        "configuration": configuration if configuration is not None else None,
        "id": pd.array(id if id is not None else [None] * len(values), dtype="Int64"),
        "language": language if language is not None else None,
        "value": values,
        "anchor": anchor if anchor is not None else False,
    })


def recovery_table(truth: pd.DataFrame, estimates: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Compare each model's free estimates with the truth, per parameter family.

    Rows are matched on (parameter, configuration, id, language), so a family
    that a model labels otherwise, such as beta per (prompt, language) in the
    unidimensional 2PL, has no match and no row.
    """
    keys = ["parameter", "configuration", "id", "language"]
    rows = []
    for model, parameters in estimates.items():
        free = parameters[~parameters["fixed"].astype(bool)][[*keys, "estimate", "se", "lower", "upper"]]
        matched = _keyed(free).merge(_keyed(truth[[*keys, "value"]]), on=keys, how="inner")
        for parameter, group in matched.groupby("parameter", sort=False):
            rows.append({"model": model, "parameter": parameter, **_agreement(group)})

    table = pd.DataFrame(rows, columns=RECOVERY.names)
    family_order = table["parameter"].map({name: position for position, name in enumerate(FAMILY_KEYS)})
    table = table.assign(family_order=family_order).sort_values(["model", "family_order"], kind="stable")
    return table.drop(columns="family_order").reset_index(drop=True)


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill missing labels with sentinels, because merge keys must be comparable values."""
    return frame.assign(
        configuration=frame["configuration"].fillna(""),
        id=frame["id"].astype("Int64").fillna(-1).astype("int64"),
        language=frame["language"].fillna(""),
    )


def _agreement(group: pd.DataFrame) -> dict:
    estimate, value = group["estimate"].to_numpy(), group["value"].to_numpy()
    error = estimate - value
    correlation = np.nan
    if len(group) >= 3 and np.std(estimate) > 0 and np.std(value) > 0:
        correlation = float(np.corrcoef(estimate, value)[0, 1])
    inside = (group["lower"] <= group["value"]) & (group["value"] <= group["upper"])
    coverage = float(inside.mean()) if group["se"].notna().all() else np.nan
    return {
        "count": len(group),
        "correlation": correlation,
        "rmse": float(np.sqrt(np.mean(error ** 2))),
        "bias": float(np.mean(error)),
        "coverage": coverage,
    }


def recovery_markdown(recovery: pd.DataFrame, label: str) -> str:
    """Render the recovery table as the summary's simulation section."""
    lines = [
        "## Simulation self-check",
        "",
        f"Data: {label}. Each row compares a model's free estimates with the parameters the data "
        "were drawn from: Pearson correlation, root mean squared error, mean bias and the share of "
        "true values inside the 95% intervals.",
        "",
        "| model | parameter | count | correlation | rmse | bias | coverage |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in recovery.itertuples(index=False):
        values = [_number(row.correlation), _number(row.rmse), _number(row.bias), _number(row.coverage)]
        lines.append(f"| {row.model} | {row.parameter} | {row.count} | " + " | ".join(values) + " |")
    lines.append("")
    return "\n".join(lines)


def _number(value: float) -> str:
    return "NA" if pd.isna(value) else f"{value:.3f}"
