from xlsafety.judges import judge_generations, make_judge
from xlsafety.scripting import run_step
from xlsafety.tables import GENERATIONS, JUDGMENTS, PROMPTS, check_row_count, read_table, write_table


def main(snakemake):
    generations = read_table(snakemake.input.generations, GENERATIONS)
    prompts = read_table(snakemake.input.prompts, PROMPTS)
    check_row_count(generations, snakemake.input.generations, len(prompts) * snakemake.params.passes)

    judge = make_judge(snakemake.wildcards.judge, [snakemake.wildcards.language])
    write_table(judge_generations(judge, generations), snakemake.output[0], JUDGMENTS)


run_step(snakemake, main)
