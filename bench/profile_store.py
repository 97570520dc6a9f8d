"""cProfile of SqlEventStore.append (1 event per transaction) and read_all, for finding where the
time goes. py-spy is not installed; cProfile's own overhead inflates Python-heavy code ~1.5-2x,
so read the shares, not the absolute times.

    .venv/bin/python bench/profile_store.py sqlite /tmp/p.db
    .venv/bin/python bench/profile_store.py postgresql postgresql://postgres@127.0.0.1:5432/cim_d_bench
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_store as b
from common import ROOT


def main() -> None:
    backend, target = sys.argv[1], sys.argv[2]
    n = 3000 if backend == "sqlite" else 1000
    b.create_schema("store", backend, target)
    client = b.StoreClient(backend, target, 1)
    for i in range(50):
        client.append(f"warm-{i}", 0, 1)
    t0 = time.perf_counter()
    for i in range(n):
        client.append(f"plain-{i}", 0, 1)
    plain = (time.perf_counter() - t0) / n
    prof = cProfile.Profile()
    prof.enable()
    for i in range(n):
        client.append(f"prof-{i}", 0, 1)
    prof.disable()
    out = io.StringIO()
    print(f"# {backend} store: append 1 event/txn, {n} appends, "
          f"unprofiled {plain * 1e6:.0f} us/append", file=out)
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(15)
    client.close()
    b.fill("store", backend, target, 100_000)
    prof = cProfile.Profile()
    prof.enable()
    b._read_store(backend, target, 1000)
    prof.disable()
    print("# read_all of 100,000 events, batches of 1000", file=out)
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
    text = out.getvalue().replace(str(ROOT) + "/", "").replace(str(Path(sys.prefix)) + "/", "")
    print(text)


if __name__ == "__main__":
    main()
