"""`load_settings`: defaults → config.yml → environment → CLI overrides, validated all at once.

Every value remembers where it came from (file and line, environment variable, or command-line
override), so an error can tell the user which file or variable to fix.
"""

from __future__ import annotations

import copy
import difflib
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from ttt.config.models import Config, Secrets
from ttt.config.resolved import PROCESSES
from ttt.config.settings import Settings
from ttt.config.validation import Checker, render_key, show
from ttt.config.yamlfile import YamlProblem, load_file, parse_text
from ttt.errors import ConfigError

Key = tuple[str | int, ...]

ENV_PREFIX = "TTT_"
SECRET_ENV_PREFIX = "TTT_SECRET__"
RESERVED_ENV = ("TTT_CONFIG", "TTT_SECRETS", "TTT_LOG_LEVEL")
DEFAULT_CONFIG = Path("config.yml")
DEFAULT_SECRETS = Path("secrets.yml")

# Reference names accepted for compatibility (services.md §11.3, §11.4): alias → (new name or None).
_CONFIG_ALIASES: dict[Key, Key | None] = {
    ("providence", "mysql_update_frequency"): ("providence", "db_write_every_ticks"),
    ("providence", "purge_age_minutes"): None,
}
_SECRET_ALIASES: dict[Key, Key | None] = {
    ("exchanges", "hyperliquid", "walletAddress"): ("exchanges", "hyperliquid", "wallet_address"),
    ("exchanges", "hyperliquid", "privateKey"): ("exchanges", "hyperliquid", "private_key"),
    ("exchanges", "hyperliquid", "apiKey"): None,
}


