#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Benchmark of the inline D3P enforcer (d3p_fast NFQUEUE loop) on a veth pair.

Run as root from the project root after building the extension. The python
alternative needs its bindings, which build from Debian's headers:

    apt-get install libnetfilter-queue-dev cython3 && pip install netfilterqueue

    python bench/bench_nfq.py [--count 300000] [--repeat 5] [--sender-cpu 0] [--consumer-cpu 1]

It creates two network namespaces joined by a veth pair (deleted at the end),
and in this one run sends COUNT fresh D3P-over-IP packets (bench/d3p_blast.c,
sendmmsg, pinned to the sender CPU) through an iptables NFQUEUE rule on the
receiver's INPUT hook (mangle table), consumed by, in turn (all of them
--repeat times, interleaved; the median run of each is reported, every
figure of a row from that same run):

1. no queue at all: the kernel's own ceiling (sender rate, packets counted
   by a filter INPUT rule after where the queue would be);
2. the minimal C loop (bench/nfq_minimal.c): one recv and one verdict per
   packet, whole packet copied, what plain libnetfilter_queue code does;
3. python `netfilterqueue` (libnetfilter_queue bindings) with the D3P window
   check written in Python: the obvious alternative a user would pick;
4. our loop with verification off (accept everything, mode "pass");
5. our loop with verification on (enforce, drop action);
6. (for information, no target) our loop with verification on and --strip.

Each consumer runs pinned to the consumer CPU and reports, from its own
process accounting (getrusage, user and system apart), the CPU time it spent
from when the queue was bound until it went idle, and the time between its
first and last packet (our loop: its published counters polled every 5 ms).
The receive path up to the queue (veth, NFQUEUE enqueue) runs in softirq on
the sender's CPU; re-injection after a verdict runs in the consumer's verdict
system call, so it is part of the consumer's system time for every consumer.
Figures printed per configuration: packets handled,
packets per second through the queue, user / system / total CPU microseconds
per packet; then the ratios the issue sets as targets.
Reference (issue 5, same 2-core machine, 300k packets): python
netfilterqueue ~2.3 us user + 2.9 us system per packet; minimal C loop ~0.3 us
user + 4-6 us system; ~275 k/s no queue, 216 k/s minimal C, 123 k/s python.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from scapy_gdoi import _consts  # noqa: E402

SENDER_IP, RECEIVER_IP = "10.78.0.1", "10.78.0.2"
QUEUE = 0
IDLE_S = 1.0
# Every consumer gets the same kernel queue length and socket buffer (our
# loop's defaults), so differences come from the loops, not the buffers.
QUEUE_MAXLEN = 16384
RCVBUF = 16 << 20
CSRC = os.path.join(ROOT, "d3p_fast", "csrc")


# --- consumers (each runs in its own process inside the receiver namespace) ---

def _rusage():
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def consume_ours(verify, batch, coalesce_us, strip=False):
    """Our C loop, driven from Python exactly as `gdoi d3p enforce` does."""
    from d3p_fast.nfq import NfqConfig, NfqLoop
    config = NfqConfig(queue=QUEUE, window_ms=10000, mode="enforce" if verify else "pass",
                       batch=batch, coalesce_us=coalesce_us, queue_maxlen=QUEUE_MAXLEN,
                       rcvbuf=RCVBUF, strip=strip)
    loop = NfqLoop(config).open()
    u0, s0 = _rusage()
    print("READY", flush=True)
    loop.start()
    key = "input_packets" if verify else "accepted"
    first = last = None
    seen = 0
    while True:
        time.sleep(0.005)
        count = loop.stats()["counters"][key]
        now = time.monotonic()
        if count != seen:
            if first is None:
                first = now
            seen, last = count, now
        elif first is not None and now - last > IDLE_S:
            break
    loop.stop()
    loop.join()
    u1, s1 = _rusage()
    kernel = kernel_queue_counters(QUEUE)
    stats = loop.stats()
    loop.close()
    c = stats["counters"]
    return {"packets": seen, "first": first, "last": last, "user": u1 - u0, "system": s1 - s0,
            "errors": c["input_too_old"] + c["input_too_new"] + c["input_malformed"],
            "recv_calls": c["recv_calls"], "send_calls": c["send_calls"], "kernel": kernel}


def kernel_queue_counters(queue):
    """The kernel's own drop counters for a bound queue (nfnetlink_queue's
    /proc file: number, portid, total, mode, range, queue_dropped,
    user_dropped, id_sequence, 1)."""
    with open("/proc/net/netfilter/nfnetlink_queue") as f:
        for line in f:
            fields = line.split()
            if int(fields[0]) == queue:
                return {"queue_dropped": int(fields[5]), "user_dropped": int(fields[6])}
    return {}


