#!/usr/bin/python3
# bench/harness/netlab.py — network namespaces for the fault harness: one
# namespace per host (monitor, nodes, client), each with one veth ("eth0") on a
# bridge that lives in a hub namespace of its own, and network faults applied
# inside those namespaces only.
#
# Invariants:
# * Nothing is created in the caller's namespace: the bridge and the host side
#   of every veth live in "<prefix>-hub"; the addresses (default 10.231.0.0/24)
#   exist only inside the lab's namespaces.  Deleting the namespaces removes
#   every interface, address, nft rule and qdisc the lab made.
# * Faults are data: the active set is kept in the state file, and every change
#   rebuilds each namespace's nft chain from that set in one `nft -f` call, so
#   heal(fault) and heal(all) are exact and idempotent.
# * Packet drops are on the *input* hook of the receiving namespace only: a cut
#   link loses packets silently in both directions (connect() times out, as on a
#   real network), no local error reaches the sender.
# * Latency needs the kernel's netem qdisc; without it delay() raises
#   Unsupported (the campaign then leaves latency faults out and says so).
#
# Library: Lab.create(state_dir, names) / Lab.load(state_dir); lab.addr(name),
# lab.ns(name), lab.exec_argv(name, argv, user), lab.isolate(name, keep=[]),
# lab.cut(a, b), lab.loss(name, pct), lab.delay(name, ms), lab.heal(fault_id
# or None), lab.destroy().  CLI: see usage() below and bench/harness/README.md.
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import time

SKIP = 77  # exit code: "skipped" (automake convention, run-tests.sh knows it)
STATE_FILE = "netlab.json"
DEV = "eth0"


class Unsupported(Exception):
    """The machine cannot run the lab (no root, no ip netns, no nft, no netem)."""


def run(argv, check=True, input_text=None, quiet=False):
    """run: one command, output captured; raises CalledProcessError when check."""
    p = subprocess.run(argv, input=input_text, text=True, capture_output=True)
    if check and p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, argv, p.stdout, p.stderr)
    if not quiet and p.returncode != 0:
        sys.stderr.write("netlab: %s: %s" % (" ".join(argv), p.stderr))
    return p


def check_support(need_netem=False):
    """check_support: raise Unsupported with a clear reason when the lab cannot run here."""
    if os.geteuid() != 0:
        raise Unsupported("needs root (network namespaces, nft, mounts)")
    for tool in ("ip", "nft", "runuser"):
        if not shutil.which(tool):
            raise Unsupported("'%s' not found (scripts/deps.sh installs iproute2 and nftables)" % tool)
    probe = "nlprobe-%s" % secrets.token_hex(3)
    p = run(["ip", "netns", "add", probe], check=False, quiet=True)
    if p.returncode != 0:
        raise Unsupported("'ip netns add' failed: %s" % p.stderr.strip())
    try:
        p = run(["ip", "netns", "exec", probe, "nft", "add", "table", "inet", "probe"], check=False, quiet=True)
        if p.returncode != 0:
            raise Unsupported("nft does not work inside a namespace: %s" % p.stderr.strip())
        p = run(["ip", "-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1"], check=False, quiet=True)
        if p.returncode != 0:
            raise Unsupported("veth pairs not available: %s" % p.stderr.strip())
        if need_netem and not netem_supported(probe):
            raise Unsupported("the kernel has no netem qdisc (tc netem)")
    finally:
        run(["ip", "netns", "del", probe], check=False, quiet=True)


def netem_supported(ns):
    """netem_supported: can a netem qdisc be attached inside namespace ns (on its loopback)."""
    p = run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
            check=False, quiet=True)
    if p.returncode == 0:
        run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "lo", "root"], check=False, quiet=True)
        return True
    return False


