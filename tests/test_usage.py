"""Every loss page's usage block runs as printed: its script imports, builds the inputs, creates
the loss at its authors' settings and calls ``backward()``; and it is the script the page shows."""

from __future__ import annotations

import html
import math
import re

import pytest
from conftest import PAPERS, require

from kdsurvey.exporters import site
from kdsurvey.exporters.loss_facts import PresetFacts, facts
from kdsurvey.exporters.usage import code
from kdsurvey.losses import manifest
from kdsurvey.records.catalogue import load

NAMES = sorted(manifest.names())


def _graded(spec: dict) -> bool:
    """Whether the manifest marks this input (or an item of it) as taking the gradient."""
    return bool(spec.get("grad")) or any(_graded(s) for s in spec.get("items", ()))


def _tensors(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _run(script: str, where: str) -> dict:
    """The namespace after running ``script`` as a fresh module would."""
    namespace: dict = {"__name__": "__usage__"}
    exec(compile(script, where, "exec"), namespace)  # noqa: S102 - our generated examples
    return namespace


def _failure(name: str) -> str | None:
    """Why loss ``name``'s usage block fails, or None: it runs, its loss is a finite scalar and
    the gradient reaches every input the block marks as a student output."""
    script = code(name, facts(name))
    try:
        ns = _run(script, f"<usage of {name}>")
    except Exception as exc:  # noqa: BLE001 - every loss's failure, reported at once
        return f"{name}: {type(exc).__name__}: {exc}"
    loss = ns["loss"]
    if loss.dim() != 0 or not math.isfinite(loss.item()):
        return f"{name}: the loss is {loss}"
    marked = [s["name"] for s in facts(name).example["inputs"] if _graded(s)]
    if not marked:
        return f"{name}: no input takes the gradient"
    for key in marked:
        if any(t.requires_grad and t.grad is None for t in _tensors(ns[key])):
            return f"{name}: no gradient reaches {key}"
    return None


def test_every_usage_block_runs():
    require("torch", "the losses extra")
    failures = [f for f in map(_failure, NAMES) if f]
    assert failures == []


def _page_code(page: str) -> str:
    """The text of the first code block under a page's Usage heading, as a reader copies it."""
    section = page.split("## Usage", 1)[1]
    block = re.search(r"<pre>(.*?)</pre>", section, re.S).group(1)
    return html.unescape(re.sub(r"<[^>]+>", "", block))


@pytest.fixture(scope="module")
def pages():
    return site.render_pages(load(PAPERS))


@pytest.mark.parametrize("name", ["crd", "dkd", "ofd"])
def test_the_page_prints_the_block_that_runs(pages, name):
    """Taken from the built page (CRD failed as printed: it named no memory banks)."""
    printed = _page_code(pages[f"losses/{name}.md"])
    assert printed == code(name, facts(name))
    assert "\n\n" not in printed  # one raw HTML block on the page
    require("torch", "the losses extra")
    ns = _run(printed, f"<losses/{name}.md>")
    assert math.isfinite(ns["loss"].item())


def test_every_loss_page_has_its_block(pages):
    for name in NAMES:
        page = pages.get(f"losses/{name}.md")
        if page is not None:  # a loss that no record of the catalogue names has no page
            assert _page_code(page) == code(name, facts(name)), name


def test_every_sort_of_input_is_written():
    """Inputs beyond tensors: lists, ignore labels (-100), layers, functions, plain values, dtypes,
    the constructor's size arguments and the other presets."""
    from dataclasses import replace

    tensor = {"kind": "tensor", "dtype": "float32"}
    example = {
        "inputs": [
            {
                "name": "logits_student",
                **tensor,
                "shape": [2, 3, 5],
                "fill": "normal",
                "grad": True,
            },
            {
                "name": "target",
                "kind": "tensor",
                "dtype": "int64",
                "shape": [2, 3],
                "low": 0,
                "high": 5,
                "ignore": -100,
            },
            {"name": "mask", "kind": "tensor", "dtype": "bool", "shape": [2, 3]},
            {"name": "prior", **tensor, "dtype": "float64", "shape": [5], "fill": "probabilities"},
            {"name": "var_student", **tensor, "shape": [5], "fill": "positive", "grad": True},
            {
                "name": "feats_teacher",
                "kind": "list",
                "items": [
                    {**tensor, "shape": [2, 4], "fill": "nonpositive"},
                    {**tensor, "shape": [], "fill": "zeros"},
                ],
            },
            {
                "name": "head",
                "kind": "module",
                "source": "torch.nn.Linear(in_features=4, out_features=5, bias=True)",
            },
            {
                "name": "reduce",
                "kind": "callable",
                "module": "torch.nn.functional",
                "function": "relu",
            },
            {"name": "epoch", "kind": "value", "value": 3},
            {"name": "pair", "kind": "tuple", "items": [{**tensor, "shape": [2], "fill": "zeros"}]},
            {
                "name": "extra",
                "kind": "dict",
                "items": {
                    "mask": {"kind": "tensor", "dtype": "int64", "shape": [2], "low": 1, "high": 2}
                },
            },
        ],
        "kwargs": {"student_channels": [4, 8]},
    }
    info = replace(facts("dkd"), example=example, shapes={"target": "(B, T)"}, presets=())
    assert 'create("x", student_channels=[4, 8])  # DKD with its constructor\'s defaults' in code(
        "x", info
    )
    presets = [PresetFacts(n, n == "cifar", (), 1.0, 0, "a table", "") for n in ("cifar", "in1k")]
    script = code("x", replace(info, presets=tuple(presets)))
    assert "\n\n" not in script
    lines = script.splitlines()
    assert lines[:4] == [
        "import torch",
        "import torch.nn.functional",
        "from kdsurvey.losses import create",
        "torch.manual_seed(0)",
    ]
    assert (
        "# (B, T); -100: ignored\n"  # above: no room beside it
        "target = torch.randint(0, 5, (2, 3)).masked_fill(torch.rand(2, 3) < 0.1, -100)\n" in script
    )
    assert (
        'loss_fn = create("x", student_channels=[4, 8])  # DKD at its authors\' settings ('
        in script
    )
    assert 'settings (others: preset="in1k")' in script
    require("torch", "the losses extra")
    inputs = lines[: next(i for i, line in enumerate(lines) if line.startswith("loss_fn"))]
    ns = _run("\n".join(inputs), "<x>")
    torch = ns["torch"]
    assert ns["logits_student"].requires_grad and ns["var_student"].requires_grad
    assert (ns["var_student"] > 0).all() and not ns["feats_teacher"][0].requires_grad
    labels = set(ns["target"].unique().tolist())
    assert ns["target"].dtype == torch.int64 and labels <= {-100, *range(5)}
    assert ns["mask"].dtype == torch.bool and ns["prior"].dtype == torch.float64
    assert torch.allclose(ns["prior"].sum(), torch.tensor(1.0, dtype=torch.float64))
    assert (ns["feats_teacher"][0] <= 0).all() and ns["feats_teacher"][1].shape == ()
    assert isinstance(ns["head"], torch.nn.Linear) and ns["reduce"] is torch.nn.functional.relu
    assert ns["epoch"] == 3 and isinstance(ns["pair"], tuple) and ns["pair"][0].shape == (2,)
    assert ns["extra"]["mask"].tolist() == [1, 1]  # an all-ones mask stays all ones


def test_the_manifest_describes_what_example_inputs_gives():
    """Recorded at generation (torch): shapes, ranges, ignore labels, gradients, layers."""
    torch = require("torch", "the losses extra")
    crd = {i["name"]: i for i in manifest.entry("crd")["example"]["inputs"]}
    assert crd["idx"] == {
        "name": "idx",
        "kind": "tensor",
        "shape": [4],
        "dtype": "int64",
        "low": 0,
        "high": 21,
    }
    assert crd["feat_student"]["grad"] and "grad" not in crd["memory_student"]
    target = {i["name"]: i for i in manifest.entry("bpkd")["example"]["inputs"]}["target"]
    assert target["ignore"] == 255 and target["high"] == 5

    linear = torch.nn.Linear(4, 5)
    assert manifest._describe("w", [linear]) == {
        "kind": "module",
        "source": "torch.nn.Linear(in_features=4, out_features=5, bias=True)",
    }
    relu = manifest._describe("f", [torch.nn.functional.relu])
    assert relu == {"kind": "callable", "module": "torch.nn.functional", "function": "relu"}
    labels = [torch.tensor([[1, 2, -100]]), torch.tensor([[0, 3, 3]])]
    assert manifest._describe("t", labels) == {
        "kind": "tensor",
        "shape": [1, 3],
        "dtype": "int64",
        "low": 0,
        "high": 4,
        "ignore": -100,
    }
    head = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 1), torch.nn.ReLU())
    source = manifest._describe("h", [head])["source"]
    assert str(eval(source, {"torch": torch})) == str(head)  # noqa: S307
    sigmoid = manifest._describe("f", [torch.sigmoid])  # its qualname is a private class's
    assert sigmoid == {"kind": "callable", "module": "torch", "function": "sigmoid"}
    assert manifest._describe("p", [(torch.zeros(2), 3)])["kind"] == "tuple"

    class Head(torch.nn.Module):  # a layer of our own: its constructor is unknown
        pass

    for unwritable in (lambda x: x, Head()):
        with pytest.raises(TypeError, match=r"Loss.example_inputs\(\)\['fn'\]: a \w+ cannot"):
            manifest._describe("Loss.example_inputs()['fn']", [unwritable])
    with pytest.raises(ValueError, match="shape changes"):
        manifest._describe("t", [torch.zeros(2), torch.zeros(3)])
