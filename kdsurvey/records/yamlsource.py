"""YAML reading that remembers where every value came from, and refuses what PyYAML lets slide.

PyYAML keeps the last of two equal keys without a word; a record with ``year`` twice would
validate with whichever came last. The reader here rejects duplicate keys and records the line of
every mapping key and sequence item, so a schema error on ``links.arxiv`` can point at its line.

Speed: libyaml's C parser (when PyYAML was built with it) composes the node tree, and
:func:`_convert` turns nodes into Python values directly. PyYAML's own constructor is a generic,
generator-driven state machine that costs more than the parsing itself; going around it for the
four scalar types records use (str, int, bool, null) makes loading about 1.6x faster. Other tags
(floats, timestamps...) still go through PyYAML's safe constructor.
"""

from __future__ import annotations

import yaml
from yaml.constructor import SafeConstructor

FastLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # C parser when PyYAML has libyaml
PureLoader = yaml.SafeLoader

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _BOOL, _NULL = _TAG + "str", _TAG + "int", _TAG + "bool", _TAG + "null"
_FLOAT = _TAG + "float"
_safe = SafeConstructor()  # only its stateless scalar constructors are used


#: How many nodes a document's aliases may expand to. The largest record (reported results) has
#: about 7,000 nodes; an alias of a list of aliases of lists... (a "billion laughs") of 1 KB would
#: expand to billions.
MAX_EXPANDED_NODES = 100_000
#: How deep collections may nest (a record nests three levels: record, links, a list).
MAX_DEPTH = 50


class YamlProblem(Exception):
    """A file that is not the YAML a record must be; ``line`` is 1-based."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


class WrittenFloat(float):
    """A float that remembers how it was written (``76.30``), so that the advice to quote it can
    keep the zero that quoting is there to keep."""

    written: str


class LineDict(dict):
    """A mapping with ``lines[key]``: the 1-based line of each key."""

    lines: dict
    line: int


class LineList(list):
    """A sequence with ``lines[i]``: the 1-based line of each item."""

    lines: list
    line: int


def _convert(node: yaml.Node, active: set[int], located: bool):
    """Python value of a composed node (``LineDict``/``LineList`` when ``located``); ``active``
    holds the collections being converted, so an alias that refers to its own ancestor is refused
    instead of recursing forever."""
    if isinstance(node, yaml.ScalarNode):
        tag, value = node.tag, node.value
        if tag == _STR:
            return value
        if tag == _INT:
            return int(value) if value.isdigit() else _safe.construct_yaml_int(node)
        if tag == _BOOL:
            return _safe.construct_yaml_bool(node)
        if tag == _NULL:
            return None
        if tag == _FLOAT:
            number = WrittenFloat(_safe.construct_yaml_float(node))
            number.written = value
            return number
        return SafeConstructor().construct_object(node, deep=True)  # fresh: it caches by node
    if id(node) in active:
        raise YamlProblem(node.start_mark.line + 1, "recursive alias")
    active.add(id(node))
    try:
        if isinstance(node, yaml.MappingNode):
            data, lines = (LineDict(), {}) if located else ({}, None)
            for key_node, value_node in node.value:
                key = _convert(key_node, active, located)
                try:
                    duplicate = key in data
                except TypeError:  # a list or mapping used as a key
                    raise YamlProblem(
                        key_node.start_mark.line + 1, "a key must be a plain value"
                    ) from None
                if duplicate:
                    first = next(k for k, _ in node.value if _convert(k, set(), False) == key)
                    raise YamlProblem(
                        key_node.start_mark.line + 1,
                        f"duplicate key {key!r} (first on line {first.start_mark.line + 1})",
                    )
                data[key] = _convert(value_node, active, located)
                if located:
                    lines[key] = key_node.start_mark.line + 1
            if located:
                data.lines, data.line = lines, node.start_mark.line + 1
            return data
        items = [_convert(item, active, located) for item in node.value]
        if not located:
            return items
        data = LineList(items)
        data.lines = [item.start_mark.line + 1 for item in node.value]
        data.line = node.start_mark.line + 1
        return data
    finally:
        active.discard(id(node))


def parse(text: str, loader: type = FastLoader, located: bool = True):
    """Parse one YAML document; ``YamlProblem`` with a line for anything malformed.

    ``located`` returns ``LineDict``/``LineList`` values that know their lines; without it, plain
    dicts and lists, which build faster (a valid record needs no lines).
    """
    if "\t" in text:
        line = text[: text.index("\t")].count("\n") + 1
        raise YamlProblem(line, "tab character (indent with spaces)")
    reader = loader(text)
    try:
        node = reader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlProblem(line, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(1, f"invalid YAML: {exc}") from None
    except RecursionError:  # the pure-Python composer on deeply nested collections
        raise YamlProblem(1, f"collections nest deeper than {MAX_DEPTH} levels") from None
    finally:
        reader.dispose()
    if node is None:
        return None
    check_bounds(node)
    try:
        return _convert(node, set(), located)
    except yaml.YAMLError as exc:  # a scalar PyYAML cannot construct (bad timestamp...)
        raise YamlProblem(node.start_mark.line + 1, f"invalid YAML: {exc}") from None


def check_bounds(
    root: yaml.Node, max_nodes: int = MAX_EXPANDED_NODES, max_depth: int = MAX_DEPTH
) -> None:
    """Refuse a composed document before it is converted: ``YamlProblem`` when its aliases expand
    to more than ``max_nodes`` nodes or its collections nest deeper than ``max_depth``.

    Composing is linear in the text (an alias is a second reference to the same node); converting
    copies every reference, so a small document of nested aliases would expand exponentially. The
    expanded size of each node is counted once (memoised), iteratively (no recursion limit to
    hit). The line reported is that of the innermost collection whose expansion passes the limit
    through aliases. A document without aliases is bounded by the record size limit instead.
    """
    size: dict[int, int] = {}  # id(node) -> nodes it expands to, itself included
    aliases: set[int] = set()  # collections with an alias inside
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            size[key] = 1
            continue
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value
        if done:  # every child is counted
            on_path.discard(key)
            seen: set[int] = set()
            total = 1
            for child in children:
                total += size.get(id(child), 1)
                if id(child) in seen or id(child) in aliases:
                    aliases.add(key)
                seen.add(id(child))
            size[key] = total
            if total > max_nodes and key in aliases:
                raise YamlProblem(
                    node.start_mark.line + 1,
                    f"YAML aliases expand to more than {max_nodes:,} nodes",
                )
            continue
        if key in size or key in on_path:  # counted already / an alias to its own ancestor
            continue
        if depth > max_depth:
            raise YamlProblem(
                node.start_mark.line + 1, f"collections nest deeper than {max_depth} levels"
            )
        on_path.add(key)
        stack.append((node, depth, True))
        for child in reversed(children):
            if id(child) in size:
                aliases.add(key)  # a second reference to a node counted elsewhere
            else:
                stack.append((child, depth + 1, False))


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
