# SPDX-License-Identifier: GPL-2.0-only
"""The NFQUEUE enforcer on real kernel queues (root; CI runs these).

Every test builds its own pair of network namespaces joined by a veth pair
(sender 10.77.0.1, receiver 10.77.0.2), with unique names, and deletes them
at the end, which also deletes any iptables rule left inside; rules are
removed explicitly as well.  All traffic stays inside these namespaces.

Packets are hand-built D3P-over-IP (DECISIONS.md §3): raw IP protocol 253
sockets on the sender, a UDP socket (stripped packets) and a raw protocol-253
socket (packets that reach the stack still carrying D3P) on the receiver.
"""
import contextlib
import ctypes
import errno
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid

import pytest

from scapy_gdoi import _consts

pytestmark = pytest.mark.privileged

nfq = pytest.importorskip("d3p_fast.nfq", reason="C extension not built")

D3P = _consts.D3P_IP_PROTO
SENDER_IP, RECEIVER_IP = "10.77.0.1", "10.77.0.2"
UDP_PORT = 5000
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


# --- namespaces ----------------------------------------------------------------

def run(*cmd, ns=None, check=True):
    full = (["ip", "netns", "exec", ns] if ns else []) + [str(c) for c in cmd]
    done = subprocess.run(full, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(full), done.stderr.strip()))
    return done


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def inside(ns):
    """Run the block with this thread in namespace *ns*: sockets made here
    belong to it (a socket keeps the namespace it was created in)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open("/run/netns/" + ns, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)
        os.close(target)


class Pair:
    def __init__(self):
        tag = uuid.uuid4().hex[:8]
        self.sender, self.receiver = "d3ps" + tag, "d3pr" + tag
        self.rules = []

    def create(self):
        run("ip", "netns", "add", self.sender)
        run("ip", "netns", "add", self.receiver)
        run("ip", "link", "add", "vs", "netns", self.sender, "type", "veth",
            "peer", "name", "vr", "netns", self.receiver)
        for ns, dev, addr in ((self.sender, "vs", SENDER_IP), (self.receiver, "vr", RECEIVER_IP)):
            run("ip", "addr", "add", addr + "/24", "dev", dev, ns=ns)
            run("ip", "link", "set", dev, "up", ns=ns)
            run("ip", "link", "set", "lo", "up", ns=ns)

    def add_rule(self, ns, chain, match, queue, bypass=False):
        spec = [chain] + match + ["-j", "NFQUEUE", "--queue-num", str(queue)]
        if bypass:
            spec.append("--queue-bypass")
        run("iptables", "-w", "-I", *spec, ns=ns)
        self.rules.append((ns, spec))

    def rules_in(self, ns):
        return run("iptables", "-w", "-S", ns=ns).stdout

    def destroy(self):
        for ns, spec in self.rules:
            run("iptables", "-w", "-D", *spec, ns=ns, check=False)
        for ns in (self.sender, self.receiver):
            run("ip", "netns", "del", ns, check=False)


@pytest.fixture
def pair():
    p = Pair()
    try:
        p.create()
        yield p
    finally:
        p.destroy()


# --- packets -----------------------------------------------------------------

def now_ms():
    return int(time.time() * 1000)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return ~total & 0xffff


def udp(payload, sport=4000, dport=UDP_PORT):
    """A UDP datagram with its real checksum (RFC 768 pseudo-header, proto 17):
    after stripping, the receiver's stack verifies it."""
    length = 8 + len(payload)
    pseudo = socket.inet_aton(SENDER_IP) + socket.inet_aton(RECEIVER_IP) + struct.pack("!BBH", 0, 17, length)
    csum = checksum(pseudo + struct.pack("!HHHH", sport, dport, length, 0) + payload) or 0xffff
    return struct.pack("!HHHH", sport, dport, length, csum) + payload


def d3p(timestamp_ms, inner, next_header=17, words=3, ts_type=_consts.D3P_TS_POSIX_TIME_MSEC):
    return struct.pack("!BBBBQ", next_header, words, ts_type, 0, timestamp_ms) + inner


def malformed_payloads(n):
    """n D3P payloads that DECISIONS.md §3 calls malformed, of three kinds."""
    kinds = [lambda i: d3p(now_ms(), udp(b"bad-type-%d" % i), ts_type=9),
             lambda i: d3p(now_ms(), udp(b"bad-len-%d" % i), words=2),
             lambda i: b"\x11\x03\x01\x00" + bytes([i % 256]) * 3]  # header cut at 7 octets
    return [kinds[i % 3](i) for i in range(n)]


def raw_sender(pair):
    with inside(pair.sender):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, D3P)
    s.connect((RECEIVER_IP, 0))
    return s


def udp_receiver(pair, port=UDP_PORT):
    with inside(pair.receiver):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((RECEIVER_IP, port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return s


def raw_receiver(pair):
    """Sees protocol-253 packets the receiver's stack gets with D3P still on."""
    with inside(pair.receiver):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, D3P)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return s


def drain(sock, quiet=0.5, size=70000):
    got = []
    sock.settimeout(quiet)
    try:
        while True:
            got.append(sock.recv(size))
    except socket.timeout:
        pass
    return got


# --- running the enforcer ------------------------------------------------------

def gdoi(ns, *args):
    """Start the gdoi CLI inside namespace *ns*."""
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "scapy_gdoi.cli"] + [str(a) for a in args]
    # cwd "/": `python -m` puts the working directory first on sys.path, and
    # the source tree of a fresh clone has no compiled extension; the
    # installed package has.
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")


