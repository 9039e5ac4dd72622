"""What a sandboxed local sprite may reach on the network, and the host side of its plumbing.

A sandboxed sprite has a network namespace of its own with only a loopback interface: it
cannot open a connection to anything by itself. Inside it, `sandbox_init.py` listens on a few
loopback ports and relays each connection to a Unix socket in a folder bind-mounted into the
sandbox; here, on the host, the dispatcher serves those sockets:

- `tcp-<port>.sock`: a forwarded port. The webhook server's port always (the sprite calls back
  to http://127.0.0.1:<port> inside the sandbox, relayed to the server's real address), and
  the loopback destinations the operator allowed (e.g. a model API on 127.0.0.1:4000).
- `proxy.sock`: an HTTP proxy (CONNECT, and plain `GET http://...`) that the sprite's
  programs use through `HTTPS_PROXY`/`HTTP_PROXY`. It connects to public addresses, and
  refuses loopback, private, link-local and other non-global addresses unless the operator's
  allowlist names them. It resolves names itself and connects to the address it checked, so a
  name that resolves to a private address is refused too.

Each sprite has its own folder of sockets, served only while the sprite lives; the policy is
the sprite's own.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import stat
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import attrs
import trio

from ...support.tcp_splice import splice

log = logging.getLogger(__name__)

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

PROXY_SOCKET = "proxy.sock"
DEFAULT_PROXY_PORT = 3128
MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 15.0
CHUNK = 65536
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
#: Where an operator points the agents at their model API (passed through to sprites).
MODEL_URL_VARIABLES = ("ANTHROPIC_BASE_URL",)
OPENCODE_CONFIG_VARIABLE = "OPENCODE_CONFIG_CONTENT"


def forward_socket_name(port: int) -> str:
    return f"tcp-{port}.sock"


# --- the policy --------------------------------------------------------------------------


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback(host: str) -> bool:
    address = _address(host)
    return host.lower() in LOOPBACK_NAMES if address is None else address.is_loopback


def is_public(address: IPAddress) -> bool:
    """An address anyone on the internet could reach: not loopback, private, link-local, ..."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@attrs.frozen
class Destination:
    """One allowlist entry: `HOST`, `HOST:PORT`, `CIDR`, `CIDR:PORT`, `[V6]:PORT` (no port: any)."""

    name: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> Destination:
        entry = text.strip()
        if not entry:
            raise ValueError("an empty network destination")
        host, port = entry, None
        if entry.startswith("["):
            close = entry.find("]")
            if close < 0:
                raise ValueError(f"bad network destination {text!r}: no closing ]")
            host, rest = entry[1:close], entry[close + 1 :]
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"bad network destination {text!r}")
                port = _port(rest[1:], text)
        elif entry.count(":") == 1:
            host, port_text = entry.split(":")
            port = _port(port_text, text)
        if not host:
            raise ValueError(f"bad network destination {text!r}: no host")
        try:
            return cls(network=ipaddress.ip_network(host, strict=False), port=port)
        except ValueError:
            pass
        if not all(part and (part.isalnum() or part.replace("-", "").replace("_", "").isalnum()) for part in host.split(".")):
            raise ValueError(f"bad network destination {text!r}: {host!r} is neither an address, a network nor a name")
        return cls(name=host.lower(), port=port)

    def matches(self, name: str | None, address: IPAddress | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.name is not None:
            return name is not None and name.lower().rstrip(".") == self.name
        return address is not None and self.network is not None and address in self.network

    def __str__(self) -> str:
        host = self.name if self.name is not None else str(self.network)
        if self.port is None:
            return host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad network destination {entry!r}: {text!r} is not a port")
    return int(text)


@attrs.frozen
class NetworkPolicy:
    """Public addresses, plus the operator's allowlist of loopback and private destinations."""

    allowed: tuple[Destination, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str]) -> NetworkPolicy:
        return cls(tuple(Destination.parse(entry) for entry in entries))

    def named(self, name: str, port: int) -> bool:
        """The operator allowed this name itself (whatever it resolves to)."""
        return _address(name) is None and any(d.matches(name, None, port) for d in self.allowed)

    def permits(self, address: IPAddress, port: int) -> bool:
        return is_public(address) or any(d.matches(None, address, port) for d in self.allowed)

    def loopback_ports(self) -> dict[int, tuple[str, int]]:
        """Allowed loopback destinations with a port: forwarded into the sandbox as that port."""
        found: dict[int, tuple[str, int]] = {}
        for destination in self.allowed:
            if destination.port is None:
                continue
            if destination.name is not None and destination.name in LOOPBACK_NAMES:
                found.setdefault(destination.port, ("127.0.0.1", destination.port))
            elif destination.network is not None and destination.network.num_addresses == 1:
                address = destination.network.network_address
                if address.is_loopback:
                    found.setdefault(destination.port, (str(address), destination.port))
        return found

    def with_destinations(self, extra: Iterable[Destination]) -> NetworkPolicy:
        return NetworkPolicy(tuple(dict.fromkeys([*self.allowed, *extra])))

    def as_record(self) -> list[str]:
        return [str(d) for d in self.allowed]


