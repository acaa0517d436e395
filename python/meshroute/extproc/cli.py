"""Placeholder for `meshroute serve`; replaced by the real subcommand."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser("serve", help="(not built yet)")
    p.set_defaults(func=lambda args: 2)
    return p
