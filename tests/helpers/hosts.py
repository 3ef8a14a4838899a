"""Two real hosts on one machine: Linux network namespaces joined by a veth pair.

Each host has its own loopback, its own address on a /30 of 10.213.0.0/24 chosen by the test, and
its own processes (``ip netns exec``); a host can also be given folders it cannot see (a tmpfs
mounted over them in a mount namespace of its own), which is how a test proves that a file reached
a worker node through the engine rather than through the file system both namespaces share.
Traffic goes only between the two addresses. ``close()`` kills every process left in either
namespace (daemons such as ``ray start``'s included) and deletes both: the veth pair goes with
them. Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): ``skip_reason()`` says why not.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

SUBNET = "10.213.0"  # the tests' own /24; each pair of hosts takes one /30 of it


def skip_reason() -> str | None:
    """Why this process cannot make namespaces here, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); CI runs as root"
    for tool in ("ip", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (iproute2 / util-linux)"
    return None


class TwoHosts:
    """Hosts "a" and "b": ``address(host)``, ``run(host, args)``, ``close()``; a context manager."""

    def __init__(self, tag: str = ""):
        slot = (os.getpid() % 63) + 1  # /30 number 1..63: parallel test runs get different addresses
        self.addresses = {"a": f"{SUBNET}.{4 * slot + 1}", "b": f"{SUBNET}.{4 * slot + 2}"}
        self.names = {h: f"cp{tag}{h}{os.getpid()}"[:15] for h in "ab"}
        self.processes: list[subprocess.Popen] = []
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        a, b = self.names["a"], self.names["b"]
        veth_a, veth_b = f"{a[:12]}v0", f"{b[:12]}v1"
        commands = [
            ["ip", "netns", "add", a],
            ["ip", "netns", "add", b],
            ["ip", "link", "add", veth_a, "type", "veth", "peer", "name", veth_b],
            ["ip", "link", "set", veth_a, "netns", a],
            ["ip", "link", "set", veth_b, "netns", b],
            ["ip", "-n", a, "addr", "add", f"{self.addresses['a']}/30", "dev", veth_a],
            ["ip", "-n", b, "addr", "add", f"{self.addresses['b']}/30", "dev", veth_b],
            ["ip", "-n", a, "link", "set", veth_a, "up"],
            ["ip", "-n", b, "link", "set", veth_b, "up"],
            ["ip", "-n", a, "link", "set", "lo", "up"],
            ["ip", "-n", b, "link", "set", "lo", "up"],
        ]
        for command in commands:
            subprocess.run(command, check=True, capture_output=True, text=True)

    def address(self, host: str) -> str:
        return self.addresses[host]

    def command(self, host: str, args: Sequence[str], hide: Sequence[Path] = ()) -> list[str]:
        """``args`` as run on ``host``, with each folder in ``hide`` empty there."""
        prefix = ["ip", "netns", "exec", self.names[host]]
        if not hide:
            return [*prefix, *map(str, args)]
        mounts = " && ".join(f"mount -t tmpfs -o size=1g cifar-pack-hidden '{Path(p)}'" for p in hide)
        return [*prefix, "unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"',
                "sh", *map(str, args)]  # fmt: skip

    def run(self, host: str, args: Sequence[str], hide: Sequence[Path] = (), **kwargs) -> subprocess.CompletedProcess:
        """Run to the end on ``host`` (``subprocess.run``'s keyword arguments)."""
        return subprocess.run(self.command(host, args, hide), **kwargs)

    def start(self, host: str, args: Sequence[str], hide: Sequence[Path] = (), **kwargs) -> subprocess.Popen:
        """Start on ``host`` in the background; ``close()`` ends it."""
        process = subprocess.Popen(self.command(host, args, hide), start_new_session=True, **kwargs)
        self.processes.append(process)
        return process

    def pids(self, host: str) -> list[int]:
        """Every process in ``host``'s network namespace (the daemons ``start`` did not start too)."""
        proc = subprocess.run(["ip", "netns", "pids", self.names[host]], capture_output=True, text=True)
        return [int(p) for p in proc.stdout.split()]

    def kill_all(self, host: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to every process on ``host`` (a node dying); returns how many there were."""
        pids = self.pids(host)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return len(pids)

    def close(self) -> None:
        for host in "ab":
            for _ in range(50):  # daemons fork: repeat until the namespace is empty (at most ~5 s)
                if not self.kill_all(host):
                    break
                time.sleep(0.1)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for name in self.names.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)

    def __enter__(self) -> TwoHosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
