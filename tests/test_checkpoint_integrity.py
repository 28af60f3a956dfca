"""Checkpoints and training resumption: nothing read back can run code, damage is detected and named, resume falls
back to the newest intact checkpoint, interrupted writes leave no debris, the log holds each step once, and resume
refuses every change of the model's function, its data or its vocabulary."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import pickle
import re
import shutil

import pytest
import torch

from amtheory.diffusion.checkpoint import CheckpointError, load_model, load_train_state, resolve_checkpoint
from amtheory.diffusion.model import DiTConfig
from amtheory.diffusion.train import TrainConfig, train
from amtheory.diffusion.train_config import RESUMABLE_CHANGES

torch.set_num_threads(1)

V, L = 20, 8
MC = DiTConfig(vocab_size=V, length=L, d_model=16, n_blocks=1, n_heads=2, cond_dim=8, dropout=0.1)
BASE = dict(steps=4, batch_size=4, lr=1e-3, warmup=2, seed=3, checkpoint_every=2, log_every=1, keep_checkpoints=3)


def _data(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, V, (n, 1), generator=g)
    return (a + torch.arange(L)) % V


def _train(out, meta=None, mc=MC, data=None, **overrides):
    tc = TrainConfig(**{**BASE, **overrides})
    return train(mc, tc, _data() if data is None else data, out, device="cpu", progress=False, meta=meta)


def _ckpt(run, step: int) -> pathlib.Path:
    return run / "checkpoints" / f"step-{step:08d}"


def _flip_last_byte(path: pathlib.Path) -> None:
    b = bytearray(path.read_bytes())
    b[-1] ^= 0x55  # inside the last tensor's data: the file still parses
    path.write_bytes(bytes(b))


def _snapshot(folder: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _log_steps(run: pathlib.Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


class _Planted:
    """Unpickling this object creates ``marker`` (what a malicious state file could do instead)."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


# ------------------------------------------------------------------------------------------------ no code execution
def test_planted_pickle_is_refused_and_never_unpickled(tmp_path):
    payload = pickle.dumps(_Planted(tmp_path / "proof"))
    pickle.loads(payload)  # the payload does run code when unpickled
    assert (tmp_path / "proof").exists()

    run = tmp_path / "run"
    _train(run)
    marker = tmp_path / "ran"
    planted = pickle.dumps(_Planted(marker))
    ckpt = _ckpt(run, 4)
    for name in ("train_state.pt", "extra.pkl", "optimizer.bin"):
        (ckpt / name).write_bytes(planted)
        with pytest.raises(CheckpointError, match=re.escape(name)):
            _train(run, steps=6)
        with pytest.raises(CheckpointError, match=re.escape(name)):
            load_train_state(ckpt)
        with pytest.raises(CheckpointError, match=re.escape(name)):
            load_model(run)
        assert not marker.exists(), f"{name} was unpickled"
        (ckpt / name).unlink()
    assert _train(run, steps=5)["start_step"] == 4


def test_a_checkpoint_holds_no_pickle_and_no_toolkit_source_loads_one(tmp_path):
    run = tmp_path / "run"
    _train(run)
    names = sorted(p.name for p in _ckpt(run, 4).iterdir())
    assert names == sorted(
        ["checksums.json", "config.json", "ema.safetensors", "model.safetensors", "optimizer.safetensors"]
        + ["train_state.json"]
    )
    for p in _ckpt(run, 4).iterdir():
        assert not p.read_bytes().startswith((b"\x80", b"PK")), f"{p.name} looks like a pickle or a zip of one"
    stored = load_train_state(_ckpt(run, 4))
    groups = stored["train_state"]["optimizer"]["param_groups"]
    assert isinstance(groups[0]["betas"], tuple) and groups[0]["betas"] == (0.9, 0.999)
    state = stored["train_state"]["optimizer"]["state"]
    assert state and all(isinstance(v, torch.Tensor) for s in state.values() for v in s.values())
    package = pathlib.Path(__file__).resolve().parents[1] / "amtheory"
    for src in package.rglob("*.py"):
        text = src.read_text()
        for bad in ("torch.load(", "pickle.load", "allow_pickle=True", "weights_only=False"):
            assert bad not in text, f"{src}: {bad}"


