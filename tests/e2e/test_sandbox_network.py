"""What a sandboxed local sprite may reach: the policy, and the HTTP proxy that applies it.

The proxy runs on the host side of a sprite's Unix socket; here it is driven directly over a
socket pair, against real TCP servers on loopback (offline: public addresses are checked by
the policy alone).
"""

from __future__ import annotations

import ipaddress
import json
from functools import partial

import pytest
import trio

from opendispatch.adapters.local import LocalSprites
from opendispatch.adapters.local.network import Destination, NetworkPolicy, model_endpoints, serve_proxy_connection


def test_destinations_parse_addresses_networks_names_and_ports() -> None:
    assert str(Destination.parse("127.0.0.1:4000")) == "127.0.0.1/32:4000"
    assert str(Destination.parse("10.0.0.0/8")) == "10.0.0.0/8"
    assert str(Destination.parse("[::1]:8080")) == "[::1/128]:8080"
    assert str(Destination.parse("Git.Internal:443")) == "git.internal:443"
    for bad in ("", "host:0", "host:http", "a b", "[::1", "x:1:2:z"):
        with pytest.raises(ValueError):
            Destination.parse(bad)


def test_a_bad_allowlist_entry_fails_when_the_sprites_are_configured() -> None:
    with pytest.raises(ValueError, match="not a port"):
        LocalSprites(allow_network=["127.0.0.1:99999"])


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0",
     "100.64.0.1", "::1", "::ffff:127.0.0.1", "fd00::1", "fe80::1", "224.0.0.1"],
)
def test_loopback_private_link_local_and_special_addresses_are_closed(address: str) -> None:
    assert not NetworkPolicy().permits(ipaddress.ip_address(address), 443)


def test_public_addresses_are_open_and_the_allowlist_opens_exactly_what_it_names() -> None:
    assert NetworkPolicy().permits(ipaddress.ip_address("93.184.216.34"), 443)
    assert NetworkPolicy().permits(ipaddress.ip_address("2606:4700::1111"), 443)
    policy = NetworkPolicy.of(["127.0.0.1:4000", "10.0.0.0/8", "git.internal:22"])
    assert policy.permits(ipaddress.ip_address("127.0.0.1"), 4000)
    assert not policy.permits(ipaddress.ip_address("127.0.0.1"), 4001)
    assert policy.permits(ipaddress.ip_address("10.9.9.9"), 5432)
    assert policy.named("git.internal", 22) and not policy.named("git.internal", 23)
    assert policy.loopback_ports() == {4000: ("127.0.0.1", 4000)}
    assert NetworkPolicy.of(["localhost:5000"]).loopback_ports() == {5000: ("127.0.0.1", 5000)}


def test_the_model_apis_the_operator_configured_are_allowed() -> None:
    opencode = {"provider": {"anthropic": {"options": {"baseURL": "http://10.0.0.7:4000/v1"}}}}
    env = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:8999", "OPENCODE_CONFIG_CONTENT": json.dumps(opencode),
           "REPO": "http://127.0.0.1:1234/not-a-model.git"}
    assert [str(d) for d in model_endpoints(env)] == ["127.0.0.1/32:8999", "10.0.0.7/32:4000"]
    assert model_endpoints({"ANTHROPIC_BASE_URL": "https://api.anthropic.com"})[0].port == 443
    assert model_endpoints({"OPENCODE_CONFIG_CONTENT": "not json"}) == []


# --- the proxy ---------------------------------------------------------------------------


async def start_server(nursery: trio.Nursery, answer: bytes) -> tuple[int, list[bytes]]:
    """A TCP server on 127.0.0.1 that records what it receives and answers `answer`."""
    received: list[bytes] = []

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            data = await stream.receive_some(65536)
            received.append(data)
            await stream.send_all(answer)

    listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1], received


async def through_proxy(policy: NetworkPolicy, request: bytes) -> bytes:
    left, right = trio.socket.socketpair()
    client, server = trio.SocketStream(left), trio.SocketStream(right)
    async def serve() -> None:
        async with server:  # as the sprite's socket listener does
            await serve_proxy_connection(server, policy)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        await client.send_all(request)
        answer = b""
        with trio.fail_after(10):
            while data := await client.receive_some(65536):
                answer += data
                if answer.startswith(b"HTTP/1.1 200 Connection established\r\n\r\n") and answer.endswith(b"pong"):
                    break
        await client.aclose()
    return answer


async def test_connect_to_a_closed_loopback_port_is_refused(nursery: trio.Nursery) -> None:
    port, received = await start_server(nursery, b"pong")
    answer = await through_proxy(NetworkPolicy(), f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403 Forbidden") and b"OPENDISPATCH_SANDBOX_ALLOW" in answer
    assert received == []


async def test_a_name_that_resolves_to_loopback_is_refused_too(nursery: trio.Nursery) -> None:
    port, received = await start_server(nursery, b"pong")
    answer = await through_proxy(NetworkPolicy(), f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403 Forbidden") and received == []


async def test_connect_to_an_allowed_loopback_port_tunnels(nursery: trio.Nursery) -> None:
    port, received = await start_server(nursery, b"pong")
    policy = NetworkPolicy.of([f"127.0.0.1:{port}"])
    answer = await through_proxy(policy, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nping".encode())
    assert answer == b"HTTP/1.1 200 Connection established\r\n\r\npong"
    assert received == [b"ping"]


async def test_a_plain_http_request_is_forwarded_in_origin_form(nursery: trio.Nursery) -> None:
    port, received = await start_server(nursery, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    policy = NetworkPolicy.of([f"127.0.0.1:{port}"])
    request = f"GET http://127.0.0.1:{port}/v1/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Connection: keep-alive\r\n\r\n"
    answer = await through_proxy(policy, request.encode())
    assert answer.endswith(b"\r\n\r\nhi")
    assert received[0].startswith(b"GET /v1/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert b"Proxy-Connection" not in received[0] and b"Connection: close\r\n" in received[0]


async def test_what_is_not_a_proxy_request_gets_400() -> None:
    assert (await through_proxy(NetworkPolicy(), b"GET /local HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 400")
    assert (await through_proxy(NetworkPolicy(), b"nonsense\r\n\r\n")).startswith(b"HTTP/1.1 400")
