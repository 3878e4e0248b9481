"""Reading YAML for configuration: a YAML 1.2-like scalar schema, duplicate keys refused, key lines kept.

PyYAML follows YAML 1.1, where `0x…` wallet addresses become integers, `on`/`no` become booleans and
`1:30` becomes 90. Those silent conversions are how configuration goes wrong without an error, so only
`true`/`false`, decimal integers and plain floats are resolved; everything else stays a string.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

Key = tuple[str, ...]

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+|\.[0-9]+[eE][-+]?[0-9]+)"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    return int(str(loader.construct_scalar(node)))


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text.endswith(".nan"):
        return float("nan")
    return float(text)


_Loader.add_constructor(_INT, _construct_int)
_Loader.add_constructor(_FLOAT, _construct_float)


class YamlProblem(Exception):
    """A file that is not usable as configuration; the message names the file and line."""


def parse_text(text: str) -> Any:
    """Parse one YAML value (an environment variable's text) with the configuration schema.

    Raises YamlProblem with a one-line reason.
    """
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at column {mark.column + 1}" if mark is not None else ""
        raise YamlProblem(f"{exc.problem or exc.context or 'malformed YAML'}{at}") from None
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise YamlProblem(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def _walk(node: yaml.Node, loader: _Loader, path: Key, lines: dict[Key, int], where: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _walk(key_node, loader, path, lines, where)
            if isinstance(key, list | dict):
                raise YamlProblem(f"{where} line {key_node.start_mark.line + 1}: a key must be a scalar")
            if key in out:
                dotted = ".".join([*path, str(key)])
                raise YamlProblem(f"{where} line {key_node.start_mark.line + 1}: duplicate key {dotted}")
            lines[(*path, str(key))] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, loader, (*path, str(key)), lines, where)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, loader, path, lines, where) for item in node.value]
    return loader.construct_object(node, deep=True)


def load_file(path: Path, what: str) -> tuple[dict[str, Any], dict[Key, int]]:
    """Load a configuration file into a mapping plus the line of every key.

    An empty file is an empty mapping. Anything else that is not a mapping, unreadable or malformed YAML
    raises YamlProblem naming the file (and line where YAML knows it).
    """
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise YamlProblem(f"{where}: cannot read {what}: {exc.strerror or exc}") from None
    lines: dict[Key, int] = {}
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            data = None if root is None else _walk(root, loader, (), lines, where)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "malformed YAML"
        raise YamlProblem(f"{where}{at}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"{where}: invalid YAML: {exc}") from None
    except YamlProblem:
        raise
    except (ValueError, TypeError) as exc:  # a constructor refused a scalar (e.g. a bad timestamp)
        raise YamlProblem(f"{where}: invalid YAML value: {exc}") from None
    if data is None:
        return {}, lines
    if not isinstance(data, dict):
        raise YamlProblem(
            f"{where}: {what} must be a mapping of keys at the top level, not {type(data).__name__}"
        )
    return data, lines
