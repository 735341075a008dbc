#!/usr/bin/python3
# bench/peers/report.py — the side-by-side results: from DIR/results.tsv,
# DIR/settings and the writer logs DIR/raw/ (bench/peers/scenario.sh) writes
# DIR/results.md (one table per scenario: median and min–max over the runs,
# the ratio of the medians to pg_autopilot's) and one PNG per fault scenario
# (gnuplot): every write attempt of the median run of each system around the
# fault.  Then removes the writer logs of the runs it did not plot.  With
# --readme, also replaces the README's block between the markers
# <!-- side-by-side:begin --> and <!-- side-by-side:end --> with a compact table.
#
#   bench/peers/report.py DIR [--readme README.md]
#
# Invariants: pure reporting, no server is touched; a figure with no value
# (system refused the group size, scenario skipped, every run failed) is
# "n/a" with the reason, never a guess.
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

SYSTEMS = [("autopilot", "pg_autopilot"), ("autofailover", "pg_auto_failover"), ("patroni", "Patroni + etcd"),
           ("plain", "plain streaming replication")]
NAMES = dict(SYSTEMS)
# scenario -> [(metric, label, kind, lower_is_better)]
FIGURES = {
    "kill": [("first_write_ms", "kill -9 → first acknowledged write", "ms", True),
             ("lost_acks", "acknowledged writes lost", "count", True)],
    "isolate": [("first_write_ms", "isolation → first acknowledged write on the new primary", "ms", True),
                ("old_acks_after_new", "writes the old primary acknowledged after the new one took writes", "count", True),
                ("old_last_ack_ms", "old primary's last acknowledged write after the cut", "ms", True),
                ("old_lost_acks", "old primary's acknowledged writes missing on the new primary", "count", True),
                ("lost_acks", "acknowledged writes lost (through the URI)", "count", True)],
    "switchover": [("write_gap_ms", "longest gap between acknowledged writes", "ms", True),
                   ("stable_ms", "call → group settled", "ms", True),
                   ("lost_acks", "acknowledged writes lost", "count", True)],
    "tps": [("tps", "pgbench TPS", "tps", False),
            ("tps_pct_plain", "TPS, % of plain streaming replication", "pct", False),
            ("agent_cpu_pct", "agents' CPU (sum over the nodes, % of one core)", "pct1", True),
            ("agent_mem_kb", "agents' private memory (sum over the nodes)", "kb", True),
            ("control_cpu_pct", "control plane CPU (monitor / etcd, % of one core)", "pct1", True),
            ("control_mem_kb", "control plane private memory", "kb", True)],
}
TITLES = {
    "kill": "1. kill -9 of the primary (postmaster and agent)",
    "isolate": "2. primary network-isolated",
    "switchover": "3. planned switchover",
    "tps": "4. steady state: pgbench and agent cost",
}
PRIMARY_METRIC = {"kill": "first_write_ms", "isolate": "first_write_ms", "switchover": "write_gap_ms"}


def load(work):
    rows = []
    with open(os.path.join(work, "results.tsv")) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) == 6:
                rows.append(p)
    settings = {}
    path = os.path.join(work, "settings")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    settings[k] = v
    return rows, settings


def values(rows, system, nodes, scenario, metric):
    """values: {run: float} of one figure."""
    out = {}
    for s, n, sc, r, m, v in rows:
        if (s, n, sc, m) == (system, nodes, scenario, metric):
            try:
                out[int(r)] = float(v)
            except ValueError:
                pass
    return out


def nones(rows, system, nodes, scenario, metric):
    """nones: runs whose figure is "none" (e.g. no write acknowledged after the cut)."""
    return sum(1 for s, n, sc, r, m, v in rows if (s, n, sc, m) == (system, nodes, scenario, metric) and v == "none")


def flag(rows, system, nodes, scenario, what):
    return sum(1 for s, n, sc, r, m, v in rows if (s, n, sc, m) == (system, nodes, scenario, "%s_%s" % (scenario, what)))


