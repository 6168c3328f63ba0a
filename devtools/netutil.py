"""Small network helpers for starting private servers on loopback."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
#: where servers' ports are picked: below the kernel's ephemeral range, which outgoing connections draw from
#: (a port picked from there can be taken by any client socket before the server binds it)
PORT_RANGE = (20000, 32767)


class ExitedBeforeListening(RuntimeError):
    """A server process ended before it listened: most often its port was taken after it was picked."""


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now, picked at random below the ephemeral range.

    Nothing reserves it: a server that then fails to bind is started again on new ports (``start_retrying``).
    """
    low, high = PORT_RANGE[0], min(PORT_RANGE[1], _ephemeral_low() - 1)
    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # a crowded range: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_retrying(launch: Callable[[], T], new_ports: Callable[[], None], attempts: int = 5) -> T:
    """``launch()`` a server; when it exits before listening (its port taken meanwhile), pick ``new_ports()``
    and launch again, ``attempts`` times at most."""
    for attempt in range(1, attempts + 1):
        try:
            return launch()
        except ExitedBeforeListening:
            if attempt == attempts:
                raise
            new_ports()
    raise AssertionError("unreachable")


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0, proc=None) -> None:
    """Block until something accepts connections on ``host:port``, or raise with a clear message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ExitedBeforeListening(f"server process exited with {proc.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def wait_until_closed(port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
    """Block until nothing accepts connections on ``host:port`` any more (a stopped server's last child gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                pass
        except OSError:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} still accepts connections {timeout:.0f} s after its server stopped")


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the test process dies, so no server outlives a killed run."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process(proc, sig=None, timeout: float = 20.0) -> None:
    """Ask a server to stop (SIGTERM by default), wait, and kill it if it does not."""
    import signal
    import subprocess

    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig or signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_groups(procs, grace: float = 20.0) -> None:
    """Stop processes started with ``start_new_session=True`` and everything they started: SIGTERM to each
    process group, then SIGKILL to what is left of the groups after ``grace`` seconds (children a parent left
    behind included). Ctrl-C while stopping is ignored, so a second one cannot leave half the processes."""
    import os
    import signal
    import subprocess
    import time

    def signal_group(pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for proc in procs:
            signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        for proc in procs:
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        deadline = time.monotonic() + 10  # SIGKILL is not instant: wait until no member of a group runs
        while any(group_members(proc.pid) for proc in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGINT, previous)


def group_members(pgid: int) -> list[int]:
    """PIDs of the live (not zombie) processes in process group ``pgid``, read from /proc."""
    from pathlib import Path

    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members
