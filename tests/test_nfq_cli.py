# SPDX-License-Identifier: GPL-2.0-only
"""The enforcer's Python side without a kernel queue: configuration checks,
window ranges, the stats summary, the IOS-style report, the iptables rule
it would add, and the CLI's answers to bad input.  No root needed."""
import json
import subprocess
import sys

import pytest

from scapy_gdoi import _consts
from scapy_gdoi.cli import main

nfq = pytest.importorskip("d3p_fast.nfq", reason="C extension not built")
from d3p_fast import nfq_report, nfq_rules  # noqa: E402
from d3p_fast.cli import parse_window_text  # noqa: E402


# --- windows -------------------------------------------------------------------

@pytest.mark.parametrize("sec,msec,expected", [(1, None, 1000), (100, None, 100000),
                                               (None, 100, 100), (None, 10000, 10000)])
def test_window_ranges_as_on_the_key_server(sec, msec, expected):
    assert nfq.window_ms_from(sec=sec, msec=msec) == expected


@pytest.mark.parametrize("kwargs", [{"sec": 0}, {"sec": 101}, {"msec": 99}, {"msec": 10001},
                                    {}, {"sec": 1, "msec": 100}])
def test_window_outside_the_ranges_is_refused(kwargs):
    with pytest.raises(ValueError):
        nfq.window_ms_from(**kwargs)


@pytest.mark.parametrize("text,expected", [("msec 500", 500), ("sec 5\n", 5000), ("2500", 2500)])
def test_window_file_forms(text, expected):
    assert parse_window_text(text) == expected


@pytest.mark.parametrize("text", ["", "msec", "sec 0", "minutes 5", "msec 50", "1 2 3", "abc"])
def test_bad_window_file_text(text):
    with pytest.raises(ValueError):
        parse_window_text(text)


# --- configuration -----------------------------------------------------------

@pytest.mark.parametrize("change,error", [
    ({"mode": "inspect"}, ValueError), ({"action": "reject"}, ValueError),
    ({"window_ms": 99}, ValueError), ({"window_ms": 100001}, ValueError),
    ({"window_ms": 1000.0}, TypeError), ({"queue": 65536}, ValueError),
    ({"queue": -1}, ValueError), ({"batch": 0}, ValueError), ({"copy_range": 0}, ValueError),
    ({"copy_range": 0x10000}, ValueError), ({"d3p_proto": 256}, ValueError),
    ({"mode": "stamp", "gso": True}, ValueError), ({"strip": True, "queue": "1"}, TypeError),
    ({"coalesce_us": -1}, ValueError),
])
def test_config_rejects_what_the_loop_cannot_take(change, error):
    with pytest.raises(error):
        nfq.NfqConfig(**change).validate()


def test_copy_range_follows_what_the_loop_does_with_the_packet():
    assert nfq.NfqConfig().effective_copy_range() == nfq.HEADERS_COPY_RANGE
    assert nfq.NfqConfig(strip=True).effective_copy_range() == nfq.FULL_COPY_RANGE
    assert nfq.NfqConfig(mode="stamp").effective_copy_range() == nfq.FULL_COPY_RANGE
    assert nfq.NfqConfig(copy_range=200, strip=True).effective_copy_range() == 200
    # The longest IPv4 header plus the longest D3P header fit the default.
    assert nfq.HEADERS_COPY_RANGE >= 60 + 255 * 4


def test_a_loop_can_be_made_and_freed_without_binding():
    loop = nfq.NfqLoop(nfq.NfqConfig(queue=3, window_ms=700))
    stats = loop.stats()
    assert stats["window_ms"] == 700 and stats["running"] is False
    assert all(v == 0 for v in stats["counters"].values())
    loop.set_window(900)
    assert loop.config.window_ms == 900
    with pytest.raises(ValueError):
        loop.set_window(10)
    loop.close()
    assert loop.stats()["queue"] == 3
    # A closed loop refuses work instead of touching freed memory.
    loop.stop()
    loop.close()
    for call in (loop.open, loop.run, loop.start, lambda: loop.set_window(1000)):
        with pytest.raises(ValueError, match="closed"):
            call()


# --- summary and report ------------------------------------------------------

