"""Turn the JSON of bench_store.py / bench_http.py runs into Markdown with PASS/FAIL per target.

    python bench/report.py store.json [store-threads.json] http.json > bench/out/last-run.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_http
import bench_store

NOISE = 0.10  # differences under 10% are within this shared machine's run-to-run noise


def _cells(results: list[dict[str, Any]]) -> dict[tuple, dict[str, dict[str, Any]]]:
    cells: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in results:
        if r["kind"] == "append":
            cells.setdefault((r["backend"], r["batch"], r["how"]), {})[r["impl"]] = r
    return cells


def verdict(ok: bool, margin: float | None = None) -> str:
    if ok:
        return "PASS"
    if margin is not None and abs(margin) < NOISE:
        return "FAIL (within noise)"
    return "FAIL"


def targets(results: list[dict[str, Any]]) -> str:
    cells = _cells(results)
    lines = [
        "| target | cell | measured | verdict |",
        "|---|---|---|---|",
    ]
    for (backend, batch, how), impls in cells.items():
        store, raw, peer = impls.get("store"), impls.get("raw"), impls.get("peer")
        label = f"{backend}, {batch}/txn, {how}"
        if store and raw:
            ratio = store["commits_per_s"] / raw["commits_per_s"]
            lines.append(f"| store >= 60% of raw driver | {label} | {ratio:.0%} "
                         f"({store['commits_per_s']:,.0f} vs {raw['commits_per_s']:,.0f}/s) | "
                         f"{verdict(ratio >= 0.6, ratio - 0.6)} |")
        if store and peer:
            ratio = store["commits_per_s"] / peer["commits_per_s"]
            lines.append(f"| store ahead of the peer | {label} | {ratio:.2f}x "
                         f"({store['commits_per_s']:,.0f} vs {peer['commits_per_s']:,.0f}/s) | "
                         f"{verdict(ratio > 1.0, ratio - 1.0)} |")
        adv, tab, none = impls.get("raw"), impls.get("raw-tablelock"), impls.get("raw-nolock")
        store_free, peer_free = impls.get("store-nolock"), impls.get("peer-nolock")
        if backend == "postgresql" and store and store_free and tab and none:
            # The target: what the no-skip guarantee costs the store (against the same store with
            # its append lock taken out) is no more than what a table lock — the peer's way —
            # costs the same plain inserts (against them without it).
            cost_store = 1 - store["commits_per_s"] / store_free["commits_per_s"]
            cost_tab = 1 - tab["commits_per_s"] / none["commits_per_s"]
            lines.append(f"| PG no-skip: the store's lock costs <= a table lock | {label} | store "
                         f"{cost_store:+.0%} ({store['commits_per_s']:,.0f} vs {store_free['commits_per_s']:,.0f}/s "
                         f"without its lock); table lock {cost_tab:+.0%} of raw inserts "
                         f"({tab['commits_per_s']:,.0f} vs {none['commits_per_s']:,.0f}/s) | "
                         f"{verdict(cost_store <= cost_tab, cost_tab - cost_store)} |")
        if backend == "postgresql" and peer and peer_free:
            # For information: the peer against itself without its table lock. Its commits stay
            # serialised by its NOTIFY (PostgreSQL queues notifications under one lock at commit),
            # so this shows what the lock adds on top of that, not what serialising costs.
            cost_peer = 1 - peer["commits_per_s"] / peer_free["commits_per_s"]
            lines.append(f"| (info) the peer's table lock, peer vs itself without it | {label} | "
                         f"{cost_peer:+.0%} ({peer['commits_per_s']:,.0f} vs "
                         f"{peer_free['commits_per_s']:,.0f}/s) | — |")
        if backend == "postgresql" and adv and tab and none:
            # For information: the two locks in the same (older, six-statement) transaction.
            cost_adv = 1 - adv["commits_per_s"] / none["commits_per_s"]
            cost_tab = 1 - tab["commits_per_s"] / none["commits_per_s"]
            lines.append(f"| (info) advisory vs table lock, same raw transaction | {label} | advisory "
                         f"{cost_adv:+.0%} vs table lock {cost_tab:+.0%} of the no-lock rate "
                         f"({adv['commits_per_s']:,.0f} / {tab['commits_per_s']:,.0f} / "
                         f"{none['commits_per_s']:,.0f}/s) | — |")
    for r in results:
        if r["kind"] == "read_all" and r["backend"] == "sqlite" and r["impl"] == "store":
            ok = r["events_per_s"] >= 150_000
            lines.append(f"| read_all >= 150,000 ev/s on SQLite | {r['impl']}, {r['events']:,} events | "
                         f"{r['events_per_s']:,.0f} ev/s wall, {r['events_per_cpu_s']:,.0f} per CPU-s | "
                         f"{verdict(ok, r['events_per_s'] / 150_000 - 1)} |")
    return "\n".join(lines)


def machine(facts: dict[str, Any]) -> str:
    keys = ["date_utc", "git", "cpu", "nproc", "ram_gib", "kernel", "python", "sqlite", "postgresql", "pg_fsync",
            "pg_synchronous_commit", "sqlalchemy", "psycopg", "eventsourcing", "gunicorn", "duration_s",
            "read_events", "mode", "loadavg", "loadavg_end"]
    return "\n".join(f"- {k}: {facts[k]}" for k in keys if k in facts)


def main() -> None:
    out = []
    for path in sys.argv[1:]:
        doc = json.loads(Path(path).read_text())
        results = doc["results"]
        out.append(f"## {Path(path).name}\n")
        out.append(machine(doc["machine"]) + "\n")
        if results and results[0].get("kind") in ("append", "read_all"):
            out.append(bench_store.markdown(results) + "\n")
            out.append("### Targets\n")
            out.append(targets(results) + "\n")
        elif results:
            out.append(bench_http.markdown(results) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
