"""Garbage-collector settings for a long-running server process (`opendispatch serve`).

Why: with a thousand sprites streaming, the server holds a couple of hundred thousand live
container objects (trio tasks, coroutines, frames, cancel scopes, per-job buffers), yet it
makes almost no cyclic garbage (a full collection during `bench/relay` at N = 1,000 found a
few hundred objects). CPython's default young-generation threshold of 700 allocations made
the collector traverse those live objects over and over: 3.9 of 11 CPU seconds in a 10 s
run, with pauses up to 0.6 s that land straight on the relay's p99 (docs/performance.md,
round 4). Collecting after 100,000 allocations instead, with the start-up objects (modules,
classes, configuration) frozen out of every collection, cut that to about 0.1 s while the
peak RSS stayed the same.

Process-wide, so only the `serve` command applies it; an embedding application decides for
its own process (it may call `tune_garbage_collector` itself).
"""

from __future__ import annotations

import gc

#: Net allocations of container objects between young collections (CPython's default: 700).
YOUNG_COLLECTION_EVERY = 100_000
#: Young collections per middle-generation one (CPython's: 10): what survives a young
#: collection is nearly always live, so looking at it again soon finds nothing.
MIDDLE_COLLECTION_EVERY = 50
#: Middle collections per full one, CPython's own: a finished job's cycles that had time to
#: grow old are freed within about 50 million allocations (under a minute at full load),
#: so memory does not creep between full collections on a server that runs for weeks.
OLD_COLLECTION_EVERY = 10


def tune_garbage_collector() -> None:
    """Freeze what exists now (start-up objects) and collect far less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, MIDDLE_COLLECTION_EVERY, OLD_COLLECTION_EVERY)
