"""Training framework: recipes, degradations, resumable deterministic runs, model cards.

Runs tiny recipes on a few photos shipped with scikit-image (written to a temporary
manifest), so it needs nothing from ../shared/.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import photo
from vsrestore.training import recipes, tasks, trainer
from vsrestore.training.recipes import Recipe

TINY = Recipe(name="tiny-denoise", task="denoise", arch="drunet", arch_args={"nc": [8, 8, 8, 8], "nb": 2},
              steps=24, batch=2, patch=32, lr=1e-3, ckpt_every=8, threads=1)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    paths = []
    for name, crop in (("train-a", "coffee"), ("train-b", "chelsea"), ("astronaut", "astronaut")):
        img = photo(crop)[:, :160, :200]
        p = d / f"{name}.png"
        Image.fromarray(np.rint(img.transpose(1, 2, 0) * 255).astype(np.uint8)).save(p)
        paths.append(str(p))
    m = d / "images.txt"
    m.write_text("\n".join(paths) + "\n")
    return m


def test_every_recipe_is_consistent():
    for r in recipes.RECIPES.values():
        assert r.task in ("sr", "denoise", "deblock", "dnsr") and r.kind in ("fidelity", "perceptual")
        assert r.arch in ("compact", "drunet", "chain")
        assert all(i in recipes.RECIPES for i in r.init), r.name
        if r.kind == "perceptual":
            assert r.init and {"l1", "perceptual", "gan"} <= set(r.loss_weights)
            assert set(r.loss_weights) <= set(trainer._PERCEPTUAL_LOSSES)
    assert recipes.get("sr-compact-x2").arch_args == {"num_feat": 32, "num_conv": 12}
    with pytest.raises(KeyError, match="no recipe named"):
        recipes.get("nope")


def test_noise_batches_are_8bit_and_levelled():
    rng = np.random.default_rng(0)
    clean = photo("coffee")[:, :80, :80]
    sampler = tasks.PatchSampler([tasks.Pair(clean, clean)], 1, 32, rng)
    inp, tgt = tasks.training_batch(TINY.with_overrides(batch=4), sampler, rng)
    assert inp.shape == (4, 4, 32, 32) and tgt.shape == (4, 3, 32, 32)
    img, level = inp[:, :3], inp[:, 3]
    assert torch.allclose(img * 255, torch.round(img * 255), atol=1e-4)
    for i in range(4):  # the level plane is the sigma of the noise that was added
        assert float(level[i].std()) < 1e-6
        sigma = float((img[i] - tgt[i]).std()) * 255
        assert abs(sigma - float(level[i, 0, 0]) * 255) < 0.25 * float(level[i, 0, 0]) * 255 + 1.5


def test_compressed_pairs_are_real_encoder_output():
    rng = np.random.default_rng(1)
    img = photo("astronaut")[:, :300, :400]
    pairs = tasks.compressed_pairs([img], rng, crops=2, size=(160, 128))
    assert len(pairs) == 6
    for p in pairs:
        assert p.inp.dtype == np.uint8 and p.inp.shape == (3, 128, 160)
        rms = np.sqrt(np.mean((p.inp / 255.0 - p.tgt / 255.0) ** 2))
        assert p.level is not None and abs(rms - p.level) < 1.5 / 255 and p.level > 0.5 / 255


def test_resumed_run_equals_uninterrupted_run(manifest, tmp_path, monkeypatch):
    straight = trainer.train(TINY, manifest, tmp_path / "a", tmp_path / "wa")
    real = tasks.training_batch
    calls = {"n": 0}

    def stop_at_12(*a, **k):
        calls["n"] += 1
        if calls["n"] > 12:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tasks, "training_batch", stop_at_12)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(TINY, manifest, tmp_path / "b", tmp_path / "wb")
    monkeypatch.setattr(tasks, "training_batch", real)
    resumed = trainer.train(TINY, manifest, tmp_path / "b", tmp_path / "wb")  # from the step-8 checkpoint
    from safetensors.torch import load_file

    wa, wb = load_file(str(tmp_path / "a" / "tiny-denoise.safetensors")), load_file(
        str(tmp_path / "b" / "tiny-denoise.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)
    assert straight["metrics"] == resumed["metrics"]
    card = json.loads(json.dumps(straight))
    assert card["held_out"] == ["astronaut"] and card["training_pictures"] == ["train-a", "train-b"]
    assert card["command"] == "vsrestore train tiny-denoise" and card["params"] > 0
    s25 = card["metrics"]["sigma25"]
    assert s25["psnr_noisy"] < 22 and 15 < s25["sigma_estimated_mean"] < 35


def test_perceptual_and_chain_recipes_train(manifest, tmp_path):
    """The perceptual path (VGG features + relativistic GAN, fine-tuned from a shipped model) and
    the chain path (shipped networks trained end to end) run and produce loadable files."""
    from vsrestore.runtime.loader import load_model

    perc = recipes.get("sr-perceptual-x2").with_overrides(steps=20, batch=2, patch=16, threads=1,
                                                           eval_crop=64, ckpt_every=10)
    card = trainer.train(perc, manifest, tmp_path / "p", tmp_path / "wp")
    m = card["metrics"]
    assert m["stlpips"] > 0 and m["stlpips_reference"] > 0 and m["psnr_y"] > m["psnr_y_lanczos"] - 3
    lm = load_model(tmp_path / "p" / "sr-perceptual-x2.safetensors", "test")
    assert lm.scale == 2 and lm.cond_channels == 0
    chain = Recipe(name="tiny-chain", task="sr", scale=4, arch="chain",
                   init=("sr-compact-x2", "sr-compact-x2"),
                   steps=20, batch=2, patch=16, threads=1, eval_crop=64, ckpt_every=10)
    trainer.train(chain, manifest, tmp_path / "c", tmp_path / "wc")
    lm = load_model(tmp_path / "c" / "tiny-chain.safetensors", "test")
    assert lm.scale == 4 and lm.in_channels == 3


def test_unit_feature_distance_is_lpips_like():
    """featnorm: 0 on identical images, grows with the damage, ignores a feature's length
    (a brightness gain changes it far less than the plain feature L1); off at weight 0."""
    from vsrestore.training.perceptual import VGGFeatureLoss

    img = torch.from_numpy(photo("astronaut")[:, :64, :64].copy()).float()[None] / 255
    rng = np.random.default_rng(0)
    noisy = (img + torch.from_numpy(rng.normal(0, 0.05, img.shape)).float()).clamp(0, 1)
    noisier = (img + torch.from_numpy(rng.normal(0, 0.15, img.shape)).float()).clamp(0, 1)
    norm, plain, off = VGGFeatureLoss(0.0, 1.0), VGGFeatureLoss(1.0, 0.0), VGGFeatureLoss(0.0, 0.0)
    assert norm(img, img).item() == 0.0 and off(noisy, img).item() == 0.0
    assert 0 < norm(noisy, img).item() < norm(noisier, img).item()
    dim = img * 0.7
    assert norm(dim, img) / norm(noisy, img) < 0.5 * plain(dim, img) / plain(noisy, img)


def test_mixed_precision_runs_and_is_recorded(manifest, tmp_path):
    """--precision bf16 (autocast) trains on the CPU too; the GAN path included; the card's
    command names it; fp16 without CUDA is refused."""
    perc = recipes.get("sr-perceptual-x2").with_overrides(steps=6, batch=2, patch=16, threads=1,
                                                           eval_crop=64, ckpt_every=3)
    card = trainer.train(perc, manifest, tmp_path / "p", tmp_path / "wp", precision="bf16")
    assert card["command"] == "vsrestore train sr-perceptual-x2 --precision bf16 --steps 6 --threads 1"
    assert np.isfinite(card["metrics"]["psnr_y"]) and card["metrics"]["psnr_y"] > 20
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        trainer.train(TINY, manifest, tmp_path / "q", tmp_path / "wq", precision="fp16")
    with pytest.raises(ValueError, match="precision must be"):
        trainer.train(TINY, manifest, tmp_path / "q", tmp_path / "wq", precision="int4")


def test_verify_retrains_apart_and_judges_psnr_within_0_2_db(tmp_path, monkeypatch):
    """``vsrestore train NAME --verify`` trains into WORK/verify/ (never resuming the shipped
    run's checkpoints), compares every metric with the shipped card and fails when a PSNR
    moves by more than 0.2 dB; it refuses a shortened run."""
    shipped = json.loads((trainer.WEIGHTS / "sr-anime-x2.json").read_text())
    weights = (trainer.WEIGHTS / "sr-anime-x2.safetensors").read_bytes()
    seen = {}

    def fake_train(recipe, manifest, out, work, device, precision):
        seen.update(out=out, work=work, steps=recipe.steps)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sr-anime-x2.safetensors").write_bytes(weights)
        metrics = {k: v + seen["shift"] for k, v in shipped["metrics"].items()}
        return {**shipped, "metrics": metrics, "train_seconds": 60.0}

    monkeypatch.setattr(trainer, "train", fake_train)
    for shift, rc in ((0.15, 0), (-0.25, 1)):
        seen["shift"] = shift
        assert trainer.main(["sr-anime-x2", "--verify", "--work", str(tmp_path)]) == rc
        assert seen["work"] == tmp_path / "verify" / "sr-anime-x2"
        assert seen["out"] == tmp_path / "verify" / "out"
        assert seen["steps"] == shipped["recipe"]["steps"]
    rows = trainer.compare_metrics({"a": {"psnr_y": 30.0, "stlpips": 0.1}, "psnr_x": 1.0},
                                   {"a": {"psnr_y": 30.3, "stlpips": 0.5}})
    assert rows == [("a.psnr_y", 30.0, 30.3, False), ("a.stlpips", 0.1, 0.5, True)] + rows[2:]
    assert rows[2][0] == "psnr_x" and not rows[2][3]  # missing from the retrained card
    with pytest.raises(SystemExit):
        trainer.main(["sr-anime-x2", "--verify", "--steps", "10"])


def test_runs_of_one_and_two_steps_train(manifest, tmp_path):
    """A smoke run with --steps 1 or 2 trains (the LR warm-up is capped), --steps 0 is refused."""
    for steps in (1, 2):
        card = trainer.train(TINY.with_overrides(steps=steps, ckpt_every=1), manifest, tmp_path / f"o{steps}",
                             tmp_path / f"w{steps}")
        assert card["recipe"]["steps"] == steps and "psnr" in json.dumps(card["metrics"])
    with pytest.raises(SystemExit):
        trainer.main(["sr-compact-x2", "--steps", "0"])


def test_cli_refuses_bad_devices_threads_and_manifests(tmp_path, capsys):
    for args, says in ((["--device", "tpu"], "use cpu, cuda or cuda:N"),
                       (["--threads", "0"], "--threads 0: use 1 or more"),
                       (["--manifest", str(tmp_path / "none.txt")], "none.txt not found")):
        with pytest.raises(SystemExit):
            trainer.main(["sr-compact-x2", "--steps", "1", "--work", str(tmp_path), "--out", str(tmp_path),
                          *args])
        assert says in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            trainer.main(["sr-compact-x2", "--device", "cuda"])
        assert "torch sees no CUDA GPU here" in capsys.readouterr().err


def test_loss_override_is_checked_and_spelled_out_in_the_command(tmp_path, capsys):
    base = recipes.get("sr-perceptual-x2")
    w = trainer.parse_loss("l1=0.25, gan=0.2", base)
    assert w == {"l1": 0.25, "perceptual": 1.0, "gan": 0.2} and base.loss_weights["l1"] == 1.0
    assert trainer._command(base.with_overrides(loss_weights=w, threads=1)) == (
        "vsrestore train sr-perceptual-x2 --threads 1 --loss l1=0.25,perceptual=1,gan=0.2")
    assert trainer._command(base) == "vsrestore train sr-perceptual-x2"
    assert trainer.parse_loss("featnorm=2", base) == {**base.loss_weights, "featnorm": 2.0}
    for text, says in (("gan=x", "'x' is not a number"),
                       ("vgg=1", "NAME one of l1, perceptual, featnorm, gan"),
                       ("l1", "NAME=WEIGHT"), ("l1=-1", "finite and >= 0"), ("l1=inf", "finite and >= 0")):
        with pytest.raises(ValueError, match=says):
            trainer.parse_loss(text, base)
    with pytest.raises(ValueError, match="at least one weight"):
        trainer.parse_loss("l1=0", recipes.get("sr-compact-x2"))
    with pytest.raises(ValueError, match="NAME one of l1 "):  # a fidelity recipe: only its own losses
        trainer.parse_loss("featnorm=1", recipes.get("sr-compact-x2"))
    for args, says in ((["--loss", "perceptual=1"], "NAME one of l1"),
                       (["--loss", "l1=2", "--verify"], "drop --steps, --loss and --out")):
        with pytest.raises(SystemExit):
            trainer.main(["sr-compact-x2", "--work", str(tmp_path), *args])
        assert says in capsys.readouterr().err


class _BlurByLevel(torch.nn.Module):
    """A stand-in deblocker: blurs more the higher the level plane (as its square root, full
    blur at 40/255): its self-consistent level is above 0, and the factor on it matters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img, level = x[:, :3], x[:, 3:4]
        blur = torch.nn.functional.avg_pool2d(img, 5, stride=1, padding=2, count_include_pad=False)
        return img + torch.clamp(level * 255 / 40, 0, 1).sqrt() * (blur - img)


def test_level_scale_calibration_picks_the_best_factor_on_training_pictures(tmp_path):
    from vsrestore.training import evaluate

    big = np.kron(photo("astronaut"), np.ones((1, 2, 2), np.float32))[:, :600, :720]  # 720x600
    p = tmp_path / "big.png"
    Image.fromarray(np.rint(big.transpose(1, 2, 0) * 255).astype(np.uint8)).save(p)
    cal = evaluate.calibrate_level_scale(_BlurByLevel(), [p], pictures=1)
    scores = {float(k): v for k, v in cal["psnr_y_by_scale"].items()}
    assert cal["samples"] == 3 and set(scores) == set(evaluate.LEVEL_SCALES)
    assert cal["level_scale"] == max(scores, key=lambda s: (scores[s], -s))
    assert max(scores.values()) - min(scores.values()) > 0.05  # the factor matters for this net
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((200, 300, 3), np.uint8)).save(small)
    with pytest.raises(ValueError, match="no training picture is 340x260 or larger"):
        evaluate.calibrate_level_scale(_BlurByLevel(), [small])