def wait_for_file(path, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError("gdoi ended early: %s" % proc.stderr.read())
        if time.monotonic() > deadline:
            raise AssertionError("gdoi did not start in %ss" % timeout)
        time.sleep(0.05)


def terminate(proc, timeout=15):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError("gdoi did not stop on SIGTERM: %s" % err)
    return proc.returncode, err


@contextlib.contextmanager
def running(pair, config):
    """An in-process loop bound inside the receiver (or sender) namespace."""
    ns = pair.sender if config.mode == "stamp" else pair.receiver
    with inside(ns):
        loop = nfq.NfqLoop(config).open()
    try:
        yield loop
    finally:
        loop.close()


def queue_info(pair, queue):
    """The kernel's view of a bound queue (/proc/net/netfilter/nfnetlink_queue:
    number, portid, queue_total, copy_mode, copy_range, queue_dropped,
    user_dropped, id_sequence, 1)."""
    text = run("cat", "/proc/net/netfilter/nfnetlink_queue", ns=pair.receiver).stdout
    for line in text.splitlines():
        f = [int(x) for x in line.split()]
        if f[0] == queue:
            return {"queue_total": f[2], "queue_dropped": f[5], "user_dropped": f[6],
                    "id_sequence": f[7]}
    raise AssertionError("queue %d not bound" % queue)


# --- end to end --------------------------------------------------------------

FRESH, OLD, NEW, BAD = 40, 7, 5, 9


def send_mix(sender, window_ms):
    """Known numbers of fresh, too old, too new and malformed packets."""
    fresh = [b"fresh-%d" % i for i in range(FRESH)]
    for i, payload in enumerate(fresh):
        sender.send(d3p(now_ms(), udp(payload)))
        if i < OLD:
            sender.send(d3p(now_ms() - 5 * window_ms, udp(b"old-%d" % i)))
        if i < NEW:
            sender.send(d3p(now_ms() + 5 * window_ms, udp(b"new-%d" % i)))
    for payload in malformed_payloads(BAD):
        sender.send(payload)
    return fresh


def test_strip_delivers_exactly_the_fresh_packets_and_counts_the_rest(pair, tmp_path):
    stats_path = tmp_path / "stats.json"
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 4)
    receiver = udp_receiver(pair)
    proc = gdoi(pair.receiver, "d3p", "enforce", "--queue", 4, "--window-ms", 1000,
                "--strip", "--stats", stats_path, "--group", "GET")
    try:
        wait_for_file(stats_path, proc)
        fresh = send_mix(raw_sender(pair), 1000)
        got = drain(receiver)
    finally:
        code, err = terminate(proc)
    assert code == 0, err
    assert sorted(got) == sorted(fresh)
    stats = json.loads(stats_path.read_text())
    assert stats["kernel_queues"] == {}  # read after the queue was unbound
    assert stats["input_packets"] == FRESH + OLD + NEW + BAD
    assert stats["input_errors"] == {"too_old": OLD, "too_new": NEW, "malformed": BAD}
    assert stats["input_error_packets"] == OLD + NEW + BAD
    assert stats["counters"]["accepted"] == FRESH and stats["counters"]["modified"] == FRESH
    assert stats["counters"]["kernel_errors"] == 0 and stats["counters"]["send_errors"] == 0
    assert stats["running"] is False
    history = stats["error_history"]
    # Sampled: at most 10 a minute (DECISIONS.md §3), all from the sender.
    assert len(history) == _consts.D3P_ERROR_HISTORY_PER_MINUTE
    assert {r["src"] for r in history} == {SENDER_IP}
    for r in history:
        if r["cause"] == "too_old":
            assert r["my_time_ms"] - r["peer_time_ms"] > r["window_ms"] == 1000
        elif r["cause"] == "too_new":
            assert r["peer_time_ms"] - r["my_time_ms"] > 1000
    # The IOS-style report reads the same file.
    show = subprocess.run([sys.executable, "-m", "scapy_gdoi.cli", "show", "gm", "replay",
                           "--stats", str(stats_path)], capture_output=True, text=True, cwd="/")
    assert show.returncode == 0, show.stderr
    assert "Anti-replay Information For Group GET:" in show.stdout
    assert "Input Error Packets        : %-10d" % (OLD + NEW + BAD) in show.stdout
    assert show.stdout.count("src=%s;" % SENDER_IP) == len(history)


def test_count_action_passes_everything_and_still_counts(pair):
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 5)
    receiver, raw = udp_receiver(pair), raw_receiver(pair)
    config = nfq.NfqConfig(queue=5, window_ms=1000, action="count", strip=True)
    with running(pair, config) as loop:
        loop.start()
        fresh = send_mix(raw_sender(pair), 1000)
        got = drain(receiver)
        seen_raw = drain(raw, quiet=0.2)
        stats = loop.stats()
        waiting = queue_info(pair, 5)["queue_total"]
    # Exactly one verdict per packet: none left waiting in the kernel, and the
    # kernel rejected none of ours (a second verdict for an id is ENOENT).
    assert waiting == 0
    assert stats["counters"]["kernel_errors"] == 0
    stale = [b"old-%d" % i for i in range(OLD)] + [b"new-%d" % i for i in range(NEW)]
    assert sorted(got) == sorted(fresh + stale)
    # Malformed packets cannot be stripped: they pass unchanged.
    assert len([p for p in seen_raw if p[9] == D3P]) == BAD
    c = stats["counters"]
    assert (c["input_packets"], c["input_too_old"], c["input_too_new"], c["input_malformed"]) == \
        (FRESH + OLD + NEW + BAD, OLD, NEW, BAD)
    assert c["accepted"] == FRESH + OLD + NEW + BAD and c["dropped"] == 0
    # The stale packets were stripped in place before the history recorded
    # them: the source must be read before the rewrite moved the header.
    assert stats["error_history"]
    assert {r["src"] for r in stats["error_history"]} == {SENDER_IP}


def test_stamp_and_enforce_carry_plain_udp_end_to_end(pair, tmp_path):
    enforce_stats, stamp_stats = tmp_path / "enforce.json", tmp_path / "stamp.json"
    receiver = udp_receiver(pair)
    enforcer = gdoi(pair.receiver, "d3p", "enforce", "--queue", 6, "--window-sec", 2, "--strip",
                    "--install-rule", "--stats", enforce_stats)
    stamper = gdoi(pair.sender, "d3p", "stamp", "--queue", 7, "--install-rule",
                   "--match", "-p udp --dport %d" % UDP_PORT, "--stats", stamp_stats)
    try:
        wait_for_file(enforce_stats, enforcer)
        wait_for_file(stamp_stats, stamper)
        assert "NFQUEUE" in pair.rules_in(pair.receiver) and "NFQUEUE" in pair.rules_in(pair.sender)
        with inside(pair.sender):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = [b"plain-%d" % i + b"x" * (i * 13) for i in range(59)]
        # A datagram filling the 1500-octet MTU: 12 octets more after stamping,
        # so the kernel fragments it on the way out and reassembles it before
        # the receiver's INPUT hook.
        sent.append(b"m" * 1472)
        for payload in sent:
            s.sendto(payload, (RECEIVER_IP, UDP_PORT))
        got = drain(receiver)
    finally:
        results = [terminate(enforcer), terminate(stamper)]
    assert all(code == 0 for code, _ in results), results
    assert sorted(got) == sorted(sent)
    e, st = json.loads(enforce_stats.read_text()), json.loads(stamp_stats.read_text())
    assert e["input_packets"] == 60 and e["input_error_packets"] == 0
    assert st["output_packets"] == 60 and st["output_error_packets"] == 0
    # --install-rule removed its rules at exit.
    assert "NFQUEUE" not in pair.rules_in(pair.receiver)
    assert "NFQUEUE" not in pair.rules_in(pair.sender)


