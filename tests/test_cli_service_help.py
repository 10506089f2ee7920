"""`speeltuin service --help`, run as a command: every option says what it is for (a vendor's engineer setting up
the service sees what --ura, --client-id and --name mean without reading the code)."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from speeltuin import defaults
from speeltuin.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def test_every_service_option_has_help() -> None:
    parser = build_parser()
    [groups] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    service = groups.choices["service"]
    silent = [a.option_strings[0] for a in service._actions if a.option_strings and not (a.help or "").strip()]
    assert silent == []


def test_the_help_explains_the_simulators_identity() -> None:
    shown = subprocess.run([sys.executable, "-m", "speeltuin.cli", "service", "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())  # argparse wraps to the terminal's width
    assert "--ura URA URA of the organisation the simulator plays in new sessions: the Task.owner a sending vendor " \
           "must use" in text and f"(default {defaults.OWN_URA})" in text
    assert "--client-id CLIENT_ID client id (iss = sub) of the simulator's client assertions" in text
    assert f"--name NAME how the simulator names itself at GET / (default '{defaults.SIMULATOR_NAME}')" in text