def queue_stats(queue, history=(), **counters):
    base = {name: 0 for name in nfq.COUNTER_NAMES}
    base.update(counters)
    return {"queue": queue, "mode": "enforce", "window_ms": 5000, "published_ms": 0,
            "running": True, "last_clock": "local", "counters": base,
            "error_history": list(history)}


def record(t, cause="too_old", src="10.0.0.1"):
    return {"time_ms": t, "src": src, "my_time_ms": t, "peer_time_ms": t - 9000,
            "window_ms": 5000, "cause": cause, "clock": "local"}


def test_summary_adds_queues_up_and_names_causes():
    s = nfq.summarize([queue_stats(0, input_packets=10, input_too_old=2, input_malformed=1,
                                   clock_local=10),
                       queue_stats(1, input_packets=5, input_too_new=3, clock_kernel=5)], "GET")
    assert s["input_packets"] == 15 and s["input_error_packets"] == 6
    assert s["input_errors"] == {"too_old": 2, "too_new": 3, "malformed": 1}
    assert s["queues"] == [0, 1] and s["clock"] == "kernel+local" and s["group"] == "GET"


def test_merged_history_keeps_at_most_ten_a_minute():
    a = [record(1000 + i) for i in range(10)]
    b = [record(1500 + i, src="10.0.0.2") for i in range(10)]
    later = [record(70000)]
    s = nfq.summarize([queue_stats(0, a), queue_stats(1, b + later)])
    times = [r["time_ms"] for r in s["error_history"]]
    assert len(times) == 11 and times == sorted(times) and times[-1] == 70000


def test_clock_summary():
    assert nfq.clock_summary({"clock_kernel": 0, "clock_local": 0}) == "none"
    assert nfq.clock_summary({"clock_kernel": 3, "clock_local": 0}) == "kernel"


def test_report_reads_like_the_ios_sample(tmp_path):
    stats = nfq.summarize([queue_stats(0, [record(1393300000000)], input_packets=5,
                                       input_too_old=5, clock_local=5)], "GET")
    stats["posix_time_ms"] = 502764170
    path = tmp_path / "s.json"
    nfq.write_stats(str(path), stats)
    text = nfq_report.format_replay_report(nfq_report.load_stats(str(path)))
    lines = text.splitlines()
    assert lines[0] == "Anti-replay Information For Group GET:"
    assert lines[2] == "  Posix-time-msec           : 502764.17"
    assert lines[3].split() == ["Input", "Packets", ":", "5", "Output", "Packets", ":", "0"]
    assert lines[4].split()[-1] == "0" and lines[4].split()[4] == "5"
    assert "IP-D3P Error History (sampled at 10pak/min):" in lines
    entry = lines.index("IP-D3P Error History (sampled at 10pak/min):") + 1
    assert lines[entry] == ("  03:46:40.000 UTC Tue Feb 25 2014: src=10.0.0.1; "
                            "my_time=1393300000.00; peer_time=1393299991.00;")
    assert lines[entry + 1] == "  win=5; cause=too old"
    # The right-hand colons line up (the IOS sample has one off by three).
    assert lines[3].rindex(":") == lines[4].rindex(":")


def test_report_shows_kernel_drops_when_known():
    stats = nfq.summarize([queue_stats(0)], "G")
    assert "Kernel queue drops" not in nfq_report.format_replay_report(stats)
    stats["kernel_queues"] = {"0": {"queue_total": 0, "queue_dropped": 7, "user_dropped": 2,
                                    "id_sequence": 50},
                              "1": {"queue_total": 0, "queue_dropped": 1, "user_dropped": 0,
                                    "id_sequence": 9}}
    line = [x for x in nfq_report.format_replay_report(stats).splitlines() if "Kernel" in x][0]
    assert line.split() == ["Kernel", "queue", "drops", ":", "8", "Socket", "buffer", "drops",
                            ":", "2"]


def test_kernel_queue_state_without_the_table(monkeypatch, tmp_path):
    monkeypatch.setattr(nfq, "KERNEL_QUEUE_TABLE", str(tmp_path / "missing"))
    assert nfq.kernel_queue_state([0]) == {}
    table = tmp_path / "table"
    table.write_text("    0  12345     3 2 65531     4     5     77 1\n"
                     "    8  12346     0 2 65531     0     0      1 1\n")
    monkeypatch.setattr(nfq, "KERNEL_QUEUE_TABLE", str(table))
    assert nfq.kernel_queue_state([0, 5]) == {0: {"queue_total": 3, "queue_dropped": 4,
                                                  "user_dropped": 5, "id_sequence": 77}}