# ------------------------------------------------------------------------------------------------ damage
@pytest.mark.parametrize(
    "name", ["model.safetensors", "ema.safetensors", "optimizer.safetensors", "config.json", "train_state.json"]
)
@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_a_damaged_file_is_named(tmp_path, name, how):
    run = tmp_path / "run"
    _train(run, steps=2)
    f = _ckpt(run, 2) / name
    if how == "flip":
        if name.endswith(".json"):
            f.write_text(f.read_text().replace("1", "2", 1))  # still valid JSON
        else:
            _flip_last_byte(f)
    else:
        f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(CheckpointError, match=re.escape(name)):
        load_train_state(run)
    with pytest.raises(CheckpointError, match=re.escape(name)):
        resolve_checkpoint(run)
    if name in ("model.safetensors", "ema.safetensors", "config.json"):
        with pytest.raises(CheckpointError, match=re.escape(name)):
            load_model(run, ema=name != "model.safetensors")


def test_a_missing_or_damaged_checksum_record_is_named(tmp_path):
    run = tmp_path / "run"
    _train(run, steps=2)
    sums = _ckpt(run, 2) / "checksums.json"
    sums.write_text(sums.read_text().replace('"bytes": ', '"bytes": 1', 1))
    with pytest.raises(CheckpointError, match="checksums.json"):
        load_model(run)
    sums.unlink()
    with pytest.raises(CheckpointError, match="checksums.json"):
        resolve_checkpoint(run)


def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path):
    full = _train(tmp_path / "full", steps=6)
    run = tmp_path / "run"
    _train(run)
    _flip_last_byte(_ckpt(run, 4) / "model.safetensors")
    with pytest.warns(RuntimeWarning, match=r"step-00000004.*model\.safetensors"):
        resumed = _train(run, steps=6)
    assert resumed["start_step"] == 2 and resumed["resumed_from"].endswith("step-00000002")
    assert any("model.safetensors" in n for n in resumed["resume_notes"])
    assert resumed["weights_sha256"] == full["weights_sha256"]
    assert _log_steps(run) == list(range(1, 7))


def test_only_damaged_checkpoints_are_an_error_not_a_restart(tmp_path):
    run = tmp_path / "run"
    _train(run, steps=2)
    _flip_last_byte(_ckpt(run, 2) / "optimizer.safetensors")
    before = _snapshot(run)
    with pytest.raises(CheckpointError, match="optimizer.safetensors"):
        _train(run, steps=4)
    assert _snapshot(run) == before, "a refused resume changed the run folder"


# ------------------------------------------------------------------------------------------------ LATEST
@pytest.mark.parametrize("name", ["../outside", "/ABS", "sub/step-00000002", ".", "..", "linked"])
def test_latest_names_only_a_folder_inside_the_checkpoints_folder(tmp_path, name):
    run = tmp_path / "run"
    _train(run, steps=2)
    root = run / "checkpoints"
    outside = run / "outside"
    shutil.copytree(_ckpt(run, 2), outside)  # a complete checkpoint, but not in the checkpoints folder
    name = name.replace("/ABS", str(outside))
    (root / "sub").mkdir()
    shutil.copytree(_ckpt(run, 2), root / "sub" / "step-00000002")
    os.symlink(outside, root / "linked")
    (root / "LATEST").write_text(name + "\n")
    with pytest.raises(CheckpointError, match="LATEST"):
        resolve_checkpoint(run)
    with pytest.raises(CheckpointError, match="LATEST"):
        load_model(run)
    with pytest.raises(CheckpointError, match="LATEST"):
        _train(run, steps=4)


def test_missing_latest_resumes_from_the_newest_intact_checkpoint(tmp_path):
    full = _train(tmp_path / "full", steps=6)
    run = tmp_path / "run"
    _train(run)
    (run / "checkpoints" / "LATEST").unlink()
    with pytest.warns(RuntimeWarning, match="LATEST"):
        resumed = _train(run, steps=6)
    assert resumed["start_step"] == 4
    assert resumed["weights_sha256"] == full["weights_sha256"]
    assert load_model(run)[2]["step"] == 6


def test_a_newer_checkpoint_than_latest_is_resumed_not_pruned(tmp_path):
    """A run killed after writing step-4 but before pointing LATEST at it continues from step 4."""
    full = _train(tmp_path / "full", steps=6)
    run = tmp_path / "run"
    _train(run)
    (run / "checkpoints" / "LATEST").write_text("step-00000002\n")
    with pytest.warns(RuntimeWarning, match="step-00000004"):
        resumed = _train(run, steps=6, keep_checkpoints=1)
    assert resumed["start_step"] == 4 and resumed["weights_sha256"] == full["weights_sha256"]
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-00000006"]


def test_pruning_never_removes_checkpoints_newer_than_the_one_written(tmp_path):
    run = tmp_path / "run"
    _train(run, steps=2)
    # A damaged later checkpoint (e.g. from a disk fault) stays put until the run reaches that step again.
    shutil.copytree(_ckpt(run, 2), _ckpt(run, 8))
    _flip_last_byte(_ckpt(run, 8) / "model.safetensors")
    with pytest.warns(RuntimeWarning, match="step-00000008"):
        _train(run, steps=4, keep_checkpoints=1)
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-00000004", "step-00000008"]