def fmt(v, kind):
    if kind == "ms":
        return "%.0f ms" % v if v < 1000 else "%.1f s" % (v / 1000.0)
    if kind == "count":
        return "%.0f" % v
    if kind == "tps":
        return "%.0f" % v
    if kind == "pct":
        return "%.0f %%" % v
    if kind == "pct1":
        return "%.2f %%" % v
    if kind == "kb":
        return "%.1f MB" % (v / 1024.0) if v >= 1024 else "%.0f kB" % v
    return str(v)


def cell(vals, kind):
    if not vals:
        return None, "n/a"
    xs = sorted(vals)
    med = statistics.median(xs)
    if len(xs) == 1:
        return med, fmt(med, kind)
    if kind == "ms" and med >= 1000:
        rng = "%.1f–%.1f s" % (xs[0] / 1000.0, xs[-1] / 1000.0)
    elif kind == "ms":
        rng = "%.0f–%.0f ms" % (xs[0], xs[-1])
    else:
        rng = "%s–%s" % (fmt(xs[0], kind), fmt(xs[-1], kind))
    return med, "**%s** (%s)" % (fmt(med, kind), rng)


def ratio(med, ref, kind):
    if med is None or ref is None:
        return "n/a"
    if ref == 0:
        return "—"  # pg_autopilot's figure rounds to 0: no meaningful ratio
    return "%.2g×" % (med / ref) if med / ref < 10 else "%.0f×" % (med / ref)


def add_tps_pct(rows):
    """tps_pct_plain: each run's TPS as % of the plain run of the same number and size (interleaved runs)."""
    extra = []
    for s, n, sc, r, m, v in rows:
        if sc == "tps" and m == "tps" and s != "plain":
            base = values(rows, "plain", n, "tps", "tps").get(int(r))
            if base:
                extra.append([s, n, sc, r, "tps_pct_plain", "%.2f" % (float(v) * 100.0 / base)])
    return rows + extra


def table(rows, scenario, nodes_list, runs):
    """table: a row per (system, size), a cell per figure: median (min–max), ratio to pg_autopilot."""
    figs = FIGURES[scenario]
    systems = [s for s, _ in SYSTEMS if s != "plain" or scenario == "tps"]
    lines = ["| system | nodes | " + " | ".join(label for _, label, _, _ in figs) + " |",
             "|---|---|" + "---|" * len(figs)]
    notes = []
    for n in nodes_list:
        for s in systems:
            if not any(r[0] == s and r[1] == n and r[2] == scenario for r in rows):
                continue
            refused = flag(rows, s, n, scenario, "refused")
            skipped = flag(rows, s, n, scenario, "skipped")
            failed = flag(rows, s, n, scenario, "failed")
            cells = []
            for m, _, kind, _ in figs:
                vals = list(values(rows, s, n, scenario, m).values())
                med, text = cell(vals, kind)
                if not vals and refused:
                    text = "n/a (refused)"
                elif not vals and skipped:
                    text = "n/a (skipped)"
                elif not vals and failed:
                    text = "n/a (failed)"
                elif not vals and nones(rows, s, n, scenario, m):
                    text = "none"
                ref_vals = list(values(rows, "autopilot", n, scenario, m).values())
                ref = statistics.median(ref_vals) if ref_vals else None
                if s not in ("autopilot", "plain") and kind != "count" and med is not None:
                    text += "; " + ratio(med, ref, kind)
                cells.append(text)
            lines.append("| %s | %s | %s |" % (NAMES[s], n, " | ".join(cells)))
            if failed:
                notes.append("%s, %s nodes: %d of %d runs failed (logs under failed/)" % (NAMES[s], n, failed, runs))
            if refused:
                notes.append("%s, %s nodes: the system refused a group of this size" % (NAMES[s], n))
    return lines, notes


