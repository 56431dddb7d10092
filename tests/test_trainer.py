"""The training loop: events, validation against bicubic, best/last files, cancel, exact resume."""

import numpy as np
import pytest
import torch
from skimage.io import imread

from napari_emsr import build_emsr, load_model
from napari_emsr.cli._progress import cli_message
from napari_emsr.config import ConfigError, TrainingConfig
from napari_emsr.errors import OutputExistsError
from napari_emsr.training import checkpoint_path, finetune, iter_finetune
from napari_emsr.training.checkpoint import load_checkpoint

from .conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = dict(patch=16, batch=2, val_crop=24, val_count=2, device="cpu")




@pytest.fixture(scope="module")
def stack(data_dir):
    files = sorted((data_dir / "training_sample2").glob("*.png"))[:12]
    return np.stack([imread(f) for f in files])[:, :120, :120]


def _tiny():
    torch.manual_seed(0)
    return build_emsr(scale=3, **TINY)


def test_events_files_and_validation(stack, tmp_path):
    out = tmp_path / "m.safetensors"
    config = TrainingConfig(strategy="synthetic-ii", steps=6, val_every=3, **FAST)
    events = list(iter_finetune([stack], out=out, config=config, base=_tiny(), val_slices="last:2"))
    kinds = [e.kind for e in events]
    assert kinds.count("step") == 6 and kinds.count("validation") == 2 and kinds[-1] == "done"
    assert all(e.job == "train" and e.unit == "step" and e.total == 6 for e in events)
    step = next(e for e in events if e.kind == "step")
    assert set(step.payload.losses) == {"ref", "noisier_ref", "consistency", "total"}
    assert step.payload.learning_rate == 1e-4 and step.eta is not None and step.done == 1
    assert step.message.startswith("step 1/6, loss ")
    validation = next(e for e in events if e.kind == "validation")
    val = validation.payload.scores
    assert validation.done == validation.payload.step == 3 and validation.payload.improved
    assert validation.payload.best["step"] == 3 and validation.payload.best["ssim"] == val["ssim"]
    assert {"psnr", "ssim", "frc_mean"} <= set(val) and {"psnr", "ssim", "frc_mean"} <= set(val["bicubic"])
    result = events[-1].payload
    assert result.model == out and result.last_state == checkpoint_path(out) and result.steps == 6
    assert result.best["step"] in (3, 6) and events[-1].fraction == 1.0
    model = load_model(out)
    assert model.metadata.trained
    prov = model.metadata.provenance
    assert prov["strategy"] == "synthetic-ii" and prov["steps"] in (3, 6) and "best_validation" in prov
    assert "held-out slices [10, 11]" in prov["validation"]
    assert checkpoint_path(out).exists() and load_model(checkpoint_path(out)).metadata.provenance["steps"] == 6


def test_the_model_kept_is_the_best_validation_by_keep_by(stack, tmp_path):
    """SSIM + mean FRC (the default) or SSIM alone ranks the validations; the model file is that step's."""
    from napari_emsr.training.trainer import keep_score

    kept = {}
    for keep_by in ("ssim+frc", "ssim"):
        out = tmp_path / f"{keep_by}.safetensors"
        config = TrainingConfig(strategy="synthetic-ii", steps=10, val_every=1, keep_by=keep_by, **FAST)
        events = list(iter_finetune([stack], out=out, config=config, base=_tiny(), val_slices="last:2"))
        history = [(e.payload.step, e.payload.scores) for e in events if e.kind == "validation"]
        best_step = max(history, key=lambda h: keep_score(h[1], keep_by))[0]
        improved = [e.payload.step for e in events if e.kind == "validation" and e.payload.improved]
        assert improved[-1] == best_step == events[-1].payload.best["step"]
        assert load_model(out).metadata.provenance["steps"] == best_step
        kept[keep_by] = (best_step, [h[1]["ssim"] for h in history])
    # one trajectory (selection does not change training), and on it the two criteria keep different steps
    assert kept["ssim"][1] == kept["ssim+frc"][1]
    assert kept["ssim"][0] != kept["ssim+frc"][0]
    with pytest.raises(ConfigError, match="keep_by must be one of ssim\\+frc, ssim"):
        TrainingConfig(keep_by="psnr")


