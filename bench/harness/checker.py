#!/usr/bin/python3
# bench/harness/checker.py — the verdict of a campaign, from what the workload
# recorded and what the final primary holds:
#
# * lost acknowledged commits: every id the writer or a prober saw
#   acknowledged must be in the final primary's tables;
# * two writable nodes: from every acknowledged commit (writer and probes, with
#   the node that acknowledged it), each node's "writable windows" (acks of the
#   same node less than `merge_gap` apart form one window); two windows of
#   different nodes that overlap are two nodes accepting writes at once;
# * recovery: per round, from the heal to a settled group (one primary, every
#   other node secondary) plus a writer ack; a round that did not recover
#   within its timeout fails the campaign (recorded by the campaign).
# * crashes: server logs with TRAP:, PANIC or "terminated by signal" lines,
#   except those a round caused on purpose (a PANIC for "No space left on
#   device" on a node whose disk the campaign filled).
#
# Pure functions over lists; no I/O except read_final() and scan_logs().
import re


def read_final(conn):
    """read_final: (writer ids, probe ids) present on the node behind conn."""
    cur = conn.cursor()
    cur.execute("SELECT id FROM campaign_writes")
    w = set(r[0] for r in cur.fetchall())
    cur.execute("SELECT id FROM campaign_probe")
    p = set(r[0] for r in cur.fetchall())
    return w, p


def lost(acks, present):
    """lost: acknowledged ids (acks: (id, t0, t1, node)) missing from present, with their ack record."""
    return [a for a in acks if a[0] not in present]


def windows(acks, merge_gap):
    """windows: {node: [[first_ack, last_ack], ...]} from acks (id, t0, t1, node)."""
    per = {}
    for a in sorted(acks, key=lambda a: a[2]):
        w = per.setdefault(a[3], [])
        if w and a[2] - w[-1][1] <= merge_gap:
            w[-1][1] = a[2]
        else:
            w.append([a[2], a[2]])
    return per


def overlaps(acks, merge_gap=1.0):
    """overlaps: [(node_a, window_a, node_b, window_b)] for windows of different nodes that overlap."""
    per = windows(acks, merge_gap)
    flat = sorted((w[0], w[1], n) for n, ws in per.items() for w in ws)
    out = []
    for i, (s1, e1, n1) in enumerate(flat):
        for s2, e2, n2 in flat[i + 1:]:
            if s2 > e1:
                break
            if n1 != n2 and s2 <= e1:
                out.append((n1, (s1, e1), n2, (s2, e2)))
    return out


def max_gap(times, start, end):
    """max_gap: longest interval without an ack time inside [start, end] (seconds)."""
    pts = [start] + sorted(t for t in times if start <= t <= end) + [end]
    return max(b - a for a, b in zip(pts, pts[1:])) if len(pts) > 1 else 0.0


CRASH = re.compile(r"TRAP:|PANIC|terminated by signal")
ENOSPC = re.compile(r"No space left on device|could not (write|extend|create)")


def scan_logs(paths, disk_filled_nodes):
    """scan_logs: [(node, line)] of crash lines; a PANIC about a full disk is allowed on disk_filled_nodes."""
    bad = []
    for node, path in paths.items():
        try:
            with open(path, errors="replace") as f:
                lines = f.readlines()
        except OSError:
            continue
        for i, line in enumerate(lines):
            if not CRASH.search(line):
                continue
            if node in disk_filled_nodes:
                # The PANIC itself, and the postmaster's report of the process it killed.
                ctx = "".join(lines[max(0, i - 3):i + 1])
                if ENOSPC.search(ctx) or ("terminated by signal 6" in line and _near_enospc(lines, i)):
                    continue
            bad.append((node, line.rstrip()))
    return bad


def _near_enospc(lines, i):
    return any(ENOSPC.search(lines[j]) for j in range(max(0, i - 20), i))


def selftest():
    """selftest: the checker's own cases (python3 checker.py)."""
    acks = [(1, 0.0, 0.1, "a"), (2, 0.1, 0.2, "a"), (3, 0.5, 0.6, "b"), (4, 0.6, 0.7, "b")]
    assert not overlaps(acks), "a clean handover is not two writers"
    assert overlaps(acks + [(5, 0.6, 0.65, "a")]), "a write on a between two of b's is two writers"
    assert not overlaps(acks + [(5, 9.0, 9.1, "a")]), "a later reign of a is not two writers"
    assert [a[0] for a in lost(acks, {1, 3, 4})] == [2]
    assert abs(max_gap([1.0, 1.5, 3.0], 0.5, 3.5) - 1.5) < 1e-9
    print("checker selftest: ok")


if __name__ == "__main__":
    selftest()
