# SPDX-License-Identifier: GPL-2.0-only
"""`gdoi d3p enforce|stamp` and `gdoi show gm replay`.

enforce: the receiving side.  A C loop per NFQUEUE queue checks the IP-D3P
timestamp of each queued packet against the window (DECISIONS.md §3) and
drops (or, with --action count, only counts) the stale ones; --strip hands
accepted packets to the stack without their D3P header.
stamp: the sending side (OUTPUT hook): inserts a D3P header carrying the
current POSIX time in ms.  A stamped packet is 12 octets longer, and the
OUTPUT hook runs before the kernel fragments (ip_finish_output): a stamped
packet that no longer fits the MTU is fragmented only if its DF bit is clear,
and then reassembled by the receiver before its INPUT hook, where enforce sees
it whole.  With DF set -- Linux sets it by default (path MTU discovery, e.g.
for UDP sockets) -- it is dropped instead and the sender's socket gets
EMSGSIZE.  So lower the MTU of the sender's route or interface by 12 octets
(`ip route ... mtu`), or send without DF.  Enforce in INPUT, not
PREROUTING/FORWARD: fragments there are malformed to it (only the first one
carries the D3P header).

stamp --install-rule needs --match naming the group's traffic (e.g.
"-p udp -d 239.1.1.1 --dport 848"): every packet the rule matches is stamped,
so a default such as all UDP would stamp DNS, NTP and every other local
datagram, which their receivers cannot read.

If a loop dies (verdicts the kernel will not take), the command exits 1 and leaves
the rule it added in place, so matching traffic is dropped rather than passed
unchecked (fail closed; with --queue-bypass the rule goes as usual).

--stats and --window-file are checked before anything is bound (a missing
directory, a directory given as the file, a bad window file: exit 2).  While
running, a stats file that cannot be written is a warning (enforcement goes
on); if the last write at exit fails too, the exit status is 1.  A window file
that goes away or turns bad while running is a warning; the window stays.

Both end cleanly on SIGTERM/SIGINT: the iptables rule (if they added it) goes
first, so no new packet waits on a queue about to close, then pending verdicts
are sent and the queue is unbound, then the stats file is written a last time.
"""
import argparse
import os
import shlex
import signal
import sys
import threading
import time

from scapy_gdoi import _consts

#: How often the main thread wakes up to look at signals, loop health and the
#: window file.
_TICK = 0.2


def register(commands, show_commands):
    d3p = commands.add_parser("d3p", help="IP-D3P inline enforcement (NFQUEUE)")
    d3p_commands = d3p.add_subparsers(dest="d3p_command", metavar="ACTION")
    d3p_commands.required = True
    _add_enforce(d3p_commands)
    _add_stamp(d3p_commands)

    gm = show_commands.add_parser("gm", help="group member reports")
    gm_commands = gm.add_subparsers(dest="gm_command", metavar="WHAT")
    gm_commands.required = True
    replay = gm_commands.add_parser(
        "replay", help="time-based anti-replay (IP-D3P) counters, like "
                       "`show crypto gkm gm replay`")
    replay.add_argument("--stats", required=True, metavar="FILE",
                        help="stats file written by `gdoi d3p enforce --stats`")
    replay.set_defaults(func=show_replay)


