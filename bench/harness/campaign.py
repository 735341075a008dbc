#!/usr/bin/python3
# bench/harness/campaign.py — the fault campaign: a pg_autopilot group (monitor
# + N nodes, each in its own network namespace) under load, a seeded random
# sequence of faults and heals, and the checker's verdict.  Entry point:
# bench/campaign (see bench/harness/README.md for the fault model).
#
# Two processes:
# * outer (root, caller's namespaces): owns every resource — scratch folder,
#   namespaces (netlab.Lab), tmpfs volumes — and tears all of it down in
#   `finally`, also when the inner part fails, hangs (--timeout) or is killed;
# * inner (`--inner`, run inside the lab's "client" namespace): forms the
#   group, runs writer, probers and rounds, prints the verdict.  It reaches the
#   servers over the lab network and runs faults through `ip netns exec`.
#
# Exit codes: 0 verdict passed, 1 failed, 77 skipped (no root, no netns/nft).
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)

import netlab  # noqa: E402

RUN_USER = os.environ.get("CAMPAIGN_USER", "postgres")


def stamp(t):
    return time.strftime("%H:%M:%S", time.localtime(t)) + ".%03d" % int((t % 1) * 1000)


def say(*a):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), " ".join(str(x) for x in a)), flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/campaign", description="seeded fault campaign on a pg_autopilot group")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--seed", type=int, default=None, help="default: random, printed")
    p.add_argument("--nodes", type=int, default=3, help="data nodes (falls back to 2 when a third is refused)")
    p.add_argument("--hold-min", type=float, default=2.0, help="shortest time a fault stays before its heal (s)")
    p.add_argument("--hold-max", type=float, default=12.0, help="longest time a fault stays before its heal (s)")
    p.add_argument("--recovery-timeout", type=float, default=180.0, help="heal -> settled group, else the round fails (s)")
    p.add_argument("--settle", type=float, default=5.0,
                   help="a recovered group must stay settled this long before the next round (s)")
    p.add_argument("--cover", action="store_true",
                   help="the first rounds draw every eligible fault kind once (seeded order), then at random")
    p.add_argument("--faults", default="", help="comma-separated fault kinds to draw from (default: all that apply)")
    p.add_argument("--timeout", type=float, default=0, help="abort the whole campaign after this many s (0: none)")
    p.add_argument("--strict", action="store_true",
                   help="also fail on a failover caused by a fault on the monitor or a standby")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, data) after the run")
    p.add_argument("--probe-interval", type=float, default=0.05)
    p.add_argument("--inner", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------
# outer part


def outer(args):
    try:
        netlab.check_support()
        import pwd
        pwd.getpwnam(RUN_USER)
        import importlib.util
        if importlib.util.find_spec("psycopg2") is None:
            raise ImportError("psycopg2")
    except netlab.Unsupported as e:
        print("campaign: skipped: %s" % e, flush=True)
        return netlab.SKIP
    except KeyError:
        print("campaign: skipped: no user %s to run PostgreSQL as" % RUN_USER, flush=True)
        return netlab.SKIP
    except ImportError:
        print("campaign: skipped: python3-psycopg2 is not installed (scripts/deps.sh)", flush=True)
        return netlab.SKIP
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1 << 31)
    scratch = tempfile.mkdtemp(prefix="pg_autopilot-campaign.", dir="/tmp")
    os.chmod(scratch, 0o755)
    lab = None
    group = None
    inner = None
    rc = 1

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, on_signal)
    try:
        names = ["monitor"] + ["node%d" % i for i in range(1, args.nodes + 1)] + ["client"]
        lab = netlab.Lab.create(os.path.join(scratch, "lab"), names)
        import pggroup
        group = pggroup.Group(lab, scratch, names[1:-1], RUN_USER, log=say)
        group.prepare_dirs()
        say("campaign: seed %d, %d rounds, %d nodes, scratch %s, namespaces %s-*" %
            (args.seed, args.rounds, args.nodes, scratch, lab.st["prefix"]))
        argv = [sys.executable, "-B", os.path.abspath(__file__), "--inner", scratch] + inner_args(args)
        inner = subprocess.Popen(lab.exec_argv("client", argv), start_new_session=True)
        deadline = time.time() + args.timeout if args.timeout else None
        while inner.poll() is None:
            if deadline and time.time() > deadline:
                say("campaign: aborted after --timeout %ds" % args.timeout)
                break
            time.sleep(0.2)
        rc = inner.returncode if inner.returncode is not None else 1
    except KeyboardInterrupt as e:
        say("campaign: interrupted (%s); tearing down" % e)
        rc = 1
    except Exception:
        traceback.print_exc()
        rc = 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)
        if inner is not None and inner.poll() is None:
            try:
                os.killpg(inner.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            inner.wait()
        if rc not in (0, netlab.SKIP):
            show_log_tails(scratch)
        if group is not None:
            group.teardown()
        if lab is not None:
            lab.destroy()
        if args.keep:
            say("campaign: scratch kept in %s" % scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return rc


def inner_args(args):
    out = []
    for k, v in vars(args).items():
        if k == "inner" or v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        out += [flag] if v is True else [flag, str(v)]
    return out


def show_log_tails(scratch):
    d = os.path.join(scratch, "logs")
    if not os.path.isdir(d):
        return
    for f in sorted(os.listdir(d)):
        if not f.endswith(".log"):
            continue
        p = os.path.join(d, f)
        try:
            with open(p, errors="replace") as fh:
                lines = fh.readlines()
        except OSError:
            continue
        print("---- last lines of %s" % p)
        sys.stdout.write("".join("  | " + line for line in lines[-25:]))
    sys.stdout.flush()


# ---------------------------------------------------------------------------
# inner part: the fault catalogue
#
# Each fault: (kind, role, applies(ctx), apply(ctx, target) -> undo state,
# heal(ctx, target, state)).  role: "primary", "standby", "node" (either),
# "monitor".  Only one fault is active at a time, and the next round starts
# from a settled group: see README.md, "Fault model".


class Ctx:
    def __init__(self, group, lab, rng, args):
        self.group = group
        self.lab = lab
        self.rng = rng
        self.args = args
        self.disk_filled = set()


def f_kill9(ctx, t):
    ctx.group.kill9(t)


def h_kill9(ctx, t, _):
    ctx.group.restart_after_kill(t)


def f_freeze(ctx, t):
    ctx.group.freeze(t)


def h_freeze(ctx, t, _):
    ctx.group.thaw(t)


def f_isolate(ctx, t):
    # The client keeps reaching every node: the application may still see an
    # isolated primary, the worst case for two writable nodes.
    return ctx.lab.isolate(t, keep=["client"])


def f_cut_monitor(ctx, t):
    return ctx.lab.cut(t, "monitor")


def f_cut_peer(ctx, t):
    others = [n for n in ctx.group.nodes if n != t]
    return ctx.lab.cut(t, ctx.rng.choice(others))


def f_loss(ctx, t):
    return ctx.lab.loss(t, ctx.rng.choice([10, 20, 30, 50]), keep=["client"])


def f_delay(ctx, t):
    return ctx.lab.delay(t, ctx.rng.choice([20, 50, 100, 200]))


def h_net(ctx, t, fid):
    ctx.lab.heal(fid)


def f_disk(ctx, t):
    ctx.disk_filled.add(t)
    return ctx.group.fill_disk(t)


def h_disk(ctx, t, _):
    ctx.group.free_disk(t)
    # A standby's startup process that cannot extend a file (WAL redo) exits
    # with FATAL and the postmaster shuts down ("shutting down due to startup
    # process failure"): no keeper is left to act.  Start it again, as a
    # service manager (systemd Restart=on-failure) would.
    if ctx.group.postmaster_pid(t) is None:
        say("  %s shut down while its disk was full: starting it (as a service manager would)" % t)
        ctx.group.restart_after_kill(t)


def f_monitor_down(ctx, t):
    ctx.group.pg_ctl("monitor", "-m", "fast", "-t", "60", "-w", "stop")


def h_monitor_down(ctx, t, _):
    ctx.group.start("monitor")


def f_monitor_restart(ctx, t):
    ctx.group.restart_monitor()


def h_none(ctx, t, _):
    pass


def f_sabotage_promote(ctx, t):
    # Not a fault of the model: promotes a standby behind the monitor's back,
    # to show that the checker catches two writable nodes (never drawn unless
    # named in --faults; the campaign is expected to FAIL).
    ctx.group.pg_ctl(t, "promote", "-w")


FAULTS = [
    ("kill9_primary", "primary", f_kill9, h_kill9),
    ("kill9_standby", "standby", f_kill9, h_kill9),
    ("freeze_primary", "primary", f_freeze, h_freeze),
    ("freeze_standby", "standby", f_freeze, h_freeze),
    ("isolate_primary", "primary", f_isolate, h_net),
    ("isolate_standby", "standby", f_isolate, h_net),
    ("cut_primary_monitor", "primary", f_cut_monitor, h_net),
    ("cut_standby_monitor", "standby", f_cut_monitor, h_net),
    ("cut_primary_standby", "primary", f_cut_peer, h_net),
    ("cut_standby_peer", "standby", f_cut_peer, h_net),
    ("loss_primary", "primary", f_loss, h_net),
    ("loss_standby", "standby", f_loss, h_net),
    ("delay_primary", "primary", f_delay, h_net),
    ("delay_standby", "standby", f_delay, h_net),
    ("disk_full_standby", "standby", f_disk, h_disk),
    ("isolate_monitor", "monitor", f_isolate, h_net),
    ("monitor_down", "monitor", f_monitor_down, h_monitor_down),
    ("monitor_restart", "monitor", f_monitor_restart, h_none),
    ("sabotage_promote_standby", "standby", f_sabotage_promote, h_none),
]
SELF_CHECKS = {"sabotage_promote_standby"}
# A fault on the monitor or on a standby never justifies a failover
# (docs/failover.md: "the monitor going away never causes a failover").
NO_FAILOVER_ROLES = {"standby", "monitor"}


def eligible_faults(args, lab, nnodes):
    chosen = [f for f in FAULTS if f[0] not in SELF_CHECKS]
    if args.faults:
        want = set(args.faults.split(","))
        unknown = want - set(f[0] for f in FAULTS)
        if unknown:
            raise SystemExit("campaign: unknown fault kinds: %s" % ", ".join(sorted(unknown)))
        chosen = [f for f in FAULTS if f[0] in want]
    if not lab.netem:
        if any(f[0].startswith("delay_") for f in chosen):
            say("campaign: this kernel has no netem qdisc: latency faults (delay_*) left out")
        chosen = [f for f in chosen if not f[0].startswith("delay_")]
    if nnodes < 3:
        # cut_standby_peer with one standby is cut_primary_standby.
        chosen = [f for f in chosen if f[0] != "cut_standby_peer"]
    return chosen


# ---------------------------------------------------------------------------
# inner part: the run


def wait_for(pred, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception:
            pass
        time.sleep(step)
    return None


def wait_state(group, node, state, timeout=180):
    return wait_for(lambda: group.show_state().get(node, (None, None))[:2] == (state, state), timeout, 0.2)


def form_group(group, nnodes):
    """form_group: monitor, node1 single, node2.. clone and join; returns the node list actually formed."""
    say("forming the group: monitor")
    group.create_monitor()
    for n in group.nodes:
        group.create_node(n)
    group.start("node1")
    if not wait_state(group, "node1", "single"):
        raise RuntimeError("node1 did not become single")
    group.start("node2")
    if not wait_for(lambda: group.settled(["node1", "node2"])[0], 240, 0.2):
        raise RuntimeError("node1 + node2 did not settle as primary/secondary: %s" % group.show_state())
    formed = ["node1", "node2"]
    for n in group.nodes[2:]:
        group.start(n)
        ok = wait_for(lambda: group.settled(formed + [n])[0] or refused(group, n), 240, 0.2)
        if ok is True or (ok and group.settled(formed + [n])[0]):
            formed.append(n)
            continue
        why = ok if isinstance(ok, str) else "did not join within 240 s"
        say("campaign: %s was not accepted as a third node (%s): the monitor refuses more than one standby "
            "until issue 4 lands; FALLING BACK TO %d NODES" % (n, why, len(formed)))
        group.pg_ctl(n, "-m", "immediate", "stop", check=False)
        break
    group.nodes = formed
    return formed


def refused(group, n):
    """refused: the refusal line of n's log when the monitor refused to register it, else None."""
    try:
        with open(group.logfile(n), errors="replace") as f:
            for line in f:
                # The keeper logs "register_node failed on the monitor: ... cannot register <node>:
                # ... already has two nodes" (group_rules.cpp before issue 4).
                if "register_node failed" in line or "cannot register" in line:
                    if n not in group.show_state():
                        return line.strip()
    except OSError:
        pass
    return None


def wait_recovered(group, writer, t_heal, timeout, settle):
    """wait_recovered: time at which the group was settled with a writer ack after t_heal, and stayed
    settled for `settle` seconds (the monitor may notice a short fault only after node_timeout); None."""
    deadline = t_heal + timeout
    since = None
    while time.time() < deadline:
        ok = group.settled()[0] and any(a[2] > t_heal for a in writer.acks[-50:])
        now = time.time()
        if ok and since is None:
            since = now
        elif not ok:
            since = None
        if since is not None and now - since >= settle:
            return since
        time.sleep(0.1)
    return None


def roles(group):
    st = group.show_state()
    prim = [n for n, s in st.items() if s[0] == "primary"]
    return prim[0], [n for n in group.nodes if n != prim[0]]


def inner(args):
    import pggroup
    import workload
    import checker
    scratch = args.inner
    lab = netlab.Lab.load(os.path.join(scratch, "lab"))
    nodes = ["node%d" % i for i in range(1, args.nodes + 1)]
    group = pggroup.Group(lab, scratch, nodes, RUN_USER, log=say)
    rng = random.Random(args.seed)
    ctx = Ctx(group, lab, rng, args)
    results = {"seed": args.seed, "rounds": [], "nodes": None}
    ok = True

    checker.selftest()  # the verdict's own logic first: a broken checker must not pass a campaign
    formed = form_group(group, args.nodes)
    results["nodes"] = len(formed)
    say("group formed: %s" % ", ".join("%s=%s" % (n, s[0]) for n, s in sorted(group.show_state().items())))
    faults = eligible_faults(args, lab, len(formed))
    # --cover: every kind once first, so a short run (make test) still meets
    # each fault; the order is drawn from a stream of its own so that the
    # random rounds of a seed stay what they were without --cover.
    cover_order = list(faults)
    random.Random(args.seed if args.seed is not None else 0).shuffle(cover_order)
    say("fault kinds: %s" % ", ".join(f[0] for f in faults))

    uri = group.formation_uri()
    say("formation URI: %s" % uri)
    c = group.connect(roles(group)[0])
    c.cursor().execute(workload.SCHEMA)
    c.close()
    addr_to_node = {lab.addr(n): n for n in formed}
    logs = os.path.join(scratch, "logs")
    writer = workload.Writer(workload.with_params(uri, user=RUN_USER), os.path.join(logs, "writer.acks"), addr_to_node)
    probers = [workload.Prober(n, group.dsn(n, timeout=1), os.path.join(logs, "probe-%s.acks" % n),
                               args.probe_interval) for n in formed]
    writer.start()
    for p in probers:
        p.start()
    if not wait_for(lambda: len(writer.acks) > 0, 60):
        raise RuntimeError("the writer got no acknowledgement within 60 s")

    failed_round = None
    for r in range(1, args.rounds + 1):
        prim, standbys = roles(group)
        if args.cover and r <= len(cover_order):
            kind, role, fapply, fheal = cover_order[r - 1]
        else:
            kind, role, fapply, fheal = rng.choice(faults)
        target = {"primary": prim, "standby": rng.choice(standbys), "monitor": "monitor"}[role]
        hold = round(rng.uniform(args.hold_min, args.hold_max), 1)
        say("round %d/%d: %s on %s (primary %s), hold %.1f s" % (r, args.rounds, kind, target, prim, hold))
        t_fault = time.time()
        state = fapply(ctx, target)
        time.sleep(max(0.0, t_fault + hold - time.time()))
        t_heal = time.time()
        fheal(ctx, target, state)
        say("  healed (fault at %s, heal at %s)" % (stamp(t_fault), stamp(t_heal)))
        rec = wait_recovered(group, writer, t_heal, args.recovery_timeout, args.settle)
        st = None
        try:
            st = group.show_state()
        except Exception as e:
            st = str(e)
        wacks = [a[2] for a in writer.acks if a[2] >= t_fault]
        rinfo = {"round": r, "fault": kind, "role": role, "target": target, "primary_before": prim, "hold_s": hold,
                 "t_fault": t_fault, "t_heal": t_heal}
        if rec:
            new_prim = group.settled()[1]
            rinfo.update(recovered=True, recovery_ms=int((rec - t_heal) * 1000), primary_after=new_prim,
                         longest_write_gap_ms=int(checker.max_gap(wacks, t_fault, rec) * 1000))
            say("  recovered %d ms after the heal; primary %s; longest write gap %d ms" %
                (rinfo["recovery_ms"], new_prim, rinfo["longest_write_gap_ms"]))
            if new_prim != prim:
                first = [a[2] for a in writer.acks if a[2] > t_fault and a[3] == new_prim]
                if first:
                    rinfo["failover_first_write_ms"] = int((first[0] - t_fault) * 1000)
                    say("  failover: first write on %s %d ms after the fault" % (new_prim, rinfo["failover_first_write_ms"]))
            if role in NO_FAILOVER_ROLES and new_prim != prim:
                rinfo["unexpected_failover"] = True
                say("  UNEXPECTED FAILOVER: a fault on the %s moved the primary from %s to %s" % (role, prim, new_prim))
        else:
            rinfo.update(recovered=False, state=st)
            say("  NOT RECOVERED within %d s after the heal: %s" % (args.recovery_timeout, st))
            failed_round = r
        results["rounds"].append(rinfo)
        if failed_round:
            ok = False
            break

    # Stop the load, then the verdict from the final primary.
    time.sleep(0.5)
    writer.stop_flag.set()
    for p in probers:
        p.stop_flag.set()
    writer.join(10)
    for p in probers:
        p.join(10)
    final = wait_for(lambda: group.settled()[1], 60, 0.2) or roles(group)[0]
    c = group.connect(final)
    present_w, present_p = checker.read_final(c)
    c.close()
    all_probe_acks = [a for p in probers for a in p.acks]
    lost_w = checker.lost(writer.acks, present_w)
    lost_p = checker.lost(all_probe_acks, present_p)
    both = checker.overlaps(writer.acks + all_probe_acks, merge_gap=max(1.0, 10 * args.probe_interval))
    crashes = checker.scan_logs({n: group.logfile(n) for n in formed + ["monitor"]}, ctx.disk_filled)
    rec_ms = [x["recovery_ms"] for x in results["rounds"] if x.get("recovered")]
    results.update(final_primary=final, writer_acks=len(writer.acks), writer_fails=writer.fails,
                   probe_acks=len(all_probe_acks), lost_writer=[a[0] for a in lost_w], lost_probe=[a[0] for a in lost_p],
                   two_writable=[[a, b, c_, d] for a, b, c_, d in both], crash_lines=crashes)
    with open(os.path.join(scratch, "logs", "results.json"), "w") as f:
        json.dump(results, f, indent=1)

    say("==== verdict (seed %d, %d nodes, %d/%d rounds run)" % (args.seed, len(formed), len(results["rounds"]),
                                                                      args.rounds))
    say("acknowledged: %d writer ids, %d probe commits; final primary %s" % (len(writer.acks), len(all_probe_acks), final))
    for x in results["rounds"]:
        say("  round %3d %-20s %-6s hold %4.1fs  %s" % (x["round"], x["fault"], x["target"], x["hold_s"],
            "recovery %6d ms, write gap %6d ms, primary %s -> %s" % (x["recovery_ms"], x["longest_write_gap_ms"],
             x["primary_before"], x["primary_after"]) if x["recovered"] else "NOT RECOVERED"))
    if rec_ms:
        s = sorted(rec_ms)
        say("recovery after heal: median %d ms, max %d ms" % (s[len(s) // 2], s[-1]))
    verdicts = [("zero lost acknowledged commits", not lost_w and not lost_p,
                 "lost writer ids %s, lost probe commits %s" % ([a[0] for a in lost_w][:20], [a[0] for a in lost_p][:20])),
                ("never two writable nodes", not both, "; ".join(
                    "%s %s-%s and %s %s-%s" % (a, stamp(w1[0]), stamp(w1[1]), b, stamp(w2[0]), stamp(w2[1])) for a, w1, b, w2 in both[:10])),
                ("recovery after every heal", failed_round is None, "round %s did not recover" % failed_round),
                ("no crash in server logs", not crashes, "; ".join("%s: %s" % c_ for c_ in crashes[:10]))]
    unexpected = [x for x in results["rounds"] if x.get("unexpected_failover")]
    if args.strict:
        verdicts.append(("no failover caused by a monitor or standby fault", not unexpected,
                         ", ".join("round %d %s" % (x["round"], x["fault"]) for x in unexpected)))
    elif unexpected:
        say("NOTE: failovers caused by a monitor or standby fault (a FAIL with --strict): %s" %
            ", ".join("round %d %s (%s -> %s)" % (x["round"], x["fault"], x["primary_before"], x["primary_after"])
                      for x in unexpected))
    for name, good, detail in verdicts:
        say("%s: %s%s" % ("PASS" if good else "FAIL", name, "" if good else " — " + detail))
        ok = ok and good
    if not ok:
        try:
            for e in group.events()[-40:]:
                print("  event", *e)
        except Exception:
            pass
        say("campaign FAILED (reproduce: bench/campaign --seed %d --rounds %d --nodes %d)" %
            (args.seed, args.rounds, args.nodes))
    else:
        say("campaign PASSED")
    return 0 if ok else 1


def main():
    args = parse_args(sys.argv[1:])
    if args.inner:
        try:
            return inner(args)
        except Exception:
            traceback.print_exc()
            return 1
    return outer(args)


if __name__ == "__main__":
    sys.exit(main())
