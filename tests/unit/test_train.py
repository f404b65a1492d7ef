"""Training loop at smoke sizes on an in-memory dataset: updates, determinism, resume, VGG
fallback, checkpoint checks, PSNR/SSIM properties, progress cadence, prior stage outputs."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
import yaml
from support import SMOKE_RENDERER as SMOKE

import deadlib.train.loop as train_mod
from deadlib.core.measures import mean_finite, psnr, ssim
from deadlib.core.progress import progress_bar
from deadlib.data.synthetic_windows import SyntheticWindows
from deadlib.model.vgg import random_vgg19_features
from deadlib.train.loop import (
    CheckpointMismatch,
    TrainConfig,
    TrainState,
    evaluate,
    iterate_batches,
    load_checkpoint,
    predict,
    sample_grid,
    train,
    train_step,
)
from deadlib.train.prior import mouth_crops, read_live_series, train_prior, val_indices


def make_cfg(**kw) -> TrainConfig:
    base = dict(steps=3, batch_size=2, device="cpu", seed=0, lambda_vgg=0.0, adv_start_step=0,
                log_every=1, eval_every=1000, ckpt_every=1000, n_samples=2, renderer=SMOKE)
    return TrainConfig.from_dict({**base, **kw})


@pytest.fixture(scope="module")
def train_set() -> SyntheticWindows:
    return SyntheticWindows(("synth_a", "synth_b"), n_frames=6, size=64)      # 2 x 4 windows


@pytest.fixture(scope="module")
def val_set() -> SyntheticWindows:
    return SyntheticWindows(("synth_a", "synth_b"), n_frames=4, size=64, start=6)  # 2 x 2 windows


def collate(items: list[dict]) -> dict:
    return torch.utils.data.default_collate(items)


def params_of(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


# --- train_step -----------------------------------------------------------------------------------

def test_train_step_updates_renderer_textures_and_disc(train_set):
    torch.manual_seed(0)
    state = TrainState(make_cfg(), train_set.names, "cpu")
    batch = collate([train_set[0], train_set[1]])                            # identity synth_a only
    before = {n: params_of(m) for n, m in [("r", state.renderer), ("d", state.disc),
                                           ("a", state.bank["synth_a"]), ("b", state.bank["synth_b"])]}
    logs = train_step(state, batch, state.cfg.loss)
    assert state.step == 1
    assert {"loss_g", "l1", "reg", "adv_g", "loss_d", "d_real", "d_fake"} <= set(logs)
    assert all(math.isfinite(v) for v in logs.values())
    assert changed(before["r"], state.renderer) and changed(before["d"], state.disc)
    assert changed(before["a"], state.bank["synth_a"])
    assert not changed(before["b"], state.bank["synth_b"])                  # not in the batch: untouched


def test_adversarial_terms_wait_for_adv_start_step(train_set):
    torch.manual_seed(0)
    state = TrainState(make_cfg(adv_start_step=5), train_set.names, "cpu")
    d_before = params_of(state.disc)
    logs = train_step(state, collate([train_set[0], train_set[5]]), state.cfg.loss)
    assert "adv_g" not in logs and "loss_d" not in logs
    assert not changed(d_before, state.disc)


def test_lazy_r1_penalty_on_its_steps(train_set):
    torch.manual_seed(0)
    state = TrainState(make_cfg(r1_gamma=1.0, r1_every=2), train_set.names, "cpu")
    batch = collate([train_set[0], train_set[5]])
    first, second = train_step(state, batch, state.cfg.loss), train_step(state, batch, state.cfg.loss)
    assert first["r1"] > 0 and math.isfinite(first["r1"]) and "r1" not in second


def test_vgg_term_used_when_features_available(train_set):
    torch.manual_seed(0)
    state = TrainState(make_cfg(lambda_vgg=1.0, lambda_adv=0.0), train_set.names, "cpu")
    state.vgg = random_vgg19_features(0)
    logs = train_step(state, collate([train_set[0], train_set[1]]), state.cfg.loss)
    assert logs["vgg"] > 0 and math.isfinite(logs["vgg"])


# --- whole runs: determinism, resume, VGG fallback -------------------------------------------------

def test_two_runs_with_the_same_seed_give_identical_losses(train_set, val_set, tmp_path):
    a = train(make_cfg(steps=3), train_set, val_set, tmp_path / "a", progress=False)
    b = train(make_cfg(steps=3), train_set, val_set, tmp_path / "b", progress=False)
    assert len(a["history"]) == 3 and a["history"] == b["history"]
    assert a["metrics"] == b["metrics"]
    c = train(make_cfg(steps=3, seed=1), train_set, val_set, tmp_path / "c", progress=False)
    assert c["history"] != a["history"]


def test_killed_run_resumes_exactly(train_set, val_set, tmp_path, monkeypatch):
    full = train(make_cfg(steps=6, ckpt_every=2, eval_every=2), train_set, val_set, tmp_path / "full",
                 progress=False)

    real_step = train_mod.train_step

    def dies_before_step_6(state, batch, loss_cfg):
        if state.step == 5:                                                  # step 5 done, not checkpointed
            raise KeyboardInterrupt("simulated kill")
        return real_step(state, batch, loss_cfg)

    monkeypatch.setattr(train_mod, "train_step", dies_before_step_6)
    with pytest.raises(KeyboardInterrupt):
        train(make_cfg(steps=6, ckpt_every=2, eval_every=2), train_set, val_set, tmp_path / "run", progress=False)
    monkeypatch.setattr(train_mod, "train_step", real_step)
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 4

    resumed = train(make_cfg(steps=6, ckpt_every=2, eval_every=2), train_set, val_set, tmp_path / "run",
                    progress=False)
    assert (resumed["start_step"], resumed["step"]) == (4, 6)
    assert resumed["history"] == full["history"][4:]
    assert resumed["metrics"] == full["metrics"]
    steps, values = read_live_series(tmp_path / "run" / "dvclive")["train/l1"]
    assert steps.tolist() == [1, 2, 3, 4, 5, 6]                              # no duplicate rows after the kill
    assert values.tolist() == [h["l1"] for h in full["history"]]
    again = train(make_cfg(steps=6), train_set, val_set, tmp_path / "run", progress=False)
    assert again["step"] == 6 and again["history"] == []                     # already done: no extra steps
    with pytest.warns(RuntimeWarning, match=r"changed settings \['lambda_adv'\]"):
        train(make_cfg(steps=6, lambda_adv=0.5), train_set, val_set, tmp_path / "run", progress=False)


def test_evaluating_more_or_less_often_does_not_change_training(train_set, val_set, tmp_path):
    """adapt-now evaluates only at its last step (deadlib.dub.person): that must save time, not change weights."""
    often = train(make_cfg(steps=4, eval_every=1), train_set, val_set, tmp_path / "often", progress=False)
    once = train(make_cfg(steps=4, eval_every=4), train_set, val_set, tmp_path / "once", progress=False)
    assert often["history"] == once["history"] and often["metrics"] == once["metrics"]
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True) for d in ("often", "once"))
    def same(x, y) -> bool:  # nested state dicts / lists of tensors and numbers
        if isinstance(x, torch.Tensor):
            return torch.equal(x, y)
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, (list, tuple)):
            return len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
        return x == y

    assert all(same(a[part], b[part]) for part in ("generator", "textures", "discriminator", "opt_g"))


def test_matching_resume_continues_a_killed_run_but_restarts_a_changed_one(train_set, val_set, tmp_path, capsys):
    run = tmp_path / "run"
    train(make_cfg(steps=2, ckpt_every=2), train_set, val_set, run, progress=False)
    more = train(make_cfg(steps=3), train_set, val_set, run, progress=False, resume="matching")
    assert (more["start_step"], more["step"]) == (2, 3)                     # only steps changed: continue
    other = train(make_cfg(steps=3, lambda_adv=0.5), train_set, val_set, run, progress=False, resume="matching")
    assert (other["start_step"], other["step"]) == (0, 3)                   # new params: start over, loudly
    assert "other settings ['lambda_adv']" in capsys.readouterr().err
    steps, _ = read_live_series(run / "dvclive")["train/l1"]
    assert steps.tolist() == [1, 2, 3]                                       # the old run's log went with it
    smaller = make_cfg(steps=1, renderer={**SMOKE, "base_channels": 8})
    assert train(smaller, train_set, val_set, run, progress=False, resume="matching")["start_step"] == 0
    assert "renderer of other sizes" in capsys.readouterr().err



def test_a_setting_added_after_a_checkpoint_counts_as_its_default(train_set, val_set, tmp_path, capsys):
    run = tmp_path / "run"
    train(make_cfg(steps=1, ckpt_every=1), train_set, val_set, run, progress=False)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    del ckpt["train_config"]["r1_every"]                                    # as if written before it existed
    torch.save(ckpt, run / "checkpoint.pt")
    assert train(make_cfg(steps=2), train_set, val_set, run, progress=False, resume="matching")["start_step"] == 1
    set_now = train(make_cfg(steps=3, r1_every=8), train_set, val_set, run, progress=False, resume="matching")
    assert set_now["start_step"] == 0 and "other settings ['r1_every']" in capsys.readouterr().err


def test_an_added_person_starts_from_the_configured_texture_init(train_set):
    """The prior's own textures are random whatever ``texture_init`` says (a checkpoint overwrites
    them); a person added afterwards (adaptation) starts from the mean with 'mean'."""
    state = TrainState(make_cfg(texture_init="mean"), train_set.names, "cpu")
    a, b = (state.bank[n].pyramid[0].detach() for n in train_set.names)
    assert not torch.equal(a, b)
    new = state.add_identity("synth_new")
    assert torch.allclose(new.pyramid[0], (a + b) / 2)
    assert state.opt_g.param_groups[-1]["name"] == "texture:synth_new"
    random_start = TrainState(make_cfg(), train_set.names, "cpu").add_identity("synth_new")
    assert not torch.allclose(random_start.pyramid[0], (a + b) / 2, atol=1e-3)


def test_one_learning_rate_for_the_whole_renderer(train_set):
    state = TrainState(make_cfg(lr_g=1e-3), train_set.names, "cpu")
    groups = state.opt_g.param_groups
    assert groups[0]["name"] == "renderer" and groups[0]["lr"] == 1e-3
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in state.renderer.parameters()}
    for g in groups:
        g["lr"] = 0.5
    state.set_learning_rates()
    assert [g["lr"] for g in groups] == [1e-3] + [state.cfg.lr_texture] * len(train_set.names)

def test_missing_vgg_weights_disable_the_loss_loudly(train_set, val_set, tmp_path, capsys):
    cfg = make_cfg(steps=1, lambda_vgg=1.0, vgg_weights=str(tmp_path / "no_vgg.pth"))
    with pytest.warns(RuntimeWarning, match="VGG style loss disabled"):
        result = train(cfg, train_set, val_set, tmp_path / "run", progress=False)
    assert result["vgg_loss"] == "disabled (no weights)"
    assert "vgg" not in result["history"][0]
    assert "VGG STYLE LOSS DISABLED" in capsys.readouterr().err
    logged = yaml.safe_load((tmp_path / "run" / "dvclive" / "params.yaml").read_text())
    assert logged["vgg_loss"] == "disabled (no weights)"
    assert cfg.loss.lambda_vgg == 1.0                                        # caller's config untouched


# --- checkpoints -----------------------------------------------------------------------------------

def test_checkpoint_roundtrip_is_atomic_and_complete(train_set, tmp_path):
    torch.manual_seed(0)
    state = TrainState(make_cfg(), train_set.names, "cpu")
    train_step(state, collate([train_set[0], train_set[5]]), state.cfg.loss)
    path = state.save_checkpoint(tmp_path / "ck" / "checkpoint.pt")
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]  # no temp file left behind
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    loaded = load_checkpoint(path, "cpu")
    assert torch.equal(torch.rand(3), expected_next)                          # RNG state restored
    assert loaded.step == 1 and loaded.bank.identities == state.bank.identities
    for a, b in [(state.renderer, loaded.renderer), (state.disc, loaded.disc), (state.bank, loaded.bank)]:
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    s0, s1 = state.opt_g.state_dict()["state"], loaded.opt_g.state_dict()["state"]
    assert s0.keys() == s1.keys() and all(torch.equal(s0[k]["exp_avg"], s1[k]["exp_avg"]) for k in s0)
    assert torch.load(path, weights_only=True)["profile"] == "default"


def test_loading_checkpoint_with_other_renderer_sizes_fails_clearly(train_set, tmp_path):
    state = TrainState(make_cfg(), train_set.names, "cpu")
    path = state.save_checkpoint(tmp_path / "checkpoint.pt")
    other = make_cfg(renderer={**SMOKE, "base_channels": 8, "texture_size": 64})
    with pytest.raises(CheckpointMismatch, match=r"texture_size=128, base_channels=16.*texture_size=64, base_channels=8"):
        load_checkpoint(path, "cpu", other)
    with pytest.raises(CheckpointMismatch):                                 # train() refuses to resume too
        train(other, train_set, None, tmp_path, progress=False)


def test_batch_order_depends_only_on_seed_and_step(train_set):
    cfg = make_cfg()
    it = iterate_batches(train_set, cfg, 0)
    first = [next(it)["index"].tolist() for _ in range(6)]                  # 4 batches/epoch → crosses an epoch
    later = iterate_batches(train_set, cfg, 3)
    assert [next(later)["index"].tolist() for _ in range(3)] == first[3:]
    assert sorted(sum(first[:4], [])) == list(range(len(train_set)))        # one epoch = a permutation


# --- evaluation, metrics, figures, progress --------------------------------------------------------

def test_psnr_ssim_known_values():
    torch.manual_seed(0)
    a = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    assert torch.isinf(psnr(a, a)).all() and torch.allclose(ssim(a, a), torch.ones(2, 3))
    assert mean_finite(psnr(a, a)) == 100.0
    shifted = a + 0.1                                                        # MSE = 0.01, range 2
    assert torch.allclose(psnr(shifted, a), torch.full((2, 3), 10 * math.log10(4 / 0.01)), atol=1e-3)
    mild, strong = a + 0.05 * torch.randn_like(a), a + 0.2 * torch.randn_like(a)
    assert (psnr(strong, a) < psnr(mild, a)).all() and (ssim(strong, a) < ssim(mild, a)).all()
    assert psnr(strong, a).shape == (2, 3)


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    torch.manual_seed(1)
    a = torch.rand(3, 48, 48) * 2 - 1
    b = (a + 0.2 * torch.randn_like(a)).clamp(-1, 1)
    ref = metrics.structural_similarity(a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(), data_range=2.0,
                                        channel_axis=2, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=True)
    assert abs(float(ssim(a, b)) - ref) < 1e-4


def test_evaluate_reports_model_and_copy_ref_scores(train_set, val_set):
    torch.manual_seed(0)
    state = TrainState(make_cfg(), train_set.names, "cpu")
    loader = torch.utils.data.DataLoader(val_set, batch_size=2)
    m = evaluate(state, loader)
    assert set(m) == {"psnr", "ssim", "psnr_lower", "psnr_copy_ref", "ssim_copy_ref", "psnr_lower_copy_ref", "l1"}
    assert all(math.isfinite(v) for v in m.values())
    frames = torch.stack([val_set[i]["frames"] for i in range(len(val_set))])
    refs = torch.stack([val_set[i]["refs"][0] for i in range(len(val_set))])
    lower = torch.stack([val_set[i]["lower_mask"] for i in range(len(val_set))])      # (W, T, 1, H, W)
    manual = psnr(refs[:, None].expand_as(frames), frames).mean()
    assert m["psnr_copy_ref"] == pytest.approx(float(manual), rel=1e-5)
    # the generated-region score: the MSE over lower-face pixels only
    err = ((refs[:, None].expand_as(frames) - frames) ** 2 * lower).sum((-3, -2, -1)) / (3 * lower.sum((-3, -2, -1)))
    assert m["psnr_lower_copy_ref"] == pytest.approx(float((10 * torch.log10(4 / err)).mean()), rel=1e-4)
    assert state.renderer.training                                          # mode restored


def test_sample_grid_and_mouth_crops(train_set):
    state = TrainState(make_cfg(), train_set.names, "cpu")
    batch = collate([train_set[0], train_set[5]])
    with torch.no_grad():
        grid = sample_grid(predict(state, batch), n=2)
    assert grid.shape == (2 * 64, 5 * 64, 3) and grid.dtype == np.uint8
    crops = mouth_crops(batch["frames"][:, 1], batch["mouth_mask"][:, 1])
    assert crops.shape[-1] == crops.shape[-2] and 8 < crops.shape[-1] < 64


def test_plain_progress_bar_prints_a_bounded_number_of_updates(monkeypatch):
    monkeypatch.setenv("DEAD_PROGRESS", "plain")
    sink = io.StringIO()
    for _ in progress_bar(range(1000), desc="x", file=sink):
        pass
    assert 5 <= sink.getvalue().count("\r") <= 13                            # ~every 10 %, not 1000 times


# --- prior stage -----------------------------------------------------------------------------------

def test_train_prior_writes_flat_numeric_metrics(tmp_path):
    def fake(cache_root, names, split, window, n_refs, seed, ref_split=None):
        assert split in ("train", "val") and ref_split in (None, "train")         # never the test part
        return SyntheticWindows(names, n_frames=6 if split == "train" else 5, size=64, window=window,
                                n_refs=n_refs, start=0 if split == "train" else 6)

    out = train_prior(make_cfg(steps=2, n_val_windows=3), tmp_path / "cache", {"prior": ["p0", "p1"], "heldout": ["h0"]},
                      tmp_path / "prior", metrics_path=tmp_path / "metrics" / "train_prior.json",
                      progress=False, make_dataset=fake)
    metrics = json.loads((tmp_path / "metrics" / "train_prior.json").read_text())
    assert all(isinstance(v, (int, float)) for v in metrics.values())
    assert metrics["steps"] == 2 and metrics["vgg_loss_enabled"] == 0 and metrics["n_val_windows"] == 3
    assert {"psnr", "ssim", "psnr_copy_ref", "ssim_copy_ref"} <= set(metrics)
    assert out["checkpoint"].is_file()
    assert val_indices(10, 3) == [0, 4, 9] and val_indices(2, 5) == [0, 1]


def test_data_that_does_not_fit_the_renderer_is_rejected_early(tmp_path):
    small = SyntheticWindows(("synth_a",), n_frames=5, size=32)
    with pytest.raises(ValueError, match=r"\(3, 3, 32, 32\).*resolution=64"):
        train(make_cfg(), small, None, tmp_path, progress=False)
    with pytest.raises(ValueError, match="unknown training settings.*lamda_adv"):
        TrainConfig.from_dict({"lamda_adv": 0.1})


# --- robustness at the GAN onset (issue 13) ------------------------------------------------------

def test_divergence_guard_fires_on_a_collapse_and_not_on_noisy_training():
    rng = np.random.default_rng(0)
    quiet = train_mod.DivergenceGuard(10.0)
    falling = 0.5 * np.exp(-np.arange(600) / 80) + 0.04                     # a normal run: fast, then slow
    for step, l1 in enumerate(falling * rng.uniform(0.5, 2.0, 600)):        # batch noise x0.5 .. x2
        quiet.update(step, float(l1))
    guard = train_mod.DivergenceGuard(10.0)
    collapse = np.r_[np.full(60, 0.046), np.geomspace(0.046, 0.68, 30), np.full(60, 1.0)]  # issue 13's prior
    with pytest.raises(train_mod.TrainingDiverged, match=r"diverged at step (\d+)") as err:
        for step, l1 in enumerate(collapse, start=600):
            guard.update(step, float(l1))
    assert 600 + 60 < int(err.value.args[0].split("step ")[1].split(":")[0]) < 600 + 100
    off = train_mod.DivergenceGuard(0.0)
    for step, l1 in enumerate(collapse):
        off.update(step, float(l1))


def test_a_diverging_run_stops_before_writing_its_checkpoint(train_set, val_set, tmp_path, monkeypatch):
    real_step = train_mod.train_step

    def blowing_up(state, batch, loss_cfg):                                 # real step, L1 reported x1000 from step 12
        logs = real_step(state, batch, loss_cfg)
        return {**logs, "l1": logs["l1"] * (1000.0 if state.step >= 12 else 1.0)}

    monkeypatch.setattr(train_mod, "train_step", blowing_up)
    with pytest.raises(train_mod.TrainingDiverged, match="step 12"):
        train(make_cfg(steps=20, ckpt_every=12), train_set, val_set, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def relative_update(module: torch.nn.Module, before: list[torch.Tensor]) -> float:
    """||Δw|| / ||w|| over a module's weight tensors (not biases) after one optimiser step."""
    pairs = [(b, p.detach()) for b, p in zip(before, module.parameters()) if p.dim() > 1]
    return math.sqrt(sum(((p - b) ** 2).sum().item() for b, p in pairs) / sum((b ** 2).sum().item() for b, _ in pairs))


