"""ddx's defaults against the reference implementations, on identical inputs ("Numbers you can trust", part 1).

Each expected value is computed here from the reference's definition (the file named in each
test), not from ddx's code path; each test also shows that the behaviour ddx had before differs,
so it can fail.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import replace
from pathlib import Path

import kornia.augmentation as K
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import functional as TF

from methods.augment.ops import DSA, BatchMix, apply_mix, cutmix_box, integer_shift, resized_crop, siamese
from methods.context import DistillContext
from methods.datasets import DatasetOptions, RealData, load_dataset
from methods.dc.objective import GradientMatching
from methods.dc.options import DCOptions
from methods.dm.objective import DistributionMatching
from methods.dm.options import DMOptions
from methods.evaluation.presets import BUILTIN
from methods.evaluation.protocol import build_eval_settings, settings_json
from methods.evaluation.set_spaces import SetError, normalise
from methods.evaluation.student import StudentView, black_fill, relabelling_teacher, train_student
from methods.networks import build_network
from methods.teacher.options import TeacherOptions
from methods.teacher.squeeze import Teacher
from methods.tm.experts import Experts
from methods.tm.options import ExpertOptions

PRESETS = [p.name for p in BUILTIN]  # ddx's own evaluation presets
ZCA_EPS = 0.1  # MTT utils.py: K.enhance.ZCAWhitening(eps=0.1, compute_inv=True)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_data(classes: int = 4, per_class: int = 3, res: int = 16, zca: bool = False) -> RealData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(classes * per_class, 3, res, res, generator=g)
    y = torch.arange(classes).repeat(per_class)
    return RealData(
        name="tiny", train_x=x, train_y=y, val_x=x[:classes], val_y=y[:classes], test_x=x[:classes],
        test_y=y[:classes], num_classes=classes, class_names=[str(c) for c in range(classes)],
        mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010), zca=zca,
    )  # fmt: skip


# --- 1. ZCA on raw [0, 1] pixels (mtt-distillation utils.py get_dataset) -------------------------------------


def mtt_zca(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """MTT's whitening from its definition, in float64: kornia's ZCA (unbiased covariance, ε added to the
    eigenvalues) fitted on the raw training pixels, x ↦ U diag((λ + ε)^{-1/2}) Uᵀ (x − μ)."""
    flat = train.flatten(1).double()
    mu = flat.mean(0)
    cov = (flat - mu).T @ (flat - mu) / (flat.shape[0] - 1)
    lam, u = torch.linalg.eigh(cov)
    w = u @ torch.diag((lam + ZCA_EPS).rsqrt()) @ u.T
    return [((t.flatten(1).double() - mu) @ w).view(t.shape).float() for t in (train, *others)]


def raw_pixels(data: RealData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The [0, 1] pixels of a normalised load (the same split: its images are (x − mean)/std)."""
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return tuple(t * std + mean for t in (data.train_x, data.val_x, data.test_x))  # type: ignore[return-value]


def test_zca_whitens_raw_pixels_as_mtt(tmp_path: Path) -> None:
    plain = load_dataset(DatasetOptions(name="digits", cache_dir=str(tmp_path)))
    white = load_dataset(DatasetOptions(name="digits", zca=True, cache_dir=str(tmp_path)))
    train, val, test = raw_pixels(plain)
    assert float(train.min()) > -1e-5 and float(train.max()) < 1 + 1e-5  # the pixels MTT whitens
    expected = mtt_zca(train, val, test)
    for got, want in zip((white.train_x, white.val_x, white.test_x), expected, strict=True):
        torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)
    assert white.mean == (0.0,) and white.std == (1.0,)  # no per-channel step before the whitening
    # the former normalise-then-whiten space (kept as zca_space: normalized) is another transform
    old = load_dataset(DatasetOptions(name="digits", zca=True, zca_space="normalized", cache_dir=str(tmp_path)))
    assert float((old.test_x - expected[2]).abs().max()) > 0.5
    # ε is absolute: the normalised digits have ~7× the pixels' variance (1/0.376²), so ε regularises less there
    assert float(train.var()) * 5 < float(plain.train_x.var())


