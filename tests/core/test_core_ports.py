"""Ports for servers started later come from outside the kernel's ephemeral range."""

from __future__ import annotations

import socket
from pathlib import Path

from wonderland.ports import free_port


def test_ports_are_free_outside_the_ephemeral_range_and_not_handed_out_twice() -> None:
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert not [p for p in ports if low <= p <= high], (low, high)
    for port in ports[:20]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free, as promised


def test_a_port_something_listens_on_is_never_given() -> None:
    """Ports this process did not hand out, taken by listeners, are skipped."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    listeners = []
    try:
        for port in range(max(10000, low - 3000), low):
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sock.listen()
            listeners.append(sock)
        taken = {s.getsockname()[1] for s in listeners}
        given = {free_port() for _ in range(1000)}
        assert len(taken) > 2000 and not taken & given
    finally:
        for sock in listeners:
            sock.close()
