# SPDX-License-Identifier: GPL-2.0-only
"""Python face of the C NFQUEUE loop (d3p_fast/csrc/nfq_loop.c).

The C loop receives, checks and answers packets without calling back into
Python; Python configures it, runs it in a thread (cffi releases the GIL for
the whole call), reads its counters while it runs, changes the window on the
fly, and stops it.  One :class:`NfqLoop` serves one queue; :class:`NfqGroup`
runs one loop per queue for `--queue-balance` style fan-out across cores.

Errors from the kernel come back as :class:`OSError` with the errno (EPERM
without CAP_NET_ADMIN, EBUSY when another process holds the queue, ...).

Counters follow `show crypto gkm gm replay` (input / output packets, input
error packets by cause, output error packets, a sampled error history); the
window rule and the history rate are DECISIONS.md §3.  The check uses the
kernel's receive timestamp (NFQA_TIMESTAMP) when the packet has one and the
local clock otherwise; the stats count which (clock_kernel / clock_local).

What the loop does with packets it cannot judge:

- IP or D3P malformed (not IP, a fragment, D3P header cut short or past the
  IP length, bad timestamp type ...): a judgement like too old/too new, so it
  follows --action: dropped under `drop`, accepted (unchanged) and counted
  under `count`.  Counted in input_malformed and the error history.
- The netlink message itself cannot be parsed (the kernel's framing is
  broken, which a working kernel never does): then we cannot trust the
  packet it carries either, so it is dropped under every --action and
  --fail-open (fail-open is the kernel's answer to a full queue, not to an
  unreadable message).  If its id is readable it gets its own DROP verdict
  (counted in parse_errors and input_malformed).  If not, no verdict can name
  it: the loop counts it (lost_ids) and drops the ids of that gap one by one
  before its next verdict, because a batch verdict for a later id would
  otherwise accept it (gap_drops; a gap over 1024 ids turns batching off,
  batching_off).
- Verdicts that cannot be sent (sendto keeps failing after retries with
  backoff, about 0.25 s): the loop fails closed -- it stops, run() raises
  the OSError, close() unbinds the queue and the kernel drops every packet
  still waiting (verdict_failures = 1).  The CLI exits with status 1.

What traffic sees when the loop is not there (tests/test_nfq_live.py,
test_sigkill_under_load_and_restart, test_full_queue):

- The loop dies (SIGKILL, crash): the kernel notices the socket close and
  destroys the queue; packets queued but not yet answered are dropped.
- While no loop is bound, an iptables `-j NFQUEUE` rule drops every packet
  it matches (fail closed).  With `--queue-bypass` on the rule, they are
  accepted instead, unchecked and still carrying the D3P header: a stripping
  receiver's applications see nothing, raw protocol-253 sockets see them.
- fail-open (NFQA_CFG_F_FAIL_OPEN) belongs to a bound queue: it accepts,
  unchecked, what does not fit while the queue is full; it dies with the
  queue, so it changes nothing after a SIGKILL.
- A restarted loop binds the same queue at once and traffic flows again.
  A rule added with `--install-rule` survives a SIGKILL (no cleanup runs);
  the restarted command finds it and leaves it as found.
- SIGTERM/SIGINT: the rule goes first, pending verdicts are sent, the queue
  is unbound; packets still in the socket at that moment (at most a few
  rounds under load) are dropped by the kernel when the queue goes.
"""
import dataclasses
import errno
import ipaddress
import json
import os
import threading
import time
from typing import Dict, List, Optional

from scapy_gdoi import _consts

from d3p_fast._d3p_fast import ffi, lib  # ImportError when not built

try:
    MODES = {"enforce": lib.NFQ_MODE_ENFORCE, "stamp": lib.NFQ_MODE_STAMP,
             "pass": lib.NFQ_MODE_PASS}
    ACTIONS = {"drop": lib.NFQ_ACTION_DROP, "count": lib.NFQ_ACTION_COUNT}
    CAUSES = {lib.D3P_FRESH: "fresh", lib.D3P_TOO_OLD: "too_old", lib.D3P_TOO_NEW: "too_new",
              lib.D3P_MALFORMED: "malformed"}
    CLOCKS = {lib.NFQ_CLOCK_NONE: "none", lib.NFQ_CLOCK_KERNEL: "kernel",
              lib.NFQ_CLOCK_LOCAL: "local"}
    _HISTORY_SLOTS = lib.NFQ_HISTORY_SLOTS
    _counters_type = ffi.typeof("struct nfq_counters")