def d3p_check_python(payload, now_ms, window_ms, proto=_consts.D3P_IP_PROTO):
    """The window check a user writes in Python (DECISIONS.md §3)."""
    if len(payload) < 20 or payload[0] >> 4 != 4 or payload[9] != proto:
        return False
    ihl = (payload[0] & 15) * 4
    if len(payload) < ihl + 12 or payload[ihl + 1] < 3 or payload[ihl + 2] != 1:
        return False
    timestamp = int.from_bytes(payload[ihl + 4:ihl + 12], "big")
    return -window_ms <= now_ms - timestamp <= window_ms


def consume_netfilterqueue():
    import socket
    from netfilterqueue import NetfilterQueue
    state = {"packets": 0, "first": None, "last": None, "errors": 0}

    def on_packet(pkt):
        if d3p_check_python(pkt.get_payload(), int(time.time() * 1000), 10000):
            pkt.accept()
        else:
            state["errors"] += 1
            pkt.drop()
        state["last"] = time.monotonic()
        if state["first"] is None:
            state["first"] = state["last"]
        state["packets"] += 1

    nfq = NetfilterQueue()
    nfq.bind(QUEUE, on_packet, max_len=QUEUE_MAXLEN)
    s = socket.fromfd(nfq.get_fd(), socket.AF_NETLINK, socket.SOCK_RAW)
    s.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE: past rmem_max, as root
    s.settimeout(0.2)
    u0, s0 = _rusage()
    print("READY", flush=True)
    while True:
        try:
            nfq.run_socket(s)
        except OSError:  # the timeout, raised through run_socket
            if state["first"] is not None and time.monotonic() - state["last"] > IDLE_S:
                break
    u1, s1 = _rusage()
    nfq.unbind()
    return dict(state, user=u1 - u0, system=s1 - s0)


# --- orchestration -------------------------------------------------------------

def sh(*cmd, ns=None, check=True):
    full = (["ip", "netns", "exec", ns] if ns else []) + [str(c) for c in cmd]
    done = subprocess.run(full, capture_output=True, text=True)
    if check and done.returncode:
        raise RuntimeError("%s: %s" % (" ".join(full), done.stderr.strip()))
    return done.stdout


def build_helpers(workdir):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("needs a C compiler for bench/nfq_minimal.c and bench/d3p_blast.c")
    here = os.path.dirname(os.path.abspath(__file__))
    minimal = os.path.join(workdir, "nfq_minimal")
    blast = os.path.join(workdir, "d3p_blast")
    subprocess.check_call([cc, "-O2", "-I", CSRC, "-o", minimal, os.path.join(here, "nfq_minimal.c"),
                           os.path.join(CSRC, "nfq_msg.c")])
    subprocess.check_call([cc, "-O2", "-o", blast, os.path.join(here, "d3p_blast.c")])
    return minimal, blast


class Namespaces:
    def __init__(self):
        tag = uuid.uuid4().hex[:8]
        self.sender, self.receiver = "d3bs" + tag, "d3br" + tag

    def __enter__(self):
        try:
            self._create()
        except BaseException:
            self.__exit__()  # a half-built pair must not outlive the run
            raise
        return self

    def _create(self):
        sh("ip", "netns", "add", self.sender)
        sh("ip", "netns", "add", self.receiver)
        sh("ip", "link", "add", "vb0", "netns", self.sender, "type", "veth", "peer", "name", "vb1",
           "netns", self.receiver)
        for ns, dev, addr in ((self.sender, "vb0", SENDER_IP), (self.receiver, "vb1", RECEIVER_IP)):
            sh("ip", "addr", "add", addr + "/24", "dev", dev, ns=ns)
            sh("ip", "link", "set", dev, "up", ns=ns)
        # Count what gets past the (mangle) queue into the filter table.
        sh("iptables", "-w", "-A", "INPUT", "-p", _consts.D3P_IP_PROTO, "-j", "ACCEPT",
           ns=self.receiver)

    def __exit__(self, *exc):
        for ns in (self.sender, self.receiver):
            sh("ip", "netns", "del", ns, check=False)

    def delivered(self):
        out = sh("iptables", "-w", "-L", "INPUT", "-v", "-x", "-n", ns=self.receiver)
        for line in out.splitlines():
            fields = line.split()
            # pkts bytes target prot opt in out source destination
            if fields[2:4] == ["ACCEPT", str(_consts.D3P_IP_PROTO)]:
                return int(fields[0])
        raise RuntimeError("no counting rule in:\n" + out)

    def reset_counter(self):
        sh("iptables", "-w", "-Z", "INPUT", ns=self.receiver)

    def queue_rule(self, add):
        sh("iptables", "-w", "-t", "mangle", "-A" if add else "-D", "INPUT", "-p",
           _consts.D3P_IP_PROTO, "-j", "NFQUEUE", "--queue-num", QUEUE, ns=self.receiver)