SUMMARY = [("kill", "first_write_ms", "kill -9 → write"), ("isolate", "first_write_ms", "isolated → write"),
           ("isolate", "old_lost_acks", "isolated old primary's acknowledged writes lost"),
           ("switchover", "write_gap_ms", "switchover write gap"), ("switchover", "stable_ms", "switchover call → settled"),
           ("tps", "tps_pct_plain", "TPS vs plain replication"), ("tps", "agent_cpu_pct", "agents' CPU"),
           ("tps", "agent_mem_kb", "agents' memory")]


def summary(rows, nodes_list):
    """summary: the README's compact table, medians only, ratio to pg_autopilot."""
    kinds = {m: k for sc in FIGURES for m, _, k, _ in FIGURES[sc]}
    lines = ["| system | nodes | " + " | ".join(l for _, _, l in SUMMARY) + " |", "|---|---|" + "---|" * len(SUMMARY)]
    for n in nodes_list:
        for s, name in SYSTEMS:
            if s == "plain" or not any(r[0] == s and r[1] == n for r in rows):
                continue
            cells = []
            for sc, m, _ in SUMMARY:
                vals = list(values(rows, s, n, sc, m).values())
                if not vals:
                    if flag(rows, s, n, sc, "refused"):
                        cells.append("n/a (refused)")
                    elif flag(rows, s, n, sc, "skipped"):
                        cells.append("skipped")
                    elif nones(rows, s, n, sc, m):
                        cells.append("none")
                    else:
                        cells.append("n/a")
                    continue
                med = statistics.median(vals)
                text = fmt(med, kinds[m])
                ref_vals = list(values(rows, "autopilot", n, sc, m).values())
                if s != "autopilot" and kinds[m] != "count":
                    text += " (%s)" % ratio(med, statistics.median(ref_vals) if ref_vals else None, kinds[m])
                cells.append(text)
            lines.append("| %s | %s | %s |" % (name, n, " | ".join(cells)))
    return lines


def update_readme(readme, rows, st):
    """update_readme: replace the block between the side-by-side markers of the README."""
    begin, end = "<!-- side-by-side:begin -->", "<!-- side-by-side:end -->"
    with open(readme) as f:
        text = f.read()
    if begin not in text or end not in text:
        sys.stderr.write("report.py: no side-by-side markers in %s: not updated\n" % readme)
        return
    runs = st.get("runs", "?")
    block = [begin, "",
             "Measured %s (%s to %s) on %s, load average %s at the start and %s at the end; "
             "%s run(s) per figure, pgbench %s; %s failed run(s). Median of the runs, and in brackets "
             "the ratio to pg_autopilot's median for the same group size. Every figure with its min–max, "
             "and the plots: [`bench/results/results.md`](bench/results/results.md)." % (
                 st.get("date", "?"), st.get("started", "?"), st.get("finished", "?"), st.get("machine", "?"),
                 st.get("load_at_start", "?"), st.get("load_at_end", "?"), runs, st.get("pgbench", "?"),
                 st.get("failed_runs", "?")), ""]
    warn = []
    try:
        busy = float(st.get("load_at_start", "0").split()[0]) > 1.0 or float(st.get("load_at_end", "0").split()[0]) > 1.0
    except ValueError:
        busy = False
    if busy:
        warn.append("the machine was busy (load average above 1 on %s cores: other work shared them), "
                    "which slows and scatters every system's figures" % st.get("machine", "?").split()[0])
    if runs != "?" and int(runs) < 5:
        warn.append("fewer than 5 runs per figure (a development run: `--runs %s`%s)" % (
            runs, ", small pgbench settings" if "scale 1," in st.get("pgbench", "") else ""))
    if warn:
        block += ["**Warning:** " + "; ".join(warn) + ". Rerun `make bench` on an idle machine for figures to quote.", ""]
    block += summary(rows, st.get("nodes", "2 3").split())
    block += ["", end]
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(readme, "w") as f:
        f.write(head + "\n".join(block) + tail)