def test_without_noisier_branch_only_the_first_term(stack, tmp_path):
    config = TrainingConfig(strategy="synthetic-i", steps=2, val_every=2, noisier_branch=False, loss="l2", **FAST)
    events = list(iter_finetune([stack], out=tmp_path / "m.safetensors", config=config, base=_tiny()))
    assert set(next(e for e in events if e.kind == "step").payload.losses) == {"ref", "total"}


def test_learning_rate_halves(stack, tmp_path):
    config = TrainingConfig(strategy="synthetic-i", steps=5, val_every=5, halve_every=2, **FAST)
    rates = [e.payload.learning_rate for e in iter_finetune([stack], out=tmp_path / "m.safetensors", config=config, base=_tiny()) if e.kind == "step"]
    assert rates == [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5]


@pytest.mark.slow  # 60 optimisation steps
def test_training_reduces_the_loss(stack, tmp_path):
    config = TrainingConfig(strategy="synthetic-i", steps=60, val_every=60, learning_rate=2e-3, **FAST)
    losses = [e.payload.losses["ref"] for e in iter_finetune([stack], out=tmp_path / "m.safetensors", config=config, base=_tiny()) if e.kind == "step"]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])


def test_resume_continues_exactly(stack, tmp_path):
    config = TrainingConfig(strategy="synthetic-ii", steps=6, val_every=3, **FAST)
    finetune([stack], out=tmp_path / "straight.safetensors", config=config, base=_tiny())
    gen = iter_finetune([stack], out=tmp_path / "split.safetensors", config=config, base=_tiny())
    for event in gen:
        if event.kind == "step" and event.done == 4:
            break
    gen.close()  # cancelled after step 4: the last state is saved
    assert load_checkpoint(checkpoint_path(tmp_path / "split.safetensors"))[3]["step"] == 4
    finetune([stack], out=tmp_path / "split.safetensors", config=config, resume=True)
    a = load_checkpoint(checkpoint_path(tmp_path / "straight.safetensors"))
    b = load_checkpoint(checkpoint_path(tmp_path / "split.safetensors"))
    for (name, p), q in zip(a[0].state_dict().items(), b[0].state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert a[3]["history"] == b[3]["history"]


def test_a_moving_average_is_what_is_validated_kept_and_resumed(stack, tmp_path):
    """With ``ema`` the best model is the average of the weights after each step, and a resume keeps it."""
    from napari_emsr.training.checkpoint import load_averaged_weights

    base = _tiny()  # an EMSR instance is trained in place: its weights after every step can be read
    weights = [{k: v.clone() for k, v in base.state_dict().items()}]
    config = TrainingConfig(strategy="synthetic-ii", steps=4, val_every=4, ema=0.5, **FAST)
    for event in iter_finetune([stack], out=tmp_path / "m.safetensors", config=config, base=base):
        if event.kind == "step":
            weights.append({k: v.clone() for k, v in base.state_dict().items()})
    average = dict(weights[0])
    for step, current in enumerate(weights[1:], start=1):
        decay = min(0.5, step / (step + 9))
        average = {k: decay * average[k] + (1 - decay) * current[k] for k in average}
    kept = load_model(tmp_path / "m.safetensors").state_dict()
    raw = load_model(checkpoint_path(tmp_path / "m.safetensors")).state_dict()
    for name, value in kept.items():
        torch.testing.assert_close(value, average[name], rtol=1e-5, atol=1e-7, msg=name)
    assert any(not torch.equal(kept[k], raw[k]) for k in kept)  # the average, not the last weights
    assert load_model(tmp_path / "m.safetensors").metadata.provenance["ema"] == 0.5
    # interrupted after step 3 and resumed: the same average as without the interruption
    gen = iter_finetune([stack], out=tmp_path / "split.safetensors", config=config, base=_tiny())
    for event in gen:
        if event.kind == "step" and event.done == 3:
            break
    gen.close()
    assert load_averaged_weights(checkpoint_path(tmp_path / "split.safetensors")) is not None
    finetune([stack], out=tmp_path / "split.safetensors", config=config, resume=True)
    for name, value in load_model(tmp_path / "split.safetensors").state_dict().items():
        assert torch.equal(value, kept[name]), name
    with pytest.raises(ConfigError, match="ema must be a decay"):
        TrainingConfig(ema=1.0)


def test_cancel_keeps_a_best_model(stack, tmp_path):
    out = tmp_path / "m.safetensors"
    config = TrainingConfig(strategy="synthetic-ii", steps=50, val_every=100, **FAST)
    gen = iter_finetune([stack], out=out, config=config, base=_tiny())
    for event in gen:
        if event.kind == "step" and event.done == 2:
            gen.close()
    assert out.exists() and load_model(out).metadata.provenance["steps"] == 2


def test_refuses_to_overwrite_and_resume_without_checkpoint(stack, tmp_path):
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"user data")
    config = TrainingConfig(strategy="synthetic-i", steps=1, **FAST)
    with pytest.raises(FileExistsError, match="overwrite") as info:
        next(iter_finetune([stack], out=out, config=config, base=_tiny()))
    assert out.read_bytes() == b"user data"
    # the hints name the library's options; each front end phrases them
    assert isinstance(info.value, OutputExistsError) and "--" not in str(info.value)
    assert [h.option for h in info.value.hints] == ["overwrite", "resume"]
    assert str(info.value) == f"{out} exists: pass overwrite=True to replace it, or pass resume=True to continue its run"
    assert cli_message(info.value) == f"{out} exists: use --overwrite to replace it, or use --resume to continue its run"
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        next(iter_finetune([stack], out=tmp_path / "new.safetensors", config=config, resume=True))


