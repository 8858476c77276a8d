"""The monitor's `result` object (JSON report) and its plot, from a `Monitor`'s state.

The plot is the `logs --plot` figure (`ctcdoctor.training.plot`) drawn from the monitor's own
curves: the loss, the CER and the blank ratio over steps, each verdict's steps shaded.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctcdoctor.training.logs import LogsResult

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.training.monitor import Monitor


def _number(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) and math.isfinite(value) else value


def logs_result(monitor: Monitor) -> LogsResult:
    """The monitor's state in the shape `ctcdoctor logs` returns (for the plot and the series summary)."""
    from ctcdoctor.training.names import resolve

    if monitor.resolved is not None:
        run, curves = monitor.resolved
    else:
        run = monitor.run_data()
        curves, _ = resolve(run)
    return LogsResult(source=str(monitor.metrics_path or monitor.name), format="monitor", findings=monitor.findings,
                      curves=curves, run=run, options=monitor.options())


def _latest(monitor: Monitor) -> dict[str, Any] | None:
    stats = monitor.latest
    if stats is None:
        return None
    latest: dict[str, Any] = {key: _number(value) for key, value in stats.record().items()}
    latest["infeasible_samples"] = list(stats.infeasible_samples)
    latest["samples"] = [{"target": target, "decoded": decoded} for target, decoded in stats.examples]
    return latest


def monitor_result(monitor: Monitor) -> dict[str, Any]:
    """Where the run is, what the outputs look like now, how the verdict was reached, where the files are."""
    last_step = monitor.resolved[1].loss if monitor.resolved is not None else None
    result: dict[str, Any] = {
        "step": int(last_step.steps[-1]) if last_step is not None and len(last_step) else None,
        "steps_seen": monitor.steps_seen,
        "evaluations": monitor.evaluations,
        "every": monitor.every,
        "patience": monitor.patience,
        "stop_on": monitor.stop_on,
        "stopped": ({"step": monitor.stopped_at, "code": monitor.stop_reason.code}
                    if monitor.stop_reason is not None else None),
        "finished": monitor.closed,
        "non_finite_steps": monitor.nonfinite_steps,
        "meta": dict(monitor.meta()),
        "latest": _latest(monitor),
    }
    if last_step is not None and len(last_step):
        result["series"] = logs_result(monitor).to_dict()["series"]
    result["files"] = {"metrics": str(monitor.metrics_path) if monitor.metrics_path else None,
                       "report": str(monitor.report_path) if monitor.report_path else None,
                       "plot": str(monitor.plot_path) if monitor.plot_path and monitor.plot_written else None}
    result["seconds"] = {"monitor": round(monitor.seconds, 4),
                         "per_step_ms": round(1000 * monitor.seconds / max(monitor.steps_seen, 1), 4)}
    return result


def save_plot(monitor: Monitor, path: Path) -> None:
    import matplotlib.pyplot as plt

    from ctcdoctor.training.plot import plot

    path.parent.mkdir(parents=True, exist_ok=True)
    figure = plot(logs_result(monitor))
    figure.savefig(path, dpi=110)
    plt.close(figure)
