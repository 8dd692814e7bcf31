# SPDX-License-Identifier: GPL-2.0-only
"""The iptables NFQUEUE rule a `gdoi d3p enforce|stamp --install-rule` needs.

iptables, not nftables: the `queue` statement of nftables does not work on the
machines this project targets, while `iptables -j NFQUEUE` (also through the
nf_tables backend) does.  The rule goes first in its chain and is deleted by
the exact same specification, so a rule someone else added stays untouched.
"""
import shutil
import subprocess


class RuleError(RuntimeError):
    """iptables refused to add or delete the rule."""


class NfqueueRule:
    """An `-j NFQUEUE` rule for queues *queues* (consecutive numbers).

    Several queues use `--queue-balance first:last --queue-cpu-fanout`, so the
    kernel spreads packets by the CPU that handles them, one loop per queue.
    *bypass* adds `--queue-bypass`: with no program bound to the queue the
    kernel accepts instead of dropping.
    """

    def __init__(self, chain, queues, match, bypass=False, table="filter",
                 iptables="iptables"):
        queues = list(queues)
        if not queues or queues != list(range(queues[0], queues[0] + len(queues))):
            raise ValueError("queues must be consecutive numbers, not %r" % (queues,))
        self.chain = chain
        self.queues = queues
        self.match = list(match)
        self.bypass = bypass
        self.table = table
        self.iptables = iptables
        self.installed = False

    def target(self):
        if len(self.queues) == 1:
            spec = ["-j", "NFQUEUE", "--queue-num", str(self.queues[0])]
        else:
            spec = ["-j", "NFQUEUE", "--queue-balance",
                    "%d:%d" % (self.queues[0], self.queues[-1]), "--queue-cpu-fanout"]
        if self.bypass:
            spec.append("--queue-bypass")
        return spec

    def _run(self, operation):
        if shutil.which(self.iptables) is None:
            raise RuleError("%s not found (Debian package iptables)" % self.iptables)
        # -w: wait for the xtables lock instead of failing when another
        # process changes rules at the same moment.
        cmd = [self.iptables, "-w", "-t", self.table] + operation + self.match + self.target()
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuleError("%s: %s" % (" ".join(cmd), done.stderr.strip()))

    def exists(self):
        """True when the same rule is already there (`iptables -C`)."""
        try:
            self._run(["-C", self.chain])
        except RuleError:
            return False
        return True

    def install(self):
        """Add the rule, unless an identical one exists (left by a killed
        run, or someone's own): that one is used and left in place."""
        if self.exists():
            return self
        self._run(["-I", self.chain, "1"])
        self.installed = True
        return self

    def command(self, operation="-D"):
        """The iptables command line that adds (-I) or deletes (-D) this rule."""
        return " ".join([self.iptables, "-t", self.table, operation, self.chain]
                        + self.match + self.target())

    def remove(self):
        if self.installed:
            self.installed = False
            self._run(["-D", self.chain])

    def __enter__(self):
        return self.install()

    def __exit__(self, *exc):
        self.remove()