def test_real_strategy_needs_lr(stack, tmp_path):
    with pytest.raises(ValueError, match="needs LR volumes") as info:
        next(iter_finetune([stack], out=tmp_path / "m.safetensors", config=TrainingConfig(strategy="real", **FAST)))
    assert "--lr" not in str(info.value) and "give --lr LR" in cli_message(info.value)


# -- exact resume after an interruption at any point ------------------------------------------------
RESUME = dict(strategy="synthetic-ii", steps=6, val_every=3, **FAST)


@pytest.fixture(scope="module")
def straight(stack, tmp_path_factory):
    """The uninterrupted run the interrupted ones must reproduce: final weights, optimizer state, history."""
    out = tmp_path_factory.mktemp("straight") / "m.safetensors"
    finetune([stack], out=out, config=TrainingConfig(**RESUME), base=_tiny())
    return load_checkpoint(checkpoint_path(out))


def _same_as_straight(straight, out):
    model, optim, generators, progress = load_checkpoint(checkpoint_path(out))
    for (name, p), q in zip(straight[0].state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    for pid, entry in straight[1]["state"].items():
        for key, value in entry.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(optim["state"][pid][key])), (pid, key)
    assert all(torch.equal(straight[2][k], generators[k]) for k in straight[2])
    assert progress["step"] == straight[3]["step"] and progress["history"] == straight[3]["history"]
    assert progress["best"] == straight[3]["best"]


def _interrupted_then_resumed(stack, out, interrupt, monkeypatch, expected_step):
    interrupt(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        finetune([stack], out=out, config=TrainingConfig(**RESUME), base=_tiny())
    monkeypatch.undo()
    assert load_checkpoint(checkpoint_path(out))[3]["step"] == expected_step
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".partial")]
    finetune([stack], out=out, config=TrainingConfig(**RESUME), resume=True)