def test_external_pixel_sets_are_whitened_like_the_data(tmp_path: Path) -> None:
    plain = load_dataset(DatasetOptions(name="digits", cache_dir=str(tmp_path)))
    white = load_dataset(DatasetOptions(name="digits", zca=True, cache_dir=str(tmp_path)))
    train, _, _ = raw_pixels(plain)
    torch.testing.assert_close(normalise(train[:20], white), white.train_x[:20], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(normalise(train[:20], plain), plain.train_x[:20], atol=1e-5, rtol=1e-5)
    with pytest.raises(SetError, match="ZCA-whitened at 8 px"):
        normalise(torch.rand(2, 1, 16, 16), white)
    assert white.resized(16).whitening is None  # the fit is for the loaded resolution only


def test_zca_artifacts_of_the_normalise_first_version_are_not_reused() -> None:
    plain = DatasetOptions(name="cifar10", root="/d")
    former = {k: v for k, v in dataclasses.asdict(plain).items() if k not in ("cache_dir", "zca_space")}
    assert plain.identity() == former  # un-whitened identities are unchanged …
    assert replace(plain, zca_space="normalized").identity() == former  # … and zca_space means nothing there
    white = replace(plain, zca=True)
    assert white.identity()["zca_space"] == "pixels"  # a key the former identities lack
    assert replace(white, zca_space="normalized").identity() != white.identity()
    # so the prerequisites made from ZCA data (experts, teachers) get other artifact keys
    experts, teacher = Experts(ExpertOptions()), Teacher(TeacherOptions())
    for prereq in (experts, teacher):
        assert prereq.describe(white, 0) != prereq.describe(replace(white, zca_space="normalized"), 0)
        assert prereq.describe(plain, 0) == prereq.describe(replace(plain, zca_space="normalized"), 0)


def test_recover_clips_nothing_on_whitened_data() -> None:
    from methods.cfm.objective import CFM, CFMOptions

    for zca, clipped in ((False, True), (True, False)):
        data = tiny_data(zca=zca)
        obj = CFM(CFMOptions())
        torch.manual_seed(0)
        teacher = build_network("convnet_d2", 3, data.num_classes, data.resolution).eval()
        obj.prepare(data, DistillContext(), {"teacher": teacher})
        assert (obj.lo is not None) == clipped
    with pytest.raises(ValueError, match="ZCA"):
        black_fill(tiny_data(zca=True))


# --- 2. DC's inner network optimiser (DatasetCondensation main.py: SGD(net.parameters(), lr=args.lr_net)) ----


def test_dc_trains_its_network_with_plain_sgd() -> None:
    assert DCOptions().net_momentum == 0.0
    data = tiny_data()
    obj = GradientMatching(DCOptions(distill_arch="convnet_d2"))
    ctx = DistillContext(seed=0)
    obj.prepare(data, ctx, {})
    obj._fresh(0, ctx)
    assert obj.net is not None and obj.net_opt is not None
    theta = [p.detach().clone() for p in obj.net.parameters()]
    lr = DCOptions().lr_net
    for step in range(2):  # momentum would first show on the second step
        x, y = data.train_x[step * 4 : step * 4 + 4], data.train_y[step * 4 : step * 4 + 4]
        loss = F.cross_entropy(obj.net(x), y)
        grads = torch.autograd.grad(loss, list(obj.net.parameters()))
        theta = [t - lr * g for t, g in zip(theta, grads, strict=True)]  # θ ← θ − lr·∇ (the reference's update)
        obj.net_opt.zero_grad()
        F.cross_entropy(obj.net(x), y).backward()
        obj.net_opt.step()
    for p, t in zip(obj.net.parameters(), theta, strict=True):
        torch.testing.assert_close(p.detach(), t, atol=1e-6, rtol=1e-5)


# --- 3. DM's Siamese draw (DatasetCondensation main_DM.py + utils.py DiffAugment with seed ≠ −1) -------------


def test_dm_augments_a_class_batch_and_its_synthetic_images_with_one_transform() -> None:
    """The reference calls DiffAugment(img_real, seed=seed) and DiffAugment(img_syn, seed=seed) with
    seed = int(time.time() * 1000) % 100000, never −1: param.Siamese is True and every op copies image 0's
    parameters to the whole batch (theta[:] = theta[0], …); the synthetic batch replays the same seeds."""
    torch.manual_seed(0)
    obj = DistributionMatching(DMOptions())
    one = torch.randn(1, 3, 16, 16)
    for seed in range(20):
        real, syn = siamese(obj.aug, seed, one.expand(8, -1, -1, -1).contiguous(), one)
        assert all(torch.equal(real[0], real[i]) for i in range(8))  # one transform for the real batch …
        assert torch.equal(real[0], syn[0])  # … and the same for the synthetic images


# --- 4. the teacher's BatchNorm while relabelling (SRe2L relabel_cifar.py: no model_teacher.eval()) -------------


def bn_teacher(data: RealData) -> torch.nn.Module:
    torch.manual_seed(1)
    net = build_network("convnet_bn_d2", data.channels, data.num_classes, data.resolution)
    net.train()
    with torch.no_grad():  # running statistics that differ from any batch's
        for _ in range(3):
            net(data.train_x * 2 + 1)
    return net.eval()


def test_relabelling_in_train_mode_uses_batch_statistics_and_leaves_the_teacher_alone() -> None:
    data = tiny_data()
    teacher = bn_teacher(data)
    before = copy.deepcopy(teacher.state_dict())
    x = data.train_x[:6]
    reference = copy.deepcopy(teacher).train()  # SRe2L: the teacher as built, in train mode
    with torch.no_grad():
        want = reference(x)
        got = relabelling_teacher(teacher, "train")(x)
        eval_logits = relabelling_teacher(teacher, "eval")(x)
    torch.testing.assert_close(got, want)
    assert float((eval_logits - want).abs().max()) > 1e-2  # running statistics give other soft labels
    # the reference's train-mode pass moved its running statistics; ddx's teacher is untouched
    assert not torch.equal(reference.state_dict()["features.1.running_mean"], before["features.1.running_mean"])
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())


