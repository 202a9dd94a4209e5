"""The address guard of every outbound fetch: no loopback, private, link-local, multicast or reserved address.

A web page chooses the URLs we fetch (its images, its origin's robots.txt); without a guard it can make a
worker on a cloud cluster fetch ``http://169.254.169.254/`` (instance credentials) or a service on the
private network, and ship the answer in the dataset. The check runs on the addresses a host name resolves
to, at connection time (so every redirect hop is checked, and a DNS answer cannot change between the check
and the connection: we connect to the address we checked).

- :func:`refusal` classifies one IP address (IPv4 and IPv6; IPv4-mapped, 6to4 and NAT64 IPv6 addresses
  are judged by the IPv4 address inside them): ``loopback``, ``private``, ``link_local``, ``multicast``,
  ``unspecified`` or ``reserved`` (anything else that is not globally routable), else None.
- :func:`parse_ip_literal` reads a URL host the way resolvers and browsers do (WHATWG URL host parser):
  ``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``, ``[::ffff:127.0.0.1]`` are all 127.0.0.1.
- :func:`literal_refusal` checks a URL without resolving it (literal addresses and ``localhost`` names):
  the ``default`` extraction drops such image URLs at once.
- :func:`checked_addresses` resolves a host and returns only allowed addresses, or raises
  :class:`AddressRefused`; :func:`guarded_create_connection` connects to one of them.
- :func:`guarded_session` / :class:`GuardedAdapter` (requests) and :func:`guarded_opener` (urllib, what
  img2dataset uses) put the check in the connection itself.

The allow-list (networks in CIDR form, for tests and private mirrors) is explicit: the ``allow`` argument,
or the ``OBELICS_NET_ALLOW`` environment variable (comma-separated, read at each check, inherited by worker
processes). Nothing is allowed by default.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import threading
from collections import Counter
from collections.abc import Iterable
from urllib.parse import urlsplit

ENV_ALLOW = "OBELICS_NET_ALLOW"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")

# refusals per reason in this process (the funnel counts refused images by their error reason; this is for
# the fetches that have no per-item record, such as robots.txt)
REFUSED: Counter = Counter()
_refused_lock = threading.Lock()


class AddressRefused(ValueError):
    """A fetch refused because the host is, or resolves to, a non-public address.

    Its message starts with ``address_refused:<reason>`` (the image table's reason for the URL).
    """

    def __init__(self, reason: str, host: str, address: str | None = None):
        self.reason = reason
        self.host = host
        self.address = address
        at = f" ({address})" if address and address != host else ""
        super().__init__(f"address_refused:{reason} {host}{at}")


def _count(reason: str) -> None:
    with _refused_lock:
        REFUSED[reason] += 1


def allowed_networks(allow: Iterable[str] | None = None) -> list:
    """The allow-list as networks: ``allow`` if given, else ``OBELICS_NET_ALLOW`` (empty by default)."""
    if allow is None:
        allow = [a for a in os.environ.get(ENV_ALLOW, "").split(",") if a.strip()]
    return [ipaddress.ip_network(a.strip(), strict=False) for a in allow]


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | str) -> str | None:
    """Why an address must not be fetched (``loopback``, ``private``, ...), or None when it is public."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return refusal(inner)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link_local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


def _ipv4_number(part: str) -> int | None:
    """One part of a WHATWG IPv4 host: decimal, ``0x`` hex or ``0`` octal; None if not a number."""
    if part == "":
        return None
    base = 10
    if part[:2].lower() == "0x":
        part, base = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, base = part[1:], 8
    if part == "":
        return 0
    try:
        return int(part, base) if all(c.isalnum() for c in part) else None
    except ValueError:
        return None


def parse_ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a URL host names literally (every IPv4 notation a resolver accepts), else None."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    if host.endswith("."):
        host = host[:-1]
    parts = host.split(".")
    if not parts or len(parts) > 4:
        return None
    numbers = [_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n * 256 ** (3 - i)
    return ipaddress.IPv4Address(value)


def _host_of(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _is_allowed(ip, networks) -> bool:
    return any(ip.version == n.version and ip in n for n in networks)


_URL_HOST = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/?#]*)")
_LAST_LABEL_NUMBER = re.compile(r"(?:^|\.)(?:0[xX][0-9A-Fa-f]*|[0-9]+)\.?(?::[0-9]*)?$")


def could_be_literal(url: str) -> bool:
    """A cheap pre-check: True when the URL's host may be an address or a localhost name (an IPv6
    literal, a host whose last label is a number, as the URL standard reads it, or ``localhost``)."""
    m = _URL_HOST.match(url)
    if not m:
        return True  # unusual: let the full check decide
    host = m.group(1)
    return host.startswith("[") or "localhost" in host.lower() or _LAST_LABEL_NUMBER.search(host) is not None


def literal_refusal(url: str, allow: Iterable[str] | None = None) -> str | None:
    """Why ``url`` must not be fetched, judged without DNS: a literal non-public address or a
    ``localhost`` name; None otherwise (names are checked again after resolution)."""
    if not could_be_literal(url):
        return None
    host = _host_of(url)
    if not host:
        return None
    host = host.rstrip(".").lower()
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        ip = ipaddress.ip_address("127.0.0.1")
    else:
        ip = parse_ip_literal(host)
        if ip is None:
            return None
    reason = refusal(ip)
    if reason is None or _is_allowed(ip, allowed_networks(allow)):
        return None
    return reason


def checked_addresses(host: str, port: int, allow: Iterable[str] | None = None,
                      family: int = socket.AF_UNSPEC) -> list[tuple]:
    """``getaddrinfo`` results for ``host`` whose address is public or allowed.

    Raises :class:`AddressRefused` when every address is refused (one refused address among public ones
    is dropped, not connected to).
    """
    networks = allowed_networks(allow)
    literal = parse_ip_literal(host)
    if literal is not None:  # "2130706433" and friends: what getaddrinfo would make of them
        host = str(literal)
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    good, first_reason, first_addr = [], None, None
    for info in infos:
        addr = info[4][0]
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
        reason = refusal(ip)
        if reason is None or _is_allowed(ip, networks):
            good.append(info)
        elif first_reason is None:
            first_reason, first_addr = reason, addr
    if not good:
        _count(first_reason or "unresolved")
        raise AddressRefused(first_reason or "unresolved", host, first_addr)
    return good


def guarded_create_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None,
                              allow: Iterable[str] | None = None, socket_options=None):
    """``socket.create_connection`` that connects only to checked addresses."""
    host, port = address[0], address[1]
    err = None
    for family, socktype, proto, _canon, sockaddr in checked_addresses(host, port, allow):
        sock = None
        try:
            sock = socket.socket(family, socktype, proto)
            for opt in socket_options or ():
                sock.setsockopt(*opt)
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as e:
            err = e
            if sock is not None:
                sock.close()
    raise err if err is not None else OSError(f"no address for {host}")


# -- requests ----------------------------------------------------------------------------------------
def _guarded_pool_classes(allow):
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

    class _Guard:
        def _new_conn(self):  # urllib3's own, with the guarded connect (same exception mapping)
            try:
                return guarded_create_connection((self._dns_host, self.port), self.timeout,
                                                 self.source_address, allow, self.socket_options)
            except socket.gaierror as e:
                raise NameResolutionError(self.host, self, e) from e
            except TimeoutError as e:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from e
            except OSError as e:
                raise NewConnectionError(self, f"Failed to establish a new connection: {e}") from e

    class GuardedHTTPConnection(_Guard, HTTPConnection):
        pass

    class GuardedHTTPSConnection(_Guard, HTTPSConnection):
        pass

    class GuardedHTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    return {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}


def _requests_adapter_class():
    from requests.adapters import HTTPAdapter

    class GuardedAdapter(HTTPAdapter):
        """A requests adapter whose connections go only to checked addresses (every redirect hop too)."""

        def __init__(self, *args, allow: Iterable[str] | None = None, **kwargs):
            self.netguard_allow = None if allow is None else list(allow)
            super().__init__(*args, **kwargs)

        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = _guarded_pool_classes(self.netguard_allow)

        def proxy_manager_for(self, proxy, **proxy_kwargs):  # a proxy is a deliberate choice: not guarded
            return super().proxy_manager_for(proxy, **proxy_kwargs)

    return GuardedAdapter


def guarded_adapter(allow: Iterable[str] | None = None, **kwargs):
    """A :class:`requests.adapters.HTTPAdapter` with the guard (``kwargs`` go to HTTPAdapter)."""
    return _requests_adapter_class()(allow=allow, **kwargs)


def guard_session(session, allow: Iterable[str] | None = None, **adapter_kwargs):
    """Mount guarded adapters on a requests session for http:// and https://; returns the session."""
    adapter = guarded_adapter(allow, **adapter_kwargs)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def guarded_session(allow: Iterable[str] | None = None, **adapter_kwargs):
    """A new requests session with the guard."""
    import requests

    return guard_session(requests.Session(), allow, **adapter_kwargs)


# -- urllib (img2dataset) ----------------------------------------------------------------------------
def guarded_handlers(allow: Iterable[str] | None = None, connect=None) -> list:
    """urllib HTTP and HTTPS handlers whose connections go only to checked addresses.

    ``connect(addr, timeout, source, allow)`` opens each socket; :func:`guarded_create_connection` unless a
    caller wraps it (the image downloader adds a whole-download deadline)."""
    import http.client
    import urllib.request

    connect = connect or guarded_create_connection

    class _Guard:
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # http.client opens every socket through this attribute (HTTPS wraps it afterwards)
            self._create_connection = lambda addr, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source=None: (
                connect(addr, timeout, source, allow))

    class GuardedHTTPConnection(_Guard, http.client.HTTPConnection):
        pass

    class GuardedHTTPSConnection(_Guard, http.client.HTTPSConnection):
        pass

    class GuardedHTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(GuardedHTTPConnection, req)

    class GuardedHTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(GuardedHTTPSConnection, req, context=self._context)

    return [GuardedHTTPHandler(), GuardedHTTPSHandler()]