def model_endpoints(env: Mapping[str, str]) -> list[Destination]:
    """The model APIs the operator pointed the agents at (`ANTHROPIC_BASE_URL`, OpenCode's config).

    They are configuration (passed through from the operator's environment, never a chat
    user's input), and an agent is useless without its model, so they are allowed even on
    loopback or a private network.
    """
    urls = [env[name] for name in MODEL_URL_VARIABLES if env.get(name)]
    config = env.get(OPENCODE_CONFIG_VARIABLE)
    if config:
        try:
            providers = json.loads(config).get("provider", {})
            for provider in providers.values() if isinstance(providers, dict) else ():
                options = provider.get("options", {}) if isinstance(provider, dict) else {}
                if isinstance(options, dict) and isinstance(options.get("baseURL"), str):
                    urls.append(options["baseURL"])
        except (ValueError, AttributeError):
            pass
    found = []
    for url in urls:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        found.append(Destination.parse(f"[{parts.hostname}]:{port}" if ":" in parts.hostname else f"{parts.hostname}:{port}"))
    return found


# --- one sprite's network -----------------------------------------------------------------


@attrs.frozen
class SpriteNetwork:
    """A sprite's socket folder, its forwarded ports and its proxy's policy (kept in the registry)."""

    directory: Path
    #: port inside the sandbox -> (host, port) the dispatcher connects to
    forwards: Mapping[int, tuple[str, int]]
    policy: NetworkPolicy
    proxy_port: int

    def as_record(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "forwards": {str(port): [host, target] for port, (host, target) in self.forwards.items()},
            "allowed": self.policy.as_record(),
            "proxy_port": self.proxy_port,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SpriteNetwork:
        return cls(
            directory=Path(record["directory"]),
            forwards={int(port): (str(host), int(target)) for port, (host, target) in record["forwards"].items()},
            policy=NetworkPolicy.of(record.get("allowed", ())),
            proxy_port=int(record["proxy_port"]),
        )

    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"


def choose_proxy_port(taken: Iterable[int]) -> int:
    used = set(taken)
    port = DEFAULT_PROXY_PORT
    while port in used:
        port += 1
    return port


@attrs.define
class _Served:
    token: object
    scope: trio.CancelScope
    sockets: list[socket.socket]


@attrs.define
class NetworkService:
    """Serves the socket folders of one `LocalSprites`' live sandboxes, in the current trio run.

    Each sprite's listeners run in a trio system task of their own (a sprite outlives any one
    caller's nursery), cancelled by `stop` or at the end of the run. A later run (a restarted
    dispatcher, a test) serves the same folders again: a sprite's relays retry meanwhile.
    """

    _served: dict[str, _Served] = attrs.field(factory=dict, init=False)

    def serve(self, sprite_id: str, network: SpriteNetwork) -> None:
        token = trio.lowlevel.current_trio_token()
        current = self._served.get(sprite_id)
        if current is not None and current.token is token:
            return
        if current is not None:
            _close_all(current.sockets)
        sockets: list[socket.socket] = []
        try:
            _private_folder(network.directory)
            for port, target in network.forwards.items():
                sockets.append(_bind_unix(network.directory / forward_socket_name(port)))
            sockets.append(_bind_unix(network.directory / PROXY_SOCKET))
        except OSError:
            _close_all(sockets)
            raise
        scope = trio.CancelScope()
        self._served[sprite_id] = _Served(token, scope, sockets)
        handlers = [_forwarder(target) for target in network.forwards.values()]
        handlers.append(_proxy_handler(network.policy))
        trio.lowlevel.spawn_system_task(_serve_all, sprite_id, scope, list(zip(sockets, handlers)))

    def stop(self, sprite_id: str, directory: Path | None) -> None:
        served = self._served.pop(sprite_id, None)
        if served is not None:
            served.scope.cancel()
            _close_all(served.sockets)
        if directory is not None:
            remove_folder(directory)


def remove_folder(directory: Path) -> None:
    """Remove a sprite's socket folder (its sockets only; nothing else is ever put there)."""
    try:
        for entry in directory.iterdir():
            entry.unlink(missing_ok=True)
        directory.rmdir()
    except OSError:
        pass


def _private_folder(directory: Path) -> None:
    """The socket folder and its parent, 0700 and ours: other users must not use the proxy."""
    directory.parent.parent.mkdir(parents=True, exist_ok=True)
    for folder in (directory.parent, directory):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise OSError(f"{folder} is not a folder of this user that only it may write")
        os.chmod(folder, 0o700)


def _bind_unix(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)  # a previous dispatcher's socket, or a stale one
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _close_all(sockets: Sequence[socket.socket]) -> None:
    for sock in sockets:
        try:
            trio.lowlevel.notify_closing(sock)
        except RuntimeError:
            pass  # outside a trio run: nobody waits on it
        sock.close()


Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def _serve_all(sprite_id: str, scope: trio.CancelScope, pairs: list[tuple[socket.socket, Handler]]) -> None:
    try:
        with scope:
            async with trio.open_nursery() as nursery:
                for sock, handler in pairs:
                    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
                    nursery.start_soon(_accept, listener, handler, nursery)
    except Exception:  # a system task must never raise: it would end the whole trio run
        log.exception("the network of sandboxed sprite %s stopped", sprite_id)


async def _accept(listener: trio.SocketListener, handler: Handler, nursery: trio.Nursery) -> None:
    while True:
        try:
            stream = await listener.accept()
        except (trio.ClosedResourceError, OSError):
            return  # stopped (its socket closed)
        nursery.start_soon(_handle, handler, stream)


async def _handle(handler: Handler, stream: trio.SocketStream) -> None:
    try:
        async with stream:
            await handler(stream)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    except Exception:
        log.exception("a sandboxed sprite's connection failed")


def _forwarder(target: tuple[str, int]) -> Handler:
    host, port = target

    async def forward(stream: trio.SocketStream) -> None:
        with trio.move_on_after(CONNECT_TIMEOUT_S) as connecting:
            upstream = await trio.open_tcp_stream(host, port)
        if connecting.cancelled_caught:
            return
        async with upstream:
            await splice(stream, upstream)

    return forward


# --- the proxy ---------------------------------------------------------------------------


class Refused(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _proxy_handler(policy: NetworkPolicy) -> Handler:
    async def proxy(stream: trio.SocketStream) -> None:
        await serve_proxy_connection(stream, policy)

    return proxy


async def serve_proxy_connection(stream: trio.SocketStream, policy: NetworkPolicy) -> None:
    """One client of the proxy: `CONNECT host:port`, or a plain request with an absolute URL."""
    try:
        with trio.fail_after(HEAD_TIMEOUT_S):
            head, rest = await _read_head(stream)
        method, target, version, headers = _parse_head(head)
        if method == "CONNECT":
            host, port = _split_host_port(target)
            upstream = await open_permitted(host, port, policy)
            async with upstream:
                await stream.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await splice(stream, upstream, rest)
            return
        url = urllib.parse.urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            raise Refused("400 Bad Request", f"this proxy takes CONNECT or http:// URLs, not {target[:100]!r}")
        port = url.port or 80
        path = urllib.parse.urlunsplit(("", "", url.path or "/", url.query, ""))
        kept = [line for line in headers if line.split(b":", 1)[0].strip().lower() not in _HOP_HEADERS]
        request = b"\r\n".join([f"{method} {path} {version}".encode(), *kept, b"Connection: close", b"", b""])
        upstream = await open_permitted(url.hostname, port, policy)
        async with upstream:
            await splice(stream, upstream, request + rest)
    except Refused as refused:
        await _answer(stream, refused.status, refused.reason)
    except trio.TooSlowError:
        await _answer(stream, "408 Request Timeout", "the request head did not arrive in time")
    except (ValueError, UnicodeDecodeError) as exc:
        await _answer(stream, "400 Bad Request", str(exc))


_HOP_HEADERS = frozenset({b"connection", b"proxy-connection", b"keep-alive", b"proxy-authorization", b"te", b"upgrade"})


async def _read_head(stream: trio.SocketStream) -> tuple[bytes, bytes]:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD_BYTES:
            raise Refused("431 Request Header Fields Too Large", "the request head is too large")
        data = await stream.receive_some(CHUNK)
        if not data:
            raise Refused("400 Bad Request", "the connection closed before a whole request head")
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes) -> tuple[str, str, str, list[bytes]]:
    lines = head.split(b"\r\n")
    parts = lines[0].decode("ascii").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError("a malformed request line")
    return parts[0].upper(), parts[1], parts[2], lines[1:]


def _split_host_port(target: str) -> tuple[str, int]:
    if target.startswith("["):
        host, _, port = target[1:].partition("]:")
    else:
        host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"CONNECT needs host:port, not {target[:100]!r}")
    return host, int(port)