def test_students_relabel_as_the_setting_says_without_side_effects() -> None:
    data = tiny_data()
    teacher = bn_teacher(data)
    before = copy.deepcopy(teacher.state_dict())
    seen: list[tuple[bool, bool]] = []
    bn = teacher.features[1]
    bn.register_forward_hook(lambda m, i, o: seen.append((m.training, m.track_running_stats)))
    for mode in ("train", "eval"):
        seen.clear()
        s = build_eval_settings({"epochs": 1, "batch_size": 4, "label_mode": "soft", "teacher_mode": mode})
        train_student(data.train_x, data.train_y, data, "convnet_d2", 0, s, teacher=teacher)
        assert seen and all(flags == ((True, False) if mode == "train" else (False, True)) for flags in seen)
        assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
        assert f'"teacher_mode": "{mode}"' in settings_json(s)  # recorded in the row's eval_settings


def test_only_sre2l_soft_relabels_in_train_mode() -> None:
    modes = {name: build_eval_settings(preset=name).teacher_mode for name in PRESETS}
    assert modes.pop("sre2l_soft") == "train"
    assert set(modes.values()) == {"eval"}


# --- 5. RandomResizedCrop resampled as torchvision's (the references' transforms.RandomResizedCrop) -------------


def smooth_images(n: int, side: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    return F.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=(side, side), mode="bicubic", align_corners=False)


