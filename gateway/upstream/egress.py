"""How a client reaches its upstream: through which proxy, trusting which certificates.

Proxies: `upstream.proxy` when set, else the environment's `https_proxy`/`HTTPS_PROXY` (for an
https upstream) or `http_proxy`/`HTTP_PROXY` (for an http one), lower case first as curl and
Python's urllib read them; `no_proxy`/`NO_PROXY` (host names, which cover their subdomains,
optionally with a port; IP networks such as `10.0.0.0/8`; `*`) sends the hosts it names direct, whichever way the proxy was given. Only `http://` proxies: an https
upstream is reached through a CONNECT tunnel, an http one by absolute request targets.

Trust: the system's store, plus the PEM bundle `upstream.ca_file` names (a private CA, or the
one a TLS-inspecting egress proxy signs with).
"""

from __future__ import annotations

import base64
import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class Proxy:
    url: str  # as given, for clients that take a URL
    host: str
    port: int
    authorization: str  # a `proxy-authorization` value, or ""


def proxy_for(base_url: str, configured: str, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy that calls to `base_url` go through, or None: direct."""
    url = urlsplit(base_url)
    chosen = configured
    if not chosen:
        scheme = "https" if url.scheme == "https" else "http"
        names = (f"{scheme}_proxy", f"{scheme.upper()}_PROXY")
        chosen = next((environ[name] for name in names if environ.get(name)), "")
    if not chosen:
        return None
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    if bypassed(url.hostname or "", port, no_proxy):
        return None
    return parse_proxy(chosen)


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether `no_proxy` (comma-separated) names `host` (a name or an IP address) on `port`."""
    host = host.lower().rstrip(".")
    for entry in no_proxy.lower().split(","):
        entry = entry.strip()
        if entry == "*":
            return True
        name, wanted_port = entry, ""
        if entry.startswith("["):  # [v6] or [v6]:port
            name, _, rest = entry[1:].partition("]")
            wanted_port = rest.removeprefix(":")
        elif entry.count(":") == 1:
            name, wanted_port = entry.split(":")
        name = name.lstrip("*").lstrip(".")
        if not name or (wanted_port and wanted_port != str(port)):
            continue
        if host == name or host.endswith("." + name) or _in_network(host, name):
            return True
    return False


def _in_network(host: str, network: str) -> bool:
    if "/" not in network:
        return False
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def parse_proxy(text: str) -> Proxy:
    url = urlsplit(text if "://" in text else f"http://{text}")
    if url.scheme != "http" or not url.hostname:
        raise ValueError(
            f"upstream proxy {text!r}: expected an http:// proxy URL (https upstreams are "
            "tunnelled through it with CONNECT)"
        )
    authorization = ""
    if url.username is not None:
        pair = f"{unquote(url.username)}:{unquote(url.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    host = url.hostname
    return Proxy(text, host, url.port or 80, authorization)


def tls_context(ca_file: str) -> ssl.SSLContext:
    """The system's trust store, plus the certificates in `ca_file` when one is named."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"upstream.ca_file: cannot load {ca_file!r} ({exc})") from None
    return context
