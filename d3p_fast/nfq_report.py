# SPDX-License-Identifier: GPL-2.0-only
"""`gdoi show gm replay`: the IOS `show crypto gkm gm replay` report from a
stats file written by `gdoi d3p enforce --stats FILE`.

Layout follows the sample output in the GET VPN configuration guide
("Enabling IP-D3P on a Group Member"): times in seconds with two decimals,
error history lines `src=...; my_time=...; peer_time=...;` then `win=...`
(seconds).  Lines the IOS sample does not have (errors by cause, clock) come
after the IOS lines so the familiar part reads the same.
"""
import json
import time


class StatsFileError(ValueError):
    """The stats file is missing fields or is not a d3p stats file."""


REQUIRED = ("input_packets", "input_error_packets", "output_packets",
            "output_error_packets", "error_history", "posix_time_ms")


def load_stats(path):
    """Read and check a stats file (OSError if unreadable, StatsFileError if wrong)."""
    with open(path) as f:
        try:
            stats = json.load(f)
        except json.JSONDecodeError as exc:
            raise StatsFileError("%s is not JSON: %s" % (path, exc)) from None
    if not isinstance(stats, dict):
        raise StatsFileError("%s: expected a JSON object" % path)
    missing = [key for key in REQUIRED if key not in stats]
    if missing:
        raise StatsFileError("%s lacks %s: not written by gdoi d3p enforce?"
                             % (path, ", ".join(missing)))
    return stats


def _seconds(ms):
    return "%.2f" % (ms / 1000.0)


def _wall(ms):
    t = time.gmtime(ms // 1000)
    return "%s.%03d UTC %s" % (time.strftime("%H:%M:%S", t), ms % 1000,
                               time.strftime("%a %b %d %Y", t))


def format_replay_report(stats):
    """The report text for a stats dict (see d3p_fast.nfq.summarize)."""
    errors = stats.get("input_errors", {})
    lines = [
        "Anti-replay Information For Group %s:" % (stats.get("group") or "-"),
        "IP-D3P:",
        "  Posix-time-msec           : %s" % _seconds(stats["posix_time_ms"]),
        "  Input Packets              : %-10d Output Packets           : %d"
        % (stats["input_packets"], stats["output_packets"]),
        "  Input Error Packets        : %-10d Output Error Packets        : %d"
        % (stats["input_error_packets"], stats["output_error_packets"]),
        "    Too Old                  : %-10d Too New                  : %d"
        % (errors.get("too_old", 0), errors.get("too_new", 0)),
        "    Malformed                : %-10d Too Big (dropped)        : %d"
        % (errors.get("malformed", 0), stats.get("too_big", 0)),
        "  Window-size                : %d msec, clock: %s"
        % (stats.get("window_ms", 0), stats.get("clock", "none")),
    ]
    kernel = stats.get("kernel_queues") or {}
    if kernel:
        lines.append("  Kernel queue drops         : %-10d Socket buffer drops      : %d"
                     % (sum(q["queue_dropped"] for q in kernel.values()),
                        sum(q["user_dropped"] for q in kernel.values())))
    lines += [
        "",
        "IP-D3P Error History (sampled at %dpak/min):" % stats.get("history_per_minute", 10),
    ]
    for record in stats["error_history"]:
        lines.append("  %s: src=%s; my_time=%s; peer_time=%s;"
                     % (_wall(record["time_ms"]), record.get("src") or "-",
                        _seconds(record["my_time_ms"]), _seconds(record["peer_time_ms"])))
        lines.append("  win=%g" % (record["window_ms"] / 1000.0))
    return "\n".join(lines) + "\n"
