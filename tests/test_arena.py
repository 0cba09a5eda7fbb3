"""The arena: results schema, resume, determinism, shard/merge, every loss through the harness,
bring-your-own. Reduced runs (tiny teachers, one epoch, a few steps) keep the file fast."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
from conftest import require

torch = require("torch")
require("sklearn")
require("scipy")
require("tqdm")

from kdsurvey.arena import core, models, recipe  # noqa: E402
from kdsurvey.losses import available  # noqa: E402

R = core.Recipe(epochs=1, dense_epochs=1, teacher_epochs=1)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setattr(core, "CACHE", tmp_path / "cache")


def small_tasks(trained: bool = False) -> dict[str, core.Task]:
    """The real tasks with narrower teachers (random unless ``trained``) for speed."""
    cls = core.classification_task()
    seg = core.segmentation_task()
    cls = dataclasses.replace(
        cls, make_teacher=lambda: models.ConvClassifier((8, 16, 32)), teacher_key="test-cls"
    )
    seg = dataclasses.replace(
        seg, make_teacher=lambda: models.Segmenter((12, 24, 48)), teacher_key="test-seg"
    )
    if not trained:
        torch.manual_seed(0)
        cls.teacher, seg.teacher = cls.make_teacher(), seg.make_teacher()
    return {"classification": cls, "segmentation": seg}


def reduced(out, **kw):
    args = dict(
        losses=["kd", "at"],
        tasks=["classification"],
        seeds=[0],
        r=R,
        out=out,
        progress=False,
        task_objects=small_tasks(),
        max_steps=3,
    )
    args.update(kw)
    return core.run_arena(**args)


def test_results_schema(tmp_path):
    res = reduced(tmp_path / "a.json")
    saved = json.loads((tmp_path / "a.json").read_text())
    assert saved == json.loads(json.dumps(res))
    assert {"schema", "config", "versions", "runs", "summary", "teachers", "not_fitting"} <= set(
        saved
    )
    assert [(x["loss"], x["seed"]) for x in saved["runs"]] == [("none", 0), ("kd", 0), ("at", 0)]
    for run in saved["runs"]:
        assert run["status"] == "ok", run
        assert 0.0 <= run["metric"] <= 1.0 and run["steps"] == 3
        assert {"time_per_epoch_s", "weight", "task_weight", "final_distill_loss"} <= set(run)
    at = saved["summary"]["classification"]["at"]
    assert at["n"] == 1 and "gain_vs_student" in at and "gain_vs_kd" in at
    assert saved["runs"][2]["weight"] == 1000.0  # the paper's weight for AT
    assert "classification" in saved["teachers"]


def test_resume_after_interruption(tmp_path):
    out = tmp_path / "r.json"

    def boom(rec):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reduced(out, after_run=boom)
    assert len(json.loads(out.read_text())["runs"]) == 1  # the finished run was saved
    seen = []
    res = reduced(out, after_run=seen.append)
    assert [x["loss"] for x in seen] == ["kd", "at"]  # only the missing runs ran
    assert len(res["runs"]) == 3
    with pytest.raises(ValueError, match="another configuration"):
        reduced(out, max_steps=2)


def test_deterministic(tmp_path):
    a = reduced(tmp_path / "1.json")
    b = reduced(tmp_path / "2.json")
    assert [x["metric"] for x in a["runs"]] == [x["metric"] for x in b["runs"]]
    assert [x["final_distill_loss"] for x in a["runs"]] == [
        x["final_distill_loss"] for x in b["runs"]
    ]


def test_shard_and_merge(tmp_path):
    full = reduced(tmp_path / "full.json", seeds=[0, 1])
    reduced(tmp_path / "s1.json", seeds=[0, 1], shard_spec="1/2")
    reduced(tmp_path / "s2.json", seeds=[0, 1], shard_spec="2/2")
    s1 = json.loads((tmp_path / "s1.json").read_text())["runs"]
    assert 0 < len(s1) < len(full["runs"])
    merged = core.merge([tmp_path / "s1.json", tmp_path / "s2.json"], tmp_path / "m.json")

    def key(runs):
        return sorted((x["task"], x["loss"], x["seed"], x["metric"]) for x in runs)

    assert key(merged["runs"]) == key(full["runs"])

    def untimed(summary):
        return {
            t: {k: {f: v for f, v in e.items() if "time" not in f} for k, e in d.items()}
            for t, d in summary.items()
        }

    assert untimed(merged["summary"]) == untimed(full["summary"])
    with pytest.raises(ValueError):
        core.shard([1, 2], "3/2")


def test_cli_run_and_merge(tmp_path, monkeypatch, capsys):
    from kdsurvey.arena import cli

    tasks = small_tasks()
    orig = core.run_arena
    monkeypatch.setattr(
        core, "run_arena", lambda *a, **k: orig(*a, **{**k, "task_objects": tasks, "max_steps": 2})
    )
    ap = argparse.ArgumentParser()
    cli.add_arguments(ap)
    out = tmp_path / "c.json"
    assert (
        cli.run(
            ap.parse_args(
                [
                    "--losses",
                    "kd",
                    "--task",
                    "classification",
                    "--seeds",
                    "1",
                    "--epochs",
                    "1",
                    "--out",
                    str(out),
                    "--no-progress",
                ]
            )
        )
        == 0
    )
    assert "kd" in capsys.readouterr().out
    assert cli.run(ap.parse_args(["merge", str(out), "--out", str(tmp_path / "m.json")])) == 0
    with pytest.raises(KeyError, match="did you mean"):
        cli.run(ap.parse_args(["--losses", "fitnett", "--out", str(out)]))


def test_every_loss_trains_on_its_task_or_says_why():
    """Each registered loss: one real training step through the harness on its task, or it is
    listed as not fitting, with a reason, and really fails there."""
    torch.set_num_threads(1)
    tasks = small_tasks()
    r = core.Recipe(epochs=1, dense_epochs=1)
    placed = set()
    for name in available():
        homes = recipe.home_tasks(name)
        if not homes:
            assert len(recipe.NOT_FITTING[name]) > 30
            task = tasks["segmentation" if name == "dsd" else "classification"]
            with pytest.raises((ValueError, TypeError)):  # wrong shapes, or a missing input
                core.run_one(task, name, 0, r, task.teacher, max_steps=1)
            continue
        for t in homes:
            rec = core.run_one(tasks[t], name, 0, r, tasks[t].teacher, max_steps=1)
            assert rec["steps"] == 1 and rec["status"] == "ok"
            assert rec["final_distill_loss"] == rec["final_distill_loss"]  # finite, not NaN
        placed.add(name)
    assert placed | (set(recipe.NOT_FITTING) & set(available())) == set(available())
    assert {"cirkd", "skd_pixel", "skd_pa", "ifvd", "cwd", "bpkd"} <= {
        n for n in placed if "segmentation" in recipe.home_tasks(n)
    }


FORMERLY_EXCLUDED = (
    "vid",
    "fsp",
    "fsp_torchdistill",
    "kdsvd",
    "dist_plus",
    "dsd",
    "pad_l2",
    "sskd",
)


@pytest.mark.parametrize("name", FORMERLY_EXCLUDED)
def test_formerly_excluded_losses_train_with_their_adapters(name):
    """Each loss that needed a thinner-student adapter, rotated views or a variance branch now
    trains a few steps on its task, with the adapter it owns."""
    torch.set_num_threads(1)
    tasks = small_tasks()
    (task,) = recipe.home_tasks(name)
    assert name not in recipe.NOT_FITTING
    rec = core.run_one(tasks[task], name, 0, R, tasks[task].teacher, max_steps=3)
    assert rec["status"] == "ok" and rec["steps"] == 3
    assert rec["final_distill_loss"] == rec["final_distill_loss"]  # finite
    assert (rec["adapter_params"] > 0) == (name != "dsd")  # DSD compares attention maps only


def test_bring_your_own_dataset(tmp_path):
    """compare() on a tiny fake dataset (3-channel 8x8 images, 4 classes), teacher trained."""
    from kdsurvey.arena import compare

    g = torch.Generator().manual_seed(0)
    y = torch.arange(96) % 4
    x = torch.randn(96, 3, 8, 8, generator=g) * 0.3 + y[:, None, None, None].float()
    taps = ["stage2", "stage3"]
    res = compare(
        teacher=models.ConvClassifier((8, 8, 16), classes=4, in_channels=3),
        make_student=lambda: models.ConvClassifier((4, 4, 8), classes=4, in_channels=3),
        train=(x[:64], y[:64]),
        test=(x[64:], y[64:]),
        student_taps=taps,
        teacher_taps=taps,
        losses=["kd", "fitnet", "alp_kd"],
        seeds=[0, 1],
        epochs=1,
        teacher_trained=False,
        out=str(tmp_path / "byo.json"),
        progress=False,
    )
    runs = {(x["loss"], x["seed"]): x for x in res["runs"]}
    assert {k[0] for k in runs} == {"none", "kd", "fitnet"}
    assert all(x["status"] == "ok" for x in runs.values())
    assert "alp_kd" in res["not_fitting"]
    assert "gain_vs_kd" in res["summary"]["custom"]["fitnet"]
