# SPDX-License-Identifier: GPL-2.0-only
"""A size-capped mapping for the analyser's per-KEK state (constant memory).

A capture may hold any number of KEK SPIs (a hostile one: a different random cookie in
every frame), so every table keyed by something a packet says is capped. Writing or
reading an entry makes it the most recent; past the cap the least recently used entry
is dropped. The caps are named constants next to each table, with why they suffice.
"""
import collections


class BoundedLRU(collections.OrderedDict):
    """An OrderedDict that keeps at most `maxlen` entries, least recently used first."""

    def __init__(self, maxlen):
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1, got %r" % (maxlen,))
        super().__init__()
        self.maxlen = maxlen

    def __setitem__(self, key, value):
        if key in self:
            self.move_to_end(key)
        super().__setitem__(key, value)
        while len(self) > self.maxlen:
            self.popitem(last=False)

    def touch(self, key, default=None):
        """The value for `key` (or `default`), marking it most recently used."""
        if key not in self:
            return default
        self.move_to_end(key)
        return super().__getitem__(key)

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self.touch(key)

    def copy(self):
        out = type(self)(self.maxlen)
        out.update(self)
        return out
