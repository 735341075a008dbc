#!/usr/bin/python3
# bench/harness/workload.py — the load of a fault campaign and what it records:
#
# * Writer: one id after the other through the formation URI
#   (target_session_attrs=read-write), autocommit INSERT ... RETURNING the
#   server address; records every *acknowledged* id with its start and ack time
#   and the node that acknowledged it.  An INSERT whose answer does not come is
#   "unknown", never counted as acknowledged.
# * Prober: one thread per node, every `interval` seconds: can a write
#   transaction commit on this node right now?  Each acknowledged probe commit
#   is recorded (node, id, start, ack) and, like the writer's ids, must survive.
#
# Invariants:
# * No statement_timeout and no query cancel: a cancelled wait for synchronous
#   replication returns COMMIT with only a WARNING, which would count a commit
#   no standby has as acknowledged.  A stuck statement is abandoned instead by
#   shutting the socket down from a watchdog (outcome unknown, not recorded).
# * Blocking connects with connect_timeout, so that libpq skips a host that
#   does not answer and tries the next one of the URI.
# * Every record goes to memory and, line-buffered, to a log file (for
#   post-mortems): "ack ID T_START T_ACK NODE" / "fail ID T_START T_END ERROR".
import socket
import threading
import time

import psycopg2

SCHEMA = ("CREATE TABLE IF NOT EXISTS campaign_writes(id bigint PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());"
          "CREATE TABLE IF NOT EXISTS campaign_probe(id text PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")


def with_params(uri, **params):
    """with_params: uri with extra key=value parameters (URI or keyword form)."""
    extra = "&".join("%s=%s" % kv for kv in params.items())
    if "://" in uri:
        return uri + ("&" if "?" in uri else "?") + extra
    return uri + " " + " ".join("%s=%s" % kv for kv in params.items())


class Watchdog:
    """Watchdog: shuts a connection's socket down when a statement outlives `seconds`."""

    def __init__(self, conn, seconds):
        self.timer = threading.Timer(seconds, self._fire, (conn.fileno(), ))
        self.timer.daemon = True
        self.fired = False

    def _fire(self, fd):
        self.fired = True
        try:
            s = socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM)
            s.shutdown(socket.SHUT_RDWR)
            s.close()  # closes the dup only
        except OSError:
            pass

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()
        return False


class Recorder:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", buffering=1)

    def line(self, *fields):
        with self.lock:
            self.f.write(" ".join(str(x) for x in fields) + "\n")

    def close(self):
        self.f.close()


class Writer(threading.Thread):
    """Writer: sequential ids through the formation URI; acks: list of (id, t0, t1, node)."""

    def __init__(self, uri, logpath, addr_to_node, pause=0.02, stmt_deadline=5.0):
        super().__init__(daemon=True)
        self.uri = with_params(uri, connect_timeout=2, application_name="campaign_writer")
        self.rec = Recorder(logpath)
        self.addr_to_node = addr_to_node
        self.pause = pause
        self.deadline = stmt_deadline
        self.stop_flag = threading.Event()
        self.acks = []
        self.fails = 0
        self.next_id = 1

    def run(self):
        conn = None
        while not self.stop_flag.is_set():
            if conn is None:
                try:
                    conn = psycopg2.connect(self.uri)
                    conn.autocommit = True
                except psycopg2.Error as e:
                    self.rec.line("noconn", 0, time.time(), time.time(), str(e).split("\n")[0].replace(" ", "_")[:80])
                    conn = None
                    self.stop_flag.wait(0.05)
                    continue
            i = self.next_id
            self.next_id += 1
            t0 = time.time()
            try:
                with Watchdog(conn, self.deadline):
                    cur = conn.cursor()
                    cur.execute("INSERT INTO campaign_writes(id) VALUES (%s) RETURNING host(inet_server_addr())", (i, ))
                    addr = cur.fetchone()[0]
                t1 = time.time()
                node = self.addr_to_node.get(addr, addr)
                self.acks.append((i, t0, t1, node))
                self.rec.line("ack", i, "%.6f" % t0, "%.6f" % t1, node)
            except Exception as e:  # psycopg2 errors and a watchdog-closed socket alike
                self.fails += 1
                self.rec.line("fail", i, "%.6f" % t0, "%.6f" % time.time(), str(e).split("\n")[0].replace(" ", "_")[:80])
                try:
                    conn.close()
                except Exception:
                    pass
                conn = None
            self.stop_flag.wait(self.pause)
        if conn is not None:
            conn.close()
        self.rec.close()


class Prober(threading.Thread):
    """Prober: every interval, a write transaction on one node; acks: list of (id, t0, t1, node)."""

    def __init__(self, node, dsn, logpath, interval=0.05, stmt_deadline=2.0):
        super().__init__(daemon=True)
        self.node = node
        self.dsn = dsn
        self.rec = Recorder(logpath)
        self.interval = interval
        self.deadline = stmt_deadline
        self.stop_flag = threading.Event()
        self.acks = []
        self.seq = 0

    def run(self):
        conn = None
        while not self.stop_flag.is_set():
            start = time.time()
            if conn is None:
                try:
                    conn = psycopg2.connect(self.dsn)
                    conn.autocommit = True
                except psycopg2.Error:
                    conn = None
            if conn is not None:
                self.seq += 1
                pid = "%s:%d" % (self.node, self.seq)
                t0 = time.time()
                try:
                    with Watchdog(conn, self.deadline):
                        cur = conn.cursor()
                        cur.execute("SELECT pg_is_in_recovery()")
                        if not cur.fetchone()[0]:
                            cur.execute("INSERT INTO campaign_probe(id) VALUES (%s)", (pid, ))
                            t1 = time.time()
                            self.acks.append((pid, t0, t1, self.node))
                            self.rec.line("ack", pid, "%.6f" % t0, "%.6f" % t1, self.node)
                except Exception as e:
                    self.rec.line("fail", pid, "%.6f" % t0, "%.6f" % time.time(), str(e).split("\n")[0].replace(" ", "_")[:80])
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn = None
            self.stop_flag.wait(max(0.0, self.interval - (time.time() - start)))
        if conn is not None:
            conn.close()
        self.rec.close()