except (AttributeError, ffi.error) as exc:
    # A module compiled before the NFQUEUE loop existed (or from other headers).
    raise ImportError("d3p_fast._d3p_fast is stale (%s); rebuild it "
                      "(python d3p_fast/_build.py or pip install)" % exc) from exc

#: Copy range when only the headers matter: the longest IPv4 header (60) plus
#: the longest D3P header a Header Length octet can declare (255 * 4).
HEADERS_COPY_RANGE = 60 + 255 * 4
#: Copy range when the packet is rewritten: all of it (the kernel caps the
#: range at 0xffff minus an attribute header).
FULL_COPY_RANGE = 0xffff

COUNTER_NAMES = tuple(name for name, _ in _counters_type.fields)
#: The history rate's window: "at most N entries per minute" (DECISIONS.md §3).
HISTORY_WINDOW_MS = 60000

# Window configuration ranges, as on the key server and member (seed document).
_SEC_LOW, _SEC_HIGH = _consts.D3P_WINDOW_SEC_RANGE
_MSEC_LOW, _MSEC_HIGH = _consts.D3P_WINDOW_MSEC_RANGE
WINDOW_MS_MIN = min(_MSEC_LOW, _SEC_LOW * 1000)
WINDOW_MS_MAX = max(_MSEC_HIGH, _SEC_HIGH * 1000)


def window_ms_from(sec=None, msec=None):
    """Window in ms from `sec` (1-100) or `msec` (100-10000), the IOS ranges.

    Exactly one of the two must be given; ValueError otherwise.
    """
    if (sec is None) == (msec is None):
        raise ValueError("give the window either in seconds or in milliseconds")
    if sec is not None:
        if not _SEC_LOW <= sec <= _SEC_HIGH:
            raise ValueError("window sec %r outside %d-%d" % (sec, _SEC_LOW, _SEC_HIGH))
        return int(sec) * 1000
    if not _MSEC_LOW <= msec <= _MSEC_HIGH:
        raise ValueError("window msec %r outside %d-%d" % (msec, _MSEC_LOW, _MSEC_HIGH))
    return int(msec)


def check_window_ms(window_ms):
    """Reject a window no configuration range allows (100 ms - 100 s)."""
    if not isinstance(window_ms, int) or isinstance(window_ms, bool):
        raise TypeError("window_ms must be an int, not %r" % (window_ms,))
    if not WINDOW_MS_MIN <= window_ms <= WINDOW_MS_MAX:
        raise ValueError("window %r ms outside %d-%d ms" % (window_ms, WINDOW_MS_MIN,
                                                             WINDOW_MS_MAX))
    return window_ms


@dataclasses.dataclass
class NfqConfig:
    """Settings of one queue's loop (see struct nfq_config in nfq_loop.h)."""

    queue: int = 0
    window_ms: int = 1000
    mode: str = "enforce"          # enforce | stamp | pass (verification off)
    action: str = "drop"           # drop | count (accept and count only)
    strip: bool = False
    fail_open: bool = False
    gso: bool = False
    copy_range: Optional[int] = None  # None: headers only, or all when rewriting
    # Room for ~60 ms at 270 k packets/s, so a loop descheduled for a few
    # milliseconds loses nothing; the socket buffer must hold as many.
    queue_maxlen: int = 16384
    rcvbuf: int = 16 << 20
    batch: int = 64
    history_per_minute: int = _consts.D3P_ERROR_HISTORY_PER_MINUTE
    idle_timeout_ms: int = 200
    coalesce_us: int = 50          # interrupt moderation, see nfq_loop.h
    d3p_proto: int = _consts.D3P_IP_PROTO
    report_enobufs: bool = False

    def effective_copy_range(self):
        if self.copy_range is not None:
            return self.copy_range
        rewrites = self.mode == "stamp" or (self.mode == "enforce" and self.strip)
        return FULL_COPY_RANGE if rewrites else HEADERS_COPY_RANGE

    def validate(self):
        """Raise ValueError/TypeError for any setting the loop cannot take."""
        if self.mode not in MODES:
            raise ValueError("mode must be one of %s, not %r" % (sorted(MODES), self.mode))
        if self.action not in ACTIONS:
            raise ValueError("action must be one of %s, not %r" % (sorted(ACTIONS), self.action))
        if self.mode == "enforce":
            check_window_ms(self.window_ms)
        if self.mode == "stamp" and self.gso:
            # A GSO skb keeps CHECKSUM_PARTIAL offsets that the inserted header
            # would shift; without the flag the kernel segments and checksums
            # before queueing (nfqnl_build_packet_message).
            raise ValueError("stamp cannot take GSO packets unsegmented; leave gso off")
        _check_range("queue", self.queue, 0, 0xffff)
        _check_range("copy_range", self.effective_copy_range(), 1, 0xffff)
        _check_range("queue_maxlen", self.queue_maxlen, 0, 0xffffffff)
        _check_range("rcvbuf", self.rcvbuf, 0, 0x7fffffff)
        _check_range("batch", self.batch, 1, 1024)
        # The loop's sliding window counts records in its history ring.
        _check_range("history_per_minute", self.history_per_minute, 0, _HISTORY_SLOTS)
        _check_range("idle_timeout_ms", self.idle_timeout_ms, 1, 60000)
        _check_range("coalesce_us", self.coalesce_us, 0, 100000)
        _check_range("d3p_proto", self.d3p_proto, 0, 255)
        return self