def test_window_changes_while_running(pair):
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 8)
    receiver = udp_receiver(pair)
    sender = raw_sender(pair)
    with running(pair, nfq.NfqConfig(queue=8, window_ms=1000, strip=True)) as loop:
        loop.start()
        sender.send(d3p(now_ms() - 3000, udp(b"before")))
        assert drain(receiver, quiet=0.3) == []
        loop.set_window(5000)
        sender.send(d3p(now_ms() - 3000, udp(b"after")))
        assert drain(receiver, quiet=0.3) == [b"after"]
        stats = loop.stats()
        with pytest.raises(ValueError):
            loop.set_window(50)  # below every configuration range
    assert stats["window_ms"] == 5000
    assert stats["counters"]["input_too_old"] == 1
    assert stats["error_history"][0]["window_ms"] == 1000


def test_window_file_changes_the_cli_window(pair, tmp_path):
    stats_path, window_file = tmp_path / "s.json", tmp_path / "window"
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 9)
    receiver = udp_receiver(pair)
    proc = gdoi(pair.receiver, "d3p", "enforce", "--queue", 9, "--window-ms", 500, "--strip",
                "--window-file", window_file, "--stats", stats_path, "--stats-interval", 0.1)
    try:
        wait_for_file(stats_path, proc)
        sender = raw_sender(pair)
        sender.send(d3p(now_ms() - 2000, udp(b"one")))
        assert drain(receiver, quiet=0.3) == []
        window_file.write_text("sec 3\n")
        deadline = time.monotonic() + 5
        while json.loads(stats_path.read_text())["window_ms"] != 3000:
            assert time.monotonic() < deadline, "window not applied"
            time.sleep(0.05)
        sender.send(d3p(now_ms() - 2000, udp(b"two")))
        assert drain(receiver, quiet=0.3) == [b"two"]
        running_stats = json.loads(stats_path.read_text())
    finally:
        code, err = terminate(proc)
    assert code == 0, err
    # While running, the stats carry the kernel's view of the bound queue.
    assert running_stats["kernel_queues"]["9"]["queue_total"] == 0
    assert running_stats["kernel_queues"]["9"]["id_sequence"] >= 2


def test_kernel_timestamp_is_used_when_present(pair):
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 10)
    # A socket asking for receive timestamps makes the kernel stamp every
    # received skb (net_enable_timestamp), so NFQA_TIMESTAMP is present.
    with inside(pair.receiver):
        stamped = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    SO_TIMESTAMP = 29  # <asm-generic/socket.h>; not exported by Python's socket module
    stamped.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
    with running(pair, nfq.NfqConfig(queue=10, window_ms=1000)) as loop:
        loop.start()
        sender = raw_sender(pair)
        # The kernel may switch its timestamp key on from a work queue: probe
        # until a packet arrives stamped.
        deadline = time.monotonic() + 5
        while loop.stats()["counters"]["clock_kernel"] == 0:
            assert time.monotonic() < deadline, "the kernel never stamped a packet"
            sender.send(d3p(now_ms(), udp(b"probe")))
            time.sleep(0.05)
        time.sleep(0.1)
        before = loop.stats()["counters"]
        for i in range(5):
            sender.send(d3p(now_ms(), udp(b"t")))
        time.sleep(0.5)
        stats = loop.stats()
    stamped.close()
    c = stats["counters"]
    assert c["clock_kernel"] - before["clock_kernel"] == 5
    assert c["clock_local"] == before["clock_local"]
    assert c["input_too_old"] == c["input_too_new"] == 0  # the kernel time is real time
    assert stats["last_clock"] == "kernel"
    assert "kernel" in nfq.clock_summary(c)


def test_second_loop_on_a_bound_queue_is_refused(pair):
    config = nfq.NfqConfig(queue=11, window_ms=1000)
    with running(pair, config):
        with inside(pair.receiver):
            second = nfq.NfqLoop(nfq.NfqConfig(queue=11, window_ms=1000))
            with pytest.raises(OSError) as info:
                second.open()
        second.close()
    # nfqnl_recv_config answers EPERM when another socket owns the queue.
    assert info.value.errno == errno.EPERM
    assert "another process" in str(info.value)


# --- faults ------------------------------------------------------------------

class SteadySender(threading.Thread):
    """Fresh D3P packets numbered 0, 1, 2, ... every *interval* seconds."""

    def __init__(self, pair, interval=0.002):
        super().__init__(daemon=True)
        self.sock = raw_sender(pair)
        self.interval = interval
        self.sent = []          # (seq, monotonic time)
        self.halt = threading.Event()

    def run(self):
        seq = 0
        while not self.halt.is_set():
            self.sock.send(d3p(now_ms(), udp(b"seq-%d" % seq)))
            self.sent.append((seq, time.monotonic()))
            seq += 1
            time.sleep(self.interval)


def seqs(datagrams):
    out = []
    for d in datagrams:
        text = d[d.index(b"seq-"):] if b"seq-" in d else b""
        if text:
            out.append(int(text[4:]))
    return out


@pytest.mark.parametrize("bypass,fail_open", [(False, False), (True, False), (False, True)],
                         ids=["plain", "queue-bypass", "fail-open"])
