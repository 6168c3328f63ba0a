"""Test servers never race for ports: ports are picked below the ephemeral range, and a server whose port was
taken between the pick and its bind is started again on a new one."""

from __future__ import annotations

import socket

import pytest

from devtools import netutil
from devtools.slapd import SlapdServer


def test_ports_are_picked_below_the_ephemeral_range():
    low = netutil._ephemeral_low()
    ports = {netutil.free_port() for _ in range(50)}
    assert all(netutil.PORT_RANGE[0] <= p < low for p in ports)
    assert len(ports) > 1  # picked at random, not the same port for every server


def test_start_retrying_picks_new_ports_until_the_server_listens():
    attempts: list[int] = []

    def launch() -> str:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise netutil.ExitedBeforeListening("port taken")
        return "listening"

    repicks: list[int] = []
    assert netutil.start_retrying(launch, lambda: repicks.append(1)) == "listening"
    assert attempts == [0, 1, 2] and len(repicks) == 2
    with pytest.raises(netutil.ExitedBeforeListening):
        netutil.start_retrying(lambda: (_ for _ in ()).throw(netutil.ExitedBeforeListening("x")), lambda: None, 2)


@pytest.mark.servers
def test_slapd_whose_port_is_taken_before_it_binds_starts_on_another(tmp_path):
    server = SlapdServer(tmp_path / "slapd", users=3)
    taken = server.port
    with socket.socket() as squatter:  # another process takes the picked port before slapd binds it
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        server.start()
        try:
            assert server.port != taken
            with socket.create_connection(("127.0.0.1", server.port), timeout=10):
                pass
        finally:
            server.stop()