def test_audio_encoder_moves_like_the_generator_under_one_learning_rate(train_set):
    """The encoder's layers are equalised-lr, so one Adam step at lr_g changes it by the same
    relative amount as the generator (with its former plain layers: many times more, the
    cause of the GAN-onset collapses)."""
    state = TrainState(make_cfg(lr_g=1e-3, adv_start_step=100), train_set.names, "cpu")
    before = {name: params_of(getattr(state.renderer, name)) for name in ("audio", "generator")}
    train_step(state, collate([train_set[0], train_set[5]]), state.cfg.loss)
    moved = {name: relative_update(getattr(state.renderer, name), b) for name, b in before.items()}
    assert 0.2 < moved["audio"] / moved["generator"] < 5, moved


def test_a_prior_checkpoint_of_another_prepared_cache_is_not_resumed(tmp_path, capsys):
    """models/prior persists across DVC runs; when prepare changed the data (same settings), the
    finished checkpoint of the old data must not be resumed (issue 15's new splits hit this)."""
    from deadlib.train.prior import data_fingerprint, forget_checkpoint_of_other_data

    cache = tmp_path / "cache"
    for name in ("p0", "p1"):
        (cache / name).mkdir(parents=True)
        (cache / name / "report.json").write_text('{"splits": {"train": [0, 10]}}')
        np.savez(cache / name / "track.npz", identity=np.zeros(3))
    first = data_fingerprint(cache, ["p0", "p1"])
    out = tmp_path / "prior"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"old")
    assert forget_checkpoint_of_other_data(out, first)                       # no record: cannot be trusted
    assert not (out / "checkpoint.pt").exists()
    (out / "checkpoint.pt").write_bytes(b"new")
    assert not forget_checkpoint_of_other_data(out, first)                   # same data: a killed run resumes
    assert (out / "checkpoint.pt").exists()
    (cache / "p1" / "report.json").write_text('{"splits": {"train": [0, 8]}}')   # prepare changed a split
    second = data_fingerprint(cache, ["p0", "p1"])
    assert second != first and forget_checkpoint_of_other_data(out, second)
    assert not (out / "checkpoint.pt").exists() and "another prepared cache" in capsys.readouterr().err


