"""One place for the defaults every part starts from: who the simulator is, where it listens, where it keeps things.

Everything a run keeps (the store, the test PKI, mitmproxy's settings) lives under one instance folder:
`--instance DIR`, else $SPEELTUIN_INSTANCE, else $XDG_DATA_HOME/speeltuin (~/.local/share/speeltuin).
It never depends on the working directory.
"""
from __future__ import annotations

import os
from pathlib import Path

OWN_URA = "90000101"  # the care organisation the simulator plays
OWN_CLIENT_ID = "speeltuin-simulator"
SIMULATOR_NAME = "speeltuin simulator"
REFERENCE_VENDOR_URA = "90000202"  # the built-in reference vendor of the demo
REFERENCE_VENDOR_CLIENT_ID = "reference-vendor"
DEMO_PATIENT_BSN = "999993653"

HOST = "127.0.0.1"
SERVE_PORT = 8080
PROXY_FRONT_PORT = 8081  # vendors call the simulator here
PROXY_BACK_PORT = 8082  # the simulator calls the vendor here
PUBLIC_URL = f"http://{HOST}:{SERVE_PORT}"  # where vendors reach the simulator when nothing else is said

INSTANCE_ENV = "SPEELTUIN_INSTANCE"
DATABASE_ENV = "SPEELTUIN_DATABASE_URL"
ADMIN_KEY_ENV = "SPEELTUIN_ADMIN_KEY"
DATABASE_FILE = "speeltuin.sqlite"


def instance_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """The folder where this installation keeps its store, test PKI and proxy settings."""
    if given:
        return Path(given).expanduser().resolve()
    if os.environ.get(INSTANCE_ENV):
        return Path(os.environ[INSTANCE_ENV]).expanduser().resolve()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home).expanduser().resolve() / "speeltuin"


def sqlite_url(path: Path | str) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def database_url(instance: Path | None = None) -> str:
    """$SPEELTUIN_DATABASE_URL, else the SQLite file in the instance folder."""
    return os.environ.get(DATABASE_ENV) or sqlite_url((instance or instance_dir()) / DATABASE_FILE)


def pki_dir(instance: Path | None = None) -> Path:
    return (instance or instance_dir()) / "pki"


def mitmproxy_confdir(instance: Path | None = None) -> Path:
    return (instance or instance_dir()) / "mitmproxy"