def test_report_refuses_files_that_are_not_stats(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(nfq_report.StatsFileError):
        nfq_report.load_stats(str(bad))
    bad.write_text(json.dumps({"input_packets": 1}))
    with pytest.raises(nfq_report.StatsFileError, match="lacks"):
        nfq_report.load_stats(str(bad))
    bad.write_text("[1, 2]")
    with pytest.raises(nfq_report.StatsFileError):
        nfq_report.load_stats(str(bad))


# --- iptables rule -------------------------------------------------------------

def test_rule_for_one_queue_and_for_a_balanced_range():
    one = nfq_rules.NfqueueRule("INPUT", [4], ["-p", "253"])
    assert one.target() == ["-j", "NFQUEUE", "--queue-num", "4"]
    many = nfq_rules.NfqueueRule("INPUT", [4, 5, 6], ["-p", "253"], bypass=True)
    assert many.target() == ["-j", "NFQUEUE", "--queue-balance", "4:6", "--queue-cpu-fanout",
                             "--queue-bypass"]


@pytest.mark.parametrize("queues", [[], [1, 3], [2, 1]])
def test_rule_needs_consecutive_queues(queues):
    with pytest.raises(ValueError):
        nfq_rules.NfqueueRule("INPUT", queues, [])


def test_missing_iptables_is_a_clear_error():
    rule = nfq_rules.NfqueueRule("INPUT", [1], [], iptables="no-such-iptables-binary")
    with pytest.raises(nfq_rules.RuleError, match="not found"):
        rule.install()


# --- CLI answers -----------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--window-ms", "50"], ["--window-sec", "101"], ["--window-ms", "500", "--queues", "0"],
    ["--window-ms", "500", "--match", "-p 'udp"], ["--window-ms", "500", "--stats-interval", "0"],
    ["--window-ms", "500", "--batch", "5000"],
])
def test_enforce_refuses_bad_settings_before_touching_the_kernel(args, capsys):
    assert main(["d3p", "enforce", "--queue", "1"] + args) == 2
    assert "gdoi d3p enforce:" in capsys.readouterr().err


def test_enforce_needs_exactly_one_window(capsys):
    with pytest.raises(SystemExit):
        main(["d3p", "enforce", "--queue", "1"])
    with pytest.raises(SystemExit):
        main(["d3p", "enforce", "--queue", "1", "--window-ms", "500", "--window-sec", "1"])


def test_show_replay_missing_file(tmp_path, capsys):
    assert main(["show", "gm", "replay", "--stats", str(tmp_path / "none.json")]) == 1
    assert "No such file" in capsys.readouterr().err


