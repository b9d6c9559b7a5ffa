"""System metrics (CPU, memory, disk, network; GPU with nvidia-ml-py) for a tracked run, with MLflow's own
monitor, started for an explicit run id (no active run). Logged as `system/...` every
`SAMPLING_INTERVAL_S` seconds (MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL overrides it), and once more at
the end, so that a render shorter than one interval still gets one sample. Off when psutil is missing
or MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING is set to false.
"""

from __future__ import annotations

import os
from typing import Any

SAMPLING_INTERVAL_S = 5.0


def system_metrics_wanted() -> bool:
    flag = os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "").strip().lower()
    return flag not in ("false", "0", "no")


def start_monitor(run_id: str, tracking_uri: str) -> Any | None:
    """A started SystemMetricsMonitor for the run, or None where MLflow cannot collect (no psutil)."""
    if not system_metrics_wanted():
        return None
    try:
        import psutil  # noqa: F401 - MLflow's CPU monitor needs it

        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    except ImportError:
        return None
    import logging

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no "Started monitoring" chatter
    monitor = SystemMetricsMonitor(run_id, sampling_interval=SAMPLING_INTERVAL_S, tracking_uri=tracking_uri)
    monitor.collect_metrics()  # a first sample now: the last one is logged even if no interval passed
    monitor.start()
    return monitor


def stop_monitor(monitor: Any | None) -> None:
    """Stop the monitor and log what it sampled since it last logged (before the run is closed)."""
    if monitor is None:
        return
    monitor.finish()
    if getattr(monitor, "_logging_step", 1) == 0:  # no interval passed: log the samples taken
        monitor.collect_metrics()
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()
