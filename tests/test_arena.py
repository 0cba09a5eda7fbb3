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

from kdsurvey.arena import core, models, recipe, sweep  # noqa: E402
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
        factors=(1.0,),
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
        assert run["factor"] == 1.0 and 0.0 <= run["val_metric"] <= 1.0
    at = saved["summary"]["classification"]["at"]
    assert at["n"] == 1 and "gain_vs_student" in at and "gain_vs_kd" in at
    assert "sweep" not in at  # one factor: nothing swept
    # the authors' settings, read from the loss: AT's weight 1000, KD's label weight 0.1
    assert saved["runs"][2]["weight"] == 1000.0 and saved["runs"][2]["task_weight"] == 1.0
    assert saved["runs"][1]["task_weight"] == 0.1
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


def test_sweep_runs_the_choice_on_every_seed(tmp_path):
    res = reduced(tmp_path / "s.json", losses=["at"], seeds=[0, 1], factors=(1.0, 0.1, 0.01))
    at = [x for x in res["runs"] if x["loss"] == "at"]
    first = {(x["seed"], x["factor"]) for x in at[:4]}
    assert first == {(0, 1.0), (1, 1.0), (0, 0.1), (0, 0.01)}  # authors' on all, sweep on seed 0
    val = {x["factor"]: x["val_metric"] for x in at if x["seed"] == 0}
    best = max(sorted(val, reverse=True), key=val.get)
    entry = res["summary"]["classification"]["at"]["sweep"]
    assert entry["factor"] == best
    assert entry["val"] == {f"{f:g}": v for f, v in val.items()}
    later = [(x["seed"], x["factor"]) for x in at[4:]]
    assert later == ([] if best == 1.0 else [(1, best)])  # the choice, on the other seed
    assert entry["n"] == 2 and "gain_vs_student" in entry


def test_a_diverging_run_is_recorded_with_its_reason_and_never_chosen(tmp_path):
    res = reduced(tmp_path / "d.json", losses=["at"], factors=(1.0, 1e308))
    bad = next(x for x in res["runs"] if x["factor"] == 1e308)
    assert bad["status"] == "diverged"
    assert "non-finite loss at epoch 1, step 1, weight " in bad["error"]
    entry = res["summary"]["classification"]["at"]["sweep"]
    assert entry["factor"] == 1.0 and entry["val"]["1e+308"] is None


def _run(task, loss, seed, factor, val, status="ok"):
    return {
        "task": task,
        "loss": loss,
        "seed": seed,
        "factor": factor,
        "status": status,
        "val_metric": val,
        "metric": 1.0 - val,
    }  # test scores ordered against validation


def test_the_sweep_chooses_on_validation_never_on_test():
    runs = [_run("c", "x", 0, 1.0, 0.5), _run("c", "x", 0, 0.1, 0.7), _run("c", "x", 0, 0.01, 0.6)]
    assert sweep.best_factor(runs, "c", "x") == 0.1
    assert sweep.later_runs(runs, "c", "x", [0, 1, 2]) == [("c", "x", 1, 0.1), ("c", "x", 2, 0.1)]
    # ties go to the factor nearer the authors'; a failed factor is never chosen
    tied = [_run("c", "x", 0, f, 0.5) for f in (1.0, 0.1)] + [
        _run("c", "x", 0, 0.01, 0.9, "diverged")
    ]
    assert sweep.best_factor(tied, "c", "x") == 1.0
    assert sweep.best_factor(runs[:2], "c", "x") is None  # 0.01 has not run yet
    assert sweep.later_runs(runs[:2], "c", "x", [0, 1]) == []


def test_worse_than_the_plain_student_counts_both_settings():
    def e(mean, p):
        return {"gain_vs_student": {"mean": mean, "p_ttest_rel": p}}

    summary = {
        "classification": {
            "a": {**e(-0.2, 0.01), "sweep": e(0.01, 0.5)},  # fixed by the sweep
            "b": {**e(-0.2, 0.2), "sweep": e(-0.2, 0.2)},  # worse, but not significantly
            "c": {**e(-0.1, 0.04)},  # no sweep: the authors' entry counts for both
            "d": {**e(0.1, 0.01), "sweep": e(-0.1, 0.01)},
        }
    }
    worse = sweep.worse_than_student(summary)
    assert worse == {
        "authors": ["classification/a", "classification/c"],
        "swept": ["classification/c", "classification/d"],
    }


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
            assert len(recipe.why_not_fitting(name)) > 30
            if recipe.is_language(name):  # the language track runs it (tests/test_arena_lm.py)
                assert recipe.why_not_fitting(name) == recipe.LANGUAGE
                continue
            task = tasks["segmentation" if name == "dsd" else "classification"]
            with pytest.raises((ValueError, TypeError)):  # wrong shapes, or a missing input
                core.run_one(task, name, 0, r, task.teacher, max_steps=1)
            continue
        for t in homes:
            rec = core.run_one(tasks[t], name, 0, r, tasks[t].teacher, max_steps=1)
            assert rec["steps"] == 1 and rec["status"] == "ok"
            assert rec["final_distill_loss"] == rec["final_distill_loss"]  # finite, not NaN
        placed.add(name)
    excluded = {n for n in available() if recipe.why_not_fitting(n)}
    assert placed | excluded == set(available()) and not placed & excluded
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