class Lab:
    """Lab: the namespaces of one run and the faults active on them (state in state_dir)."""

    def __init__(self, state_dir, state):
        self.state_dir = state_dir
        self.st = state

    # --- life cycle -------------------------------------------------------
    @classmethod
    def create(cls, state_dir, names, subnet="10.231.0.0/24", first_host=10):
        """create: namespaces <prefix>-<name> for each name, bridged; raises on failure after removing them."""
        check_support()
        net = ipaddress.ip_network(subnet)
        hosts = list(net.hosts())
        prefix = "apl%s" % secrets.token_hex(3)
        st = {"prefix": prefix, "subnet": subnet, "hub": prefix + "-hub", "hosts": {}, "faults": [], "next_id": 1,
              "netem": False}
        for i, name in enumerate(names):
            st["hosts"][name] = {"ns": "%s-%s" % (prefix, name), "addr": str(hosts[first_host - 1 + i]), "veth": "v%d" % i}
        os.makedirs(state_dir, exist_ok=True)
        lab = cls(state_dir, st)
        lab.save()  # first, so that a failure below can still be torn down from the file
        try:
            hub = st["hub"]
            run(["ip", "netns", "add", hub])
            run(["ip", "-n", hub, "link", "set", "lo", "up"])
            run(["ip", "-n", hub, "link", "add", "br0", "type", "bridge"])
            run(["ip", "-n", hub, "link", "set", "br0", "up"])
            plen = net.prefixlen
            for name in names:
                h = st["hosts"][name]
                run(["ip", "netns", "add", h["ns"]])
                run(["ip", "-n", hub, "link", "add", h["veth"], "type", "veth", "peer", "name", DEV, "netns", h["ns"]])
                run(["ip", "-n", hub, "link", "set", h["veth"], "master", "br0", "up"])
                run(["ip", "-n", h["ns"], "link", "set", "lo", "up"])
                run(["ip", "-n", h["ns"], "addr", "add", "%s/%d" % (h["addr"], plen), "dev", DEV])
                run(["ip", "-n", h["ns"], "link", "set", DEV, "up"])
                run(["ip", "netns", "exec", h["ns"], "nft", "-f", "-"], input_text=(
                    "table inet netlab {\n  chain input { type filter hook input priority 0; policy accept; }\n}\n"))
            st["netem"] = netem_supported(st["hosts"][names[0]]["ns"])
            lab.save()
        except BaseException:  # also KeyboardInterrupt (SIGINT/SIGTERM in the campaign)
            lab.destroy()
            raise
        return lab

    @classmethod
    def load(cls, state_dir):
        with open(os.path.join(state_dir, STATE_FILE)) as f:
            return cls(state_dir, json.load(f))

    def save(self):
        tmp = os.path.join(self.state_dir, STATE_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(self.st, f, indent=1)
        os.replace(tmp, os.path.join(self.state_dir, STATE_FILE))

    def namespaces(self):
        return [h["ns"] for h in self.st["hosts"].values()] + [self.st["hub"]]

    def destroy(self):
        """destroy: SIGKILL every process left in the lab's namespaces, then delete them (idempotent)."""
        existing = set(run(["ip", "netns", "list"], check=False).stdout.split())
        for ns in self.namespaces():
            if ns not in existing:
                continue
            for _ in range(50):
                pids = run(["ip", "netns", "pids", ns], check=False, quiet=True).stdout.split()
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(int(pid), 9)
                    except (ProcessLookupError, ValueError):
                        pass
                time.sleep(0.1)
            run(["ip", "netns", "del", ns], check=False)
        self.st["faults"] = []
        try:
            self.save()
        except OSError:
            pass

    # --- access -------------------------------------------------------------
    def names(self):
        return list(self.st["hosts"])

    def addr(self, name):
        return self.st["hosts"][name]["addr"]

    def ns(self, name):
        return self.st["hosts"][name]["ns"]

    def exec_argv(self, name, argv, user=None, env=None):
        """exec_argv: argv that runs argv inside name's namespace (as user when given)."""
        pre = ["ip", "netns", "exec", self.ns(name)]
        if user:
            pre += ["runuser", "-u", user, "--"]
        if env:
            pre += ["env"] + ["%s=%s" % kv for kv in env.items()]
        return pre + list(argv)

    @property
    def netem(self):
        return self.st.get("netem", False)

    # --- faults ---------------------------------------------------------------
    def _add(self, fault):
        fault["id"] = self.st["next_id"]
        self.st["next_id"] += 1
        self.st["faults"].append(fault)
        self.apply()
        return fault["id"]

    def isolate(self, name, keep=()):
        """isolate: cut name from every other host except those in keep (both directions)."""
        return self._add({"kind": "isolate", "host": name, "keep": list(keep)})

    def cut(self, a, b):
        """cut: cut the link between hosts a and b (both directions)."""
        return self._add({"kind": "cut", "a": a, "b": b})

    def loss(self, name, pct, keep=()):
        """loss: drop pct % of the packets to and from name (except from/to hosts in keep)."""
        return self._add({"kind": "loss", "host": name, "pct": int(pct), "keep": list(keep)})

    def delay(self, name, ms, jitter_ms=0):
        """delay: ms of latency on everything name sends and receives (tc netem); raises Unsupported."""
        if not self.netem:
            raise Unsupported("the kernel has no netem qdisc (tc netem): no latency faults")
        return self._add({"kind": "delay", "host": name, "ms": int(ms), "jitter": int(jitter_ms)})

    def heal(self, fault_id=None):
        """heal: remove one fault (by id) or all of them."""
        if fault_id is None:
            self.st["faults"] = []
        else:
            self.st["faults"] = [f for f in self.st["faults"] if f["id"] != int(fault_id)]
        self.apply()

    def faults(self):
        return list(self.st["faults"])

    def _rules(self):
        """_rules: host -> list of nft rule bodies for the input chain, from the active faults."""
        rules = {n: [] for n in self.st["hosts"]}
        for f in self.st["faults"]:
            tag = 'comment "fault %d"' % f["id"]
            if f["kind"] == "isolate" or f["kind"] == "loss":
                x = f["host"]
                keep = set(f.get("keep", ()))
                drop = "drop" if f["kind"] == "isolate" else "numgen random mod 100 < %d drop" % f["pct"]
                keep_addrs = [self.addr(k) for k in keep]
                cond = 'iifname "%s"' % DEV
                if keep_addrs:
                    cond += " ip saddr != { %s }" % ", ".join(keep_addrs)
                rules[x].append("%s %s %s" % (cond, drop, tag))
                for y in self.st["hosts"]:
                    if y != x and y not in keep:
                        rules[y].append("ip saddr %s %s %s" % (self.addr(x), drop, tag))
            elif f["kind"] == "cut":
                rules[f["a"]].append("ip saddr %s drop %s" % (self.addr(f["b"]), tag))
                rules[f["b"]].append("ip saddr %s drop %s" % (self.addr(f["a"]), tag))
        return rules

    def apply(self):
        """apply: rebuild every namespace's nft chain and netem qdiscs from the active faults."""
        for name, body in self._rules().items():
            script = "flush chain inet netlab input\n" + "".join("add rule inet netlab input %s\n" % r for r in body)
            run(["ip", "netns", "exec", self.ns(name), "nft", "-f", "-"], input_text=script)
        if self.netem:
            delays = {}
            for f in self.st["faults"]:
                if f["kind"] == "delay":
                    delays[f["host"]] = (f["ms"], f["jitter"])
            for name, h in self.st["hosts"].items():
                # Both directions: name's own eth0 (egress from name) and the hub's veth (egress towards name).
                for ns, dev in ((h["ns"], DEV), (self.st["hub"], h["veth"])):
                    run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"], check=False, quiet=True)
                    if name in delays:
                        ms, jit = delays[name]
                        argv = ["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem", "delay",
                                "%dms" % ms]
                        if jit:
                            argv.append("%dms" % jit)
                        run(argv)
        self.save()


def usage():
    sys.stderr.write("""usage: netlab.py COMMAND STATE_DIR [ARGS]
  check                         exit 0 when the lab can run here, 77 (skip) with the reason otherwise
  up STATE_DIR NAME...          create one namespace per NAME on a bridge; prints "NAME NAMESPACE ADDRESS"
  hosts STATE_DIR               prints "NAME NAMESPACE ADDRESS" for each host
  addr STATE_DIR NAME           prints NAME's address
  exec STATE_DIR NAME [-u USER] -- CMD...   run CMD inside NAME's namespace (as USER)
  isolate STATE_DIR NAME [KEEP...]   cut NAME from every host but KEEP; prints the fault id
  cut STATE_DIR A B             cut the A<->B link; prints the fault id
  loss STATE_DIR NAME PCT       PCT %% packet loss to/from NAME; prints the fault id
  delay STATE_DIR NAME MS       MS ms latency both ways (tc netem; exit 77 without netem)
  faults STATE_DIR              the active faults, one JSON object a line
  heal STATE_DIR [ID]           remove fault ID, or every fault
  down STATE_DIR                kill what runs in the namespaces, delete them (idempotent)
""")
    sys.exit(2)


def main(argv):
    if len(argv) < 1:
        usage()
    cmd = argv[0]
    if cmd == "check":
        try:
            check_support()
        except Unsupported as e:
            print("netlab: skipped: %s" % e)
            return SKIP
        return 0
    if len(argv) < 2:
        usage()
    sd = argv[1]
    args = argv[2:]
    try:
        if cmd == "up":
            lab = Lab.create(sd, args)
            cmd = "hosts"
        else:
            lab = Lab.load(sd)
        if cmd == "hosts":
            for n in lab.names():
                print(n, lab.ns(n), lab.addr(n))
        elif cmd == "addr":
            print(lab.addr(args[0]))
        elif cmd == "exec":
            name, rest = args[0], args[1:]
            user = None
            if rest[:1] == ["-u"]:
                user, rest = rest[1], rest[2:]
            if rest[:1] == ["--"]:
                rest = rest[1:]
            os.execvp("ip", lab.exec_argv(name, rest, user))
        elif cmd == "isolate":
            print(lab.isolate(args[0], args[1:]))
        elif cmd == "cut":
            print(lab.cut(args[0], args[1]))
        elif cmd == "loss":
            print(lab.loss(args[0], args[1]))
        elif cmd == "delay":
            print(lab.delay(args[0], args[1]))
        elif cmd == "faults":
            for f in lab.faults():
                print(json.dumps(f))
        elif cmd == "heal":
            lab.heal(args[0] if args else None)
        elif cmd == "down":
            lab.destroy()
        else:
            usage()
    except Unsupported as e:
        print("netlab: skipped: %s" % e)
        return SKIP
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
