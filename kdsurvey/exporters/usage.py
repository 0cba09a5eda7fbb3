"""The loss page's usage block: a self-contained script that builds the loss's inputs, creates it
at its authors' settings and calls ``backward()`` (torch-free: written from the manifest).

The manifest's ``example`` (:mod:`kdsurvey.losses.manifest`) describes each input of the loss's
``example_inputs``: a tensor's shape, dtype and sort of values (class ids with their range and
ignore label, probabilities, positive values...), a list, tuple or dict of them, a plain value,
a ``torch.nn`` layer or an importable function, plus the constructor arguments the shapes need. The script is
written with no blank line, so that the highlighted block stays one raw HTML block on the page.
``tests/test_usage.py`` runs every loss's script as the page prints it.
"""

from __future__ import annotations

from kdsurvey.exporters.loss_facts import LossFacts

__all__ = ["code"]

WIDTH = 100  # the repository's line length: a longer line is split one item per line
#: How each sort of float values is drawn (``{}``: the sizes and dtype arguments).
_FILLS = {
    "normal": "torch.randn({})",
    "zeros": "torch.zeros({})",
    "probabilities": "torch.rand({}).softmax(-1)",
    "positive": "torch.rand({}) + 0.5",
    "nonpositive": "-torch.rand({})",
}


def _tensor(spec: dict) -> str:
    sizes, dtype = ", ".join(map(str, spec["shape"])) or "()", spec["dtype"]
    if dtype == "bool":
        return f"(torch.rand({sizes}) < 0.5)"
    if "low" in spec:  # integers: class ids, indices, label maps
        shape = (
            f"({sizes},)" if len(spec["shape"]) == 1 else f"({sizes})" if spec["shape"] else "()"
        )
        typed = "" if dtype == "int64" else f", dtype=torch.{dtype}"
        value = f"torch.randint({spec['low']}, {spec['high']}, {shape}{typed})"
        if spec.get("ignore") is not None:
            value += f".masked_fill(torch.rand({sizes}) < 0.1, {spec['ignore']})"
        return value
    value = _FILLS[spec["fill"]].format(
        sizes + ("" if dtype == "float32" else f", dtype=torch.{dtype}")
    )
    if not spec.get("grad"):  # only the student outputs the loss's gradient reaches
        return value
    call = value.startswith("torch.") and " + " not in value  # one call chain: no parentheses
    return f"{value}.requires_grad_()" if call else f"({value}).requires_grad_()"


def _value(spec: dict, imports: set[str]) -> str:
    kind = spec["kind"]
    if kind == "tensor":
        return _tensor(spec)
    if kind == "list":
        return _joined("[", [_value(s, imports) for s in spec["items"]], "]")
    if kind == "tuple":
        items = [_value(s, imports) for s in spec["items"]]
        return f"({items[0]},)" if len(items) == 1 else _joined("(", items, ")")
    if kind == "dict":
        items = [f"{k!r}: {_value(s, imports)}" for k, s in spec["items"].items()]
        return _joined("{", items, "}")
    if kind == "module":
        return spec["source"]
    if kind == "callable":
        imports.add(f"import {spec['module']}")
        return f"{spec['module']}.{spec['function']}"
    return repr(spec["value"])


def _joined(open_: str, items: list[str], close: str, head: str = "") -> str:
    """``head[a, b]`` on one line when it fits in :data:`WIDTH`, else one item per line (an item
    that spans lines is indented with them)."""
    line = f"{head}{open_}{', '.join(items)}{close}"
    if len(line) <= WIDTH and "\n" not in line:
        return line
    body = "".join("    " + item.replace("\n", "\n    ") + ",\n" for item in items)
    return f"{head}{open_}\n{body}{close}"


def code(name: str, info: LossFacts) -> str:
    """The usage script of loss ``name`` (no blank line; trailing newline)."""
    example = info.example or {"inputs": [], "kwargs": {}}
    imports: set[str] = set()
    lines = []
    for spec in example["inputs"]:
        value = _value(spec, imports)
        notes = [n for n in (info.shapes.get(spec["name"]), _ignored(spec)) if n]
        line = f"{spec['name']} = {value}"
        comment = f"# {'; '.join(notes)}"
        if notes and len(f"{line}  {comment}") <= WIDTH and "\n" not in line:
            line = f"{line}  {comment}"
        elif notes:  # on its own line above, where the statement leaves no room
            line = f"{comment}\n{line}"
        lines.append(line)
    kwargs = [f'"{name}"'] + [f"{k}={v!r}" for k, v in example["kwargs"].items()]
    others = [p.name for p in info.presets if not p.default]
    if not info.presets:
        says = f"{info.cls} with its constructor's defaults"
    elif others:
        says = f'{info.cls} at its authors\' settings (others: preset="{others[0]}")'
    else:
        says = f"{info.cls} at its authors' settings"
    lines.append(f"loss_fn = create({', '.join(kwargs)})  # {says}")
    names = [f"{s['name']}={s['name']}" for s in example["inputs"]]
    lines.append(_joined("(", names, ")", "loss = loss_fn"))
    lines.append("loss.backward()")
    head = [
        "import torch",
        *sorted(imports),
        "from kdsurvey.losses import create",
        "torch.manual_seed(0)",
    ]
    return "\n".join(head + lines) + "\n"


def _ignored(spec: dict) -> str:
    return f"{spec['ignore']}: ignored" if spec.get("ignore") is not None else ""
