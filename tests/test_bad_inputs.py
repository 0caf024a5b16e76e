"""Every command, fed bad input: a non-zero exit, exactly one line on stderr saying what to fix, no traceback,
and no file written or changed.

The commands run in-process through ``clip_t2i.cli.main`` (the console script's entry point) inside a scratch
folder, so default output paths land there too and the whole folder is compared before and after.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

EXISTING = "existing.txt"  # a file the user owns
OWNED_DIR = "mine"  # a folder holding files the user owns (and a generated-looking name)
TINY = ["--model", "vit-t32"]  # a random-init config: fast to build, enough to reach the checks


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file's size and mtime, every folder's existence (a writability probe may touch a folder's mtime)."""
    return {
        str(p.relative_to(root)): (0, 0) if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if "__pycache__" not in p.parts
    }


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / EXISTING).write_text("the user's file\n")
    (tmp_path / "empty.txt").write_text("\n# only a comment\n")
    (tmp_path / "prompts.txt").write_text("a red circle\n")
    (tmp_path / "not-an-image.png").write_text("not a png")
    owned = tmp_path / OWNED_DIR
    owned.mkdir()
    (owned / "grid.png").write_bytes(b"user data")
    (owned / "000-a-red-circle-seed0000.png").write_bytes(b"user data")
    (owned / "shapes-0-purple-seed0000.png").write_bytes(b"user data")
    (owned / "eval").mkdir()
    (owned / "eval" / "report.json").write_text("{}")
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "runfolder").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


