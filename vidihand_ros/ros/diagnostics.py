"""The node's one DiagnosticStatus: rates, latency, drops and the estimator's state, from LiveStats.

What `/diagnostics` consumers (rqt_robot_monitor, diagnostic_aggregator) show: a level and a
message for people, KeyValue pairs for tools.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from vidihand_ros.live import LiveStats


def diagnostic_status(
    stats: LiveStats,
    before: LiveStats,
    period_s: float,
    *,
    skipped: int,
    estimator: str,
    waiting_for: str | None,
    input_problem: str | None,
    not_ready: str | None = None,
) -> DiagnosticStatus:
    """One DiagnosticStatus: rates over the last period, latency, drops and the estimator's state.

    ERROR while the estimator fails (until frames come out again), WARN when frames were dropped
    in the last period, nothing arrives, or frames cannot be used; else OK.
    """
    period_s = max(period_s, 1e-9)
    input_rate = (stats.received - before.received) / period_s
    output_rate = (stats.delivered - before.delivered) / period_s
    dropped_now = stats.dropped_frames - before.dropped_frames
    latencies = sorted(stats.latencies_s)
    level, message = DiagnosticStatus.OK, "ok"
    if waiting_for is not None:
        level, message = DiagnosticStatus.WARN, f"waiting for {waiting_for}"
    elif input_rate == 0 and stats.queued == 0:
        level, message = DiagnosticStatus.WARN, "no frames"
    if dropped_now:
        level, message = DiagnosticStatus.WARN, f"{dropped_now} frames dropped: the estimator is behind"
    if input_problem is not None and skipped:
        level, message = DiagnosticStatus.WARN, input_problem
    if stats.deliver_errors > before.deliver_errors:
        level, message = DiagnosticStatus.ERROR, f"publishing failed: {stats.last_deliver_error}"
    if not stats.estimator_ok:
        level, message = DiagnosticStatus.ERROR, f"estimator failing: {stats.last_error}"
    if not_ready is not None:
        level, message = DiagnosticStatus.ERROR, f"no estimator: {not_ready}"
    values = {
        "estimator": estimator,
        "estimator_state": _state(stats, not_ready),
        "input_rate_hz": f"{input_rate:.2f}",
        "output_rate_hz": f"{output_rate:.2f}",
        "latency_median_ms": _ms(latencies, 0.5),
        "latency_p95_ms": _ms(latencies, 0.95),
        "latency_max_ms": _ms(latencies, 1.0),
        "frames_received": str(stats.received),
        "frames_published": str(stats.delivered),
        "frames_skipped": str(skipped),
        "frames_dropped": str(stats.dropped_frames),
        "windows_dropped": str(stats.dropped_windows),
        "estimator_errors": str(stats.estimator_errors),
        "publish_errors": str(stats.deliver_errors),
        "frames_queued": str(stats.queued),
        "windows_in_flight": str(stats.in_flight),
    }
    return DiagnosticStatus(
        level=level,
        message=message,
        hardware_id=estimator,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )


def _state(stats: LiveStats, not_ready: str | None) -> str:
    if not_ready is not None:
        return f"not ready: {not_ready}"
    return "ok" if stats.estimator_ok else f"error: {stats.last_error}"


def _ms(sorted_values: list[float], quantile: float) -> str:
    if not sorted_values:
        return "nan"
    index = min(len(sorted_values) - 1, int(quantile * (len(sorted_values) - 1) + 0.5))
    return f"{1000 * sorted_values[index]:.1f}"
