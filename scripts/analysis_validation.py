import dataclasses

import pandas as pd

from xlsafety.analyses import figures
from xlsafety.analyses.validation import (
    SPLITS,
    cross_validate,
    irt_predictor,
    no_tau_predictor,
    predict_additive,
    predict_configuration,
    predict_intercept,
    score_predictions,
)
from xlsafety.irt import FitOptions, fit
from xlsafety.irt.anchors import read_anchors
from xlsafety.scripting import run_step
from xlsafety.tables import CELLS, read_table, write_csv


def main(snakemake):
    cells = read_table(snakemake.input.cells, CELLS)
    options = FitOptions(
        model=snakemake.params.irt_model,
        reference_language=snakemake.params.reference_language,
        anchors=read_anchors(snakemake.params.anchors),
        tau_scale=snakemake.params.tau_scale,
        max_iterations=snakemake.params.max_iterations,
    )
    predictors = {
        "intercept": predict_intercept,
        "configuration": predict_configuration,
        "additive": predict_additive,
        "1pl": irt_predictor(fit, dataclasses.replace(options, model="1pl")),
        f"{options.model} without tau": no_tau_predictor(fit, options),
        options.model: irt_predictor(fit, options),
    }

    predictions = pd.concat(
        [
            cross_validate(cells, predictors, snakemake.params.folds, snakemake.params.seed, split=split,
                           families=snakemake.params.families, reference_language=options.reference_language)
            for split in SPLITS
        ],
        ignore_index=True,
    )
    scores = score_predictions(predictions, list(predictors))
    write_csv(predictions, snakemake.output.predictions)
    write_csv(scores, snakemake.output.scores)
    figures.validation_bars(scores, snakemake.output.figure)


run_step(snakemake, main)
