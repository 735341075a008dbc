#!/usr/bin/python3
# bench/harness/pggroup.py — a pg_autopilot group whose monitor and nodes each
# run in their own network namespace (netlab.Lab), and the process and disk
# faults on them: kill -9 of a postmaster, SIGSTOP/SIGCONT of all of a node's
# processes, a full data volume, a monitor restart.
#
# Invariants:
# * Every server runs as the unprivileged run user (postgres) inside its
#   namespace: `ip netns exec <ns> runuser -u postgres -- pg_ctl ...`.
# * Each node's PGDATA and its sibling folders (<PGDATA>.autopilot, .clone,
#   .old-*: same file system, the keeper renames between them) live on a
#   size-limited tmpfs of its own, <scratch>/vol/<node>, so that a node's disk
#   can be filled without touching anything else.  Logs live outside it.
# * All listen on the namespace address, port 5432, no unix socket; the
#   monitor sees the nodes at the addresses set as pg_autopilot.hostname, so
#   formation_uri() lists the namespace addresses.
# * Group methods that query a server run psycopg2 in the calling process:
#   the caller must be inside a namespace that reaches them (the campaign runs
#   its inner part in the "client" namespace).  Process, disk and pg_ctl
#   methods work from any namespace.
# * Nothing here removes anything: teardown() stops the servers and unmounts;
#   the caller removes the scratch folder.
import os
import pwd
import signal
import subprocess
import time

import psycopg2

PORT = 5432
VOLUME_SIZE = "512M"


def pg_bindir():
    return subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()


