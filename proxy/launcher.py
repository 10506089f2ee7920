"""Builds the mitmdump commands that put the validating proxy between vendors and the simulator.

`speeltuin proxy` (mitmdump_command): two reverse listeners, vendors reach the simulator through `front`, the
simulator reaches one vendor through `back`. `speeltuin service` (service_command): vendors reach the simulator
through one public reverse listener (HTTP, and HTTPS with a certificate of the test CA), and the simulator reaches
any vendor through a forward (regular) listener on loopback only. `speeltuin chain proxy` (chain_command): two vendor
systems reach each other, through a reverse listener in front of each or a forward listener. Every listener records into the same store, so
every exchange of a session is seen in one place.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from speeltuin.records import ProxyPorts

ADDON = Path(__file__).resolve().parent / "addon.py"


@dataclass(frozen=True)
class ProxyPlan:
    simulator_url: str  # where the simulator really listens
    vendor_url: str  # where the vendor system really listens
    ports: ProxyPorts  # where vendors call the simulator (front) and the simulator calls the vendor (back)
    database_url: str
    confdir: Path  # mitmproxy's own CA and settings, kept out of the user's home
    block_on_error: bool = False  # answer invalid requests instead of forwarding them
    trusted_ca: Path | None = None  # the test CA: assertions may carry an x5c chain to it
    # the address vendors know the simulator by when it is not the front port (a load balancer or a reverse proxy in
    # front, several proxies behind one name): assertions' aud is judged against it
    public_url: str | None = None


def mitmdump_executable() -> str:
    candidate = Path(sys.executable).parent / "mitmdump"
    return str(candidate) if candidate.exists() else "mitmdump"


def mitmdump_command(plan: ProxyPlan) -> list[str]:
    return [
        mitmdump_executable(), "-q",
        "--listen-host", plan.ports.host,
        "--mode", f"reverse:{plan.simulator_url}@{plan.ports.front_port}",
        "--mode", f"reverse:{plan.vendor_url}@{plan.ports.back_port}",
        *_common(plan.confdir, plan.database_url, (plan.public_url or plan.ports.front_url).rstrip("/"),
                 plan.simulator_url, plan.trusted_ca),
        *(["--set", "speeltuin_block_on_error=true"] if plan.block_on_error else []),
    ]


@dataclass(frozen=True)
class ServicePlan:
    simulator_url: str  # where the simulator really listens (loopback)
    public_host: str
    public_port: int  # vendors reach the simulator here
    public_url: str  # ... and know it by this address
    forward_port: int  # the simulator's calls to vendors go through here (127.0.0.1 only: never an open proxy)
    database_url: str
    confdir: Path
    certificate: Path | None = None  # PEM of the public listener's key and certificate chain (test CA): HTTPS
    block_on_error: bool = False
    vendor_ca: Path | None = None  # the test CA: vendors' server certificates must chain to it
    client_certificate: Path | None = None  # PEM of the key and certificate the proxy presents to vendors (mTLS)
    trusted_ca: Path | None = None


def service_command(plan: ServicePlan) -> list[str]:
    command = [
        mitmdump_executable(), "-q",
        "--mode", f"reverse:{plan.simulator_url}@{_listen(plan.public_host)}:{plan.public_port}",
        "--mode", f"regular@127.0.0.1:{plan.forward_port}",
        *_common(plan.confdir, plan.database_url, plan.public_url, plan.simulator_url, plan.trusted_ca),
        *(["--set", "speeltuin_block_on_error=true"] if plan.block_on_error else []),
    ]
    if plan.certificate is not None:
        # TLS to vendors with the test CA's certificate, for the public name (mitmproxy also uses it for the other
        # names the certificate carries); the hosts of the vendors the simulator calls through the forward listener
        # get mitmproxy's own certificates. The simulator trusts both CAs (speeltuin service: trust_bundle).
        command += ["--set", f"certs={urlsplit(plan.public_url).hostname}={plan.certificate}"]
    if plan.vendor_ca is not None:
        # and, as `speeltuin serve` checks by itself, the session's vendor URA in it (proxy/addon.py: VendorTrust)
        command += ["--set", f"ssl_verify_upstream_trusted_ca={plan.vendor_ca}", "--set", "speeltuin_vendor_ura=true"]
        if plan.certificate is not None:  # mutual TLS sessions: ask vendors for their certificate, check it there
            command += ["--set", "request_client_cert=true", "--set", f"speeltuin_client_ca={plan.vendor_ca}"]
    if plan.client_certificate is not None:
        command += ["--set", f"client_certs={plan.client_certificate}"]
    return command


@dataclass(frozen=True)
class ChainPlan:
    """`speeltuin chain proxy`: the proxy between two vendor systems per chain session, with no simulator."""

    host: str
    reverse: tuple[tuple[int, str], ...]  # (the proxy's port, the vendor system behind it): one reverse listener each
    forward_port: int | None  # a forward (regular) listener: systems named by their own address (host mapping)
    database_url: str
    confdir: Path
    block_on_error: bool = False
    trusted_ca: Path | None = None


def chain_command(plan: ChainPlan) -> list[str]:
    modes = [f"reverse:{upstream}@{_listen(plan.host)}:{port}" for port, upstream in plan.reverse]
    if plan.forward_port is not None:
        modes.append(f"regular@{_listen(plan.host)}:{plan.forward_port}")
    return [mitmdump_executable(), "-q", *(arg for mode in modes for arg in ("--mode", mode)),
            *_common(plan.confdir, plan.database_url, "", "", plan.trusted_ca),
            *(["--set", "speeltuin_block_on_error=true"] if plan.block_on_error else [])]


def proxy_ca(confdir: Path) -> Path:
    """mitmproxy's own CA certificate (made in its confdir when it first starts)."""
    return confdir / "mitmproxy-ca-cert.pem"


def write_trust_bundle(path: Path, confdir: Path, test_ca: Path | None) -> None:
    """What the simulator trusts when it calls vendors through the forward listener: mitmproxy's CA (made now if
    mitmproxy has not made it yet), and the test CA (whose certificate the proxy presents for the names of its
    public certificate)."""
    from mitmproxy.certs import CertStore

    CertStore.from_store(confdir, "mitmproxy", 2048)  # mitmproxy's own key size for its CA
    parts = [proxy_ca(confdir).read_text()] + ([test_ca.read_text()] if test_ca else [])
    path.write_text("\n".join(parts))


def _listen(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _common(confdir: Path, database_url: str, public_url: str, simulator_url: str,
            trusted_ca: Path | None) -> list[str]:
    return [
        "--set", f"confdir={confdir}",
        "--set", "termlog_verbosity=warn",
        # connect upstream when a request comes, not when a connection does (a port probe opens nothing upstream)
        "--set", "connection_strategy=lazy",
        "--set", f"body_size_limit={8 * 1024 * 1024}",
        "-s", str(ADDON),
        "--set", f"speeltuin_db={database_url}",
        "--set", f"speeltuin_public_url={public_url}",
        "--set", f"speeltuin_simulator={simulator_url}",
        *(["--set", f"speeltuin_trusted_ca={trusted_ca}"] if trusted_ca else []),
    ]