def _on_call(owner, name, n, action):
    """Wrap ``owner.name`` so that its n-th call runs ``action`` first."""
    real, calls = getattr(owner, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            action()
        return real(*args, **kwargs)

    return wrapper


def test_resume_after_keyboard_interrupt_mid_step(stack, tmp_path, monkeypatch, straight):
    """Ctrl-C after step 5's patches were drawn, before its update: the run continues from step 4."""
    from napari_emsr.training import trainer

    def raise_(): raise KeyboardInterrupt  # noqa: E704

    def interrupt(mp):
        mp.setattr(trainer, "emsr_loss", _on_call(trainer, "emsr_loss", 5, raise_))

    out = tmp_path / "m.safetensors"
    _interrupted_then_resumed(stack, out, interrupt, monkeypatch, expected_step=4)
    _same_as_straight(straight, out)


def test_resume_after_sigint_during_the_update(stack, tmp_path, monkeypatch, straight):
    """A real SIGINT arriving while Adam updates the weights: step 5 completes, then the run stops."""
    import os
    import signal

    def interrupt(mp):
        action = lambda: os.kill(os.getpid(), signal.SIGINT)  # noqa: E731
        mp.setattr(torch.optim.Adam, "step", _on_call(torch.optim.Adam, "step", 5, action))

    out = tmp_path / "m.safetensors"
    _interrupted_then_resumed(stack, out, interrupt, monkeypatch, expected_step=5)
    _same_as_straight(straight, out)


def test_resume_after_cancel_before_the_first_validation(stack, tmp_path, straight):
    """Cancelled at step 2 (no validation yet): a best model is kept, and the resumed run's history,
    best and weights are those of the uninterrupted run."""
    out = tmp_path / "m.safetensors"
    gen = iter_finetune([stack], out=out, config=TrainingConfig(**RESUME), base=_tiny())
    for event in gen:
        if event.kind == "step" and event.done == 2:
            break
    gen.close()
    assert load_model(out).metadata.provenance["steps"] == 2
    finetune([stack], out=out, config=TrainingConfig(**RESUME), resume=True)
    _same_as_straight(straight, out)


def test_checkpoints_follow_the_umask(stack, tmp_path):
    import os
    import stat

    from napari_emsr.training.checkpoint import save_checkpoint

    model = _tiny()
    optimizer = torch.optim.Adam(model.parameters())
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "c.last.safetensors", model, model.metadata, optimizer,
                               {"sampler": torch.Generator()}, {"step": 0})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert load_checkpoint(path)[3] == {"step": 0}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_training_data_is_named_before_training(stack, tmp_path, bad):
    from napari_emsr.training.data import NonFiniteDataError

    broken = stack.astype(np.float32)
    broken[7, 30, 40] = bad
    broken[9, 1, 2] = bad
    out = tmp_path / "m.safetensors"
    config = TrainingConfig(strategy="synthetic-ii", steps=3, val_every=3, **FAST)
    events = []
    with pytest.raises(ValueError, match=r"HR volume 2 of 2: slice 7 has 1 NaN or infinite value") as info:
        for event in iter_finetune([stack, broken], out=out, config=config, base=_tiny()):
            events.append(event)
    assert not [e for e in events if e.kind == "step"] and not list(tmp_path.iterdir())
    assert isinstance(info.value, NonFiniteDataError) and (info.value.role, info.value.index, info.value.z) == ("hr", 1, 7)
    assert "learning rate" not in str(info.value)


def test_divergence_says_to_lower_the_learning_rate(stack, tmp_path, monkeypatch):
    """A loss that stops being finite (the data are finite): a hint to lower the learning rate, per front end."""
    from napari_emsr._napari.common.run_panel import gui_message
    from napari_emsr.training import trainer
    from napari_emsr.training.trainer import TrainingDivergedError

    real = trainer.emsr_loss

    def diverging(*args, **kwargs):
        loss, terms = real(*args, **kwargs)
        return loss * float("nan"), terms

    monkeypatch.setattr(trainer, "emsr_loss", diverging)
    config = TrainingConfig(strategy="synthetic-i", steps=3, val_every=3, learning_rate=2e-3, **FAST)
    with pytest.raises(TrainingDivergedError) as info:
        finetune([stack], out=tmp_path / "m.safetensors", config=config, base=_tiny())
    error = info.value
    assert isinstance(error, FloatingPointError) and isinstance(error, ValueError)
    assert str(error) == "the loss became nan at step 1: training diverged: pass learning_rate=0.0002 and start again"
    assert cli_message(error).endswith("training diverged: give --learning-rate 0.0002 and start again")
    assert gui_message(error).endswith("training diverged: lower the learning rate and start again")


def test_write_error_hints_are_steps_in_order(tmp_path):
    """A full disk: free some space, then resume (when a last state is on disk), phrased per front end."""
    import errno

    from napari_emsr._napari.common.run_panel import gui_message
    from napari_emsr.model_io import ModelWriteError
    from napari_emsr.training.trainer import TrainingWriteError

    cause = ModelWriteError(tmp_path / "m.safetensors", OSError(errno.ENOSPC, "No space left on device"))
    ckpt = tmp_path / "m.last.safetensors"
    error = TrainingWriteError(cause, ckpt)
    assert isinstance(error, ModelWriteError) and isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert str(error).startswith(f"{tmp_path / 'm.safetensors'}: the disk is full")
    assert cli_message(error).endswith(
        f"no partial file was left: free some disk space, then use --resume to continue from the last state saved "
        f"(in {ckpt})"
    )
    assert 'free some disk space, then press "Resume"' in gui_message(error)
    assert cli_message(TrainingWriteError(cause, None)).endswith("no partial file was left: free some disk space")