def test_sigkill_under_load_and_restart(pair, tmp_path, bypass, fail_open):
    """What happens to traffic while the enforcer is dead (see docs in the report):
    without --queue-bypass nothing passes; with it packets pass unverified and
    unstripped; fail-open changes nothing here (it concerns a full queue of a
    live loop, and dies with the queue).  After a restart traffic flows again."""
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 12, bypass=bypass)
    receiver, raw = udp_receiver(pair), raw_receiver(pair)
    args = ["d3p", "enforce", "--queue", 12, "--window-sec", 5, "--strip"]
    if fail_open:
        args.append("--fail-open")
    first_stats = tmp_path / "first.json"
    first = gdoi(pair.receiver, *args, "--stats", first_stats)
    wait_for_file(first_stats, first)
    sender = SteadySender(pair)
    sender.start()
    try:
        time.sleep(0.5)
        first.kill()  # SIGKILL: no cleanup at all
        first.wait()
        killed_at = time.monotonic()
        time.sleep(0.5)
        restarted_at = time.monotonic()
        second_stats = tmp_path / "second.json"
        second = gdoi(pair.receiver, *args, "--stats", second_stats)
        wait_for_file(second_stats, second)
        bound_at = time.monotonic()
        time.sleep(0.5)
    finally:
        sender.halt.set()
        sender.join()
    code, err = terminate(second) if second.poll() is None else (second.returncode, "")
    assert code == 0, err
    stripped = set(seqs(drain(receiver)))
    unstripped = set(seqs([p[20:] for p in drain(raw, quiet=0.2) if p[9] == D3P]))
    during = {s for s, t in sender.sent if killed_at + 0.05 < t < restarted_at}
    after = {s for s, t in sender.sent if t > bound_at + 0.05}
    before = {s for s, t in sender.sent if t < killed_at - 0.3}
    assert during and after and before
    assert before <= stripped and after <= stripped
    assert not (during & stripped)
    if bypass:
        assert during <= unstripped    # passed, unverified and still carrying D3P
    else:
        assert not (during & unstripped)  # dropped: no program bound to the queue


@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open", "fail-closed"])
def test_full_queue(pair, fail_open):
    """Queue length 8 and a loop that does not read yet: with fail-open the
    packets beyond 8 pass (unverified); without, they are dropped.  The 8
    queued ones get their verdict once the loop runs."""
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 13)
    receiver, raw = udp_receiver(pair), raw_receiver(pair)
    config = nfq.NfqConfig(queue=13, window_ms=5000, strip=True, queue_maxlen=8,
                           fail_open=fail_open)
    with running(pair, config) as loop:
        sender = raw_sender(pair)
        for i in range(30):
            sender.send(d3p(now_ms(), udp(b"seq-%d" % i)))
        bypassed = [p for p in drain(raw, quiet=0.3) if p[9] == D3P]
        loop.start()
        got = drain(receiver)
        stats = loop.stats()
        kernel = queue_info(pair, 13)
        with inside(pair.receiver):
            seen_by_python = nfq.kernel_queue_state([13, 99])
    assert sorted(seqs(got)) == list(range(8))
    assert len(bypassed) == (22 if fail_open else 0)
    assert kernel["queue_total"] == 0
    # The kernel counts the drops of a full queue, not the fail-open passes.
    assert kernel["queue_dropped"] == (0 if fail_open else 22)
    assert list(seen_by_python) == [13]
    assert seen_by_python[13]["queue_dropped"] == kernel["queue_dropped"]
    assert stats["counters"]["input_packets"] == 8


def test_enobufs_does_not_stop_the_loop(pair):
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 14)
    receiver = udp_receiver(pair)
    config = nfq.NfqConfig(queue=14, window_ms=5000, strip=True, rcvbuf=4096,
                           report_enobufs=True, queue_maxlen=10000)
    with running(pair, config) as loop:
        sender = raw_sender(pair)
        for i in range(300):  # overruns the small socket buffer while nobody reads
            sender.send(d3p(now_ms(), udp(b"burst-%d" % i + b"x" * 200)))
        loop.start()
        first = drain(receiver, quiet=0.3)
        # One at a time, each waited for: the tiny buffer cannot overflow again.
        later = []
        receiver.settimeout(5)
        for i in range(20):
            sender.send(d3p(now_ms(), udp(b"later-%d" % i)))
            later.append(receiver.recv(1000))
        stats = loop.stats()
    c = stats["counters"]
    assert c["enobufs"] >= 1
    assert 0 < len(first) < 300
    assert sorted(later) == sorted(b"later-%d" % i for i in range(20))
    assert stats["running"] is True


def test_packet_longer_than_the_copy_range(pair):
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 15)
    raw = raw_receiver(pair)
    big = d3p(now_ms(), udp(b"B" * 1200))
    # Checking needs only the headers: the packet passes whole.
    with running(pair, nfq.NfqConfig(queue=15, window_ms=5000, copy_range=64)) as loop:
        loop.start()
        raw_sender(pair).send(big)
        seen = [p for p in drain(raw, quiet=0.3) if p[9] == D3P]
        stats = loop.stats()
    assert [p[20:] for p in seen] == [big]
    assert stats["counters"]["truncated"] == 1 and stats["counters"]["accepted"] == 1
    # Stripping needs all of it: without, the packet is dropped and counted.
    with running(pair, nfq.NfqConfig(queue=15, window_ms=5000, copy_range=64, strip=True)) as loop:
        loop.start()
        raw_sender(pair).send(d3p(now_ms(), udp(b"B" * 1200)))
        time.sleep(0.3)
        stats = loop.stats()
    assert stats["counters"]["strip_errors"] == 1 and stats["counters"]["dropped"] == 1


def test_gso_send_is_segmented_then_stamped_and_checked(pair):
    """A UDP GSO send (UDP_SEGMENT) on the stamping side: the kernel segments
    it before queueing (stamp keeps NFQA_CFG_F_GSO off), each segment gets its
    D3P header, and the receiver (queue with GSO on) strips each one."""
    UDP_SEGMENT = 103  # <linux/udp.h>
    pair.add_rule(pair.sender, "OUTPUT", ["-p", "udp", "--dport", str(UDP_PORT)], 16)
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 17)
    receiver = udp_receiver(pair)
    with running(pair, nfq.NfqConfig(queue=16, mode="stamp")) as stamper, \
            running(pair, nfq.NfqConfig(queue=17, window_ms=2000, strip=True, gso=True)) as enf:
        stamper.start()
        enf.start()
        with inside(pair.sender):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_UDP, UDP_SEGMENT, 500)
        s.sendto(bytes(range(250)) * 10, (RECEIVER_IP, UDP_PORT))  # 2500 octets, 5 segments
        got = drain(receiver)
        st, en = stamper.stats(), enf.stats()
    assert b"".join(got) == bytes(range(250)) * 10 and len(got) == 5
    assert st["counters"]["output_packets"] == 5 and en["counters"]["input_packets"] == 5


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_million_packets_with_flat_memory(pair, tmp_path):
    stats_path = tmp_path / "m.json"
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 18)
    proc = gdoi(pair.receiver, "d3p", "enforce", "--queue", 18, "--window-sec", 10,
                "--stats", stats_path, "--stats-interval", 0.2)
    try:
        wait_for_file(stats_path, proc)
        pid = proc.pid  # `ip netns exec` execs the command: same process
        sender = raw_sender(pair)
        packet = bytearray(d3p(now_ms(), udp(b"m" * 16)))
        samples = []
        for i in range(1_000_000):
            if i % 1000 == 0:
                struct.pack_into("!Q", packet, 4, now_ms())  # stay fresh
            if i % 100_000 == 0:
                samples.append(vm_rss_kb(pid))
            try:
                sender.send(packet)
            except OSError:  # ENOBUFS on the sender side: try the next one
                pass
        time.sleep(0.5)
        samples.append(vm_rss_kb(pid))
    finally:
        code, err = terminate(proc)
    assert code == 0, err
    stats = json.loads(stats_path.read_text())
    handled = stats["input_packets"]
    # The Python sender is slower than the loop: (almost) all of them arrive.
    assert handled >= 900_000, "only %d packets reached the loop" % handled
    assert stats["input_error_packets"] == 0
    # After the first 100k (buffers touched, Python warmed up) memory stays flat.
    assert max(samples[1:]) - samples[1] < 2048, samples


