"""Benchmark: our multigroup-2pl fit (MAP + Laplace) against Pyro SVI on simulated data.

Simulates cells at the MultiJail study shape (61 configurations x 315 prompts
x 10 languages x 10 passes, 40 anchor prompts, heavy-tailed tau), then fits

  ours: xlsafety.irt.fit (L-BFGS MAP on the 192,150 binomial cells, with
        Laplace standard errors), and
  svi:  the model as fitted with Pyro: SVI with a mean-field normal guide
        (AutoNormal), ClippedAdam at lr 0.01, full batch over the 1.92
        million Bernoulli rows, tau ~ Cauchy(0, s) with s ~ HalfCauchy(1).

Each estimator runs in its own subprocess, so that its peak resident memory
(ru_maxrss, which includes the Python interpreter, torch and the data) is its
own. The script prints wall time, peak memory, the speed ratio, the
correlation of our estimates with the SVI posterior means, recovery against
the truth and the coverage of our 95% intervals.

The fit reports what the data identify: delta centred in each language,
theta and beta relative to the mean beta, and the locations in the unit
where the mean log alpha is its prior mean (xlsafety/irt/centring.py,
units.py). The simulation draws its truth in the same terms. Interval
coverage is judged pooled over seeds (--coverage-seeds), because one fit
has only 9 gammas, so its gamma coverage is k/9. The slope of estimated on
true gamma would show an error of the unit. SVI's estimates are compared
as they come, so its alpha error includes the unit that its priors set.

Needs the `bench` extra (pyro-ppl) for the SVI part.

    .venv/bin/python benchmarks/irt_benchmark.py                   # full shape, 4000 SVI steps
    .venv/bin/python benchmarks/irt_benchmark.py --svi-steps 200   # quick run
    .venv/bin/python benchmarks/irt_benchmark.py --scale           # 200 x 1000 x 30 x 10, ours only
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PAPER_SHAPE = {"configurations": 61, "prompts": 315, "languages": 10, "passes": 10, "anchors": 40}
SCALE_SHAPE = {"configurations": 200, "prompts": 1000, "languages": 30, "passes": 10, "anchors": 40}
# The t(3) scale of the simulated tau (see xlsafety/irt/simulate.py).
TAU_T_SCALE = 0.5
FAMILIES = ("theta", "beta", "gamma", "alpha", "delta", "tau")


def main() -> None:
    arguments = parse_arguments()
    if arguments.worker:
        run_worker(arguments)
        return

    shape = SCALE_SHAPE if arguments.scale else PAPER_SHAPE
    estimators = ["ours"] if arguments.scale or arguments.svi_steps == 0 else ["ours", "svi"]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        started = time.perf_counter()
        write_simulation(folder, shape, arguments.seed)
        print(f"shape {shape}, seed {arguments.seed}, tau ~ {TAU_T_SCALE} * t(3); "
              f"simulated in {time.perf_counter() - started:.1f} s")

        results = {}
        for name in estimators:
            stored = arguments.svi_result if name == "svi" else None
            if stored and stored.exists():
                print(f"reusing the SVI result in {stored}")
                results[name] = json.loads(stored.read_text())
                continue
            results[name] = run_in_subprocess(folder, name, arguments)
            if stored:
                stored.write_text(json.dumps(results[name]))
    summary = report(results, arguments)
    if arguments.coverage_seeds:
        summary["further_seeds"] = pooled_coverage(shape, arguments)
    if arguments.json:
        arguments.json.write_text(json.dumps(summary, indent=2) + "\n")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--svi-steps", type=int, default=4000, help="SVI steps (0 skips SVI; default 4000)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch CPU threads of each estimator (default: all cores); our fit uses one "
                             "below a million cells")
    parser.add_argument("--scale", action="store_true",
                        help="simulate 200 configurations x 1000 prompts x 30 languages x 10 passes; ours only")
    parser.add_argument("--coverage-seeds", type=int, default=0,
                        help="also fit ours to this many further seeds and print the pooled interval coverage, "
                             "which one fit estimates poorly (default 0)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--svi-result", type=Path,
                        help="reuse the SVI result stored in this file if it exists, else store it there "
                             "(the SVI fit takes minutes and does not depend on our estimator)")
    parser.add_argument("--worker", choices=["ours", "svi"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


# The parent: simulate, run the workers, compare.

def write_simulation(folder: Path, shape: dict, seed: int) -> None:
    from xlsafety.irt.simulate import simulate_cells

    simulation = simulate_cells(seed, tau_scale=TAU_T_SCALE, **shape)
    simulation.cells.to_parquet(folder / "cells.parquet")
    truth = simulation.truth
    free_tau = truth["tau"][shape["anchors"]:, 1:]
    np.savez(folder / "truth.npz", theta=truth["theta"], beta=truth["beta"], gamma=truth["gamma"][1:],
             alpha=truth["alpha"], delta=truth["delta"][:, 1:].ravel(), tau=free_tau.ravel())
    meta = {**shape, "anchors": simulation.anchors, "tau_scale": simulation.tau_scale}
    (folder / "meta.json").write_text(json.dumps(meta))


def run_in_subprocess(folder: Path, name: str, arguments) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--folder", str(folder),
               "--svi-steps", str(arguments.svi_steps), "--seed", str(arguments.seed),
               "--threads", str(arguments.threads)]
    print(f"running {name} ...", flush=True)
    subprocess.run(command, check=True)
    result = json.loads((folder / f"{name}.json").read_text())
    result["truth"] = {key: value.tolist() for key, value in np.load(folder / "truth.npz").items()}
    return result


def correlation(first, second) -> float:
    return float(np.corrcoef(np.asarray(first), np.asarray(second))[0, 1])


def report(results: dict, arguments) -> dict:
    ours = results["ours"]
    truth = ours["truth"]
    summary = {"machine": machine(), "threads": arguments.threads, "seed": arguments.seed,
               "scale": arguments.scale, "svi_steps": arguments.svi_steps if "svi" in results else 0}

    print()
    print(f"machine: {summary['machine']}; torch threads per estimator: {arguments.threads}")
    for name, result in results.items():
        cpu = f"cpu {result['cpu_seconds']:8.1f} s" if "cpu_seconds" in result else "cpu not recorded"
        print(f"{name:5s} wall {result['seconds']:8.1f} s   {cpu}   peak RSS {result['peak_rss_mb']:7.0f} MB "
              f"(after loading data {result['baseline_rss_mb']:.0f} MB)   {result['note']}")
        summary[name] = {key: result.get(key) for key in ("seconds", "cpu_seconds", "peak_rss_mb", "baseline_rss_mb",
                                                          "note")}

    print("\nrecovery: correlation with the truth" + ("" if "svi" not in results else " (ours | svi)"))
    summary["recovery"] = {}
    for family in FAMILIES:
        row = [correlation(result["estimates"][family], truth[family]) for result in results.values()]
        summary["recovery"][family] = row
        print(f"  {family:6s} " + " | ".join(f"{value:.4f}" for value in row))
    shift = [float(np.mean(np.log(np.asarray(result["estimates"]["alpha"]) / truth["alpha"])))
             for result in results.values()]
    summary["alpha_log_shift"] = shift
    # Ours reports alpha in the simulation's unit (mean log alpha 0.5), so its shift is 0 by construction.
    print("  mean log(alpha estimate / alpha), the unit that the estimator sets: "
          + " | ".join(f"{value:+.4f}" for value in shift))

    print("\ncoverage of our 95% Laplace intervals in this one fit (gamma can only be k/9; "
          "use --coverage-seeds for coverage pooled over seeds)")
    summary["coverage"] = {}
    for family in FAMILIES:
        lower, upper = np.asarray(ours["lower"][family]), np.asarray(ours["upper"][family])
        covered = float(np.mean((lower <= truth[family]) & (np.asarray(truth[family]) <= upper)))
        summary["coverage"][family] = covered
        print(f"  {family:6s} {covered:.3f}  (n = {lower.size})")

    if "svi" in results:
        svi = results["svi"]
        ratio = svi["seconds"] / ours["seconds"]
        summary["speed_ratio"] = ratio
        print(f"\nspeed: ours is {ratio:.1f} times faster than {svi['steps']} SVI steps")
        print("correlation of our estimates with the SVI posterior means")
        summary["agreement"] = {}
        for family in FAMILIES:
            value = correlation(ours["estimates"][family], svi["estimates"][family])
            summary["agreement"][family] = value
            print(f"  {family:6s} {value:.4f}")
    return summary


def pooled_coverage(shape: dict, arguments) -> dict:
    """Fit ours to further seeds and return the share of true values inside the 95% intervals, pooled."""
    import pandas as pd

    from xlsafety.irt import FitOptions, fit
    from xlsafety.irt.simulate import simulate_cells

    seeds = range(arguments.seed + 1, arguments.seed + 1 + arguments.coverage_seeds)
    covered: dict[str, list] = {family: [] for family in FAMILIES}
    per_seed = []
    print("\nfurther seeds: correlation of gamma with the truth, slope of estimated on true gamma")
    for seed in seeds:
        simulation = simulate_cells(seed, tau_scale=TAU_T_SCALE, **shape)
        result = fit(simulation.cells, FitOptions(anchors=simulation.anchors, tau_scale=simulation.tau_scale,
                                                  threads=arguments.threads))
        truth = simulation.truth
        true_values = {"theta": truth["theta"], "beta": truth["beta"], "gamma": truth["gamma"][1:],
                       "alpha": truth["alpha"], "delta": truth["delta"][:, 1:].ravel(),
                       "tau": truth["tau"][shape["anchors"]:, 1:].ravel()}
        for family in FAMILIES:
            rows = canonical(result.parameters, family)
            inside = (rows["lower"].to_numpy() <= true_values[family]) & (true_values[family] <= rows["upper"].to_numpy())
            covered[family].extend(inside.tolist())
        gamma = canonical(result.parameters, "gamma")["estimate"]
        record = {"seed": seed, "gamma": correlation(gamma, true_values["gamma"]),
                  "gamma_slope": float(np.polyfit(true_values["gamma"], gamma, 1)[0])}
        per_seed.append(record)
        print(f"  seed {seed}: gamma {record['gamma']:.4f}, slope {record['gamma_slope']:.4f}", flush=True)

    print(f"\ncoverage of our 95% intervals pooled over seeds {seeds.start}..{seeds.stop - 1} "
          "(how gamma's coverage is judged: one fit has only 9 gammas)")
    pooled = {}
    for family in FAMILIES:
        pooled[family] = float(pd.Series(covered[family]).mean())
        print(f"  {family:6s} {pooled[family]:.3f}  (n = {len(covered[family])})")
    return {"pooled": pooled, "per_seed": per_seed}


def machine() -> str:
    import platform

    return f"{platform.machine()} CPU, {os.cpu_count()} cores, Python {platform.python_version()}"


# The workers: one estimator each, timed and measured on their own.

def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(arguments) -> None:
    import pandas as pd
    import torch

    torch.set_num_threads(arguments.threads)
    folder = arguments.folder
    cells = pd.read_parquet(folder / "cells.parquet")
    meta = json.loads((folder / "meta.json").read_text())
    baseline = rss_mb()

    worker = fit_ours if arguments.worker == "ours" else fit_svi
    started = time.perf_counter()
    cpu_started = time.process_time()
    result = worker(cells, meta, arguments)
    result["seconds"] = time.perf_counter() - started
    # CPU time of the fit, which other jobs on a shared machine inflate less than wall time.
    result["cpu_seconds"] = time.process_time() - cpu_started
    result["peak_rss_mb"] = rss_mb()
    result["baseline_rss_mb"] = baseline
    (folder / f"{arguments.worker}.json").write_text(json.dumps(result))


def canonical(table, family: str):
    """Rows of one parameter family in the order of the truth arrays."""
    rows = table[table["parameter"] == family]
    if family == "tau":
        rows = rows[~rows["fixed"]]
    keys = {"theta": ["configuration"], "beta": ["id"], "alpha": ["id"], "gamma": ["language"],
            "delta": ["configuration", "language"], "tau": ["id", "language"]}[family]
    return rows.sort_values(keys)


def fit_ours(cells, meta, arguments) -> dict:
    from xlsafety.irt import FitOptions, fit

    result = fit(cells, FitOptions(model="multigroup-2pl", reference_language="en", anchors=meta["anchors"],
                                   tau_scale=meta["tau_scale"], threads=arguments.threads))
    table = result.parameters
    summary = result.summary
    estimates, lower, upper = {}, {}, {}
    for family in FAMILIES:
        rows = canonical(table, family)
        estimates[family] = rows["estimate"].tolist()
        lower[family] = rows["lower"].tolist()
        upper[family] = rows["upper"].tolist()
    scale = summary["scale_term"]
    note = (f"{summary['iterations']} L-BFGS iterations, max |gradient| {summary['max_abs_gradient']:.1e}, "
            f"MAP with scale term {summary['map_seconds']:.1f} s + Laplace {summary['laplace']['seconds']:.1f} s, "
            f"{summary['parameters']} parameters, scale term counts {scale['effective_locations']:.0f} "
            f"of {scale['free_locations']} locations")
    return {"estimates": estimates, "lower": lower, "upper": upper, "note": note}


def fit_svi(cells, meta, arguments) -> dict:
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal
    from pyro.optim import ClippedAdam

    rows = bernoulli_rows(cells)
    configurations, prompts, languages = (sorted(cells[key].unique()) for key in ("configuration", "id", "language"))
    n_j, n_i, n_g = len(configurations), len(prompts), len(languages)
    reference = languages.index("en")
    anchors = meta["anchors"]
    other = [position for position in range(n_g) if position != reference]
    j, i, g, y = (torch.as_tensor(rows[key]) for key in ("j", "i", "g", "y"))

    tau_mask = torch.ones(n_i, n_g)
    tau_mask[:, reference] = 0
    tau_mask[anchors, :] = 0
    tau_positions = tau_mask.flatten().nonzero().squeeze(1)
    other_index = torch.tensor(other)

    def model():
        theta = pyro.sample("theta", dist.Normal(0.0, 1.0).expand([n_j]).to_event(1))
        delta_free = pyro.sample("delta", dist.Normal(0.0, 0.5).expand([n_j, n_g - 1]).to_event(2))
        beta = pyro.sample("beta", dist.Normal(0.0, 1.0).expand([n_i]).to_event(1))
        gamma_free = pyro.sample("gamma", dist.Normal(0.0, 1.0).expand([n_g - 1]).to_event(1))
        scale = pyro.sample("tau_scale", dist.HalfCauchy(1.0))
        tau_free = pyro.sample("tau", dist.Cauchy(0.0, scale).expand([tau_positions.numel()]).to_event(1))
        alpha = pyro.sample("alpha", dist.LogNormal(0.5, 0.5).expand([n_i]).to_event(1))

        delta = torch.zeros(n_j, n_g).index_copy(1, other_index, delta_free)
        gamma = torch.zeros(n_g).index_copy(0, other_index, gamma_free)
        tau = torch.zeros(n_i * n_g).index_copy(0, tau_positions, tau_free).view(n_i, n_g)
        logits = alpha[i] * (theta[j] + delta[j, g] - beta[i] - gamma[g] - tau[i, g])
        with pyro.plate("passes", y.numel()):
            pyro.sample("y", dist.Bernoulli(logits=logits), obs=y)

    pyro.set_rng_seed(arguments.seed)
    pyro.clear_param_store()
    guide = AutoNormal(model)
    svi = SVI(model, guide, ClippedAdam({"lr": 0.01}), loss=Trace_ELBO())
    losses = [svi.step() for _ in range(arguments.svi_steps)]

    sites = ("theta", "delta", "beta", "gamma", "tau_scale", "tau", "alpha")
    # AutoNormal's locations and scales live in the unconstrained space (log alpha, log s).
    locations = {name: getattr(guide.locs, name).detach() for name in sites}
    scales = {name: getattr(guide.scales, name).detach() for name in sites}
    delta = locations["delta"]
    delta_table = {"configuration": np.repeat(configurations, n_g - 1),
                   "language": np.tile(np.asarray(languages)[other], n_j)}
    order = np.lexsort((delta_table["language"], delta_table["configuration"]))
    gamma_order = np.argsort(np.asarray(languages)[other])
    tau_order = np.lexsort(tau_labels(tau_positions.numpy(), prompts, languages)[::-1])
    estimates = {
        "theta": locations["theta"].tolist(),
        "beta": locations["beta"].tolist(),
        "gamma": locations["gamma"][gamma_order].tolist(),
        # AutoNormal puts a normal on log alpha, so the posterior mean of alpha is lognormal's.
        "alpha": torch.exp(locations["alpha"] + scales["alpha"] ** 2 / 2).tolist(),
        "delta": delta.flatten()[order].tolist(),
        "tau": locations["tau"][tau_order].tolist(),
    }
    note = (f"{arguments.svi_steps} steps, final ELBO loss {np.mean(losses[-100:]):.0f} (mean of last 100), "
            f"tau scale {float(torch.exp(locations['tau_scale'])):.3f}")
    return {"estimates": estimates, "steps": arguments.svi_steps, "note": note}


def tau_labels(positions, prompts, languages):
    """(prompt id, language) of each free tau position of the flattened prompts x languages grid."""
    return (np.asarray(prompts)[positions // len(languages)], np.asarray(languages)[positions % len(languages)])


def bernoulli_rows(cells) -> dict:
    """Expand binomial cells to one 0/1 row per valid pass, with integer codes for the axes."""
    codes = {key: np.unique(cells[key].to_numpy(), return_inverse=True)[1]
             for key in ("configuration", "id", "language")}
    valid = cells["n_valid"].to_numpy()
    safe = cells["n_safe"].to_numpy()
    repeat = np.repeat(np.arange(len(cells)), valid)
    # Within each cell, the first n_safe passes are the safe ones.
    position = np.arange(repeat.size) - np.repeat(np.cumsum(valid) - valid, valid)
    return {"j": codes["configuration"][repeat], "i": codes["id"][repeat], "g": codes["language"][repeat],
            "y": (position < safe[repeat]).astype(np.float32)}


if __name__ == "__main__":
    main()