def test_a_budget_is_planned_again_when_the_step_time_changes(stack, tmp_path, monkeypatch):
    """A calibration in a slow moment (another program busy) must not leave most of the budget unused."""
    import time as real_time

    from napari_emsr.training import trainer

    fake = {"t": 0.0}
    step = trainer._Run.train_step

    def timed_step(self):
        fake["t"] += 4.0 if self.step < trainer.CALIBRATION_STEPS else 0.2  # slow while calibrating, then fast
        return step(self)

    clock = real_time.perf_counter
    now = lambda: clock() + fake["t"]  # noqa: E731
    monkeypatch.setattr(trainer._Run, "train_step", timed_step)
    monkeypatch.setattr(trainer.time, "perf_counter", now)
    config = TrainingConfig(strategy="synthetic-ii", minutes=2.0, budget=True, val_every=10_000, **FAST)
    started = now()
    events = list(iter_finetune([stack], out=tmp_path / "b.safetensors", config=config, base=_tiny(),
                                val_slices="last:2"))  # fmt: skip
    used = now() - started
    notes = [e.message for e in events if e.kind == "info" and "min budget" in e.message]
    first = int(notes[0].split("2 min budget: ")[1].split(" steps")[0])
    assert first < 35  # 20 calibration steps of 4 s: about 34 s left of the 114 s planned for, 8 more steps
    assert any("at the latest step time" in note for note in notes[1:])
    assert events[-1].payload.steps > 3 * first  # the faster steps were used (about 20 + 34 s / 0.2 s)
    assert used >= 0.9 * trainer.BUDGET_SHARE * 120  # the budget was used, not left


def test_a_cosine_schedule_follows_the_budget_down_to_its_floor(stack, tmp_path, monkeypatch):
    """With a budget the decay is planned on the steps that fit: the last step runs at the floor rate."""
    import math
    import time as real_time

    from napari_emsr.training import trainer

    fake = {"t": 0.0}
    step = trainer._Run.train_step

    def timed_step(self):
        fake["t"] += 0.5
        return step(self)

    clock = real_time.perf_counter
    monkeypatch.setattr(trainer._Run, "train_step", timed_step)
    monkeypatch.setattr(trainer.time, "perf_counter", lambda: clock() + fake["t"])
    config = TrainingConfig(strategy="synthetic-ii", minutes=0.5, budget=True, val_every=10_000, schedule="cosine",
                            learning_rate=2e-4, final_lr_fraction=0.05, **FAST)  # fmt: skip
    events = list(iter_finetune([stack], out=tmp_path / "c.safetensors", config=config, base=_tiny(),
                                val_slices="last:2"))  # fmt: skip
    rates = [e.payload.learning_rate for e in events if e.kind == "step"]
    assert 40 < len(rates) < 60  # about 0.95 x 30 s / 0.5 s
    assert rates[0] == pytest.approx(2e-4) and rates[-1] == pytest.approx(1e-5, rel=0.05)
    assert all(b <= a * 1.02 for a, b in zip(rates, rates[1:], strict=False))  # down (re-plans move it a little)
    # a half cosine: halfway down at half the run (a step function or a linear decay would be elsewhere)
    halfway = next(i for i, rate in enumerate(rates) if rate < 1e-5 + 0.5 * 1.9e-4)
    assert abs(halfway / (len(rates) - 1) - 0.5) < 0.1
    quarter = next(i for i, rate in enumerate(rates) if rate < 1e-5 + 1.9e-4 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert abs(quarter / (len(rates) - 1) - 0.25) < 0.1
    note = next(e.message for e in events if e.kind == "info" and "min budget" in e.message)
    assert "down to 1e-05 on a cosine" in note
    assert load_model(tmp_path / "c.safetensors").metadata.provenance["schedule"] == "cosine"


def test_schedule_settings_are_checked():
    with pytest.raises(ConfigError, match="schedule must be 'step' or 'cosine'"):
        TrainingConfig(schedule="linear")
    with pytest.raises(ConfigError, match="final_lr_fraction must be between 0 and 1"):
        TrainingConfig(schedule="cosine", final_lr_fraction=1.5)