def bound_queues(pair):
    """Queue numbers bound in the receiver namespace (nfnetlink_queue's /proc file)."""
    text = run("cat", "/proc/net/netfilter/nfnetlink_queue", ns=pair.receiver).stdout
    return sorted(int(line.split()[0]) for line in text.splitlines())


def test_several_queues_fan_out_and_sigint_unbinds(pair, tmp_path):
    """Two queues, one loop each, the rule spreading packets by CPU
    (--queue-balance --queue-cpu-fanout); senders on each CPU feed both.
    SIGINT ends cleanly: rule gone, queues unbound, stats final."""
    stats_path = tmp_path / "q.json"
    receiver = udp_receiver(pair)
    proc = gdoi(pair.receiver, "d3p", "enforce", "--queue", 20, "--queues", 2, "--pin",
                "--window-sec", 5, "--strip", "--install-rule", "--stats", stats_path)
    try:
        wait_for_file(stats_path, proc)
        assert "--queue-balance 20:21" in pair.rules_in(pair.receiver)
        assert bound_queues(pair) == [20, 21]
        cpus = sorted(os.sched_getaffinity(0))[:2]

        def send_from(cpu, count):
            os.sched_setaffinity(0, {cpu})  # this thread: the veth softirq runs here
            sender = raw_sender(pair)
            for i in range(count):
                sender.send(d3p(now_ms(), udp(b"cpu%d-%d" % (cpu, i))))

        threads = [threading.Thread(target=send_from, args=(cpu, 100)) for cpu in cpus]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = drain(receiver)
    finally:
        proc.send_signal(signal.SIGINT)
        code, err = terminate(proc)
    assert code == 0, err
    assert len(got) == len(set(got)) == 100 * len(cpus)
    stats = json.loads(stats_path.read_text())
    per_queue = {q["queue"]: q["counters"]["input_packets"] for q in stats["per_queue"]}
    assert sum(per_queue.values()) == stats["input_packets"] == 100 * len(cpus)
    if len(cpus) == 2:
        assert all(per_queue[q] > 0 for q in (20, 21)), per_queue
    assert "NFQUEUE" not in pair.rules_in(pair.receiver)
    assert bound_queues(pair) == []


def test_sigterm_under_load_answers_every_packet(pair, tmp_path):
    """Stopping while packets stream in: the loop sends its pending verdicts
    and unbinds; the kernel's queue is empty afterwards and nothing the loop
    accepted is lost."""
    stats_path = tmp_path / "t.json"
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 22, bypass=True)
    receiver = udp_receiver(pair)
    proc = gdoi(pair.receiver, "d3p", "enforce", "--queue", 22, "--window-sec", 5, "--strip",
                "--stats", stats_path)
    wait_for_file(stats_path, proc)
    sender = SteadySender(pair, interval=0.0005)
    sender.start()
    try:
        time.sleep(0.7)
        code, err = terminate(proc)
    finally:
        sender.halt.set()
        sender.join()
    assert code == 0, err
    stats = json.loads(stats_path.read_text())
    got = seqs(drain(receiver))
    # Every packet the loop accepted reached the receiver: no verdict was left behind.
    assert len(got) == stats["counters"]["accepted"] > 0
    assert bound_queues(pair) == []


def test_install_rule_adopts_a_rule_left_by_a_killed_run(pair, tmp_path):
    stats_path = tmp_path / "r.json"
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 23)  # as a SIGKILLed run leaves it
    proc = gdoi(pair.receiver, "d3p", "enforce", "--queue", 23, "--window-sec", 5,
                "--install-rule", "--stats", stats_path, "--duration", 1)
    try:
        wait_for_file(stats_path, proc)
        assert pair.rules_in(pair.receiver).count("NFQUEUE") == 1
        proc.wait(timeout=10)  # --duration ends it without a signal
    finally:
        code, err = terminate(proc)
    assert code == 0, err
    assert json.loads(stats_path.read_text())["running"] is False
    assert pair.rules_in(pair.receiver).count("NFQUEUE") == 1


def ipv6_options_header(kind):
    """Ancillary data for one hop-by-hop or destination options header
    (RFC 8200 §4.3/§4.6): 8 octets, a PadN option filling it."""
    level_type = {"hbh": socket.IPV6_HOPOPTS, "dst": socket.IPV6_DSTOPTS}[kind]
    return [(socket.IPPROTO_IPV6, level_type, bytes([0, 0, 1, 4, 0, 0, 0, 0]))]


