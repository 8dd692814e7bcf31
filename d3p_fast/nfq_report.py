# SPDX-License-Identifier: GPL-2.0-only
"""`gdoi show gm replay`: the IOS `show crypto gkm gm replay` report from a
stats file written by `gdoi d3p enforce --stats FILE`.

Layout follows the sample output in the GET VPN configuration guide
("Enabling IP-D3P on a Group Member"): times in seconds with two decimals,
error history lines `src=...; my_time=...; peer_time=...;` then `win=...`
(seconds) and the cause (too old, too new, malformed).  Lines the IOS sample does not have (errors by cause, clock) come
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


#: Error history causes as the report names them (d3p_fast.nfq.CAUSES).
CAUSE_NAMES = {"too_old": "too old", "too_new": "too new", "malformed": "malformed"}


def _group_name(stats):
    """--group, or the queue numbers when none was given."""
    if stats.get("group"):
        return stats["group"]
    queues = stats.get("queues") or []
    if not queues:
        return "-"
    return "%s %s" % ("queue" if len(queues) == 1 else "queues",
                      ",".join(str(q) for q in queues))


def _window_line(stats):
    """A stamper and --no-verify check nothing: no window applies to them."""
    mode = stats.get("mode")
    if mode == "stamp":
        window = "- (stamper: inserts timestamps, checks none)"
    elif mode == "pass":
        window = "- (--no-verify: nothing checked)"
    else:
        window = "%d msec" % stats.get("window_ms", 0)
    return "  Window-size                : %s, clock: %s" % (window, stats.get("clock", "none"))


def _history_lines(record):
    """Two lines per error, as in the IOS sample, with the cause after win=.
    A malformed packet has no timestamp we could read: peer_time=-."""
    cause = record.get("cause")
    peer = "-" if cause == "malformed" else _seconds(record["peer_time_ms"])
    win = "  win=%g" % (record["window_ms"] / 1000.0)
    if cause:
        win += "; cause=%s" % CAUSE_NAMES.get(cause, cause)
    return ["  %s: src=%s; my_time=%s; peer_time=%s;"
            % (_wall(record["time_ms"]), record.get("src") or "-",
               _seconds(record["my_time_ms"]), peer), win]


def format_replay_report(stats):
    """The report text for a stats dict (see d3p_fast.nfq.summarize)."""
    errors = stats.get("input_errors", {})
    lines = [
        "Anti-replay Information For Group %s:" % _group_name(stats),
        "IP-D3P:",
        "  Posix-time-msec           : %s" % _seconds(stats["posix_time_ms"]),
        "  Input Packets              : %-10d Output Packets           : %d"
        % (stats["input_packets"], stats["output_packets"]),
        "  Input Error Packets        : %-10d Output Error Packets     : %d"
        % (stats["input_error_packets"], stats["output_error_packets"]),
        "    Too Old                  : %-10d Too New                  : %d"
        % (errors.get("too_old", 0), errors.get("too_new", 0)),
        "    Malformed                : %-10d Too Big (dropped)        : %d"
        % (errors.get("malformed", 0), stats.get("too_big", 0)),
        _window_line(stats),
    ]
    if stats.get("running") is False:
        # The file's last write came at exit (or from a loop that ended).
        lines.append("  Loop stopped at %s (not running)" % _wall(stats["posix_time_ms"]))
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
        lines += _history_lines(record)
    return "\n".join(lines) + "\n"
