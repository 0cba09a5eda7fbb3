"""Hand-worked checks of `dist_plus` and `streamlined_kd`, computed here with numpy from the
equations (not with the library): each term alone, the median masks, and the parameter settings
under which torchdistill's SKD terms (the paper's equations) equal `streamlined_kd`."""

from __future__ import annotations

import pytest
from conftest import require

torch = require("torch", "the losses extra")
np = require("numpy", "the losses extra")

from kdsurvey.losses import create  # noqa: E402


def _logits(seed, b=8, c=10):
    gen = torch.Generator().manual_seed(seed)
    zs = torch.randn(b, c, generator=gen, dtype=torch.float64)
    zt = 2 * torch.randn(b, c, generator=gen, dtype=torch.float64)
    return zs, zt


def _softmax(z, t=1.0):
    e = np.exp(z / t - (z / t).max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _direction(zs, zt, lam, divide_by_classes=True):
    """(1/B) sum_i sqrt(D_i (Cov(D) + lam I)^-1 D_i^T), D = G_s - G_t of L2-normalised rows."""

    def gram(z):
        u = z / np.linalg.norm(z, axis=1, keepdims=True)
        return u @ u.T / (z.shape[1] if divide_by_classes else 1)

    d = gram(zs) - gram(zt)
    sigma = np.cov(d, rowvar=False) + lam * np.eye(d.shape[1])
    return np.mean([np.sqrt(row @ np.linalg.solve(sigma, row)) for row in d])


def _instance(zs, zt, t):
    p, q = _softmax(zt, t), _softmax(zs, t)
    return t * t * np.mean(np.sum(p * np.log(p / q), axis=1))


def test_streamlined_direction_term_is_the_mahalanobis_mean_of_gram_differences():
    zs, zt = _logits(0)
    got = create("streamlined_kd", instance_weight=0.0, direction_weight=1.0, median_masks=False)
    want = _direction(zs.numpy(), zt.numpy(), 0.1)
    assert got(zs, zt).item() == pytest.approx(want, rel=1e-9)


def test_streamlined_instance_term_is_kd_with_temperature_squared():
    zs, zt = _logits(1)
    loss = create(
        "streamlined_kd",
        temperature=3.0,
        instance_weight=1.0,
        direction_weight=0.0,
        median_masks=False,
    )
    assert loss(zs, zt).item() == pytest.approx(_instance(zs.numpy(), zt.numpy(), 3.0), rel=1e-9)


def test_streamlined_direction_is_an_l2_norm_after_whitening():
    """The paper's identity: with Cov + lam I = L L^T, the distance is |L^-1 D_i|."""
    zs, zt = _logits(2, b=6, c=5)
    u_s = zs.numpy() / np.linalg.norm(zs.numpy(), axis=1, keepdims=True)
    u_t = zt.numpy() / np.linalg.norm(zt.numpy(), axis=1, keepdims=True)
    d = (u_s @ u_s.T - u_t @ u_t.T) / 5
    low = np.linalg.cholesky(np.cov(d, rowvar=False) + 0.1 * np.eye(6))
    whitened = np.linalg.solve(low, d.T).T
    want = np.linalg.norm(whitened, axis=1).mean()
    loss = create("streamlined_kd", instance_weight=0.0, direction_weight=1.0, median_masks=False)
    assert loss(zs, zt).item() == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize(("b", "c"), [(8, 10), (7, 5)])
def test_streamlined_median_masks_scale_each_term_by_the_fraction_at_or_below_the_median(b, c):
    zs, zt = _logits(3, b, c)
    p = _softmax(zt.numpy())
    conf, per_class = p.max(1), p.sum(0)
    f_ins = np.mean(conf <= np.percentile(conf, 50))
    f_dir = np.mean(per_class <= np.percentile(per_class, 50))
    assert f_ins == pytest.approx(((b + 1) // 2) / b) and f_dir == pytest.approx(((c + 1) // 2) / c)
    want = 0.9 * f_ins * _instance(zs.numpy(), zt.numpy(), 4.0) + 0.9 * f_dir * _direction(
        zs.numpy(), zt.numpy(), 0.1
    )
    loss = create("streamlined_kd", instance_weight=0.9, direction_weight=0.9)
    assert loss(zs, zt).item() == pytest.approx(want, rel=1e-9)


def test_streamlined_equals_torchdistills_terms_under_the_documented_settings():
    """SKDInstanceLoss: plain batch-mean KL (no tau^2); SKDDirectionLoss: Gram matrices not
    divided by C. Both equal `streamlined_kd` with the settings the libraries table gives."""
    c, t, lam = 10, 4.0, 0.1
    zs, zt = _logits(4, 8, c)
    instance = create(
        "streamlined_kd",
        temperature=t,
        instance_weight=1 / t**2,
        direction_weight=0.0,
        median_masks=False,
    )
    assert instance(zs, zt).item() == pytest.approx(
        _instance(zs.numpy(), zt.numpy(), t) / t**2, rel=1e-9
    )
    direction = create(
        "streamlined_kd",
        tikhonov=lam / c**2,
        instance_weight=0.0,
        direction_weight=1.0,
        median_masks=False,
    )
    want = _direction(zs.numpy(), zt.numpy(), lam, divide_by_classes=False)
    assert direction(zs, zt).item() == pytest.approx(want, rel=1e-9)


def test_streamlined_rejects_a_batch_of_one_and_a_non_positive_regulariser():
    zs, zt = _logits(5, b=1)
    with pytest.raises(ValueError, match="B >= 2"):
        create("streamlined_kd")(zs, zt)
    with pytest.raises(ValueError, match="tikhonov"):
        create("streamlined_kd", tikhonov=0.0)


def _pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    return (a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))


def _feats(seed, b=5, c=6, h=3, w=2):
    gen = torch.Generator().manual_seed(seed)
    fs = torch.randn(b, c, h, w, generator=gen, dtype=torch.float64)
    ft = torch.randn(b, c, h, w, generator=gen, dtype=torch.float64) + 0.5
    return fs, ft


def test_dist_plus_feature_terms_are_one_minus_mean_correlations():
    zs, zt = _logits(6, b=5)
    fs, ft = _feats(7)
    s, t = fs.numpy().reshape(5, 6, -1), ft.numpy().reshape(5, 6, -1)
    channel = 1 - np.mean([_pearson(s[i, :, p], t[i, :, p]) for i in range(5) for p in range(6)])
    a_s, a_t = s.sum(1), t.sum(1)  # (B, HW) channel-summed maps
    spatial = 1 - np.mean([_pearson(a_s[:, p], a_t[:, p]) for p in range(6)])
    only = dict(beta=0.0, gamma=0.0, temperature=1.0, loss_weight=1.0)
    got_c = create("dist_plus", iota=1.0, kappa=0.0, **only)(zs, zt, fs, ft).item()
    got_s = create("dist_plus", iota=0.0, kappa=1.0, **only)(zs, zt, fs, ft).item()
    assert got_c == pytest.approx(channel, rel=1e-6)
    assert got_s == pytest.approx(spatial, rel=1e-6)
    # the channel term shrinks as the student's channel vectors correlate with the teacher's
    closer = create("dist_plus", iota=1.0, kappa=0.0, **only)(zs, zt, ft + 0.1 * fs, ft).item()
    assert closer < got_c


def test_dist_plus_without_feature_terms_is_dist():
    zs, zt = _logits(8)
    fs, ft = _feats(9, b=8)
    got = create(
        "dist_plus", iota=0.0, kappa=0.0, beta=2.0, gamma=0.5, temperature=4.0, loss_weight=1.0
    )
    want = create("dist", beta=2.0, gamma=0.5, temperature=4.0, loss_weight=1.0)(zs, zt)
    assert got(zs, zt, fs, ft).item() == pytest.approx(want.item(), rel=1e-6)
