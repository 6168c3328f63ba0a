"""Small network helpers for starting private servers on loopback."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0, proc=None) -> None:
    """Block until something accepts connections on ``host:port``, or raise with a clear message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server process exited with {proc.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


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
