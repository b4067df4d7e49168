"""The experiment layer: resumable sweeps and the paper's Table 3, Figure 1 and a basin-gap study.

    import marl_tr.experiments as ex
    rows = ex.sweep(["hatrpo", "wmatrpo-caatr"], seeds=5, grid={"n": [3, 5]},
                    fixed={"iterations": 500}, results="results/sweep.csv").rows
    table = ex.reproduce_table3(seeds=5, out="results/table3")     # Table 2's budget
    figure = ex.reproduce_figure1(out="results/figure1")
    study = ex.reproduce_basin_gap(gaps=(2, 3, 4), sigmas=("paper", 1.0), out="results/gap")
    ex.reproduce_all(out="docs/results")

Command line: ``marl-tr sweep ...`` and ``marl-tr reproduce {table3,figure1,basin-gap,all}``.
A sweep trains the consecutive seeds of each configuration together, as replicated runs
(``TrainConfig.replicas``) of up to ``max_replicas`` seeds (``--max-replicas``, default 16);
a cell's row is the same either way, apart from the timing columns (``RUN_COLUMNS``).
The measures (distance, left basin, reached the higher peak, overshoot) are defined in
``marl_tr.experiments.outcomes``; the results CSV's columns in ``results.COLUMNS``.
"""

from __future__ import annotations

from marl_tr.experiments.cli import add_experiment_commands
from marl_tr.experiments.figure import Figure1, draw_figure1, reproduce_figure1
from marl_tr.experiments.outcomes import (
    OVERSHOOT_TOLERANCE,
    REACH_FRACTION,
    left_basin,
    measure,
    overshoot,
    paper_distance,
    reached_higher_peak,
)
from marl_tr.experiments.paper import (
    MATRIX_GAMES,
    MATRIX_PRESETS,
    TABLE2,
    TABLE3,
    TABLE3_EXTRA,
    TABLE3_METHODS,
    TABLE3_N,
    TABLE3_PRESETS,
    VARIANTS,
    ExperimentResult,
    PaperEntry,
    reproduce_basin_gap,
    reproduce_matrix_games,
    reproduce_sensitivity,
    reproduce_table3,
    reproduce_variants,
)
from marl_tr.experiments.reproduce import reproduce_all
from marl_tr.experiments.results import COLUMNS, RUN_COLUMNS, ResultsFile
from marl_tr.experiments.sweeps import (
    BACKENDS,
    MAX_REPLICAS,
    Cell,
    Job,
    SweepResult,
    make_cells,
    make_jobs,
    parse_seeds,
    plan_jobs,
    run_cell,
    run_job,
    sweep,
)

__all__ = [
    "BACKENDS",
    "COLUMNS",
    "MATRIX_GAMES",
    "MATRIX_PRESETS",
    "MAX_REPLICAS",
    "OVERSHOOT_TOLERANCE",
    "REACH_FRACTION",
    "RUN_COLUMNS",
    "TABLE2",
    "TABLE3",
    "TABLE3_EXTRA",
    "TABLE3_METHODS",
    "TABLE3_N",
    "TABLE3_PRESETS",
    "VARIANTS",
    "Cell",
    "ExperimentResult",
    "Figure1",
    "Job",
    "PaperEntry",
    "ResultsFile",
    "SweepResult",
    "add_experiment_commands",
    "draw_figure1",
    "left_basin",
    "make_cells",
    "make_jobs",
    "measure",
    "overshoot",
    "paper_distance",
    "parse_seeds",
    "plan_jobs",
    "reached_higher_peak",
    "reproduce_all",
    "reproduce_basin_gap",
    "reproduce_figure1",
    "reproduce_matrix_games",
    "reproduce_sensitivity",
    "reproduce_table3",
    "reproduce_variants",
    "run_cell",
    "run_job",
    "sweep",
]