def test_the_prior_code_fingerprint_covers_the_stage_dependencies_and_sees_an_edit(tmp_path, monkeypatch, repo_root):
    """A code change reruns train_prior in DVC's eyes; the persistent checkpoint must then not be
    resumed either (it would be the old code's weights under the new code's lock entry). The
    fingerprint hashes whole folders, a superset of the stage's file-level deps (an edit of a file
    the prior never imports starts a killed run over instead of resuming it: safe, only slower);
    deadlib/__init__.py holds the version string and the package docstring only."""
    import deadlib.train.prior as prior

    deps = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]["train_prior"]["deps"]
    code = [d for d in deps if d.startswith("deadlib/") and d.endswith(".py") and d != "deadlib/__init__.py"]
    assert code and all(d.split("/")[1] in prior.PRIOR_CODE for d in code), code
    assert {d.split("/")[1] for d in code} == set(prior.PRIOR_CODE)       # no folder hashed in vain
    fake = tmp_path / "deadlib"
    for folder in ("train", "model"):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "x.py").write_text("A = 1\n")
    monkeypatch.setattr(prior, "__file__", str(fake / "train" / "prior.py"))
    first = prior.code_fingerprint(("train", "model"))
    assert prior.code_fingerprint(("train", "model")) == first
    (fake / "model" / "x.py").write_text("A = 2\n")
    assert prior.code_fingerprint(("train", "model")) != first


def test_the_prior_resume_record_is_outside_the_folder_hash_dvc_records(tmp_path, repo_root):
    """The resume record hashes whole package folders (above); inside models/prior's DVC hash an edit of
    code the prior never runs would change the recorded folder and stale every study cell reading it.
    .dvcignore keeps exactly that file out; the checkpoint and the training log stay in."""
    from dvc.ignore import DvcIgnoreFilter
    from dvc.repo import Repo

    from deadlib.train.prior import forget_checkpoint_of_other_data

    forget_checkpoint_of_other_data(tmp_path, "data x code y")
    (record,) = [p.name for p in tmp_path.iterdir()]                      # the file the prior writes
    ignore = DvcIgnoreFilter(Repo(str(repo_root), uninitialized=True).fs, str(repo_root))
    prior = repo_root / "models" / "prior"
    assert ignore.is_ignored_file(str(prior / record))
    assert not ignore.is_ignored_file(str(prior / "checkpoint.pt"))
    assert not ignore.is_ignored_file(str(prior / "dvclive" / "metrics.json"))