@pytest.mark.parametrize("action", ["drop", "count"])
def test_ipv6_strip_end_to_end(pair, action):
    """D3P directly after the IPv6 header (next header 253), or after a
    hop-by-hop or destination options header (ip6tables -p 253 queues those
    too), stripped to the inner UDP datagram, whose checksum (mandatory in
    IPv6) must still hold.  Under count the stale one passes stripped, and
    the history still names its source."""
    s6, r6 = "fd00:d3::1", "fd00:d3::2"
    for ns, dev, addr in ((pair.sender, "vs", s6), (pair.receiver, "vr", r6)):
        run("ip", "-6", "addr", "add", addr + "/64", "dev", dev, "nodad", ns=ns)
    spec = ["INPUT", "-p", str(D3P), "-j", "NFQUEUE", "--queue-num", "24"]
    run("ip6tables", "-w", "-I", *spec, ns=pair.receiver)
    try:
        with inside(pair.receiver):
            receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            receiver.bind((r6, UDP_PORT))
        with inside(pair.sender):
            sender = socket.socket(socket.AF_INET6, socket.SOCK_RAW, D3P)

        def udp6(payload):
            length = 8 + len(payload)
            pseudo = (socket.inet_pton(socket.AF_INET6, s6) + socket.inet_pton(socket.AF_INET6, r6)
                      + struct.pack("!IxxxB", length, 17))
            csum = checksum(pseudo + struct.pack("!HHHH", 4000, UDP_PORT, length, 0) + payload)
            return struct.pack("!HHHH", 4000, UDP_PORT, length, csum or 0xffff) + payload

        config = nfq.NfqConfig(queue=24, window_ms=1000, strip=True, action=action)
        with running(pair, config) as loop:
            loop.start()
            deadline = time.monotonic() + 5
            while True:  # the neighbour entry may need a moment
                try:
                    sender.sendto(d3p(now_ms(), udp6(b"six")), (r6, 0))
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            sender.sendto(d3p(now_ms() - 9000, udp6(b"stale")), (r6, 0))
            sender.sendmsg([d3p(now_ms(), udp6(b"six-hbh"))], ipv6_options_header("hbh"),
                           0, (r6, 0))
            sender.sendmsg([d3p(now_ms(), udp6(b"six-dst"))], ipv6_options_header("dst"),
                           0, (r6, 0))
            sender.sendmsg([d3p(now_ms() - 9000, udp6(b"stale-hbh"))],
                           ipv6_options_header("hbh"), 0, (r6, 0))
            got = drain(receiver)
            stats = loop.stats()
    finally:
        run("ip6tables", "-w", "-D", *spec, ns=pair.receiver, check=False)
    fresh = [b"six", b"six-hbh", b"six-dst"]
    assert sorted(got) == sorted(fresh + ([b"stale", b"stale-hbh"] if action == "count" else []))
    c = stats["counters"]
    assert (c["input_too_old"], c["input_malformed"]) == (2, 0)
    assert [r["src"] for r in stats["error_history"]] == [s6, s6]


def test_stamp_counts_and_drops_what_it_cannot_stamp(pair):
    """A packet only partly copied to the stamper cannot get its header
    (the verdict replaces the whole packet): it is dropped, not sent without
    D3P, and counted as an output error."""
    pair.add_rule(pair.sender, "OUTPUT", ["-p", "udp", "--dport", str(UDP_PORT)], 25)
    receiver, raw = udp_receiver(pair), raw_receiver(pair)
    with running(pair, nfq.NfqConfig(queue=25, mode="stamp", copy_range=100)) as stamper:
        stamper.start()
        with inside(pair.sender):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"s" * 20, (RECEIVER_IP, UDP_PORT))    # fits in 100 octets
        s.sendto(b"L" * 500, (RECEIVER_IP, UDP_PORT))   # does not
        time.sleep(0.3)
        stats = stamper.stats()
    seen = [p for p in drain(raw, quiet=0.3) if p[9] == D3P]
    assert drain(receiver, quiet=0.1) == []  # nobody strips here: UDP sees nothing
    assert len(seen) == 1 and seen[0][20 + 12 + 8:] == b"s" * 20
    c = stats["counters"]
    assert (c["output_packets"], c["output_errors"], c["truncated"]) == (1, 1, 1)


def test_stamp_too_big_for_a_verdict_is_dropped_and_counted_as_such(pair):
    """A verdict carries the rewritten packet in one netlink attribute of at
    most 0xffff - 4 octets.  A UDP datagram whose stamped form would be one
    octet longer is dropped -- and counted as dropped and too big, not as
    stamped and accepted; one octet shorter is stamped and arrives."""
    pair.add_rule(pair.sender, "OUTPUT", ["-p", "udp", "--dport", str(UDP_PORT)], 27)
    raw = raw_receiver(pair)
    limit = 0xffff - 4
    with running(pair, nfq.NfqConfig(queue=27, mode="stamp")) as stamper:
        stamper.start()
        with inside(pair.sender):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        # IPv4 20 + UDP 8 + payload, plus 12 once stamped.
        s.sendto(b"F" * (limit - 12 - 28), (RECEIVER_IP, UDP_PORT))
        s.sendto(b"B" * (limit - 12 - 28 + 1), (RECEIVER_IP, UDP_PORT))
        time.sleep(0.5)
        stats = stamper.stats()
    seen = [p for p in drain(raw, quiet=0.5) if p[9] == D3P]
    assert [len(p) for p in seen] == [limit]
    c = stats["counters"]
    assert (c["output_packets"], c["output_errors"], c["too_big"]) == (1, 1, 1)
    assert (c["accepted"], c["dropped"], c["modified"]) == (1, 1, 1)


def test_install_rule_for_ipv6_too(pair, tmp_path):
    stats_path = tmp_path / "six.json"
    proc = gdoi(pair.receiver, "d3p", "enforce", "--queue", 26, "--window-sec", 5,
                "--install-rule", "--ipv6", "--stats", stats_path)
    try:
        wait_for_file(stats_path, proc)
        v6 = run("ip6tables", "-w", "-S", "INPUT", ns=pair.receiver).stdout
        assert "-p %d" % D3P in v6 and "--queue-num 26" in v6
        assert "--queue-num 26" in pair.rules_in(pair.receiver)
    finally:
        code, err = terminate(proc)
    assert code == 0, err
    assert "NFQUEUE" not in run("ip6tables", "-w", "-S", ns=pair.receiver).stdout
    assert "NFQUEUE" not in pair.rules_in(pair.receiver)