def _check_range(name, value, low, high):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("%s must be an int, not %r" % (name, value))
    if not low <= value <= high:
        raise ValueError("%s %r outside %d-%d" % (name, value, low, high))


def _os_error(code, what):
    return OSError(code, os.strerror(code), what)


class NfqLoop:
    """One queue's C loop: open() binds, run() blocks, stop() ends run().

    ``with NfqLoop(cfg) as loop: loop.start(); ...`` runs it in a thread and
    unbinds on exit.
    """

    def __init__(self, config: NfqConfig):
        self.config = config.validate()
        c = ffi.new("struct nfq_config *")
        c.queue_num = config.queue
        c.mode = MODES[config.mode]
        c.action = ACTIONS[config.action]
        c.strip = config.strip
        c.fail_open = config.fail_open
        c.gso = config.gso
        c.report_enobufs = config.report_enobufs
        c.d3p_proto = config.d3p_proto
        c.copy_range = config.effective_copy_range()
        c.queue_maxlen = config.queue_maxlen
        c.rcvbuf = config.rcvbuf
        c.batch = config.batch
        c.history_per_minute = config.history_per_minute
        c.idle_timeout_ms = config.idle_timeout_ms
        c.coalesce_us = config.coalesce_us
        c.window_ms = config.window_ms
        loop = lib.nfq_loop_new(c)
        if loop == ffi.NULL:
            raise _os_error(ffi.errno, "nfq_loop_new")
        self._loop = loop
        self._thread = None
        self._error = None
        self._opened = False

    # -- lifecycle ---------------------------------------------------------
    def _live(self):
        if self._loop is None:
            raise ValueError("NFQUEUE %d loop is closed" % self.config.queue)
        return self._loop

    def open(self):
        """Create the socket and bind the queue (OSError on failure)."""
        rc = lib.nfq_loop_open(self._live())
        if rc == -errno.EPERM:
            # The kernel answers EPERM both without CAP_NET_ADMIN and when
            # another socket owns the queue (nfqnl_recv_config).
            raise _os_error(errno.EPERM, "NFQUEUE %d (bound by another process, or "
                                         "CAP_NET_ADMIN missing)" % self.config.queue)
        if rc:
            raise _os_error(-rc, "NFQUEUE %d" % self.config.queue)
        self._opened = True
        return self

    def run(self):
        """Process packets until stop(); the GIL is free meanwhile."""
        rc = lib.nfq_loop_run(self._live())
        if rc:
            what = "NFQUEUE %d loop" % self.config.queue
            if self.stats()["counters"]["verdict_failures"]:
                what += (": verdicts could not be sent; failing closed (closing unbinds "
                         "the queue, the kernel drops the packets still waiting)")
            raise _os_error(-rc, what)

    def start(self, cpu=None):
        """Run in a daemon thread, pinned to *cpu* when given."""
        self._live()

        def target():
            try:
                if cpu is not None:
                    os.sched_setaffinity(0, {cpu})  # 0 = this thread on Linux
                self.run()
            except BaseException as exc:  # reported by join()
                self._error = exc
        self._thread = threading.Thread(target=target, name="nfq-%d" % self.config.queue,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Ask the loop to end (it notices within idle_timeout_ms); no-op once closed."""
        if self._loop is not None:
            lib.nfq_loop_stop(self._loop)

    def join(self, timeout=None):
        """Wait for the thread; re-raise what ended it.  True when it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return True

    def close(self):
        """Stop, send pending verdicts, unbind the queue and free the loop."""
        if self._loop is None:
            return
        self.stop()
        try:
            self.join()
        finally:
            rc = lib.nfq_loop_close(self._loop)
            self._last_stats = self.stats()
            lib.nfq_loop_free(self._loop)
            self._loop = None
        if rc:
            raise _os_error(-rc, "NFQUEUE %d close" % self.config.queue)

    def __del__(self):
        # A forgotten loop would keep its queue bound until the process ends.
        # A running loop cannot get here: its thread holds a reference.
        if getattr(self, "_loop", None) is not None:
            try:
                self.close()
            except Exception:
                pass

    @property
    def closed(self):
        """True once close() has unbound the queue and freed the loop."""
        return self._loop is None

    def __enter__(self):
        if not self._opened:
            self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    # -- while running -----------------------------------------------------
    def set_window(self, window_ms):
        """Change the window for the packets that follow (thread-safe)."""
        lib.nfq_loop_set_window(self._live(), check_window_ms(window_ms))
        self.config.window_ms = window_ms

    def stats(self) -> Dict:
        """The counters the loop last published, as a dict (thread-safe)."""
        if self._loop is None:
            return self._last_stats
        raw = ffi.new("struct nfq_stats *")
        lib.nfq_loop_read_stats(self._loop, raw)
        return _stats_to_dict(raw, self.config)


def _address(record):
    if record.family == 4:
        return str(ipaddress.IPv4Address(bytes(ffi.buffer(record.src, 4))))
    if record.family == 6:
        return str(ipaddress.IPv6Address(bytes(ffi.buffer(record.src, 16))))
    return None


def _stats_to_dict(raw, config):
    counters = {name: int(getattr(raw.counters, name)) for name in COUNTER_NAMES}
    history = []
    for i in range(raw.history_len):
        r = raw.history[i]
        history.append({
            "time_ms": int(r.time_ms), "src": _address(r), "my_time_ms": int(r.my_time_ms),
            "peer_time_ms": int(r.peer_time_ms), "window_ms": int(r.window_ms),
            "cause": CAUSES.get(r.cause, str(r.cause)), "clock": CLOCKS.get(r.clock, "none"),
        })
    return {"queue": config.queue, "mode": config.mode, "window_ms": int(raw.window_ms),
            "published_ms": int(raw.published_ms), "running": bool(raw.running),
            "last_clock": CLOCKS.get(raw.last_clock, "none"), "counters": counters,
            "error_history": history}


def clock_summary(counters):
    """Which clock timed the checks: kernel, local, kernel+local or none."""
    used = [name for name, key in (("kernel", "clock_kernel"), ("local", "clock_local"))
            if counters.get(key)]
    return "+".join(used) or "none"


def sample_history(records, per_minute, keep):
    """Merge error records (oldest first), keeping at most *per_minute* in any
    60 s (a sliding window, as the C loop does: a record is kept when fewer
    than *per_minute* kept records lie in the 60 s before it), then the
    newest *keep* of them."""
    kept = []
    for record in sorted(records, key=lambda r: r["time_ms"]):
        if per_minute <= 0:
            break
        if len(kept) >= per_minute and \
                record["time_ms"] - kept[-per_minute]["time_ms"] < HISTORY_WINDOW_MS:
            continue
        kept.append(record)
    return kept[-keep:]


def summarize(per_queue: List[Dict], group: str = "", history_per_minute=None):
    """One report for several queues: counters summed, histories merged.

    The top-level keys mirror `show crypto gkm gm replay`.
    """
    if history_per_minute is None:
        history_per_minute = _consts.D3P_ERROR_HISTORY_PER_MINUTE
    totals = {name: sum(q["counters"][name] for q in per_queue) for name in COUNTER_NAMES}
    errors = {"too_old": totals["input_too_old"], "too_new": totals["input_too_new"],
              "malformed": totals["input_malformed"]}
    # Rewritten packets (stripped or stamped) too big for a verdict message:
    # dropped, whatever the window said.
    history = sample_history([r for q in per_queue for r in q["error_history"]],
                             history_per_minute, _HISTORY_SLOTS)
    return {
        "format": "scapy-gdoi-d3p-replay-1",
        "group": group,
        "posix_time_ms": int(time.time() * 1000),
        "mode": per_queue[0]["mode"] if per_queue else "",
        "queues": [q["queue"] for q in per_queue],
        "window_ms": per_queue[0]["window_ms"] if per_queue else 0,
        "running": any(q["running"] for q in per_queue),
        "clock": clock_summary(totals),
        "input_packets": totals["input_packets"],
        "input_error_packets": sum(errors.values()),
        "input_errors": errors,
        "output_packets": totals["output_packets"],
        "output_error_packets": totals["output_errors"],
        "too_big": totals["too_big"],
        "verdict_failures": totals["verdict_failures"],
        "history_per_minute": history_per_minute,
        "error_history": history,
        "counters": totals,
        "per_queue": per_queue,
    }


#: nfnetlink_queue's table of bound queues, for the calling thread's network
#: namespace (/proc/net would follow the process's first thread instead).
KERNEL_QUEUE_TABLE = "/proc/thread-self/net/netfilter/nfnetlink_queue"


def kernel_queue_state(queues):
    """The kernel's counters for *queues* bound in this thread's namespace:
    {queue: {"queue_total", "queue_dropped", "user_dropped", "id_sequence"}}.

    queue_total is what waits for a verdict; queue_dropped what the kernel
    dropped because the queue was full (fail-open passes are not counted
    there); user_dropped what did not fit the socket buffer.  Queues not
    bound (or no such file: module not loaded) are left out.
    """
    wanted, found = set(queues), {}
    try:
        with open(KERNEL_QUEUE_TABLE) as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        # number, peer portid, queue_total, copy_mode, copy_range,
        # queue_dropped, user_dropped, id_sequence, 1 (nfqnl_seq_show)
        fields = line.split()
        if len(fields) >= 8 and int(fields[0]) in wanted:
            found[int(fields[0])] = {"queue_total": int(fields[2]),
                                     "queue_dropped": int(fields[5]),
                                     "user_dropped": int(fields[6]),
                                     "id_sequence": int(fields[7])}
    return found


def write_stats(path, stats):
    """Write *stats* as JSON atomically (readers never see half a file).

    On failure (OSError) the temporary file is removed: a failed write leaves
    the previous stats file, or none, and nothing else.
    """
    tmp = "%s.tmp.%d" % (path, os.getpid())
    replaced = False
    try:
        with open(tmp, "w") as f:
            json.dump(stats, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
        replaced = True
    finally:
        if not replaced:
            try:
                os.unlink(tmp)
            except OSError:
                pass  # never created (e.g. no such directory)


class NfqGroup:
    """One loop per queue, each in its own thread, optionally pinned to a CPU
    (queue i on CPU cpus[i % len(cpus)]), reported together."""

    def __init__(self, configs: List[NfqConfig], group="", cpus=None):
        if not configs:
            raise ValueError("no queue to run")
        self.group = group
        self.cpus = list(cpus) if cpus else None
        self.loops = []
        try:
            for config in configs:
                self.loops.append(NfqLoop(config))
        except BaseException:
            self.close()
            raise

    def start(self):
        try:
            for loop in self.loops:
                loop.open()
            for i, loop in enumerate(self.loops):
                loop.start(self.cpus[i % len(self.cpus)] if self.cpus else None)
        except BaseException:
            self.close()
            raise
        return self

    def stop(self):
        for loop in self.loops:
            if not loop.closed:
                loop.stop()

    def join(self, timeout=None):
        """True when every loop has ended; re-raises the first loop error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        done = True
        for loop in self.loops:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done = loop.join(left) and done
        return done

    def set_window(self, window_ms):
        for loop in self.loops:
            loop.set_window(window_ms)

    def stats(self):
        """Summary of every loop (see summarize), with the kernel's own queue
        counters under "kernel_queues" when this thread can see them."""
        summary = summarize([loop.stats() for loop in self.loops], self.group,
                            self.loops[0].config.history_per_minute)
        kernel = kernel_queue_state(summary["queues"])
        summary["kernel_queues"] = {str(q): v for q, v in sorted(kernel.items())}
        return summary

    def close(self):
        self.stop()
        errors = []
        for loop in self.loops:
            try:
                loop.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