# (command line, a phrase the one-line message must contain)
CASES: list[tuple[list[str], str]] = [
    # the app itself
    (["nosuch"], "No such command"),
    (["models", "--bogus"], "No such option"),
    (["presets", "--bogus"], "No such option"),
    (["generate"], "Missing argument"),
    # generate
    (["generate", "", *TINY], "empty prompt"),
    (["generate", "a red circle", *TINY, "--size", "100000"], "limit"),
    (["generate", "a red circle", *TINY, "--size", "4"], ">= 8"),
    (["generate", "a red circle", *TINY, "--seeds", "0-100000"], "limit"),
    (["generate", "a red circle", *TINY, "--seeds", "3-1"], "backwards"),
    (["generate", "a red circle", *TINY, "--seeds", "a-b"], "malformed seeds"),
    (["generate", "a red circle", *TINY, "--seeds=-1"], "malformed seeds"),
    (["generate", "a red circle", *TINY, "--steps", "0"], "--steps"),
    (["generate", "a red circle", *TINY, "--steps", "abc"], "Invalid value"),
    (["generate", "a red circle", *TINY, "--steps", "100000000"], "limit"),
    (["generate", "a red circle", *TINY, "--batch-size", "0"], "--batch-size"),
    (["generate", "a red circle", *TINY, "--batch-size", "100000"], "limit"),
    (["generate", "a red circle", "--model", "nosuch"], "unknown model"),
    (["generate", "a red circle", "--model", "emptydir"], "is a folder"),
    (["generate", "a red circle", "--model", "missing.safetensors"], "does not exist"),
    (["generate", "a red circle", *TINY, "--preset", "nosuch"], "preset"),
    (["generate", "a red circle", *TINY, "--renderer", "nosuch"], "unknown renderer"),
    (["generate", "a red circle", *TINY, "--set", "nokey=1"], "unknown key"),
    (["generate", "a red circle", *TINY, "--set", "lr=NaN"], "finite"),
    (["generate", "a red circle", *TINY, "--set", "steps=1.5"], "integer"),
    (["generate", "a red circle", *TINY, "--set", "noequals"], "KEY=VALUE"),
    (["generate", "a red circle", *TINY, "--set", "tv_weight=-1"], "tv_weight"),
    (["generate", "a red circle", *TINY, "--set", "translation_tokens=9"], "translation_tokens must be below"),
    (["generate", "a red circle", *TINY, "--init-image", "missing.png"], "missing.png"),
    (["generate", "a red circle", *TINY, "--init-image", "not-an-image.png"], "not-an-image.png"),
    (["generate", "a red circle", *TINY, "--out", EXISTING], "not a folder"),
    (["generate", "a red circle", *TINY, "--out", OWNED_DIR], "--overwrite"),
    (["generate", "a red circle:abc", *TINY], "weight"),
    (["generate", "a cat wearing sunglasses"], "knows no content word"),
    (["generate", "xyzzy qwerty", "--model", "digits-clipag"], "knows no content word"),
    (["generate", "a purple star", "--strict"], "does not know: star"),
    # demo
    (["demo", "--model", "nosuch", "--out", "demo"], "unknown model"),
    (["demo", "--out", EXISTING], "not a folder"),
    (["demo", "--out", OWNED_DIR], "--overwrite"),
    (["demo", "--world", "faces"], "--world"),
    # eval-clip
    (["eval-clip", "--n", "0", *TINY], "--n"),
    (["eval-clip", "--model", "nosuch"], "unknown model"),
    (["eval-clip", "--data", "nosuch", *TINY], "--data"),
    # train-clip
    (["train-clip", "--lr", "nan"], "--lr"),
    (["train-clip", "--lr", "inf"], "--lr"),
    (["train-clip", "--lr", "-1"], "--lr"),
    (["train-clip", "--lr", "0"], "--lr"),
    (["train-clip", "--weight-decay", "nan"], "--weight-decay"),
    (["train-clip", "--steps", "0"], "--steps"),
    (["train-clip", "--batch-size", "1"], "--batch-size"),
    (["train-clip", "--grad-accum", "0"], "--grad-accum"),
    (["train-clip", "--warmup-steps", "-1"], "--warmup-steps"),
    (["train-clip", "--max-minutes", "-1"], "--max-minutes"),
    (["train-clip", "--mixed-precision", "fp8"], "--mixed-precision"),
    (["train-clip", "--positives", "foo"], "--positives"),
    (["train-clip", "--data", "nosuch", "--out", "run-x"], "nosuch"),
    (["train-clip", "--out", EXISTING], "not a folder"),
    (["train-clip", "--out", "runfolder", "--resume"], "no checkpoint"),
    (["train-clip", "--model", "nosuch", "--out", "run-y"], "unknown model"),
    # robustify
    (["robustify", "--lr", "nan"], "--lr"),
    (["robustify", "--lr", "inf"], "--lr"),
    (["robustify", "--eps", "0"], "eps"),
    (["robustify", "--eps", "nan"], "eps"),
    (["robustify", "--objective", "foo"], "objective"),
    (["robustify", "--attack", "foo"], "attack"),
    (["robustify", "--norm", "l3"], "norm"),
    (["robustify", "--clean-weight", "-1"], "clean"),
    (["robustify", "--steps", "0"], "--steps"),
    (["robustify", "--align-weight", "-1"], "--align-weight"),
    (["robustify", "--align-edit-prob", "2"], "--align-edit-prob"),
    (["robustify", "--out", EXISTING], "not a folder"),
    (["robustify", "--export-clipag", EXISTING], "already exists"),
    # eval-robust
    (["eval-robust", *TINY, "--eps", "0"], "eps"),
    (["eval-robust", *TINY, "--eps", "a,b"], "eps"),
    (["eval-robust", *TINY, "--norm", "l3"], "norm"),
    (["eval-robust", *TINY, "--n", "0"], "--n"),
    (["eval-robust", *TINY, "--attacks", "foo"], "attack"),
    # pag
    (["pag", *TINY, "--n", "0"], "--n"),
    (["pag", *TINY, "--sigmas", "-1"], "sigmas"),
    # train-gan
    (["train-gan", "--lr-g", "nan"], "--lr-g"),
    (["train-gan", "--lr-d", "inf"], "--lr-d"),
    (["train-gan", "--set", "generator.prompt_blocks=3"], "prompt_blocks"),
    (["train-gan", "--set", "nosection.x=1"], "nosection"),
    (["train-gan", "--set", "generator.nokey=1"], "nokey"),
    (["train-gan", "--variant", "nosuch"], "nosuch"),
    (["train-gan", "--ema-beta", "1.5"], "--ema-beta"),
    (["train-gan", "--steps", "0"], "--steps"),
    (["train-gan", "--batch-size", "1"], "--batch-size"),
    (["train-gan", "--out", EXISTING], "not a folder"),
    # sample
    (["sample", "a red circle"], "--gan"),
    (["sample", "--gan", "nosuch", "a red circle"], "nosuch"),
    (["sample", "--gan", "shapes-scad"], "prompt"),
    (["sample", "--gan", "shapes-scad", "a red circle", "--n", "0"], "--n"),
    (["sample", "--gan", "shapes-scad", "a red circle", "--n", "100000"], "limit"),
    (["sample", "--gan", "shapes-scad", "a red circle", "--out", OWNED_DIR, "--n", "1"], "--overwrite"),
    # eval-gan
    (["eval-gan", "nosuch"], "nosuch"),
    (["eval-gan", "shapes-scad", "--n-fid", "1"], "--n-fid"),
    # evaluate
    (["evaluate", "missing-dir"], "missing-dir"),
    (["evaluate", "emptydir", "--prompts", "missing.txt"], "missing.txt"),
    (["evaluate", "emptydir", "--prompts", "empty.txt"], "no prompts"),
    (["evaluate", "emptydir", "--n-reference", "1"], "--n-reference"),
    (["evaluate", "emptydir", "--prompts", "prompts.txt", "--generator", "foo"], "--generator"),
    (["evaluate", OWNED_DIR], "--overwrite"),
    # judge
    (["judge", "missing-dir"], "missing-dir"),
    # stylize
    (["stylize", "missing.png", "purple"], "missing.png"),
    (["stylize", "not-an-image.png", "purple"], "not-an-image.png"),
    (["stylize", "skimage:astronaut", ""], "empty style text"),
    (["stylize", "skimage:nosuch", "purple"], "nosuch"),
    (["stylize", "shapes:0", "purple", "--steps", "0"], "--steps"),
    (["stylize", "shapes:0", "a cat"], "knows no content word"),
    (["stylize", "shapes:0", "purple", "--out", OWNED_DIR], "--overwrite"),
    # serve (every check runs before Gradio is imported or a port is opened)
    (["serve", "--port", "0"], "--port"),
    (["serve", "--port", "70000"], "--port"),
    (["serve", "--port", "abc"], "Invalid value"),
    (["serve", "--host", "no such host!"], "--host"),
    (["serve", "--out", EXISTING], "not a folder"),
    (["serve", "--max-steps", "0"], "--max-steps"),
    (["serve", "--max-size", "100000"], "limit"),
    (["serve", "--max-upload-mb", "nan"], "--max-upload-mb"),
    (["serve", "--concurrency", "0"], "--concurrency"),
    (["serve", "--max-queue", "0"], "--max-queue"),
    # train-vqgan
    (["train-vqgan", "--n-embed", "0"], "--n-embed"),
    (["train-vqgan", "--steps", "0"], "--steps"),
    (["train-vqgan", "--lr", "nan"], "--lr"),
    (["train-vqgan", "--ch", "48"], "multiples of 32"),
    (["train-vqgan", "--ch-mult", "1,x"], "--ch-mult"),
    (["train-vqgan", "--perceptual", "lpips"], "--perceptual"),
    (["train-vqgan", "--data", "nosuch", "--out", "run-v"], "nosuch"),
    (["train-vqgan", "--out", EXISTING], "not a folder"),
    (["train-vqgan", "--out", "runfolder", "--resume"], "no checkpoint"),
    # the vqgan renderer (generate --renderer vqgan / --preset vqgan)
    (["generate", "a red circle", *TINY, "--renderer", "vqgan", "--set", "vqgan=missing.ckpt"], "missing.ckpt"),
    (["generate", "a red circle", *TINY, "--preset", "vqgan", "--set", "vqgan=emptydir"], "is a folder"),
    (["generate", "a red circle", *TINY, "--preset", "vqgan", "--set", "vqgan=not-an-image.png"], "cannot read"),
    (["generate", "a red circle", *TINY, "--preset", "vqgan", "--set", "vqgan=shapes-clip"], "not a VQGAN"),
    (["generate", "a red circle", *TINY, "--preset", "vqgan", "--set", "init=zeros"], "vqgan init"),
    (["generate", "a red circle", *TINY, "--preset", "vqgan", "--init-image", "not-an-image.png"], "not-an-image.png"),
    (["generate", "a red circle", *TINY, "--preset", "vqgan-clip", "--size", "30"], "downsampling factor"),
]


