"""Run sweep jobs as Ray Tune trials (``pip install "marl_tr[ray]"``; ``--backend ray``).

Each job (the consecutive seeds of one configuration, one replicated ``train`` call; see
``sweeps.make_jobs``) is one trial of a ``tune.grid_search`` over the jobs, with one CPU; the
trial runs the same function as the local pool (``sweeps.run_job``) and reports its cells'
records once. A Tune callback on the driver hands them to the sweep as soon as the trial
reports, so the results CSV grows exactly as with the local backend (one row per cell). Ray
does the scheduling and the distribution (``address=`` connects to a running cluster); nothing
here is home-made.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["execute_ray"]

_ROWS = "marl_tr_rows"
_ERROR = "marl_tr_error"


def _import_ray() -> Any:
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ValueError(
            'backend "ray" needs Ray Tune: pip install "marl_tr[ray]" (or choose backend '
            '"local")'
        ) from None
    return ray, tune


def _report(tune: Any, metrics: dict[str, Any]) -> None:
    report = getattr(tune, "report", None)
    if report is None:  # Ray < 2.41
        from ray import train

        report = train.report
    report(metrics)


def _trainable(config: dict[str, Any]) -> None:
    """A Tune function trainable: run one job, report its records (or its error) as JSON."""
    from ray import tune

    from marl_tr.experiments.sweeps import run_job

    try:
        rows = run_job(config["job"])
    except Exception as exc:  # reported to the sweep, like the local backend does
        _report(tune, {_ERROR: f"{type(exc).__name__}: {exc}"})
    else:
        _report(tune, {_ROWS: json.dumps(rows)})


def execute_ray(
    items: Sequence[dict[str, Any]],
    workers: int,
    on_result: Callable[[Any, Any], None],
    on_error: Callable[[Any, Any], None],
    *,
    address: str | None = None,
) -> None:
    """Run ``sweeps.run_job`` over ``items`` as Ray Tune trials (see the module docstring).

    Args:
        items: jobs as plain dicts (``Job.to_dict()``), in the order to start them.
        workers: the most trials at once (and the CPUs of a local Ray instance).
        on_result: called on the driver with ``(item, records)`` as each trial reports.
        on_error: called with ``(item, exception)`` for a trial that failed.
        address: a running Ray cluster; default: a local instance (started and stopped here
            unless Ray is already initialised).
    """
    if not items:
        return
    ray, tune = _import_ray()
    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None:
            options["num_cpus"] = workers
        ray.init(address=address, **options)
        started = True

    class _Rows(tune.Callback):
        def on_trial_result(self, iteration: int, trials: Any, trial: Any, result: dict,
                            **info: Any) -> None:
            item = trial.config["job"]
            if _ROWS in result:
                on_result(item, json.loads(result[_ROWS]))
            elif _ERROR in result:
                on_error(item, RuntimeError(result[_ERROR]))

        def on_trial_error(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            on_error(trial.config["job"], RuntimeError(f"Ray trial {trial.trial_id} failed"))

    run_config_class = getattr(tune, "RunConfig", None)
    if run_config_class is None:  # Ray < 2.41
        from ray.train import RunConfig as run_config_class
    try:
        with tempfile.TemporaryDirectory(prefix="marl_tr_tune_") as storage:
            tuner = tune.Tuner(
                tune.with_resources(_trainable, {"cpu": 1}),
                param_space={"job": tune.grid_search(list(items))},
                tune_config=tune.TuneConfig(max_concurrent_trials=workers),
                run_config=run_config_class(
                    name="marl_tr_sweep", storage_path=storage, callbacks=[_Rows()], verbose=0,
                ),
            )
            tuner.fit()
    finally:
        if started:
            ray.shutdown()
