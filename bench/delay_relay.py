#!/usr/bin/env python3
"""A UDP DNS relay that holds each query DELAY_MS before passing it on.

    delay_relay.py LISTEN_IP LISTEN_PORT TARGET_IP TARGET_PORT DELAY_MS

bench/fleet.sh puts it in front of bench.lab.'s NSD (UPSTREAM_DELAY_MS), so a
walk waits for its authoritative server as it does on the Internet, where
a resolver is tens of milliseconds from a zone's servers, while a fleet's
Redis is on the same LAN. This kernel has no netem qdisc to do it with.
Loopback only: both addresses must be in 127.0.0.0/8.

Replies go back at once (the delay is the round trip's), matched to the
client by DNS ID and question; a reply nobody waits for is dropped.
"""

import asyncio
import ipaddress
import sys


def question_key(msg: bytes):
    """(ID, question section) of a DNS message, or None if it is too short."""
    if len(msg) < 12:
        return None
    at = 12
    while at < len(msg):
        n = msg[at]
        if n == 0:
            break
        if n & 0xC0:
            return None
        at += 1 + n
    end = at + 1 + 4
    if end > len(msg):
        return None
    return msg[:2] + msg[12:end].lower()


class Front(asyncio.DatagramProtocol):
    def __init__(self, relay):
        self.relay = relay

    def connection_made(self, transport):
        self.relay.front = transport

    def datagram_received(self, data, addr):
        key = question_key(data)
        if key is None:
            return
        self.relay.waiting[key] = addr
        self.relay.loop.call_later(self.relay.delay, self.relay.back.sendto, data)


class Back(asyncio.DatagramProtocol):
    def __init__(self, relay):
        self.relay = relay

    def connection_made(self, transport):
        self.relay.back = transport

    def datagram_received(self, data, addr):
        addr = self.relay.waiting.pop(question_key(data), None)
        if addr is not None:
            self.relay.front.sendto(data, addr)


class Relay:
    def __init__(self, loop, delay):
        self.loop = loop
        self.delay = delay
        self.waiting = {}
        self.front = None
        self.back = None


async def main(listen_ip, listen_port, target_ip, target_port, delay_ms):
    for ip in (listen_ip, target_ip):
        if not ipaddress.ip_address(ip).is_loopback:
            sys.exit(f"delay_relay: {ip} is not a loopback address")
    loop = asyncio.get_running_loop()
    relay = Relay(loop, delay_ms / 1000.0)
    await loop.create_datagram_endpoint(
        lambda: Back(relay), remote_addr=(target_ip, target_port)
    )
    await loop.create_datagram_endpoint(
        lambda: Front(relay), local_addr=(listen_ip, listen_port)
    )
    await asyncio.Event().wait()


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    try:
        asyncio.run(
            main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
        )
    except KeyboardInterrupt:
        pass