# ------------------------------------------------------------------------------------- type walking


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _strip_optional(get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        optional = len(args) != len(get_args(tp))
        if len(args) == 1:
            inner, inner_optional = _strip_optional(args[0])
            return inner, optional or inner_optional
        return tp, optional
    return tp, False


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_text(tp: Any) -> bool:
    if tp in (str, SecretStr):
        return True
    return get_origin(tp) is Literal and all(isinstance(a, str) for a in get_args(tp))


def _resolve(
    root: type[BaseModel], segments: list[str], existing: Any, aliases: Mapping[Key, Key | None]
) -> tuple[Key, Any] | None:
    """Map case-insensitive path segments onto the schema: the canonical key and the target type."""
    tp: Any = root
    keys: list[str] = []
    current = existing
    for seg in segments:
        inner, _ = _strip_optional(tp)
        if _is_model(inner):
            names = list(inner.model_fields)
            names += [k[-1] for k in aliases if len(k) == len(keys) + 1 and list(k[:-1]) == keys]  # type: ignore[misc]
            match = next((n for n in names if n == seg), None) or next(
                (n for n in names if n.lower() == seg.lower()), None
            )
            if match is None:
                return None
            tp = inner.model_fields[match].annotation if match in inner.model_fields else Any
            keys.append(match)
        elif get_origin(inner) is dict:
            candidates = list(current) if isinstance(current, dict) else []
            match = next((k for k in candidates if k == seg), None) or next(
                (k for k in candidates if isinstance(k, str) and k.lower() == seg.lower()), seg
            )
            tp = get_args(inner)[1]
            keys.append(match)
        else:
            return None
        current = current.get(keys[-1]) if isinstance(current, dict) else None
    return tuple(keys), tp


def _coerce_text(text: str, tp: Any) -> Any:
    """An environment value: YAML for numbers, booleans and collections; verbatim for text keys.

    Text keys keep the raw string so that `74747401` or a hex key stays exactly what the user typed.
    """
    inner, optional = _strip_optional(tp)
    if _is_text(inner):
        if optional and text.strip() in ("", "null", "~"):
            return None
        return text
    return parse_text(text)


# ------------------------------------------------------------------------------------------ layers


class _Tree:
    """A nested mapping being assembled, plus the origin of every value set into it."""

    def __init__(self, base: dict[Any, Any]) -> None:
        self.data: dict[Any, Any] = base
        self.origins: dict[Key, str] = {}

    def _mark(self, path: Key, value: Any, origin: str) -> None:
        self.origins[path] = origin
        if isinstance(value, dict):
            for k, v in value.items():
                self._mark((*path, str(k)), v, origin)

    def set(self, path: Key, value: Any, origin: str) -> str | None:
        node = self.data
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                return f"{render_key(path[: i + 1])} is not a mapping, so {render_key(path)} cannot be set"
            node = child
        last = path[-1]
        old = node.get(last)
        if isinstance(old, dict) and isinstance(value, dict):
            _deep_merge(old, value)
        else:
            node[last] = copy.deepcopy(value)
        self._mark(path, value, origin)
        return None

    def merge_file(self, data: dict[str, Any], lines: dict[tuple[str, ...], int], where: str) -> None:
        _deep_merge(self.data, data)
        for path, line in lines.items():
            self.origins[path] = f"in {where} line {line}"

    def get(self, path: Key) -> Any:
        node: Any = self.data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return _MISSING
            node = node[part]
        return node

    def pop(self, path: Key) -> Any:
        parent = self.get(path[:-1])
        if isinstance(parent, dict):
            return parent.pop(path[-1], _MISSING)
        return _MISSING

    def where(self, path: Key) -> str:
        """` (in FILE line N)` / ` (from …)` for the longest prefix of `path` that has an origin."""
        for end in range(len(path), 0, -1):
            origin = self.origins.get(tuple(str(p) for p in path[:end]))
            if origin is not None:
                return f" ({origin})"
        return " (default)"


_MISSING = object()


def _deep_merge(dst: dict[Any, Any], src: Mapping[Any, Any]) -> None:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _deep_merge(dst[key], value)
        else:
            dst[key] = copy.deepcopy(value)


def _apply_aliases(tree: _Tree, aliases: Mapping[Key, Key | None], prefix: str, warnings: list[str]) -> None:
    for alias, target in aliases.items():
        value = tree.get(alias)
        if value is _MISSING:
            continue
        origin = tree.origins.get(alias, "")
        tree.pop(alias)
        alias_name = render_key((prefix, *alias) if prefix else alias)
        if target is None:
            warnings.append(f"{alias_name} is a reference key that ttt does not read; ignored ({origin})")
            continue
        target_name = render_key((prefix, *target) if prefix else target)
        if target in tree.origins:
            warnings.append(
                f"{alias_name} and {target_name} are both set; {target_name} wins ({tree.origins[target]}), "
                f"{alias_name} is ignored ({origin})"
            )
            continue
        error = tree.set(target, value, f"{origin}, as {alias_name}")
        if error:
            raise AssertionError(error)  # pragma: no cover - the target's parent always exists


# ------------------------------------------------------------------------------------- validation


_RULE_BY_TYPE = {
    "extra_forbidden": "unknown key",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "finite_number": "must be a finite number",
    "missing": "is required",
}


def _pydantic_problems(
    exc: ValidationError, model: type[BaseModel], tree: _Tree, prefix: str, secret: bool
) -> list[str]:
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        loc: Key = tuple(err["loc"])
        kind = err["type"]
        value = err.get("input")
        key_error = bool(loc) and loc[-1] == "[key]"
        if key_error:
            loc = loc[:-1]
        name = render_key((prefix, *loc) if prefix else loc)
        where = tree.where(loc)
        if kind == "extra_forbidden":
            hint = _did_you_mean(model, loc)
            problems.append(f"{name}: unknown key{hint}{where}")
            continue
        if key_error:
            problems.append(f"{name}: key {show(value)} must be a string{where}")
            continue
        rule = _RULE_BY_TYPE.get(kind)
        if rule is None:
            msg = str(err["msg"])
            rule = msg.removeprefix("Value error, ").replace("Input should be", "must be")
        if kind == "string_type" or (kind == "literal_error" and not isinstance(value, str)):
            rule = rule if kind == "literal_error" else "must be a string"
            if isinstance(value, int | float | bool):
                rule += " (quote the value in YAML)"
        shown = "***" if secret and value is not None and not isinstance(value, dict | list) else show(value)
        if secret and isinstance(value, dict | list):
            shown = f"<{type(value).__name__}>"
        problems.append(f"{name} = {shown}: {rule}{where}")
    return problems


def _did_you_mean(model: type[BaseModel], loc: Key) -> str:
    tp: Any = model
    for part in loc[:-1]:
        inner, _ = _strip_optional(tp)
        if _is_model(inner) and isinstance(part, str) and part in inner.model_fields:
            tp = inner.model_fields[part].annotation
        elif get_origin(inner) is dict:
            tp = get_args(inner)[1]
        else:
            return ""
    inner, _ = _strip_optional(tp)
    if not _is_model(inner):
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(inner.model_fields), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# ------------------------------------------------------------------------------------------ public


def load_settings(
    config_path: str | Path | None = None,
    secrets_path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cli_overrides: Mapping[str, Any] | None = None,
    process: str = "run",
) -> Settings:
    """Load, merge and validate `config.yml` and `secrets.yml` for one process kind.

    Raises ConfigError listing every problem found (exit code 2). A file named explicitly (argument or
    TTT_CONFIG / TTT_SECRETS) must exist; the default ./config.yml and ./secrets.yml may be absent.
    """
    if process not in PROCESSES:
        raise ValueError(f"unknown process kind {process!r}; one of {', '.join(PROCESSES)}")
    env = dict(os.environ if environ is None else environ)
    problems: list[str] = []
    warnings: list[str] = []
    sources: list[str] = []

    cfg_tree = _Tree(Config().model_dump(mode="python"))
    sec_tree = _Tree(Secrets().model_dump(mode="python"))

    secrets_file_missing: Path | None = None
    for tree, arg, env_name, default, what in (
        (cfg_tree, config_path, "TTT_CONFIG", DEFAULT_CONFIG, "config.yml"),
        (sec_tree, secrets_path, "TTT_SECRETS", DEFAULT_SECRETS, "secrets.yml"),
    ):
        explicit = arg if arg is not None else env.get(env_name) or None
        path = Path(explicit) if explicit is not None else default
        if not path.exists():
            if explicit is not None:
                named_by = f" (named by {env_name})" if arg is None else ""
                problems.append(f"{path}: {what} file not found{named_by}")
            elif what == "secrets.yml":
                secrets_file_missing = path
            continue
        try:
            data, lines = load_file(path, what)
        except YamlProblem as exc:
            problems.append(str(exc))
            continue
        tree.merge_file(data, lines, str(path))
        sources.append(str(path))

    # Environment: sorted so that the outcome never depends on the order of os.environ.
    if "TTT_LOG_LEVEL" in env:
        cfg_tree.set(
            ("observability", "log_level"), env["TTT_LOG_LEVEL"], "from environment variable TTT_LOG_LEVEL"
        )
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        text = env[name]
        is_secret = name.startswith(SECRET_ENV_PREFIX)
        tree, root, aliases = (
            (sec_tree, Secrets, _SECRET_ALIASES) if is_secret else (cfg_tree, Config, _CONFIG_ALIASES)
        )
        segments = name[len(SECRET_ENV_PREFIX if is_secret else ENV_PREFIX) :].split("__")
        target = None if any(not s for s in segments) else _resolve(root, segments, tree.data, aliases)
        if target is None:
            kind = "secret" if is_secret else "configuration key"
            example = "TTT_SECRET__GATEWAY__TOKEN" if is_secret else "TTT_PORTFOLIO__QUORUM__K"
            problems.append(
                f"environment variable {name} names no {kind} (use the dotted key upper-cased with "
                f"__ between levels, e.g. {example})"
            )
            continue
        keys, tp = target
        try:
            value = _coerce_text(text, tp)
        except YamlProblem as exc:
            problems.append(f"environment variable {name}: value is not valid YAML ({exc})")
            continue
        error = tree.set(keys, value, f"from environment variable {name}")
        if error:
            problems.append(f"{error} (environment variable {name})")

    for dotted, value in (cli_overrides or {}).items():
        target = _resolve(Config, str(dotted).split("."), cfg_tree.data, _CONFIG_ALIASES)
        if target is None:
            problems.append(f"command-line override {dotted} names no configuration key")
            continue
        keys, tp = target
        if isinstance(value, str):
            try:
                value = _coerce_text(value, tp)
            except YamlProblem as exc:
                problems.append(f"command-line override {dotted}: value is not valid YAML ({exc})")
                continue
        error = cfg_tree.set(keys, value, f"from command-line override {dotted}")
        if error:
            problems.append(f"{error} (command-line override)")

    if problems:
        raise ConfigError(problems)

    _apply_aliases(cfg_tree, _CONFIG_ALIASES, "", warnings)
    _apply_aliases(sec_tree, _SECRET_ALIASES, "secrets", warnings)

    config: Config | None = None
    secrets: Secrets | None = None
    try:
        config = Config.model_validate(cfg_tree.data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, Config, cfg_tree, "", secret=False))
    try:
        secrets = Secrets.model_validate(sec_tree.data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, Secrets, sec_tree, "secrets", secret=True))

    if config is not None:

        def where(path: Key) -> str:
            if path and path[0] == "secrets":
                return sec_tree.where(path[1:])
            return cfg_tree.where(path)

        note = f" (no secrets file at {secrets_file_missing})" if secrets_file_missing is not None else ""
        rule_problems, rule_warnings = Checker(config, secrets, process, where, note).run()
        problems.extend(rule_problems)
        warnings.extend(rule_warnings)

    if problems or config is None or secrets is None:
        raise ConfigError(problems)
    return Settings(
        config=config, secrets=secrets, process=process, warnings=tuple(warnings), sources=tuple(sources)
    )