def _positive_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _common(parser, chain, match):
    parser.add_argument("--queue", type=_positive_int, required=True, metavar="N",
                        help="NFQUEUE number 0-65535 (the first one with --queues)")
    parser.add_argument("--queues", type=int, default=1, metavar="K",
                        help="run K queues N..N+K-1, one loop and thread each "
                             "(the rule uses --queue-balance with CPU fan-out)")
    parser.add_argument("--pin", action="store_true",
                        help="pin the loop of queue i to CPU i modulo the CPUs we may use")
    parser.add_argument("--fail-open", action="store_true",
                        help="accept packets instead of dropping them when the queue is full")
    parser.add_argument("--queue-maxlen", type=_positive_int, default=16384, metavar="N",
                        help="packets the kernel queues for us at most (default 16384)")
    parser.add_argument("--rcvbuf", type=_positive_int, default=16 << 20, metavar="BYTES",
                        help="socket receive buffer (default 16 MiB)")
    parser.add_argument("--coalesce-us", type=_positive_int, default=50, metavar="US",
                        help="after a partial batch, let packets gather this long before "
                             "receiving again: fewer wake-ups per packet (default 50, 0: off)")
    parser.add_argument("--batch", type=int, default=64, metavar="N",
                        help="datagrams taken per recvmmsg() (default 64)")
    parser.add_argument("--copy-range", type=int, default=None, metavar="BYTES",
                        help="octets of each packet copied to the loop (default: the "
                             "headers, or the whole packet when it is rewritten)")
    parser.add_argument("--proto", type=int, default=_consts.D3P_IP_PROTO, metavar="P",
                        help="IP protocol number of D3P (default %d)" % _consts.D3P_IP_PROTO)
    parser.add_argument("--stats", metavar="FILE",
                        help="write counters and error history as JSON here (replaced "
                             "atomically; its directory must exist and be writable); "
                             "read it with `gdoi show gm replay --stats FILE`")
    parser.add_argument("--stats-interval", type=float, default=1.0, metavar="SEC",
                        help="with --stats: rewrite the file every SEC seconds while "
                             "running, and once more at exit (default: 1)")
    parser.add_argument("--duration", type=float, default=None, metavar="SEC",
                        help="stop after SEC seconds (default: run until a signal)")
    parser.add_argument("--install-rule", action="store_true",
                        help="add the iptables NFQUEUE rule and remove it at exit (a loop "
                             "that dies leaves it: fail closed)")
    parser.add_argument("--chain", default=chain,
                        help="chain for --install-rule (default: %s)" % chain)
    parser.add_argument("--match", default=None, metavar="ARGS",
                        help="iptables match for --install-rule (%s)"
                             % ("default %r" % match if match else "required"))
    parser.add_argument("--ipv6", action="store_true",
                        help="with --install-rule: add the same rule with ip6tables too")
    parser.add_argument("--queue-bypass", action="store_true",
                        help="with --install-rule: accept, not drop, while no loop is bound")
    parser.add_argument("--group", default="",
                        help="group name shown in the report (default: the queue numbers)")


_ENFORCE_DESCRIPTION = """\
Check the IP-D3P timestamp of each queued packet against the window and drop
(or with --action count, only count) the stale and malformed ones.

What gets checked: with --install-rule the default rule queues only packets of
IP protocol %(proto)d (D3P; --proto), so traffic without a D3P header never
reaches the check and passes unchecked.  Use --match to queue more (e.g.
"-d 239.1.1.1"): then a queued packet without a D3P header counts as malformed.

Without --strip, accepted packets keep their D3P header (protocol %(proto)d):
unless something else consumes them (e.g. a program reading a raw socket of
that protocol), the host's stack answers them with ICMP "protocol
unreachable".  With --strip the header goes and the stack sees the original
packet.
""" % {"proto": _consts.D3P_IP_PROTO}