def torchvision_crops(x: torch.Tensor, src: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision's ``F.resized_crop`` of every image on kornia's box (corners (x1, y1) … (x2, y2), inclusive)."""
    out = []
    for img, box in zip(x, src, strict=True):
        x1, y1 = (round(v) for v in box[0].tolist())
        x2, y2 = (round(v) for v in box[2].tolist())
        out.append(TF.resized_crop(img, y1, x1, y2 - y1 + 1, x2 - x1 + 1, [size, size], antialias=True))
    return torch.stack(out)


def test_random_resized_crop_equals_torchvisions_on_the_same_box() -> None:
    x = smooth_images(48)
    torch.manual_seed(3)
    aug = resized_crop((32, 32), 0.08)
    out = aug(x)
    want = torchvision_crops(x, aug._params["src"], 32)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    # kornia's default (a warp of the box, align_corners=True) on the very same boxes is further off
    default = K.RandomResizedCrop((32, 32), scale=(0.08, 1.0))(x, params=aug._params)
    assert float((default - want).abs().mean()) > 1e-3
    # the ops that use it: DSA's rrc and the recover objectives' crop
    torch.manual_seed(3)
    via_dsa = DSA("rrc", mode="all")(x)
    torch.testing.assert_close(via_dsa, out)
    from methods.cfm.objective import CFM, CFMOptions

    obj = CFM(CFMOptions())
    obj.prepare(tiny_data(res=32), DistillContext(), {"teacher": bn_teacher(tiny_data(res=32))})
    crop = obj.aug[0]
    assert crop.flags["align_corners"] is False and crop.flags["cropping_mode"] == "slice"


# --- 6. CutMix/Mixup partners (SRe2L relabel_cifar.py / utils_fkd.py, UniDD generate_soft_label_online.py) -----


def test_mix_partners_are_a_random_permutation_with_self_pairs() -> None:
    x = torch.rand(8, 3, 16, 16)
    self_pairs = 0
    for seed in range(200):
        torch.manual_seed(seed)
        draw = BatchMix("mixup", alpha=0.8).draw(x)
        torch.manual_seed(seed)
        assert torch.equal(draw.perm, torch.randperm(8))  # rand_index = torch.randperm(images.size()[0])
        self_pairs += int((draw.perm == torch.arange(8)).any())
    # P(some image is its own partner) = 1 − 1/e for a random permutation; a rolled batch never has one
    assert abs(self_pairs / 200 - (1 - math.exp(-1))) < 0.1


def test_mixup_and_cutmix_are_the_references_formulas() -> None:
    x = torch.rand(6, 3, 16, 12)
    torch.manual_seed(4)
    draw = BatchMix("mixup", alpha=0.8).draw(x)
    torch.testing.assert_close(apply_mix(x, "mixup", draw), draw.lam * x + (1 - draw.lam) * x[draw.perm])
    for seed, lam in ((5, 0.3), (6, 0.77), (7, 0.02)):
        torch.manual_seed(seed)
        box = cutmix_box(16, 12, lam)
        torch.manual_seed(seed)
        cx, cy = int(torch.randint(16, ())), int(torch.randint(12, ()))  # rand_bbox: cx, cy uniform
        cut_w, cut_h = int(16 * math.sqrt(1 - lam)), int(12 * math.sqrt(1 - lam))
        clip = lambda v, hi: min(max(v, 0), hi)  # noqa: E731  (np.clip)
        assert box == (clip(cx - cut_w // 2, 16), clip(cy - cut_h // 2, 12),
                       clip(cx + cut_w // 2, 16), clip(cy + cut_h // 2, 12))  # fmt: skip
    perm = torch.tensor([1, 0, 2, 5, 3, 4])
    out = apply_mix(x, "cutmix", replace(draw, perm=perm, box=(2, 3, 9, 10)))
    want = x.clone()
    want[:, :, 2:9, 3:10] = x[perm][:, :, 2:9, 3:10]  # images[:, :, bbx1:bbx2, bby1:bby2] = images[rand_index, …]
    assert torch.equal(out, want)


# --- 7. sre2l_soft's crop fill (RandomCrop(32, padding=4) on [0, 1] images, then Normalize) ---------------------


def test_sre2l_crop_pads_black_pixels_before_normalising() -> None:
    data = tiny_data(res=32)
    mean, std = list(data.mean), list(data.std)
    g = torch.Generator().manual_seed(5)
    pixels = torch.rand(5, 3, 32, 32, generator=g)
    normed = TF.normalize(pixels, mean, std)
    fill = black_fill(data)
    for dy, dx in ((4, -3), (-4, 4), (0, 2)):
        # torchvision: pad 4 with 0 (fill=0, padding_mode="constant"), crop at (4 + dy, 4 + dx), then Normalize
        want = TF.normalize(TF.crop(TF.pad(pixels, [4], fill=0), 4 + dy, 4 + dx, 32, 32), mean, std)
        got = integer_shift(normed, torch.full((5,), dy), torch.full((5,), dx), fill)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
        zero_fill = integer_shift(normed, torch.full((5,), dy), torch.full((5,), dx))
        assert float((zero_fill - want).abs().max()) > 2.0  # the dataset mean is not black
    s = build_eval_settings({"mix": "none"}, preset="sre2l_soft")
    assert s.soft_crop_fill == "black"
    view = StudentView(s, data.num_classes, fill)
    torch.manual_seed(6)
    out = torch.stack([view(normed[:1])[0] for _ in range(30)])
    outside = ~torch.isin(out, normed[0])  # a pixel that is no input pixel was shifted in
    assert outside.any()
    assert torch.equal(out.masked_select(outside), fill.view(1, 3, 1, 1).expand_as(out).masked_select(outside))
    others = {name: build_eval_settings(preset=name).soft_crop_fill for name in PRESETS if name != "sre2l_soft"}
    assert set(others.values()) == {"zero"}


# --- 8. ConvNet for MNIST-like inputs (DatasetCondensation networks.py ConvNet._make_layers) --------------------


def reference_convnet_parameters(channel: int, num_classes: int, im_size: int, width: int = 128, depth: int = 3) -> int:
    """ConvNet(channel, num_classes, 128, 3, 'relu', 'instancenorm', 'avgpooling', im_size): the first conv pads
    by 3 for one channel, and a 28 px input is counted as 32 px for the head."""
    side = 32 if im_size == 28 else im_size
    convs = (channel * 9 + 1) * width + (depth - 1) * (width * 9 + 1) * width
    norms = depth * 2 * width
    head = (width * (side // 2**depth) ** 2 + 1) * num_classes
    return convs + norms + head


def test_mnist_convnet_matches_the_reference() -> None:
    net = build_network("convnet_d3", 1, 10, 28)
    count = sum(p.numel() for p in net.parameters())
    assert count == reference_convnet_parameters(1, 10, 28) == 317_706  # ddx had 308,746 (a 3×3 final map)
    assert net.features[0].padding == (3, 3)
    assert net.embed(torch.zeros(2, 1, 28, 28)).shape == (2, 128 * 4 * 4)
    rgb = build_network("convnet_d3", 3, 10, 32)
    assert sum(p.numel() for p in rgb.parameters()) == reference_convnet_parameters(3, 10, 32) == 320_010
    assert rgb.features[0].padding == (1, 1)
