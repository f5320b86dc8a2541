import logging

from xlsafety.checkpoint import checkpoint_folder, fingerprint_of
from xlsafety.dataset import sha256_of_file
from xlsafety.judges import judge_generations, make_judge, remove_judge_checkpoints
from xlsafety.judges.calibration import CALIBRATION_JUDGMENTS, calibration_cases, calibration_judgments, load_calibration
from xlsafety.scripting import run_step
from xlsafety.tables import write_table


def main(snakemake):
    language = snakemake.wildcards.language
    calibration = load_calibration(snakemake.input.calibration)
    calibration = calibration[calibration["language"] == language].reset_index(drop=True)
    generations, prompts = calibration_cases(calibration)

    # httpx logs every request of an API judge at INFO level, which would bury the progress lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # A judge model's replies are saved as they come, so that a killed job resumes. The
    # fingerprint covers the judge definition and the calibration file.
    determining = {"definition": snakemake.params.definition, "calibration": sha256_of_file(snakemake.input.calibration)}
    resources = {
        "model_dir": snakemake.input.get("model"),
        "translation_model_dir": snakemake.input.get("translation_model"),
        "threads": snakemake.threads,
        "checkpoint_folder": checkpoint_folder(snakemake.output[0]),
        "fingerprint": fingerprint_of(determining),
    }
    judge = make_judge(snakemake.wildcards.judge, [language], snakemake.config, **resources)
    judged = calibration_judgments(calibration, judge_generations(judge, generations, prompts))
    write_table(judged, snakemake.output[0], CALIBRATION_JUDGMENTS)

    remove_judge_checkpoints(judge)


run_step(snakemake, main)
