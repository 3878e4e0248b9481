"""The commented `config.yml` and `secrets.yml` written by `3t config init`, generated from the models.

Generating from the schema means a new key cannot be forgotten in the template, and the file is checked
to load back to exactly the defaults.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from ttt.config.models import Config, Secrets
from ttt.config.yamlfile import parse_text

COMMENT_COLUMN = 48
INDENT = "  "

CONFIG_HEADER = """\
# 3T configuration (services.md §11.2). Every key is listed with its default.
# Precedence: defaults < this file < TTT_<PATH> environment variables < command-line flags.
# Example: TTT_PORTFOLIO__QUORUM__K=3 overrides portfolio.quorum.k. Unknown keys are errors.
# Maps (per symbol, per timeframe) merge into the defaults entry by entry; lists replace them.
# Check with: 3t config check --config config.yml --secrets secrets.yml
"""

SECRETS_HEADER = """\
# 3T secrets (services.md §11.3). Keep this file private (mode 600); never commit it.
# Override any entry with TTT_SECRET__<PATH>, e.g. TTT_SECRET__GATEWAY__TOKEN.
# null = not set.
"""


# Strings written unquoted; anything else (symbols, URLs, hex, addresses) is quoted so every YAML reader
# sees a string.
_PLAIN_RE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_.-]*|[0-9]+[A-Za-z])$")


def _number(value: float) -> str:
    """Integral floats as integers and small ones positionally (0.000003, not 3e-06), exactly."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = format(Decimal(repr(value)), "f")
    return text if float(text) == value and len(text) <= 24 else repr(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write non-finite default {value!r}")
        return _number(value)
    if isinstance(value, str):
        plain = bool(_PLAIN_RE.match(value))
        if plain:
            try:
                plain = parse_text(value) == value and parse_text(f"[{value}]") == [value]
            except Exception:
                plain = False
        return value if plain else json.dumps(value, ensure_ascii=False)
    raise TypeError(f"no template form for {type(value).__name__}")


def flow(value: Any) -> str:
    """A value in YAML flow style that the configuration loader reads back unchanged."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {flow(v)}" for k, v in value.items()) + "}"
    return _scalar(value)


def _line(depth: int, text: str, comment: str) -> str:
    body = INDENT * depth + text
    if not comment:
        return body
    return f"{body.ljust(COMMENT_COLUMN - 1)} # {comment}"


def _render(model: BaseModel, depth: int, out: list[str]) -> None:
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        comment = info.description or ""
        if isinstance(value, BaseModel):
            if depth == 0 and out:
                out.append("")
            out.append(_line(depth, f"{name}:", comment))
            _render(value, depth + 1, out)
        elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            out.append(_line(depth, f"{name}:", comment))
            for key, item in value.items():
                out.append(_line(depth + 1, f"{_scalar(key)}: {flow(item)}", ""))
        else:
            out.append(_line(depth, f"{name}: {flow(value)}", comment))


def config_template() -> str:
    out: list[str] = []
    _render(Config(), 0, out)
    return CONFIG_HEADER + "\n" + "\n".join(out) + "\n"


def secrets_template() -> str:
    out: list[str] = []
    _render(Secrets(), 0, out)
    return SECRETS_HEADER + "\n" + "\n".join(out) + "\n"