def _add_enforce(d3p_commands):
    p = d3p_commands.add_parser("enforce", help="check D3P timestamps of queued packets",
                                description=_ENFORCE_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    window = p.add_mutually_exclusive_group(required=True)
    window.add_argument("--window-ms", type=int, metavar="W",
                        help="window in milliseconds (%d-%d); the starting window when "
                             "--window-file is given" % _consts.D3P_WINDOW_MSEC_RANGE)
    window.add_argument("--window-sec", type=int, metavar="S",
                        help="window in seconds (%d-%d); the starting window when "
                             "--window-file is given" % _consts.D3P_WINDOW_SEC_RANGE)
    p.add_argument("--window-file", metavar="FILE",
                   help="read the window from FILE at start and again whenever it changes, "
                        "while running: %s.  Once read, the file wins over --window-ms/"
                        "--window-sec, which are still required as the starting window "
                        "(used while FILE does not exist yet: a warning says so).  A bad "
                        "FILE at start is an error (exit 2); later, a bad or deleted FILE "
                        "is a warning and the current window stays" % WINDOW_FILE_FORMS)
    p.add_argument("--action", choices=("drop", "count"), default="drop",
                   help="what to do with stale or malformed packets (default drop); "
                        "a queue message the loop cannot parse is always dropped")
    p.add_argument("--strip", action="store_true",
                   help="remove the D3P header of accepted packets (without it they keep "
                        "the header, protocol %d: see above)" % _consts.D3P_IP_PROTO)
    p.add_argument("--gso", action="store_true",
                   help="take GSO packets unsegmented (NFQA_CFG_F_GSO)")
    p.add_argument("--no-verify", action="store_true",
                   help="accept everything without looking (benchmark baseline)")
    _common(p, "INPUT", "-p PROTO")
    p.set_defaults(func=enforce)


def _add_stamp(d3p_commands):
    p = d3p_commands.add_parser("stamp", help="insert D3P headers into queued packets")
    _common(p, "OUTPUT", None)
    p.set_defaults(func=stamp)


#: What a window file may hold, with the ranges (seed document: `client d3p
#: window`; a bare number of ms may use either range).
WINDOW_FILE_FORMS = ("'msec N' (N %d-%d), 'sec N' (N %d-%d) or a number of ms (%d-%d)"
                     % (_consts.D3P_WINDOW_MSEC_RANGE + _consts.D3P_WINDOW_SEC_RANGE
                        + (min(_consts.D3P_WINDOW_MSEC_RANGE[0],
                               _consts.D3P_WINDOW_SEC_RANGE[0] * 1000),
                           max(_consts.D3P_WINDOW_MSEC_RANGE[1],
                               _consts.D3P_WINDOW_SEC_RANGE[1] * 1000))))


def parse_window_text(text):
    """Window from a window file: 'msec 500', 'sec 5' or a bare number of ms.

    ValueError names the accepted forms and ranges.
    """
    nfq = _load_nfq()
    words = text.split()
    if len(words) == 2 and words[0] in ("sec", "msec"):
        unit, number = words
    elif len(words) == 1:
        unit, number = "ms", words[0]
    else:
        unit, number = None, None
    try:
        value = None if number is None else int(number)
    except ValueError:
        value = None
    if value is None:
        raise ValueError("%r is not a window; accepted: %s"
                         % (" ".join(words)[:40], WINDOW_FILE_FORMS))
    try:
        if unit == "sec":
            return nfq.window_ms_from(sec=value)
        if unit == "msec":
            return nfq.window_ms_from(msec=value)
        return nfq.check_window_ms(value)
    except ValueError as exc:  # out of range
        raise ValueError("%s; accepted: %s" % (exc, WINDOW_FILE_FORMS)) from None


def _window_ms(args):
    window_ms_from = _load_nfq().window_ms_from
    if args.window_sec is not None:
        return window_ms_from(sec=args.window_sec)
    return window_ms_from(msec=args.window_ms)


def _load_nfq():
    """d3p_fast.nfq needs the compiled extension; say so plainly if it is missing."""
    try:
        from d3p_fast import nfq
    except ImportError as exc:
        raise SystemExit("gdoi d3p: the C extension d3p_fast._d3p_fast is not built (%s); "
                         "reinstall with a C compiler and the kernel headers" % exc)
    return nfq


def _configs(args, mode, window_ms, **extra):
    NfqConfig = _load_nfq().NfqConfig
    if args.queue > 0xffff:
        raise ValueError("--queue %d outside 0-65535" % args.queue)
    if args.queues < 1:
        raise ValueError("--queues %d: must be at least 1" % args.queues)
    if args.queue + args.queues - 1 > 0xffff:
        raise ValueError("--queue %d --queues %d would reach queue %d, past 65535"
                         % (args.queue, args.queues, args.queue + args.queues - 1))
    return [NfqConfig(queue=args.queue + i, mode=mode, window_ms=window_ms,
                      fail_open=args.fail_open, queue_maxlen=args.queue_maxlen,
                      rcvbuf=args.rcvbuf, batch=args.batch, copy_range=args.copy_range,
                      coalesce_us=args.coalesce_us,
                      d3p_proto=args.proto, **extra).validate()
            for i in range(args.queues)]


def check_output_path(option, path):
    """Refuse, before anything is bound, a file we could not write later:
    a directory, or a path whose directory is missing or not writable
    (write_stats creates a temporary file beside it).  ValueError."""
    if os.path.isdir(path):
        raise ValueError("%s %s is a directory; give a file name" % (option, path))
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError("%s %s: directory %s does not exist" % (option, path, parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError("%s %s: directory %s is not writable" % (option, path, parent))


def enforce(args):
    try:
        if args.stats:
            check_output_path("--stats", args.stats)
        window_ms = _window_ms(args)
        window_file = None
        if args.window_file:
            window_file = _WindowFile(args.window_file)
            window_ms = window_file.first_read(window_ms)
        mode = "pass" if args.no_verify else "enforce"
        configs = _configs(args, mode, window_ms, action=args.action, strip=args.strip,
                           gso=args.gso)
    except (TypeError, ValueError) as exc:
        print("gdoi d3p enforce: %s" % exc, file=sys.stderr)
        return 2
    return _serve(args, configs, "enforce", window_file)


def stamp(args):
    try:
        if args.stats:
            check_output_path("--stats", args.stats)
        configs = _configs(args, "stamp", 1000)
    except (TypeError, ValueError) as exc:
        print("gdoi d3p stamp: %s" % exc, file=sys.stderr)
        return 2
    return _serve(args, configs, "stamp")


def _warn(text):
    print("gdoi d3p enforce: %s" % text, file=sys.stderr, flush=True)


class _WindowFile:
    """Applies the window in a file each time the file changes.

    At start (first_read) a bad file is an error; while running, a bad or
    deleted file is a warning (once per change) and the current window stays.
    """

    def __init__(self, path):
        self.path = path
        self.seen = None      # (mtime, size, inode) of the content last read
        self.missing = False  # warned that the file is gone

    def first_read(self, start_window_ms):
        """The window to start with: the file's (ValueError if the file is
        bad), or *start_window_ms* while it does not exist (with a warning)."""
        if os.path.isdir(self.path):
            raise ValueError("--window-file %s is a directory" % self.path)
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise ValueError("--window-file %s: directory %s does not exist"
                             % (self.path, parent))
        try:
            window_ms = self._read()
        except FileNotFoundError:
            self.missing = True
            _warn("window file %s does not exist yet; starting with %d ms until it does"
                  % (self.path, start_window_ms))
            return start_window_ms
        except OSError as exc:
            raise ValueError("--window-file %s: %s" % (self.path, exc.strerror or exc)) from None
        return window_ms

    def _read(self):
        st = os.stat(self.path)
        self.seen = (st.st_mtime_ns, st.st_size, st.st_ino)
        with open(self.path, errors="replace") as f:  # bytes: "not a window"
            text = f.read()
        try:
            return parse_window_text(text)
        except ValueError as exc:
            raise ValueError("window file %s: %s" % (self.path, exc)) from None

    def poll(self, group):
        """Apply the file's window if it changed since the last look."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if not self.missing:
                self.missing = True
                _warn("window file %s was removed; keeping the window at %d ms"
                      % (self.path, group.loops[0].config.window_ms))
            return
        except OSError as exc:  # e.g. a directory on the way lost its x bit
            if self.seen != str(exc):
                self.seen = str(exc)  # warn once per distinct failure
                _warn("window file %s unreadable (%s); window stays %d ms"
                      % (self.path, exc, group.loops[0].config.window_ms))
            return
        if (st.st_mtime_ns, st.st_size, st.st_ino) == self.seen:
            return
        self.missing = False
        try:
            window_ms = self._read()
        except OSError as exc:
            _warn("window file %s unreadable (%s); window stays %d ms"
                  % (self.path, exc, group.loops[0].config.window_ms))
            return
        except ValueError as exc:
            _warn("%s; window stays %d ms" % (exc, group.loops[0].config.window_ms))
            return
        group.set_window(window_ms)
        _warn("window now %d ms (from %s)" % (window_ms, self.path))


def default_match(args, what):
    """The iptables match of --install-rule: --match, or D3P packets (enforce).
    stamp has no default (ValueError): see the module docstring."""
    if args.match is not None:
        return args.match
    if what == "stamp":
        if args.install_rule:
            raise ValueError("--install-rule needs --match naming the traffic to stamp "
                             "(e.g. \"-p udp -d 239.1.1.1\"): every packet it matches "
                             "gets a D3P header")
        return ""
    return "-p %d" % args.proto


class _StatsWriter:
    """Writes the --stats file; a failed write is one line on stderr, not a
    traceback.  While running, a failure is a warning once per streak of
    failures (enforcement goes on); write() says whether it worked."""

    def __init__(self, path, what):
        self.path = path
        self.what = what
        self.failing = False

    def write(self, group):
        from d3p_fast.nfq import write_stats
        try:
            write_stats(self.path, group.stats())
        except OSError as exc:
            if not self.failing:
                print("gdoi d3p %s: cannot write --stats %s: %s"
                      % (self.what, self.path, exc.strerror or exc), file=sys.stderr,
                      flush=True)
            self.failing = True
            return False
        if self.failing:
            print("gdoi d3p %s: --stats %s written again" % (self.what, self.path),
                  file=sys.stderr, flush=True)
        self.failing = False
        return True


def _serve(args, configs, what, window_file=None):
    from d3p_fast.nfq import NfqGroup
    from d3p_fast.nfq_rules import NfqueueRule, RuleError

    try:
        match = shlex.split(default_match(args, what))
        if args.stats_interval <= 0:
            raise ValueError("--stats-interval must be positive")
    except ValueError as exc:
        print("gdoi d3p %s: %s" % (what, exc), file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    cpus = sorted(os.sched_getaffinity(0)) if args.pin else None
    group = NfqGroup(configs, group=args.group, cpus=cpus)
    rules = []
    status = 0
    stats = _StatsWriter(args.stats, what) if args.stats else None
    try:
        try:
            group.start()  # bind first: a rule without a bound queue drops
        except OSError as exc:
            print("gdoi d3p %s: %s" % (what, exc), file=sys.stderr)
            return 1
        if args.install_rule:
            tools = ("iptables", "ip6tables") if args.ipv6 else ("iptables",)
            try:
                for tool in tools:
                    rules.append(NfqueueRule(args.chain, [c.queue for c in configs], match,
                                             bypass=args.queue_bypass, iptables=tool).install())
            except RuleError as exc:
                print("gdoi d3p %s: %s" % (what, exc), file=sys.stderr)
                return 1
        if stats is not None and not stats.write(group):
            stats = None  # said once; no second try at exit
            return 1
        print("gdoi d3p %s: queue(s) %s bound" % (what, ",".join(str(c.queue) for c in configs)),
              file=sys.stderr, flush=True)
        status = _wait(args, group, stop, window_file, stats)
    finally:
        if status and not args.queue_bypass:
            # A loop that died (verdicts that cannot be sent) fails closed: the rule
            # stays, so matching packets are dropped while no loop is bound, instead
            # of flowing unchecked once the rule is gone.
            for rule in rules:
                if rule.installed:
                    print("gdoi d3p %s: leaving the rule in place (fail closed); remove it "
                          "with: %s" % (what, rule.command("-D")), file=sys.stderr)
            rules = []
        for rule in reversed(rules):
            try:
                rule.remove()  # first: no new packet for a queue about to close
            except RuleError as exc:
                print("gdoi d3p %s: %s" % (what, exc), file=sys.stderr)
                status = status or 1
        try:
            group.close()
        except OSError as exc:
            print("gdoi d3p %s: %s" % (what, exc), file=sys.stderr)
            status = status or 1
        if stats is not None and all(loop.closed for loop in group.loops):
            stats.failing = False  # the last word: say it even if said before
            if not stats.write(group):
                status = status or 1
        for s, handler in previous.items():
            signal.signal(s, handler)
    return status


def _wait(args, group, stop, window_file, stats):
    """Main thread: write stats, apply window changes, watch the loops."""
    deadline = None if args.duration is None else time.monotonic() + args.duration
    next_stats = time.monotonic() + args.stats_interval
    while not stop.is_set():
        stop.wait(_TICK)
        if window_file is not None:
            window_file.poll(group)
        try:
            if group.join(0):  # a loop ended on its own: a fatal socket error
                print("gdoi d3p: loop ended unexpectedly", file=sys.stderr)
                return 1
        except OSError as exc:
            print("gdoi d3p: %s" % exc, file=sys.stderr)
            return 1
        now = time.monotonic()
        if stats is not None and now >= next_stats:
            stats.write(group)
            next_stats = now + args.stats_interval
        if deadline is not None and now >= deadline:
            break
    return 0


def show_replay(args):
    from d3p_fast.nfq_report import StatsFileError, format_replay_report, load_stats
    try:
        stats = load_stats(args.stats)
    except (OSError, StatsFileError) as exc:
        print("gdoi show gm replay: %s" % exc, file=sys.stderr)
        return 1
    sys.stdout.write(format_replay_report(stats))
    return 0
