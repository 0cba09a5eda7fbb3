"""YAML reading that remembers where every value came from, and refuses what PyYAML lets slide.

PyYAML keeps the last of two equal keys without a word; a record with ``year`` twice would validate
with whichever came last. The loader here rejects duplicate keys and records the line of every mapping
key and sequence item, so a schema error on ``links.arxiv`` can point at its line. libyaml's C parser
is used when PyYAML was built with it (about 10x faster than the pure-Python one).
"""

from __future__ import annotations

import yaml

try:
    _Base = yaml.CSafeLoader
except AttributeError:  # PyYAML without libyaml
    _Base = yaml.SafeLoader


class YamlProblem(Exception):
    """A file that is not the YAML a record must be; ``line`` is 1-based."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


class LineDict(dict):
    """A mapping with ``lines[key]``: the 1-based line of each key."""

    lines: dict
    line: int


class LineList(list):
    """A sequence with ``lines[i]``: the 1-based line of each item."""

    lines: list
    line: int


def _make_loader(base: type) -> type:
    class Loader(base):
        def construct_yaml_map(self, node):
            data = LineDict()
            data.lines, data.line = {}, node.start_mark.line + 1
            yield data
            for key_node, value_node in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in data:
                    raise YamlProblem(
                        line, f"duplicate key {key!r} (first on line {data.lines[key]})"
                    )
                data[key] = self.construct_object(value_node, deep=True)
                data.lines[key] = line

        def construct_yaml_seq(self, node):
            data = LineList()
            data.lines, data.line = [], node.start_mark.line + 1
            yield data
            for item in node.value:
                data.append(self.construct_object(item, deep=True))
                data.lines.append(item.start_mark.line + 1)

    Loader.add_constructor("tag:yaml.org,2002:map", Loader.construct_yaml_map)
    Loader.add_constructor("tag:yaml.org,2002:seq", Loader.construct_yaml_seq)
    return Loader


FastLoader = _make_loader(_Base)
PureLoader = _make_loader(yaml.SafeLoader)


def parse(text: str, loader: type = FastLoader):
    """Parse one YAML document; ``YamlProblem`` with a line for anything malformed."""
    for number, line in enumerate(text.splitlines(), 1):
        if "\t" in line:
            raise YamlProblem(number, "tab character (indent with spaces)")
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - Loader derives from SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlProblem(line, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(1, f"invalid YAML: {exc}") from None


def line_of(data, path: tuple) -> int:
    """The line of the value at ``path`` (keys and indices), or of its nearest located parent."""
    line = getattr(data, "line", 1)
    for step in path:
        lines = getattr(data, "lines", None)
        try:
            line = lines[step]
            data = data[step]
        except (TypeError, KeyError, IndexError):
            break
    return line