def children_of(pids):
    """children_of: the given PIDs and all their descendants (from /proc)."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            pass
    keep = set(p for p in pids if p in parent)
    changed = True
    while changed:
        changed = False
        for p, pp in parent.items():
            if p not in keep and pp in keep:
                keep.add(p)
                changed = True
    return keep


class Group:
    """Group: monitor + nodes of one formation in lab namespaces (names: 'monitor', node names)."""

    def __init__(self, lab, scratch, nodes, run_user="postgres", log=print):
        self.lab = lab
        self.scratch = scratch
        self.nodes = list(nodes)
        self.user = run_user
        self.bindir = pg_bindir()
        self.log = log
        self.pw = pwd.getpwnam(run_user)
        self.frozen = set()

    # --- paths ------------------------------------------------------------
    def datadir(self, name):
        if name == "monitor":
            return os.path.join(self.scratch, "monitor", "data")
        return os.path.join(self.volume(name), "data")

    def volume(self, name):
        return os.path.join(self.scratch, "vol", name)

    def logfile(self, name):
        return os.path.join(self.scratch, "logs", name + ".log")

    def dsn(self, name, db="postgres", timeout=2):
        return "host=%s port=%d dbname=%s user=%s connect_timeout=%d application_name=harness" % (
            self.lab.addr(name), PORT, db, self.user, timeout)

    # --- running things as the server user in a namespace ---------------------
    def as_user(self, name, argv, check=True, timeout=None):
        env = {"PATH": "%s:/usr/bin:/bin" % self.bindir, "HOME": self.scratch, "LC_ALL": "C.UTF-8"}
        full = self.lab.exec_argv(name, argv, user=self.user, env=env)
        p = subprocess.run(full, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s" % (" ".join(argv), p.returncode, p.stdout, p.stderr))
        return p

    def prepare_dirs(self):
        """prepare_dirs: scratch layout; one tmpfs volume of VOLUME_SIZE per node (root: mount)."""
        for d in ("logs", "monitor", "vol"):
            os.makedirs(os.path.join(self.scratch, d), exist_ok=True)
        for n in self.nodes:
            v = self.volume(n)
            os.makedirs(v, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % VOLUME_SIZE, "tmpfs_" + n, v],
                           check=True)
        for d in [self.scratch] + [os.path.join(self.scratch, d) for d in ("logs", "monitor", "vol")] + [
            self.volume(n) for n in self.nodes]:
            os.chown(d, self.pw.pw_uid, self.pw.pw_gid)

    def subnet_hba(self):
        return ("host all all %s trust\nhost replication all %s trust\n" % (self.lab.st["subnet"], self.lab.st["subnet"]))

    def initdb(self, name, conf):
        d = self.datadir(name)
        self.as_user(name, ["initdb", "-D", d, "-A", "trust", "-U", self.user])
        with open(os.path.join(d, "postgresql.conf"), "a") as f:
            f.write("\n# bench/harness\n" + conf)
        with open(os.path.join(d, "pg_hba.conf"), "a") as f:
            f.write(self.subnet_hba())

    def pg_ctl(self, name, *args, check=True, timeout=300):
        return self.as_user(name, ["pg_ctl", "-D", self.datadir(name)] + list(args), check=check, timeout=timeout)

    def start(self, name):
        # -w: until the postmaster is ready (postmaster.pid status); no connection needed.
        return self.pg_ctl(name, "-l", self.logfile(name), "-w", "-t", "120", "start")

    def common_conf(self, name):
        # The namespace's own loopback too: the monitor's health-check worker reaches its
        # database at localhost (it stops probing, with one LOG line, when nothing listens there).
        return ("listen_addresses = '%s,127.0.0.1'\nport = %d\nunix_socket_directories = ''\n"
                "log_line_prefix = '%%m [%%p] %%b '\nmax_connections = 50\n" % (self.lab.addr(name), PORT))

    # --- monitor ------------------------------------------------------------------
    def create_monitor(self):
        self.initdb("monitor", self.common_conf("monitor") + "shared_preload_libraries = 'pg_autopilot_monitor'\n")
        self.start("monitor")
        for db, sql in (("postgres", "CREATE DATABASE pg_autopilot"), ("pg_autopilot", "CREATE EXTENSION pg_autopilot_monitor")):
            c = self.connect("monitor", db)
            try:
                c.cursor().execute(sql)
            finally:
                c.close()

    def restart_monitor(self):
        self.pg_ctl("monitor", "-m", "fast", "-t", "60", "-l", self.logfile("monitor"), "-w", "restart")

    # --- nodes ----------------------------------------------------------------------
    def create_node(self, name):
        conf = self.common_conf(name) + (
            "wal_log_hints = on\n"
            "max_wal_size = 256MB\n"  # the volume is small; the writer's WAL is tiny anyway
            "shared_preload_libraries = 'pg_autopilot'\n"
            "pg_autopilot.monitor = 'host=%s port=%d dbname=pg_autopilot user=autopilot_node'\n"
            "pg_autopilot.node_name = '%s'\n"
            "pg_autopilot.hostname = '%s'\n" % (self.lab.addr("monitor"), PORT, name, self.lab.addr(name)))
        self.initdb(name, conf)

    def postmaster_pid(self, name):
        try:
            with open(os.path.join(self.datadir(name), "postmaster.pid")) as f:
                pid = int(f.readline())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def processes(self, name):
        pm = self.postmaster_pid(name)
        return children_of([pm]) if pm else set()

    def kill9(self, name):
        """kill9: SIGKILL of the postmaster only (its children notice and exit); returns its PID."""
        pm = self.postmaster_pid(name)
        if pm:
            self._children_at_kill = children_of([pm]) - {pm}
            os.kill(pm, signal.SIGKILL)
        return pm

    def wait_gone(self, pids, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            alive = [p for p in pids if os.path.exists("/proc/%d" % p)]
            if not alive:
                return True
            time.sleep(0.05)
        return False

    def restart_after_kill(self, name):
        """restart_after_kill: wait until the killed postmaster's children are gone, then start it."""
        self.wait_gone(getattr(self, "_children_at_kill", set()))
        p = self.pg_ctl(name, "-l", self.logfile(name), "-w", "-t", "120", "start", check=False)
        if p.returncode != 0 and self.postmaster_pid(name) is None:
            raise RuntimeError("%s did not restart: %s%s" % (name, p.stdout, p.stderr))

    def freeze(self, name):
        """freeze: SIGSTOP of the postmaster first (no new children), then of every descendant."""
        pm = self.postmaster_pid(name)
        if not pm:
            return []
        os.kill(pm, signal.SIGSTOP)
        procs = children_of([pm])
        for p in procs:
            try:
                os.kill(p, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        self.frozen.add(name)
        return sorted(procs)

    def thaw(self, name):
        pm = self.postmaster_pid(name)
        procs = children_of([pm]) if pm else set()
        for p in sorted(procs - {pm}) + ([pm] if pm else []):
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.frozen.discard(name)

    def fill_disk(self, name):
        """fill_disk: a ballast file that takes every free byte of name's volume; returns its size."""
        path = os.path.join(self.volume(name), "ballast")
        st = os.statvfs(self.volume(name))
        free = st.f_bavail * st.f_frsize
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, max(free - 4096, 4096))
            except OSError:
                pass
            # Whatever fallocate left (rounding), in small writes until ENOSPC.
            os.lseek(fd, 0, os.SEEK_END)
            block = b"\0" * 4096
            try:
                while True:
                    os.write(fd, block)
            except OSError:
                pass
        finally:
            os.close(fd)
        return os.path.getsize(path)

    def free_disk(self, name):
        try:
            os.unlink(os.path.join(self.volume(name), "ballast"))
        except FileNotFoundError:
            pass

    # --- SQL ----------------------------------------------------------------------------
    def connect(self, name, db="postgres", timeout=2):
        c = psycopg2.connect(self.dsn(name, db, timeout))
        c.autocommit = True
        return c

    def monitor_query(self, sql, args=None):
        c = self.connect("monitor", "pg_autopilot")
        try:
            cur = c.cursor()
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None
        finally:
            c.close()

    def show_state(self):
        """show_state: {node_name: (current, assigned, reachable)} from the monitor."""
        rows = self.monitor_query("SELECT node_name, current_state::text, assigned_state::text, reachable "
                                  "FROM pg_autopilot.show_state() ORDER BY node_id")
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def settled(self, nodes=None):
        """settled: (True, primary) when one node is settled primary and every other settled secondary."""
        nodes = nodes or self.nodes
        try:
            st = self.show_state()
        except psycopg2.Error:
            return False, None
        prim = [n for n, s in st.items() if s[0] == s[1] == "primary"]
        if len(prim) != 1 or set(st) != set(nodes):
            return False, None
        ok = all(s[0] == s[1] == "secondary" and s[2] for n, s in st.items() if n != prim[0]) and st[prim[0]][2]
        return ok, prim[0]

    def formation_uri(self):
        return self.monitor_query("SELECT pg_autopilot.formation_uri()")[0][0]

    def events(self, count=100000):
        return self.monitor_query(
            "SELECT event_id, event_time::text, node_name, reported_state::text, assigned_state::text, rule "
            "FROM pg_autopilot.show_events('default', %s) ORDER BY event_id", (count, ))

    # --- teardown ----------------------------------------------------------------------
    def teardown(self):
        """teardown: thaw, stop every server (fast, then immediate), unmount the volumes; never raises."""
        for n in list(self.frozen):
            try:
                self.thaw(n)
            except Exception:
                pass
        for n in self.nodes + ["monitor"]:
            d = self.datadir(n)
            if not os.path.exists(os.path.join(d, "postmaster.pid")):
                continue
            try:
                p = self.pg_ctl(n, "-m", "fast", "-t", "20", "stop", check=False, timeout=60)
                if p.returncode != 0 and self.postmaster_pid(n):
                    self.pg_ctl(n, "-m", "immediate", "stop", check=False, timeout=60)
            except Exception:
                pass
        for n in self.nodes:
            pm_pids = self.processes(n)
            for p in pm_pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for n in self.nodes:
            v = self.volume(n)
            if os.path.ismount(v):
                subprocess.run(["umount", "-l", v], check=False)