def test_show_replay_prints_the_report(tmp_path):
    path = tmp_path / "s.json"
    nfq.write_stats(str(path), nfq.summarize([queue_stats(0, input_packets=3)], "G1"))
    out = subprocess.run([sys.executable, "-m", "scapy_gdoi.cli", "show", "gm", "replay",
                          "--stats", str(path)], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0
    assert out.stdout.startswith("Anti-replay Information For Group G1:")


def test_history_rate_default_is_the_spec_value():
    assert nfq.NfqConfig().history_per_minute == _consts.D3P_ERROR_HISTORY_PER_MINUTE == 10


def test_stamp_install_rule_needs_an_explicit_match(capsys):
    """A default like `-p udp` would stamp every local datagram (DNS, NTP,
    ...): stamp --install-rule refuses to guess, before binding anything."""
    assert main(["d3p", "stamp", "--queue", "1", "--install-rule"]) == 2
    err = capsys.readouterr().err
    assert "gdoi d3p stamp:" in err and "--match" in err


def test_history_rate_is_bounded_by_the_history_the_loop_keeps():
    # The loop's sliding window counts records in its 32-slot history.
    nfq.NfqConfig(history_per_minute=32).validate()
    with pytest.raises(ValueError, match="history_per_minute"):
        nfq.NfqConfig(history_per_minute=33).validate()


def test_report_and_summary_show_packets_too_big_for_a_verdict():
    stats = nfq.summarize([queue_stats(0, too_big=3), queue_stats(1, too_big=2)], "G")
    assert stats["too_big"] == 5
    line = [x for x in nfq_report.format_replay_report(stats).splitlines() if "Too Big" in x][0]
    assert line.split()[-1] == "5"


# --- stats file ------------------------------------------------------------------

def test_failed_stats_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "dir"
    target.mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(OSError):
        nfq.write_stats(str(target), {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]
    assert list(target.iterdir()) == []
    with pytest.raises(OSError):
        nfq.write_stats(str(tmp_path / "missing" / "s.json"), {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]


def test_unserializable_stats_leave_no_temporary_file(tmp_path):
    with pytest.raises(TypeError):
        nfq.write_stats(str(tmp_path / "s.json"), {"a": object()})
    assert list(tmp_path.iterdir()) == []


# --- output and window files checked before binding --------------------------------

@pytest.mark.parametrize("command", [["enforce", "--window-ms", "500"], ["stamp"]])
def test_stats_path_is_checked_before_binding(command, tmp_path, capsys):
    base = ["d3p"] + command + ["--queue", "1", "--duration", "1", "--stats"]
    assert main(base + [str(tmp_path / "nonexist" / "d.json")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert main(base + [str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing left behind, no *.tmp.PID


def test_stats_directory_must_be_writable(tmp_path, monkeypatch):
    from d3p_fast import cli
    # Root may write anywhere, so ask os.access the way a non-root user would get it.
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)
    with pytest.raises(ValueError, match="not writable"):
        cli.check_output_path("--stats", str(tmp_path / "s.json"))


def test_window_file_content_errors_name_the_file_and_the_forms(tmp_path, capsys):
    window = tmp_path / "window"
    window.write_text("garbage\n")
    assert main(["d3p", "enforce", "--queue", "1", "--window-ms", "500",
                 "--window-file", str(window)]) == 2
    err = capsys.readouterr().err
    assert str(window) in err and "'garbage'" in err and "invalid literal" not in err
    assert "'msec N' (N 100-10000), 'sec N' (N 1-100) or a number of ms (100-100000)" in err
    window.write_text("sec 500")
    assert main(["d3p", "enforce", "--queue", "1", "--window-ms", "500",
                 "--window-file", str(window)]) == 2
    assert "sec 500 outside 1-100" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["nonexist/w", "."])
def test_window_file_path_is_checked_before_binding(where, tmp_path, capsys):
    assert main(["d3p", "enforce", "--queue", "1", "--window-ms", "500",
                 "--window-file", str(tmp_path / where)]) == 2
    assert "--window-file" in capsys.readouterr().err


def test_window_file_missing_at_start_warns_and_keeps_the_starting_window(tmp_path, capsys):
    from d3p_fast.cli import _WindowFile
    window_file = _WindowFile(str(tmp_path / "window"))
    assert window_file.first_read(700) == 700
    err = capsys.readouterr().err
    assert "does not exist yet" in err and "700 ms" in err


def test_window_file_read_at_start_wins_over_the_option(tmp_path):
    from d3p_fast.cli import _WindowFile
    (tmp_path / "window").write_text("sec 3\n")
    assert _WindowFile(str(tmp_path / "window")).first_read(700) == 3000


def test_window_file_changes_and_deletion_while_running(tmp_path, capsys):
    from d3p_fast.cli import _WindowFile
    path = tmp_path / "window"
    path.write_text("msec 800")
    window_file = _WindowFile(str(path))
    group = nfq.NfqGroup([nfq.NfqConfig(queue=5, window_ms=window_file.first_read(500))])
    try:
        path.unlink()
        for _ in range(3):
            window_file.poll(group)
        err = capsys.readouterr().err
        assert err.count("was removed") == 1 and "keeping the window at 800 ms" in err
        assert group.loops[0].config.window_ms == 800
        path.write_text("garbage")
        window_file.poll(group)
        window_file.poll(group)
        err = capsys.readouterr().err
        assert err.count("not a window") == 1 and "window stays 800 ms" in err
        path.write_text("sec 2\n")
        window_file.poll(group)
        assert group.loops[0].config.window_ms == 2000
        assert "window now 2000 ms" in capsys.readouterr().err
    finally:
        group.close()


def test_stats_write_failure_while_running_is_one_line(tmp_path, capsys):
    from d3p_fast.cli import _StatsWriter
    directory = tmp_path / "d"
    directory.mkdir()
    group = nfq.NfqGroup([nfq.NfqConfig(queue=5)])
    try:
        writer = _StatsWriter(str(directory / "s.json"), "enforce")
        assert writer.write(group)
        (directory / "s.json").unlink()
        directory.rmdir()
        assert not writer.write(group) and not writer.write(group)
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "cannot write --stats" in err
        directory.mkdir()
        assert writer.write(group)
        assert "written again" in capsys.readouterr().err
    finally:
        group.close()


# --- option checks and help ----------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--queue", "70000"], "--queue 70000 outside 0-65535"),
    (["--queue", "65535", "--queues", "2"], "would reach queue 65536"),
    (["--queue", "1", "--queues", "0"], "--queues 0: must be at least 1"),
])
def test_queue_numbers_errors_name_the_right_option(args, message, capsys):
    assert main(["d3p", "enforce", "--window-ms", "500"] + args) == 2
    assert message in capsys.readouterr().err


def help_text(capsys, *command):
    with pytest.raises(SystemExit):
        main(list(command) + ["--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_enforce_help_says_what_is_checked_and_what_the_stack_sees(capsys):
    text = help_text(capsys, "d3p", "enforce")
    assert "--stats-interval SEC with --stats: rewrite the file every SEC seconds" in text
    assert "(default: INPUT)" in text
    assert "keep their D3P header (protocol 253)" in text and "protocol unreachable" in text
    assert "queues only packets of IP protocol 253" in text
    assert "queued packet without a D3P header counts as malformed" in text
    assert "the file wins over --window-ms/--window-sec" in text
    assert "still required as the starting window" in text
    assert "(default: OUTPUT)" in help_text(capsys, "d3p", "stamp")


# --- report: what applies to the loop that wrote the file ---------------------------

def report_lines(per_queue, group=""):
    return nfq_report.format_replay_report(nfq.summarize(per_queue, group)).splitlines()


def test_report_of_a_stamper_shows_no_window():
    stamper = queue_stats(0)
    stamper["mode"] = "stamp"
    line = [x for x in report_lines([stamper]) if x.startswith("  Window-size")][0]
    assert "stamper" in line and "msec" not in line
    enforcer = [x for x in report_lines([queue_stats(0)]) if x.startswith("  Window-size")][0]
    assert enforcer.split(":")[1].strip() == "5000 msec, clock"


def test_report_says_when_the_loop_is_not_running():
    stopped = queue_stats(0)
    stopped["running"] = False
    stats = nfq.summarize([stopped], "G")
    stats["posix_time_ms"] = 1393300000000
    lines = nfq_report.format_replay_report(stats).splitlines()
    assert "  Loop stopped at 03:46:40.000 UTC Tue Feb 25 2014 (not running)" in lines
    assert not [x for x in report_lines([queue_stats(0)]) if "stopped" in x]


@pytest.mark.parametrize("queues,title", [([3], "queue 3"), ([3, 4], "queues 3,4")])
def test_report_without_group_names_the_queues(queues, title):
    lines = report_lines([queue_stats(q) for q in queues])
    assert lines[0] == "Anti-replay Information For Group %s:" % title
    assert report_lines([queue_stats(3)], "GET")[0] == "Anti-replay Information For Group GET:"


def test_report_history_gives_the_cause_and_no_fake_peer_time():
    history = [record(1393300000000, "too_new"), record(1393300001000, "malformed")]
    history[1]["peer_time_ms"] = 0  # what the loop records when no timestamp was read
    lines = report_lines([queue_stats(0, history)])
    start = lines.index("IP-D3P Error History (sampled at 10pak/min):") + 1
    assert lines[start].endswith("peer_time=1393299991.00;")
    assert lines[start + 1] == "  win=5; cause=too new"
    assert lines[start + 2].endswith("my_time=1393300001.00; peer_time=-;")
    assert lines[start + 3] == "  win=5; cause=malformed"