def median_run(rows, system, nodes, scenario):
    vals = values(rows, system, nodes, scenario, PRIMARY_METRIC[scenario])
    if not vals:
        return None
    med = statistics.median_low(sorted(vals.values()))
    return min(r for r, v in vals.items() if v == med)


def read_log(path):
    pts = []
    if not os.path.exists(path):
        return pts
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 4 and p[0] in ("ack", "fail"):
                pts.append((p[0], float(p[2]), float(p[3])))
    return pts


def plot(rows, work, out, scenario, nodes_list):
    """plot: one PNG, a row per (system, size), a dot per write attempt (end time), two panels."""
    series = []
    for n in nodes_list:
        for s, label in SYSTEMS:
            if s == "plain":
                continue
            r = median_run(rows, s, n, scenario)
            if r is None:
                continue
            base = "%s-n%s-%s-r%d" % (s, n, scenario, r)
            series.append(("%s, %s nodes (run %d)" % (label, n, r), read_log(os.path.join(work, "raw", base + ".log")),
                           values(rows, s, n, scenario, PRIMARY_METRIC[scenario])[r]))
            if scenario == "isolate":
                series.append(("  old primary, direct", read_log(os.path.join(work, "raw", base + ".old.log")), None))
    if not series:
        return None
    dat_dir = tempfile.mkdtemp(prefix="sbs-plot-")
    worst = max([v for _, _, v in series if v is not None] + [1000.0]) / 1000.0
    xmax = worst + 3.0
    xmin = -2.0
    files = []
    for i, (label, pts, _) in enumerate(series):
        y = len(series) - i
        fns = {}
        for kind in ("ack", "fail"):
            fns[kind] = os.path.join(dat_dir, "%s-%d-%s.dat" % (scenario, i, kind))
            with open(fns[kind], "w") as f:
                f.write("# start, end of the attempt (s), row\n")
                for k, t0, t1 in pts:
                    if k == kind and t1 >= xmin - 1 and t0 <= xmax + 1:
                        f.write("%.3f %.3f %d\n" % (t0, t1, y))
        files.append((fns, label, y))
    title = {"kill": "kill -9 of the primary (postmaster + agent) at t = 0",
             "isolate": "Primary network-isolated at t = 0: writes through the URI and, below, straight to the old primary",
             "switchover": "Planned switchover called at t = 0"}[scenario]
    title = title[0].upper() + title[1:]
    png = os.path.join(out, "%s.png" % scenario)
    zoom = scenario != "isolate"
    panel = 80 + 30 * len(series)
    gp = ["set terminal pngcairo size 1100,%d font 'sans,9' noenhanced" % (60 + panel * (2 if zoom else 1)),
          "set output '%s'" % png,
          "set multiplot layout %d,1 title \"%s\\nEach bar is one write attempt, from its start to its end "
          "(median run; green acknowledged, red failed)\"" % (2 if zoom else 1, title),
          "set ytics (%s)" % ", ".join("'%s' %d" % (l.replace("'", ""), y) for _, l, y in files),
          "set yrange [0.4:%d.6]" % len(series), "set grid xtics", "unset key",
          "set xlabel 'seconds since the %s'" % ("call" if scenario == "switchover" else "fault")]
    plots = []
    for fns, _, _ in files:
        plots.append("'%s' using 1:($3+0.12):($2-$1):(0) with vectors nohead lw 6 lc rgb '#1a9850'" % fns["ack"])
        plots.append("'%s' using 1:($3-0.12):($2-$1):(0) with vectors nohead lw 6 lc rgb '#d73027'" % fns["fail"])
    gp.append("set xrange [%g:%g]" % (xmin, xmax))
    gp.append("set title 'whole window'")
    gp.append("plot " + ", ".join(plots))
    if zoom:
        gp.append("set xrange [-0.5:3]")
        gp.append("set title 'first 3 seconds'")
        gp.append("plot " + ", ".join(plots))
    gp.append("unset multiplot")
    script = os.path.join(dat_dir, "%s.gp" % scenario)
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    try:
        subprocess.run(["gnuplot", script], check=True)
    finally:
        shutil.rmtree(dat_dir, ignore_errors=True)
    return png