def _ids() -> list[str]:
    return [" ".join(a)[:60] for a, _ in CASES]


@pytest.mark.parametrize(("args", "needle"), CASES, ids=_ids())
def test_bad_input_is_one_line_and_writes_nothing(workspace: Path, capsys, args: list[str], needle: str) -> None:
    from clip_t2i import cli

    before = _snapshot(workspace)
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    out, err = capsys.readouterr()
    assert exc.value.code not in (0, None), f"exit 0 for {args}: {out!r}"
    assert "Traceback" not in err and "Traceback" not in out
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"{args}: stderr has {len(lines)} lines: {err!r}"
    assert lines[0].startswith("error: "), lines[0]
    assert needle.lower() in lines[0].lower(), f"{args}: {lines[0]!r} does not mention {needle!r}"
    assert _snapshot(workspace) == before, f"{args} changed files: {set(_snapshot(workspace)) ^ set(before)}"


def test_battery_covers_every_command() -> None:
    from clip_t2i import cli

    commands = {c.name for c in cli.app.registered_commands} | {
        getattr(c.callback, "__name__", "") for c in cli.app.registered_commands if c.name is None
    }
    names = {(c.name or c.callback.__name__.replace("_cmd", "").replace("_", "-")) for c in cli.app.registered_commands}
    tried = {args[0] for args, _ in CASES}
    missing = sorted(names - tried - {"train-judge"})  # train-judge writes into the package's zoo: tested apart
    assert not missing, f"no bad-input case for {missing}"
    assert len(CASES) >= 60 and commands