@pytest.mark.parametrize("gso", [True, False], ids=["gso-flag", "no-gso-flag"])
def test_enforcer_takes_gso_packets_whole_with_the_gso_flag(pair, gso):
    """A UDP GSO send queued on OUTPUT: with NFQA_CFG_F_GSO the loop gets one
    super-packet (flagged GSO in NFQA_SKB_INFO) and its one verdict covers all
    segments; without the flag the kernel segments first.  Not D3P, so
    malformed; --action count lets it through either way."""
    UDP_SEGMENT = 103  # <linux/udp.h>
    pair.add_rule(pair.sender, "OUTPUT", ["-p", "udp", "--dport", str(UDP_PORT)], 27)
    receiver = udp_receiver(pair)
    config = nfq.NfqConfig(queue=27, window_ms=1000, action="count", gso=gso)
    with inside(pair.sender):
        loop = nfq.NfqLoop(config).open()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        loop.start()
        s.setsockopt(socket.IPPROTO_UDP, UDP_SEGMENT, 500)
        s.sendto(bytes(range(250)) * 10, (RECEIVER_IP, UDP_PORT))
        got = drain(receiver)
        c = loop.stats()["counters"]
    finally:
        loop.close()
    assert b"".join(got) == bytes(range(250)) * 10 and len(got) == 5
    if gso:
        assert (c["input_packets"], c["gso_packets"], c["truncated"]) == (1, 1, 1)
    else:
        assert (c["input_packets"], c["gso_packets"]) == (5, 0)
    assert c["input_malformed"] == c["input_packets"] == c["accepted"]


# --- faults: verdicts that cannot be sent, packets that cannot be read ---------

#: LD_PRELOAD shim (compiled per test run) that breaks the loop's socket I/O
#: the way the kernel or memory pressure could, selected by NFQ_SHIM:
#:   first-drop    the first sendto carrying a DROP verdict fails once (ENOMEM)
#:   all-verdicts  every sendto carrying a verdict fails (ENOMEM)
#:   lose-id       a packet message holding "LOSE-ME" gets a broken
#:                 NFQA_PACKET_HDR (nla_len 3): no id can be read
#:   truncate      a datagram holding "LOSE-ME" comes back cut (MSG_TRUNC)
#:   bad-attr      a packet message holding "LOSE-ME" keeps its id but its
#:                 second attribute claims to run past the message
SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char *mode(void) { const char *m = getenv("NFQ_SHIM"); return m ? m : ""; }
static int failed_once;

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
               socklen_t tolen)
{
    static ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    if (!real)
        real = dlsym(RTLD_NEXT, "sendto");
    const uint8_t *p = buf;
    if (to && to->sa_family == AF_NETLINK && len >= 32) {
        uint16_t type;
        memcpy(&type, p + 4, 2);
        int verdict_msg = type == 0x301 || type == 0x303;  /* NFQNL_MSG_VERDICT(_BATCH) */
        /* Any DROP verdict (NFQA_VERDICT_HDR verdict, big endian, at 24) in the buffer. */
        int has_drop = 0;
        for (size_t off = 0; verdict_msg && off + 32 <= len;) {
            uint32_t mlen;
            memcpy(&mlen, p + off, 4);
            if (!memcmp(p + off + 24, "\0\0\0\0", 4))
                has_drop = 1;
            if (mlen < 16)
                break;
            off += (mlen + 3) & ~3u;
        }
        if (verdict_msg && !strcmp(mode(), "all-verdicts")) {
            errno = ENOMEM;
            return -1;
        }
        if (verdict_msg && has_drop && !failed_once && !strcmp(mode(), "first-drop")) {
            failed_once = 1;
            errno = ENOMEM;
            return -1;
        }
    }
    return real(fd, buf, len, flags, to, tolen);
}

int recvmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags, struct timespec *t)
{
    static int (*real)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
    if (!real)
        real = dlsym(RTLD_NEXT, "recvmmsg");
    int got = real(fd, msgs, n, flags, t);
    int lose = !strcmp(mode(), "lose-id"), cut = !strcmp(mode(), "truncate");
    int bad = !strcmp(mode(), "bad-attr");
    for (int i = 0; (lose || cut || bad) && i < got; i++) {
        uint8_t *p = msgs[i].msg_hdr.msg_iov[0].iov_base;
        size_t len = msgs[i].msg_len;
        if (len < 28 || !memmem(p, len, "LOSE-ME", 7))
            continue;
        uint16_t type;
        memcpy(&type, p + 22, 2);          /* first attribute, after nlmsghdr + nfgenmsg */
        if (lose && type == 1) {           /* NFQA_PACKET_HDR */
            uint16_t three = 3;
            memcpy(p + 20, &three, 2);
        } else if (cut) {
            msgs[i].msg_len = 24;
            msgs[i].msg_hdr.msg_flags |= MSG_TRUNC;
        } else if (bad && type == 1) {     /* header attribute 12 octets, then the next */
            uint16_t huge = 0xfff0;
            memcpy(p + 32, &huge, 2);
        }
    }
    return got;
}
"""

#: The loop under the shim, in its own process (LD_PRELOAD acts at exec).
SHIM_RUNNER = r"""
import json, sys
from d3p_fast.nfq import NfqConfig, NfqLoop, kernel_queue_state
queue, action, fail_open = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
loop = NfqLoop(NfqConfig(queue=queue, window_ms=1000, coalesce_us=20000, action=action,
                         fail_open=fail_open)).open()
loop.start()
print("READY", flush=True)
sys.stdin.readline()
error = None
try:
    loop.join(0)
except OSError as exc:
    error = exc.errno
waiting = kernel_queue_state([queue]).get(queue, {}).get("queue_total")
stats = loop.stats()
try:
    loop.close()
except OSError:
    pass
print(json.dumps({"error": error, "waiting": waiting, "counters": stats["counters"],
                  "bound_after_close": queue in kernel_queue_state([queue])}), flush=True)
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    work = tmp_path_factory.mktemp("nfq-shim")
    (work / "shim.c").write_text(SHIM_C)
    (work / "runner.py").write_text(SHIM_RUNNER)
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(work / "shim.so"),
                    str(work / "shim.c"), "-ldl"], check=True)
    return work


