"""The demo distils a tiny student with every registered loss, and the loss goes down."""

from __future__ import annotations

import math

import pytest
from conftest import require

torch = require("torch", "the losses extra")

from kdsurvey.losses import available  # noqa: E402
from kdsurvey.losses.demo import demo  # noqa: E402

NAMES = available()
# How long a demo takes is measured by benchmarks/demo.py, not asserted here: a test must not
# depend on the machine's speed or load.


@pytest.fixture(scope="module", autouse=True)
def _warm_up():
    demo("kd", steps=1)  # first use of autograd/optimisers pays one-off initialisation


@pytest.mark.parametrize("name", NAMES)
def test_demo_loss_decreases(name):
    values = demo(name)
    assert len(values) == 30
    assert all(math.isfinite(v) for v in values)
    assert values[-1] < values[0], f"{name}: {values[0]:.4g} -> {values[-1]:.4g}"


def test_demo_logs_every_step_and_is_deterministic():
    seen = []
    first = demo("fitnet", steps=5, seed=3, log=lambda step, value: seen.append((step, value)))
    assert [s for s, _ in seen] == list(range(5))
    assert [v for _, v in seen] == first
    assert demo("fitnet", steps=5, seed=3) == first


def test_demo_restores_thread_count():
    before = torch.get_num_threads()
    demo("kd", steps=2)
    assert torch.get_num_threads() == before


def test_demo_unknown_loss_raises_key_error():
    with pytest.raises(KeyError):
        demo("no_such_loss", steps=1)


def test_losses_list_command_describes_every_loss(capsys):
    import json

    from kdsurvey.cli import main

    assert main(["losses", "list", "--format", "json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert sorted(rows) == NAMES
    assert rows["dkd"]["paper"] == "zhao2022decoupled"
    assert rows["dkd"]["evidence"] == "reference" and rows["icls"]["evidence"] == "abstract"
    assert rows["dkd"]["parameters"] == {
        "alpha": 1.0,
        "beta": 8.0,
        "temperature": 4.0,
        "loss_weight": 1.0,
    }


def test_losses_demo_command_prints_the_loss_going_down(capsys):
    from kdsurvey.cli import main

    assert main(["losses", "demo", "kd", "--steps", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines[:5]] == ["0", "1", "2", "3", "4"]
    first, last = (float(v) for v in lines[-1].split(": ")[1].split(" -> "))
    assert lines[-1].startswith("kd: ") and last < first
    assert main(["losses", "demo", "no_such_loss"]) == 2
