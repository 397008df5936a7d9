"""Reading a rollout spec: a YAML file (`load_spec`), a mapping (`parse_spec`) or one stored by another
version of canarywise (`parse_stored_spec`), each turning every problem into one line of a `SpecError`
that names the field and the value.

Example
-------
>>> parse_spec({"service": "shop"}, source="config/shop.yaml")  # doctest: +SKIP
Traceback (most recent call last):
SpecError: config/shop.yaml: traffic: Field required
config/shop.yaml: stages: Field required
config/shop.yaml: metrics: Field required
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from canarywise.spec.model import RolloutSpec, SpecError


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif (out and part in {"alb", "service"}) or part.startswith(("function-", "constrained-")):
            # A metric source's union tag ("alb" / "service") inside a path, or a validator's wrapper;
            # the top-level field `service` is a real field and stays.
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_spec(data: Any, *, source: str = "rollout spec") -> RolloutSpec:
    """Validate an already-loaded mapping; `SpecError` with one line per problem, naming field and value."""
    try:
        return RolloutSpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            msg = str(err["msg"]).removeprefix("Value error, ")
            found = err.get("input")
            shown = "" if isinstance(found, dict | list | tuple) or "found" in msg else f" (found {found!r})"
            lines.append(f"{source}: {_location(tuple(err['loc']))}: {msg}{shown}")
        raise SpecError("\n".join(lines)) from None


def parse_stored_spec(data: Any, *, source: str) -> tuple[RolloutSpec, tuple[str, ...]]:
    """A spec stored by another version of canarywise (the registry): keys this version does not know are
    dropped, not refused — a newer writer must not break an in-flight rollout — and returned by path;
    anything else wrong is the same `SpecError` as `parse_spec`.

    Example
    -------
    >>> spec, ignored = parse_stored_spec(stored, source="registry experiment e1")  # doctest: +SKIP
    >>> ignored  # doctest: +SKIP
    ('statistics.future_option',)
    """
    import copy

    data = copy.deepcopy(data)
    ignored: list[str] = []
    for _ in range(8):  # each pass removes every unknown key it reports; nested ones surface next pass
        try:
            return RolloutSpec.model_validate(data), tuple(ignored)
        except ValidationError as exc:
            extra = [tuple(e["loc"]) for e in exc.errors() if e["type"] == "extra_forbidden"]
            if not extra:
                break
            for loc in extra:
                parent = data
                for part in loc[:-1]:
                    parent = parent[part]
                parent.pop(loc[-1], None)
                ignored.append(_location(loc))
    return parse_spec(data, source=source), tuple(ignored)


def _duplicate_keys(node: Any, where: str = "") -> Iterator[str]:
    """``"statistics.alpha: duplicate key at line 33 (first at line 32)"`` for each key given twice in one
    mapping of a composed YAML document (PyYAML keeps the last value without a word)."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            here = f"{where}.{name}" if where else name
            line = key.start_mark.line + 1
            if name in first:
                yield f"{here}: duplicate key at line {line} (first at line {first[name]})"
            else:
                first[name] = line
            yield from _duplicate_keys(value, here)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{where}[{index}]")


def load_spec(path: str | Path) -> RolloutSpec:
    """Read and validate a rollout spec YAML file; a key given twice in one mapping is an error."""
    return parse_spec(read_spec_data(path), source=str(path))


def read_spec_data(path: str | Path) -> Any:
    """A rollout spec YAML file as data, not yet validated; a key given twice in one mapping is an error."""
    import yaml  # only at synth and in the CLI; the Lambdas get the spec from the registry as JSON

    path = Path(path)
    try:
        text = path.read_text()
        duplicates = list(_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader)))
        data = yaml.safe_load(text)
    except FileNotFoundError:
        raise SpecError(f"rollout spec {str(path)!r} not found") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"rollout spec {str(path)!r} is not valid YAML: {exc}") from None
    if duplicates:
        raise SpecError("\n".join(f"{path}: {line}" for line in duplicates))
    return data