def main(argv):
    readme = None
    if len(argv) == 3 and argv[1] == "--readme":
        readme = argv[2]
    elif len(argv) != 1:
        sys.stderr.write("usage: report.py DIR [--readme README.md]\n")
        return 2
    work = out = argv[0]
    os.makedirs(out, exist_ok=True)
    rows, st = load(work)
    rows = add_tps_pct(rows)
    nodes_list = st.get("nodes", "2 3").split()
    runs = int(st.get("runs", "5"))
    scen = [s for s in st.get("scenarios", "kill isolate switchover tps").split() if s in FIGURES]
    md = ["# Side by side: pg_autopilot, pg_auto_failover, Patroni", "",
          "Generated by `make bench` (`bench/peers/side_by_side.sh`, then `bench/peers/report.py`) "
          "on %s (%s to %s)." % (st.get("date", "?"), st.get("started", "?"), st.get("finished", "?")), "",
          "* Machine: %s; load average %s at the start, %s at the end." % (
              st.get("machine", "?"), st.get("load_at_start", "?"), st.get("load_at_end", "?")),
          "* PostgreSQL %s; pg_auto_failover %s (Debian); Patroni %s with etcd %s (Debian, one etcd member)." % (
              st.get("postgresql", "?"), st.get("pg_auto_failover", "?"), st.get("patroni", "?"), st.get("etcd", "?")),
          "* %s runs per figure, each on a fresh group (control plane + N nodes), runs of the systems "
          "interleaved. Each cell: median **in bold**, (min–max), and “N×”: the ratio of the median to "
          "pg_autopilot's for the same group size (counts of writes get no ratio). Default settings of every system (Patroni: asynchronous, as its default, "
          "except in the pgbench scenario where `synchronous_mode: on` gives every system one synchronous standby)." % runs,
          "* Writer: one new connection and one `INSERT` per attempt through the system's multi-host URI "
          "(`target_session_attrs=read-write`, `connect_timeout=2`, 5 s per attempt, 10 ms pause after a failure).",
          "* pgbench: %s, against the primary; CPU = utime+stime (children included) over the pgbench run; "
          "memory = private resident memory (Private_Clean + Private_Dirty) at its end." % st.get("pgbench", "?"),
          "* Runs that failed: %s." % st.get("failed_runs", "?"), ""]
    for sc in scen:
        lines, notes = table(rows, sc, nodes_list, runs)
        md += ["## " + TITLES[sc], ""] + lines + [""]
        if sc in PRIMARY_METRIC:
            png = plot(rows, work, out, sc, nodes_list)
            if png:
                md += ["![%s](%s)" % (TITLES[sc], os.path.basename(png)), ""]
        md += ["* " + n for n in notes] + ([""] if notes else [])
    md += ["Figures per run: `results.tsv` (system, nodes, scenario, run, metric, value); settings: `settings`; "
           "the plotted writer logs: `raw/`.", ""]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(md))
    if readme:
        update_readme(readme, rows, st)
    # Keep only the plotted (median) runs' writer logs.
    keep = set()
    for sc in PRIMARY_METRIC:
        for n in nodes_list:
            for s, _ in SYSTEMS:
                r = median_run(rows, s, n, sc) if sc in scen else None
                if r is not None:
                    keep |= {"%s-n%s-%s-r%d%s" % (s, n, sc, r, x) for x in (".log", ".old.log")}
    raw = os.path.join(out, "raw")
    if os.path.isdir(raw):
        for name in os.listdir(raw):
            if name not in keep:
                os.remove(os.path.join(raw, name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