def run_case(ns, name, consumer_cmd, blast, args):
    ns.reset_counter()
    consumer = None
    if consumer_cmd:
        ns.queue_rule(True)
        consumer = subprocess.Popen(["ip", "netns", "exec", ns.receiver, "taskset", "-c",
                                     str(args.consumer_cpu)] + consumer_cmd,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = consumer.stdout.readline()
        if line.strip() != "READY":
            ns.queue_rule(False)
            return {"name": name, "error": (line + consumer.stderr.read()).strip()[-500:]}
    out = sh("taskset", "-c", args.sender_cpu, blast, RECEIVER_IP, args.count,
             _consts.D3P_IP_PROTO, ns=ns.sender)
    sender = json.loads(out)
    # The sender's own rate: a consumer cannot beat it, so pkt/s ratios
    # between consumers mean little when both are close to it.
    result = {"name": name, "sent": sender["sent"],
              "sender_pps": sender["sent"] / sender["elapsed"]}
    if consumer:
        rest, err = consumer.communicate(timeout=120)
        ns.queue_rule(False)
        if consumer.returncode:
            return {"name": name, "error": err.strip()[-500:]}
        r = json.loads(rest.strip().splitlines()[-1])
        span = (r["last"] - r["first"]) or 1e-9
        result.update(packets=r["packets"], pps=r["packets"] / span,
                      user_us=1e6 * r["user"] / max(r["packets"], 1),
                      system_us=1e6 * r["system"] / max(r["packets"], 1),
                      errors=r.get("errors", 0), kernel=r.get("kernel"),
                      syscalls=(r["recv_calls"] + r["send_calls"]) if "recv_calls" in r else None)
        result["total_us"] = result["user_us"] + result["system_us"]
    else:
        time.sleep(0.2)
        result.update(packets=ns.delivered(), pps=sender["sent"] / sender["elapsed"])
    result["delivered"] = ns.delivered()
    return result


def consumer_commands(minimal, batch, coalesce_us):
    me = [sys.executable, os.path.abspath(__file__)]
    ours = ["--batch", str(batch), "--coalesce-us", str(coalesce_us)]
    return [
        ("no queue (kernel ceiling)", None),
        ("minimal C loop (1 recv + 1 verdict / packet)",
         [minimal, str(QUEUE), str(int(IDLE_S * 1000)), str(QUEUE_MAXLEN), str(RCVBUF)]),
        ("python netfilterqueue + check in Python", me + ["--consumer", "netfilterqueue"]),
        ("our loop, verification off", me + ["--consumer", "ours-off"] + ours),
        ("our loop, verification on", me + ["--consumer", "ours-on"] + ours),
        # Not a target: what --strip adds (whole packet copied, one rewritten
        # packet per verdict message, still one send per round).
        ("our loop, verification on + --strip", me + ["--consumer", "ours-strip"] + ours),
    ]


def print_table(results):
    print("%-46s %8s %8s %9s %9s %8s %8s %8s %9s  %s" % (
        "configuration", "handled", "lost", "pkt/s", "sender/s", "user us", "sys us",
        "total us", "syscalls", "spread of runs"))
    for r in results:
        if "error" in r:
            print("%-46s unavailable: %s" % (r["name"], r["error"]))
            continue
        lost = r["sent"] - r["packets"]
        cpu = ("%8.3f %8.3f %8.3f" % (r["user_us"], r["system_us"], r["total_us"])
               if "user_us" in r else "%8s %8s %8s" % ("-", "-", "-"))
        calls = r.get("syscalls")
        per_packet = "%9.3f" % (calls / r["packets"]) if calls and r["packets"] else "%9s" % "-"
        low, high = r.get("spread", (0, 0))
        spread = ("total %.3f-%.3f us" % (low, high) if "total_us" in r
                  else "%.0f-%.0f pkt/s" % (low, high))
        print("%-46s %8d %8d %9.0f %9.0f %s %s  %s" % (r["name"], r["packets"], lost, r["pps"],
                                                      r["sender_pps"], cpu, per_packet, spread))
    print("(sender/s: the sender's own rate in that run; a consumer near it was sender-limited.\n"
          " syscalls: recv + send calls per packet, our loop only; the minimal loop makes 2.\n"
          " CPU: getrusage of the consumer process; user + system is exact, the split between\n"
          " them is the kernel's tick sampling, so a few ms of user time per run can read as 0)")


def median_runs(runs):
    """Per configuration, the median run by total CPU per packet (by rate for
    the no-queue row), every figure printed from that one run, so a row's
    rate, CPU and sender rate belong together; the spread of all runs is
    printed beside it."""
    chosen = []
    for per_config in zip(*runs):
        ok = [r for r in per_config if "error" not in r]
        if not ok:
            chosen.append(per_config[0])
            continue
        key = (lambda r: r["total_us"]) if "total_us" in ok[0] else (lambda r: r["pps"])
        ranked = sorted(ok, key=key)
        pick = dict(ranked[(len(ranked) - 1) // 2])
        pick["spread"] = (key(ranked[0]), key(ranked[-1]))
        chosen.append(pick)
    return chosen


def print_targets(results):
    usable = [None if "error" in r else r for r in results]
    minimal, python, off, on = usable[1:5]
    print()
    if on is None:
        print("our loop did not run; no ratios")
        return
    checks = []
    if python:
        checks.append(("user CPU/packet <= 1/10 of python netfilterqueue",
                       on["user_us"] / python["user_us"], on["user_us"] <= python["user_us"] / 10))
        checks.append(("total CPU/packet <= 1/2 of python netfilterqueue",
                       on["total_us"] / python["total_us"], on["total_us"] <= python["total_us"] / 2))
    else:
        print("python netfilterqueue unavailable: no comparison against it")
    if minimal:
        checks.append(("total CPU/packet below the minimal C loop",
                       on["total_us"] / minimal["total_us"], on["total_us"] < minimal["total_us"]))
        checks.append(("pkt/s >= the minimal C loop", on["pps"] / minimal["pps"],
                       on["pps"] >= minimal["pps"]))
        # The same comparison with each run's sender rate beside it: when both
        # consumers kept up with their sender, the ratio measures the senders.
        limited = [r["pps"] >= 0.95 * r["sender_pps"] for r in (on, minimal)]
        print("pkt/s: ours %.0f (its sender %.0f), minimal C %.0f (its sender %.0f)%s"
              % (on["pps"], on["sender_pps"], minimal["pps"], minimal["sender_pps"],
                 "  -- both sender-limited: the ratio compares the senders" if all(limited)
                 else ""))
    if off:
        checks.append(("verification costs < 10% (total CPU on / off)",
                       on["total_us"] / off["total_us"], on["total_us"] < 1.10 * off["total_us"]))
    for text, ratio, ok in checks:
        print("%-52s ratio %6.3f  %s" % (text, ratio, "met" if ok else "NOT met"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300000)
    parser.add_argument("--sender-cpu", type=int, default=0)
    parser.add_argument("--consumer-cpu", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64, help="our loop's recvmmsg batch")
    parser.add_argument("--coalesce-us", type=int, default=50,
                        help="our loop's interrupt moderation (default 50, as the CLI)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs of every configuration; the median run is reported")
    parser.add_argument("--consumer", choices=("ours-on", "ours-off", "ours-strip",
                                               "netfilterqueue"),
                        help=argparse.SUPPRESS)  # internal: run one consumer
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()
    if args.consumer:
        if args.consumer == "netfilterqueue":
            result = consume_netfilterqueue()
        else:
            result = consume_ours(args.consumer != "ours-off", args.batch, args.coalesce_us,
                                  strip=args.consumer == "ours-strip")
        print(json.dumps(result), flush=True)
        return 0
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, iptables NFQUEUE)")
    try:
        import netfilterqueue  # noqa: F401
    except ImportError:
        print("note: python netfilterqueue is not installed (pip install NetfilterQueue, needs "
              "libnetfilter-queue-dev): that row will say unavailable")
    print("%s, %d CPUs, %d packets, sender on CPU %d, consumer on CPU %d"
          % (os.uname().release, os.cpu_count(), args.count, args.sender_cpu, args.consumer_cpu))
    with tempfile.TemporaryDirectory() as workdir:
        minimal, blast = build_helpers(workdir)
        with Namespaces() as ns:
            runs = [[run_case(ns, name, cmd, blast, args)
                     for name, cmd in consumer_commands(minimal, args.batch, args.coalesce_us)]
                    for _ in range(args.repeat)]
    results = median_runs(runs)
    print("median of %d runs per configuration, every figure from that run "
          "(spread of all runs at the right)" % args.repeat)
    print_table(results)
    print_targets(results)
    if args.json:
        print(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
