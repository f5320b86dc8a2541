import pandas as pd

from xlsafety.analyses import figures
from xlsafety.analyses.dimensionality import category_concordance, q3_by_pair_type, scree
from xlsafety.scripting import run_step
from xlsafety.tables import CELLS, PARAMETERS, PROMPTS, read_table, write_csv


def main(snakemake):
    cells = read_table(snakemake.input.cells, CELLS)
    parameters = read_table(snakemake.input.parameters, PARAMETERS)
    prompts = read_table(snakemake.input.prompts, PROMPTS)

    eigen = scree(cells)
    q3 = q3_by_pair_type(cells, parameters, prompts)
    concordance = category_concordance(cells, prompts)

    eigenvalues = pd.DataFrame({"component": range(1, len(eigen.eigenvalues) + 1), "eigenvalue": eigen.eigenvalues})
    statistics = pd.DataFrame(
        {
            "statistic": ["first_factor_share", "kendall_w", "kendall_chi_squared", "kendall_p_value",
                          "configurations", "categories"],
            "value": [eigen.first_share, concordance.w, concordance.chi_squared, concordance.p_value,
                      concordance.configurations, concordance.categories],
        }
    )
    write_csv(eigenvalues, snakemake.output.eigenvalues)
    write_csv(q3, snakemake.output.q3)
    write_csv(statistics, snakemake.output.statistics)
    figures.scree_plot(eigen.eigenvalues, snakemake.output.figure)


run_step(snakemake, main)