def test_console_script_usage_error_is_one_line(tmp_path: Path) -> None:
    """The installed entry point (a real process) prints click usage errors as one line too."""
    import subprocess

    exe = Path(sys.executable).with_name("clip-t2i")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "clip_t2i.cli"]
    r = subprocess.run(
        [*cmd, "generate", "a red circle", "--steps", "x"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and "--steps" in r.stderr


class _Payload:
    """Pickled into a tampered ``state.pt``: unpickling it would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_tampered_resume_state_is_refused_unread(tmp_path: Path) -> None:
    import pickle

    from clip_t2i.errors import UserError
    from clip_t2i.training.checkpoint import load_state

    ckpt = tmp_path / "checkpoints" / "step_0000003"
    ckpt.mkdir(parents=True)
    marker = tmp_path / "payload-ran"
    with open(ckpt / "state.pt", "wb") as f:
        pickle.dump({"step": 3, "x": _Payload(str(marker))}, f)
    with pytest.raises(UserError) as e:
        load_state(ckpt)
    msg = str(e.value)
    assert not marker.exists()  # the payload never ran
    assert "weights_only=False" not in msg and "\n" not in msg and "refused" in msg
    (ckpt / "state.pt").write_bytes(b"\x00truncated")
    with pytest.raises(UserError, match="truncated, corrupt"):
        load_state(ckpt)


def test_training_that_only_diverges_stops_without_a_final_model(workspace: Path, capsys) -> None:
    """--lr 1e6 makes every step non-finite after the first update: stop after N skipped steps, exit 2, no model."""
    from clip_t2i import cli

    args = ["train-clip", "--data", "digits", "--model", "vit-t32", "--steps", "50", "--batch-size", "8"]
    args += ["--warmup-steps", "0", "--lr", "1e6", "--max-nonfinite-steps", "3", "--out", "run-nan", "--no-progress"]
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "3 consecutive steps" in err
    run = workspace / "run-nan"
    assert not (run / "final.safetensors").exists() and not list(run.rglob("*.safetensors"))
    log = (run / "train.log").read_text().splitlines()
    assert sum("non-finite" in ln for ln in log) == 3 and '"diverged": true' in log[-1]


def test_non_finite_weights_are_never_saved(tmp_path: Path) -> None:
    import torch

    from clip_t2i.backbones import load_clip
    from clip_t2i.errors import UserError

    clip = load_clip("vit-t32")
    with torch.no_grad():
        next(clip.model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(UserError, match="NaN or inf"):
        clip.save(tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []  # not even a temporary file is left


@pytest.mark.parametrize(
    ("env", "args", "ok"),
    [
        ({}, ["--size", "2048"], False),
        ({"CLIP_T2I_MAX_IMAGE_SIZE": "4096"}, ["--size", "2048"], True),
        ({"CLIP_T2I_MAX_SEEDS": "2"}, ["--seeds", "0-2"], False),
        ({"CLIP_T2I_MAX_SEEDS": "junk"}, ["--seeds", "0-2"], False),
    ],
)
def test_caps_are_documented_and_overridable(monkeypatch, env: dict, args: list[str], ok: bool) -> None:
    from clip_t2i.pipeline import check_inputs, parse_seeds
    from clip_t2i.utils.checks import LIMITS, check_cap

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert all(lim.env in readme for lim in LIMITS.values())  # every cap is documented

    def run() -> None:
        if args[0] == "--size":
            check_cap(int(args[1]), "image_size", "--size")
        else:
            check_inputs(["a red circle"], parse_seeds(args[1]), None, None, False, None)

    if ok:
        run()
    else:
        from clip_t2i.errors import UserError

        with pytest.raises(UserError, match="CLIP_T2I_MAX|limit"):
            run()


def test_ctrl_c_checkpoints_and_resume_keeps_the_runs_own_settings(tmp_path: Path) -> None:
    """SIGINT mid-run: the step finishes, a checkpoint is written, one line says how to resume (exit 130); the
    resumed run takes its steps / batch / lr from the run's config.json unless given again."""
    import json
    import signal
    import subprocess
    import time

    run = tmp_path / "run"
    exe = Path(sys.executable).with_name("clip-t2i")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "clip_t2i.cli"]
    args = ["train-clip", "--data", "digits", "--model", "vit-t32", "--steps", "5000", "--batch-size", "8"]
    args += ["--lr", "3e-4", "--ckpt-every", "0", "--no-progress", "--threads", "1", "--out", str(run)]
    proc = subprocess.Popen(
        [*cmd, *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    log = run / "train.log"
    deadline = time.time() + 240
    while time.time() < deadline and not (log.is_file() and '"step": 50' in log.read_text()):
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-800:]
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("Ctrl-C")]
    assert len(lines) == 1 and lines[0].startswith("error: interrupted at step ") and "--resume" in lines[0]
    step = int(lines[0].split("interrupted at step ")[1].split()[0])
    assert 50 <= step < 5000
    assert (run / "checkpoints" / f"step_{step:07d}" / "state.pt").is_file()
    assert not (run / "final.safetensors").exists()

    from cli_runner import run_cli

    r = run_cli("train-clip", "--out", str(run), "--resume", "--dry-run")
    cfg = json.loads(r.stdout)
    assert r.returncode == 0 and cfg["steps"] == 5000 and cfg["batch_size"] == 8 and cfg["lr"] == 3e-4
    assert cfg["data"] == "digits" and cfg["model"] == "vit-t32"
    r = run_cli("train-clip", "--out", str(run), "--resume", "--steps", "60", "--dry-run")
    assert json.loads(r.stdout)["steps"] == 60  # what is given on the command line wins