async def open_permitted(host: str, port: int, policy: NetworkPolicy) -> trio.SocketStream:
    """A connection to `host:port` if the policy permits it; `Refused` (403/502) otherwise."""
    literal = _address(host)
    if literal is not None:
        candidates = [literal]
    else:
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
        except OSError as exc:
            raise Refused("502 Bad Gateway", f"cannot resolve {host}: {exc}") from None
        candidates = list(dict.fromkeys(a for a in (_address(str(info[4][0])) for info in infos) if a is not None))
    named = literal is None and policy.named(host, port)
    permitted = [address for address in candidates if named or policy.permits(address, port)]
    if not permitted:
        shown = ", ".join(str(a) for a in candidates) or "nothing"
        raise Refused(
            "403 Forbidden",
            f"the Open-Dispatch sandbox does not let sprites reach {host}:{port} ({shown}): loopback, "
            "private and link-local addresses are closed unless the operator allows them "
            "(OPENDISPATCH_SANDBOX_ALLOW)",
        )
    last: OSError | None = None
    for address in permitted:
        try:
            with trio.fail_after(CONNECT_TIMEOUT_S):
                return await trio.open_tcp_stream(str(address), port)
        except (OSError, trio.TooSlowError) as exc:
            last = exc if isinstance(exc, OSError) else OSError(f"timed out after {CONNECT_TIMEOUT_S:.0f}s")
    raise Refused("502 Bad Gateway", f"cannot connect to {host}:{port}: {last}")


async def _answer(stream: trio.SocketStream, status: str, reason: str) -> None:
    body = (reason + "\n").encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    try:
        await stream.send_all(head.encode() + body)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
