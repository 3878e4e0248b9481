"""State shared by every `3t` command: the global options and the output consoles."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@dataclass
class CliState:
    config_path: Path | None = None
    secrets_path: Path | None = None
    log_level: str | None = None
    json: bool = False

    def emit(self, data: Any, render: Callable[[], Any]) -> None:
        """Print `data` as JSON with --json, otherwise what `render` returns."""
        if self.json:
            console.print_json(json.dumps(data, default=str))
        else:
            console.print(render())