@contextlib.contextmanager
def shimmed_loop(pair, shim, mode, queue, action="drop", fail_open=False):
    """The loop in the receiver namespace with the shim in *mode*; yields a
    function that stops it and returns its report."""
    env = dict(os.environ, LD_PRELOAD=str(shim / "shim.so"), NFQ_SHIM=mode)
    proc = subprocess.Popen(["ip", "netns", "exec", pair.receiver, sys.executable,
                             str(shim / "runner.py"), str(queue), action,
                             "1" if fail_open else "0"], env=env, cwd="/",
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()

        def finish():
            out, err = proc.communicate("stop\n", timeout=20)
            assert proc.returncode == 0, err
            return json.loads(out.strip().splitlines()[-1])
        yield finish
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def send_then_burst(sender, alone, burst):
    """The packets of *alone* each in a round of their own (the loop's
    coalescing is 20 ms), then *burst* back to back: one run of accepts, so
    one NFQNL_MSG_VERDICT_BATCH."""
    for timestamp, inner in alone:
        sender.send(d3p(timestamp, udp(inner)))
        time.sleep(0.1)
    for timestamp, inner in burst:
        sender.send(d3p(timestamp, udp(inner)))
    time.sleep(0.1)


def test_failed_verdict_send_is_retried_and_never_swept_by_a_batch(pair, shim):
    """The DROP verdict for a stale packet fails to send once.  A lost buffer
    would let the next run of accepts (NFQNL_MSG_VERDICT_BATCH: every queued
    id up to its own) deliver the stale packet; kept and retried, every
    packet gets exactly its own verdict."""
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 30)
    raw = raw_receiver(pair)
    with shimmed_loop(pair, shim, "first-drop", 30) as finish:
        send_then_burst(raw_sender(pair), [(now_ms() - 60000, b"stale")],
                        [(now_ms(), b"fresh-%d" % i) for i in range(5)])
        seen = [p[20 + 12 + 8:] for p in drain(raw, quiet=0.5) if p[9] == D3P]
        report = finish()
    c = report["counters"]
    assert b"stale" not in seen
    assert sorted(seen) == [b"fresh-%d" % i for i in range(5)]
    assert c["send_errors"] >= 1 and report["error"] is None
    assert (c["input_packets"], c["accepted"], c["dropped"]) == (6, 5, 1)
    assert c["kernel_errors"] == 0 and report["waiting"] == 0


def test_verdicts_that_cannot_be_sent_fail_closed(pair, shim):
    """Every verdict send fails: after its retries the loop gives up, ends
    with the error, and closing unbinds the queue so the kernel drops what
    waits -- nothing passes unjudged."""
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 31)
    raw = raw_receiver(pair)
    with shimmed_loop(pair, shim, "all-verdicts", 31) as finish:
        sender = raw_sender(pair)
        send_then_burst(sender, [(now_ms(), b"fresh-%d" % i) for i in range(3)], [])
        time.sleep(0.5)  # the retries take about 0.25 s
        send_then_burst(sender, [(now_ms(), b"later")], [])
        seen = drain(raw, quiet=0.5)
        report = finish()
    assert report["error"] == errno.ENOMEM
    assert report["counters"]["verdict_failures"] == 1
    assert report["bound_after_close"] is False
    assert [p for p in seen if p[9] == D3P] == []


@pytest.mark.parametrize("mode", ["lose-id", "truncate"])
def test_packet_without_a_readable_id_is_not_swept_by_a_batch(pair, shim, mode):
    """A packet message whose id cannot be read (broken NFQA_PACKET_HDR, or a
    cut datagram) holds a packet no verdict can name; the accepts that follow
    must not pass it through a batch verdict: its id is dropped on its own."""
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 32)
    raw = raw_receiver(pair)
    with shimmed_loop(pair, shim, mode, 32) as finish:
        send_then_burst(raw_sender(pair), [(now_ms(), b"fresh-a"), (now_ms(), b"LOSE-ME")],
                        [(now_ms(), b"fresh-%d" % i) for i in range(4)])
        seen = [p[20 + 12 + 8:] for p in drain(raw, quiet=0.5) if p[9] == D3P]
        report = finish()
    c = report["counters"]
    assert b"LOSE-ME" not in seen
    assert sorted(seen) == sorted([b"fresh-a"] + [b"fresh-%d" % i for i in range(4)])
    assert c["lost_ids"] >= 1 and c["gap_drops"] == 1 and c["batching_off"] == 0
    assert c["accepted"] == 5 and c["kernel_errors"] == 0 and report["waiting"] == 0


def test_unparseable_message_is_dropped_even_under_count_and_fail_open(pair, shim):
    """Policy (nfq.py docstring): an IP/D3P packet that is malformed follows
    --action (count passes it), but a packet whose netlink message cannot be
    parsed is dropped under every --action and --fail-open -- nothing in it
    can be trusted, not even the packet we would accept."""
    pair.add_rule(pair.receiver, "INPUT", ["-p", str(D3P)], 33)
    raw = raw_receiver(pair)
    with shimmed_loop(pair, shim, "bad-attr", 33, action="count", fail_open=True) as finish:
        send_then_burst(raw_sender(pair), [(now_ms(), b"LOSE-ME"), (now_ms() - 60000, b"old")],
                        [(now_ms(), b"fresh-%d" % i) for i in range(3)])
        seen = [p[20 + 12 + 8:] for p in drain(raw, quiet=0.5) if p[9] == D3P]
        report = finish()
    c = report["counters"]
    assert sorted(seen) == sorted([b"old"] + [b"fresh-%d" % i for i in range(3)])
    assert (c["parse_errors"], c["input_malformed"], c["input_too_old"]) == (1, 1, 1)
    assert (c["accepted"], c["dropped"], c["lost_ids"]) == (4, 1, 0)
    assert c["kernel_errors"] == 0 and report["waiting"] == 0


def test_cli_exits_with_an_error_when_verdicts_cannot_be_sent(pair, shim, tmp_path):
    stats_path = tmp_path / "failed.json"
    env = dict(os.environ, LD_PRELOAD=str(shim / "shim.so"), NFQ_SHIM="all-verdicts")
    proc = subprocess.Popen(["ip", "netns", "exec", pair.receiver, sys.executable, "-m",
                             "scapy_gdoi.cli", "d3p", "enforce", "--queue", "34",
                             "--window-sec", "5", "--install-rule", "--stats", str(stats_path)],
                            env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for_file(stats_path, proc)
        raw_sender(pair).send(d3p(now_ms(), udp(b"x")))
        code = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert code == 1 and "failing closed" in err, err
    # The rule stays, so matching traffic is dropped while no loop is bound.
    assert "NFQUEUE --queue-num 34" in pair.rules_in(pair.receiver)
    assert "leaving the rule in place" in err and "iptables -t filter -D INPUT" in err, err
    delete = err.split("remove it with: ", 1)[1].split("\n", 1)[0].split()
    subprocess.run(["ip", "netns", "exec", pair.receiver] + delete, check=True)
    assert "NFQUEUE" not in pair.rules_in(pair.receiver)
    stats = json.loads(stats_path.read_text())
    assert stats["verdict_failures"] == 1 and stats["running"] is False