# ------------------------------------------------------------------------------------------------ debris and log
def test_interrupted_writes_leave_no_debris_at_the_next_start(tmp_path):
    run = tmp_path / "run"
    _train(run, steps=2)
    root = run / "checkpoints"
    (root / ".step-00000004.tmp-1234abcd").mkdir()
    (root / ".step-00000004.tmp-1234abcd" / "model.safetensors").write_bytes(b"half")
    (root / ".step-00000002.old-deadbeef").mkdir()
    (root / ".LATEST.tmp-0badf00d").write_text("step-00000004\n")
    (run / ".log.jsonl.tmp-00c0ffee").write_text("{}\n")
    (root / "notes.txt").write_text("mine")  # not the trainer's: left alone
    _train(run, steps=4)
    assert sorted(p.name for p in root.iterdir()) == ["LATEST", "notes.txt", "step-00000002", "step-00000004"]
    assert not list(run.glob(".log.jsonl.tmp-*"))


class _Stop(Exception):
    pass


def test_log_holds_each_step_once_after_a_resume(tmp_path):
    _train(tmp_path / "full", steps=7)
    run = tmp_path / "run"

    def stop_after_5(step, record):
        if step == 5:
            raise _Stop  # logged steps 1..5, checkpointed at 4

    with pytest.raises(_Stop):
        train(MC, TrainConfig(**{**BASE, "steps": 7}), _data(), run, progress=False, callback=stop_after_5)
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 6, "lo')  # a record cut short by the kill
    resumed = _train(run, steps=7)
    assert resumed["start_step"] == 4
    assert _log_steps(run) == list(range(1, 8))
    losses = [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]
    full_losses = [json.loads(line)["loss"] for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert losses == full_losses


# ------------------------------------------------------------------------------------------------ what may change
_MODEL_CHANGES = {
    "vocab_size": V + 1,
    "length": L + 2,
    "d_model": 32,
    "n_blocks": 2,
    "n_heads": 4,
    "cond_dim": 16,
    "mlp_ratio": 2,
    "dropout": 0.2,
}
_TRAIN_CHANGES = {
    "batch_size": 2,
    "lr": 2e-3,
    "warmup": 3,
    "clip": 0.5,
    "ema": 0.99,
    "ema_warmup": False,
    "weight_decay": 0.1,
    "seed": 4,
    "bf16": False,
    "cpu_bf16": True,
    "grad_accum": 2,
}


def test_resume_refuses_every_change_of_function_data_or_vocabulary(tmp_path):
    assert set(_MODEL_CHANGES) == {f.name for f in dataclasses.fields(DiTConfig)}
    assert set(_TRAIN_CHANGES) == {f.name for f in dataclasses.fields(TrainConfig)} - RESUMABLE_CHANGES
    run = tmp_path / "run"
    _train(run, meta={"vocab_sha256": "aaa"})
    before = _snapshot(run)
    for field, value in _MODEL_CHANGES.items():
        mc = dataclasses.replace(MC, **{field: value})
        data = _data() if field != "length" else torch.cat([_data(), _data()[:, :2]], 1)
        with pytest.raises(CheckpointError, match=rf"\b{field}: checkpoint"):
            _train(run, meta={"vocab_sha256": "aaa"}, mc=mc, data=data, steps=6)
    for field, value in _TRAIN_CHANGES.items():
        with pytest.raises(CheckpointError, match=rf"\b{field}: checkpoint"):
            _train(run, meta={"vocab_sha256": "aaa"}, steps=6, **{field: value})
    with pytest.raises(CheckpointError, match="other data"):
        _train(run, meta={"vocab_sha256": "aaa"}, data=_data(seed=1), steps=6)
    with pytest.raises(CheckpointError, match="vocab_sha256"):
        _train(run, meta={"vocab_sha256": "bbb"}, steps=6)
    with pytest.raises(CheckpointError, match="vocab_sha256"):
        _train(run, steps=6)
    with pytest.raises(CheckpointError, match="steps"):
        _train(run, meta={"vocab_sha256": "aaa"}, steps=3)
    assert _snapshot(run) == before, "a refused resume changed the run folder"
    assert _train(run, meta={"vocab_sha256": "aaa"}, steps=4)["start_step"] == 4  # nothing left to do is fine


# ------------------------------------------------------------------------------------------------ vocabulary hash
def test_corpus_vocab_sha256_follows_one_convention():
    from amtheory.diffusion.checkpoint import corpus_vocab_sha256

    assert corpus_vocab_sha256({"vocab_sha256": "v"}) == "v"
    assert corpus_vocab_sha256({"vocab_sha256": "v", "mapping_sha256": "m"}) == "v+m"
    assert corpus_vocab_sha256({"config": {"vocab_sha256": "v"}, "mapping_sha256": "m"}) == "v+m"
    assert corpus_vocab_sha256({}) is None
    with pytest.raises(ValueError, match="manifest"):
        corpus_vocab_sha256({"vocab_sha256": "v", "config": {"vocab_sha256": "w"}})
    with pytest.raises(ValueError, match="mapping_sha256"):
        corpus_vocab_sha256({"mapping_sha256": "m"})
    with pytest.raises(TypeError, match="manifest"):
        corpus_vocab_sha256("v")


def test_embedded_corpus_checkpoints_record_the_vocabulary_like_the_cli(tmp_path):
    from amtheory.diffusion.checkpoint import check_compatible, corpus_vocab_sha256
    from amtheory.studies import memorization as mz
    from amtheory.studies.memorization.cells import DataSpec, ModelSpec, TrainCell

    vocab_file = mz.embedded_corpus_path() / "vocab.txt"
    vocab_sha = hashlib.sha256(vocab_file.read_bytes()).hexdigest()
    arch = ModelSpec("nano", d_model=16, n_blocks=1, n_heads=2, cond_dim=8, dropout=0.0)
    for vocab in (64, None):
        spec = DataSpec("embedded", 12, vocab)
        cell = TrainCell(spec, arch, n_train=4, steps=1, batch_size=2, warmup=1)
        mz.train_cell(cell, torch.Generator(), "cpu", root=str(tmp_path / str(vocab)))
        _, _, meta = load_model(mz.checkpoint_dir(tmp_path / str(vocab), cell))
        corpus = mz.load_data(spec)
        expected = corpus_vocab_sha256(corpus.manifest)
        assert expected.split("+")[0] == vocab_sha
        assert ("+" in expected) == (vocab is not None)
        check_compatible(meta, expected_vocab_sha=expected)


# ------------------------------------------------------------------------------------------------ bad input
def test_writers_refuse_what_would_not_read_back(tmp_path):
    from amtheory.diffusion.checkpoint import mark_latest, save_checkpoint
    from amtheory.diffusion.model import DiT

    model = DiT(MC)
    kw = dict(model=model, ema_state=None, optimizer=None, step=1, model_config=MC, train_config=None, meta={})
    with pytest.raises(TypeError, match="extra_state.*Tensor"):
        save_checkpoint(tmp_path / "ck", **kw, extra_state={"moments": torch.ones(2)})
    with pytest.raises(TypeError, match="extra_state.*int key"):
        save_checkpoint(tmp_path / "ck", **kw, extra_state={1: 2})
    assert list(tmp_path.iterdir()) == [], "a refused save left something behind"
    (tmp_path / "checkpoints").mkdir()
    for name in ("../x", "a/b", "", ".."):
        with pytest.raises(CheckpointError, match="name"):
            mark_latest(tmp_path / "checkpoints", name)
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_a_copied_checkpoint_is_checked_and_records_the_train_config_given(tmp_path):
    from amtheory.diffusion.checkpoint import copy_checkpoint

    run = tmp_path / "run"
    _train(run)
    src = _ckpt(run, 4)
    files = _snapshot(src)
    assert _snapshot(copy_checkpoint(src, tmp_path / "plain")) == files  # byte for byte
    other = TrainConfig(**{**BASE, "steps": 9, "checkpoint_every": 3})
    dest = copy_checkpoint(src, tmp_path / "other" / "step-00000004", train_config=other)
    copied = _snapshot(dest)
    assert {k: v for k, v in copied.items() if k not in ("config.json", "checksums.json")} == {
        k: v for k, v in files.items() if k not in ("config.json", "checksums.json")
    }
    stored = load_train_state(dest)  # every file checked against the new checksums
    assert stored["train_config"] == other.to_dict() and stored["step"] == 4
    assert {k: v for k, v in json.loads(copied["config.json"]).items() if k != "train_config"} == {
        k: v for k, v in json.loads(files["config.json"]).items() if k != "train_config"
    }
    with pytest.raises(ValueError, match="dest: expected a folder other than src"):
        copy_checkpoint(src, src)
    with pytest.raises(CheckpointError, match="expected a checkpoint folder"):
        copy_checkpoint(tmp_path / "nothing", tmp_path / "copy")
    _flip_last_byte(src / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        copy_checkpoint(src, tmp_path / "copy")
    assert not (tmp_path / "copy").exists() and not list(tmp_path.glob(".copy*"))
