"""Training settings as data: every loss's presets are well formed, the default preset is the
constructor's defaults, and ``create`` trains at the authors' weights (AT 1000, SP 3000...)."""

from __future__ import annotations

import inspect

import pytest
from conftest import require

from kdsurvey.losses import manifest


def _entries_with_presets() -> list[dict]:
    return [loss for loss in manifest.load()["losses"] if loss["presets"]]


@pytest.fixture(scope="module")
def losses():
    """The registry (needs torch, the ``losses`` extra)."""
    require("torch", "pip install .[losses]")
    from kdsurvey.losses import available, create, get

    return available, create, get


# -- torch-free: what the manifest (and so the site) says ---------------------------------------
def test_many_losses_declare_their_authors_settings():
    # a floor, so that presets dropped by mistake fail here
    assert len(_entries_with_presets()) >= 50


@pytest.mark.parametrize("entry", _entries_with_presets(), ids=lambda e: e["name"])
def test_presets_are_well_formed_in_the_manifest(entry):
    presets = entry["presets"]
    assert presets[0]["default"] and not any(p["default"] for p in presets[1:])
    assert presets[0]["kwargs"] == {}, "the default preset is the constructor's defaults"
    names = {h["name"] for h in entry["hyperparameters"]}
    for p in presets:
        assert p["source"].strip(), f"{entry['name']}.{p['name']} has no source"
        assert set(p["kwargs"]) <= names, f"{entry['name']}.{p['name']}: {set(p['kwargs']) - names}"
        assert p["task_weight"] >= 0 and p["warmup_epochs"] >= 0
    assert len({p["name"] for p in presets}) == len(presets)


def _build(create, cls, key):
    """``create(name, preset=key)``; where the preset's setting needs the networks' sizes (e.g.
    CIRKD's memory needs the teacher's width), with the manifest's example sizes added."""
    try:
        return create(cls.name, preset=key)
    except ValueError:
        params = inspect.signature(cls.__init__).parameters
        sizes = {
            k: v
            for k, v in manifest._SIZES.items()
            if k in params and k not in cls.presets[key].kwargs
        }
        return create(cls.name, preset=key, **sizes)


# -- the classes --------------------------------------------------------------------------------
def test_every_preset_names_constructor_parameters_and_builds(losses):
    available, create, get = losses
    for name in available():
        cls = get(name)
        params = inspect.signature(cls.__init__).parameters
        for i, (key, preset) in enumerate(cls.presets.items()):
            assert set(preset.kwargs) <= set(params), (name, key, set(preset.kwargs) - set(params))
            assert preset.source.strip(), (name, key)
            if i == 0:
                assert not preset.kwargs, f"{name}: the default preset must not override"
            loss = _build(create, cls, key)
            for k, v in preset.kwargs.items():
                if hasattr(loss, k) and not isinstance(v, tuple):
                    assert getattr(loss, k) == v, (name, key, k)


@pytest.mark.parametrize(
    ("name", "weight"),
    [
        ("at", 1000.0),
        ("sp", 3000.0),
        ("fitnet", 100.0),
        ("nst", 50.0),
        ("pkt", 30000.0),
        ("crd", 0.8),
        ("cc_repdistiller", 0.02),
        ("ft", 500.0),
        ("ft_repdistiller", 200.0),
        ("ofd", 1e-3),
        ("kd", 0.9),
        ("reviewkd_hcl", 5.0),
        ("semckd", 400.0),
        ("ifvd", 200.0),
        ("cwd", 3.0),
        ("mgd", 7e-5),
        ("ttm", 45.0),
        ("lskd", 9.0),
        ("attnfd", 2.0),
    ],
)
def test_create_trains_at_the_authors_weight(losses, name, weight):
    _, create, _ = losses
    assert create(name).loss_weight == pytest.approx(weight)


def test_label_weight_and_warmup_of_the_default_presets(losses):
    _, _, get = losses
    assert get("kd").preset().task_weight == pytest.approx(0.1)
    assert get("dkd").preset().warmup_epochs == 20
    assert get("reviewkd_hcl").preset().warmup_epochs == 20
    assert get("at").preset().task_weight == 1.0


def test_a_named_preset_overrides_the_defaults(losses):
    _, create, get = losses
    dkd = create("dkd", preset="imagenet")
    assert (dkd.alpha, dkd.beta, dkd.temperature, dkd.loss_weight) == (1.0, 0.5, 1.0, 1.0)
    assert get("dkd").preset("imagenet").warmup_epochs == 1
    assert create("dkd").beta == 8.0  # the default is untouched
    kd = create("kd", preset="imagenet")
    assert (kd.temperature, kd.loss_weight) == (1.0, 0.5)
    assert get("kd").preset("imagenet").task_weight == 0.5
    # keyword arguments win over the preset
    assert create("dkd", preset="imagenet", beta=2.0).beta == 2.0


def test_an_unknown_preset_is_a_key_error_naming_the_known_ones(losses):
    _, create, _ = losses
    with pytest.raises(KeyError, match="cifar100, imagenet"):
        create("dkd", preset="cityscapes")
    with pytest.raises(KeyError, match="did you mean 'imagenet'"):
        create("dkd", preset="imagenett")
