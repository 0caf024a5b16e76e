"""Every command that takes a CLIP accepts real-checkpoint formats through --pretrained / --image-tower.

Tiny open_clip models are saved in the official layouts (CLIPAG's ``{'state_dict': {'module.'+k}}`` with numpy
scalars, FARE's vision-only state dict, TeCoA's ``vision_encoder_state_dict``) and each command is run on
them in-process; a value check shows the weights of the files were the ones used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from clip_t2i.backbones import load_clip

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "layers": 2, "width": 64, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
ARCH = "tiny-ckpt-ViT"


def _perturb(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tiny_ckpt")
    (d / f"{ARCH}.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(d)
    torch.manual_seed(0)
    base = load_clip(ARCH)
    _perturb(base.model, 1)
    sd = base.model.state_dict()
    out = {"clipag": d / "CLIPAG_tiny.pt", "fare": d / "fare_tiny.pt", "tecoa": d / "tecoa_tiny.pth.tar"}
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": np.int64(9)}, out["clipag"])
    robust = load_clip(ARCH)
    robust.model.load_state_dict(sd)
    _perturb(robust.model.visual, 2)
    vis = robust.model.visual.state_dict()
    torch.save(vis, out["fare"])
    torch.save({"epoch": 3, "vision_encoder_state_dict": {f"module.{k}": v for k, v in vis.items()}}, out["tecoa"])
    return out


def _run(argv: list[str], capsys) -> str:
    from clip_t2i import cli

    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    assert "initialized randomly" not in err  # no stray open_clip warning before a successful load
    return out


def test_generate_uses_the_clipag_file(files, tmp_path, capsys) -> None:
    from clip_t2i.pipeline import generate

    args = ["generate", "a red circle", "--model", ARCH, "--pretrained", str(files["clipag"]), "--steps", "2"]
    _run([*args, "--preset", "pag", "--out", str(tmp_path / "g"), "--json", "--no-progress"], capsys)
    rec = json.loads((tmp_path / "g" / "000-a-red-circle-seed0000.json").read_text())
    ref = generate(["a red circle"], model=load_clip(ARCH, str(files["clipag"])), steps=2, preset="pag")
    rnd = generate(["a red circle"], model=load_clip(ARCH), steps=2, preset="pag")
    assert rec["similarity"] == pytest.approx(ref.records[0]["similarity"], abs=1e-5)
    assert abs(rec["similarity"] - rnd.records[0]["similarity"]) > 1e-3  # a random init would differ


@pytest.mark.parametrize("tower", ["fare", "tecoa"])
def test_eval_robust_and_eval_clip_take_an_image_tower(files, capsys, tower: str) -> None:
    from clip_t2i.robust.evaluate import robust_zero_shot

    common = ["--model", ARCH, "--pretrained", str(files["clipag"]), "--image-tower", str(files[tower])]
    out = json.loads(
        _run(
            ["eval-robust", *common, "--n", "8", "--eps", "1", "--attacks", "pgd", "--pgd-steps", "2", "--json"], capsys
        )
    )
    clip = load_clip(ARCH, str(files["clipag"]), image_tower=str(files[tower]))
    ref = robust_zero_shot(clip, ["shapes"], eps=[1.0], norm="l2", attacks=["pgd"], n=8, seed=1234, pgd_steps=2)
    assert out["shapes"] == json.loads(json.dumps(ref["shapes"]))
    z = json.loads(_run(["eval-clip", *common, "--n", "16", "--json"], capsys))
    assert z["model"] == ARCH and "shapes" in z


def test_robustify_starts_from_the_files(files, tmp_path, capsys) -> None:
    run = tmp_path / "r"
    args = ["robustify", "--model", ARCH, "--pretrained", str(files["clipag"]), "--image-tower", str(files["fare"])]
    args += ["--objective", "fare", "--steps", "1", "--batch-size", "4", "--attack-steps", "1", "--lr", "1e-4"]
    _run([*args, "--out", str(run), "--no-progress", "--threads", "1"], capsys)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["pretrained"] == str(files["clipag"]) and cfg["image_tower"] == str(files["fare"])
    start = load_clip(ARCH, str(files["clipag"]), image_tower=str(files["fare"])).model.state_dict()
    final = load_clip(run / "final.safetensors").model.state_dict()
    text = [k for k in start if not k.startswith("visual.")]
    assert all(torch.equal(start[k], final[k]) for k in text)  # text tower of the CLIPAG file, frozen
    moved = max((start[k] - final[k]).abs().max().item() for k in start if k.startswith("visual."))
    assert 0 < moved < 1e-3  # one AdamW step of lr 1e-4 moves each weight by at most ~lr


@pytest.mark.slow  # a GAN step on a 49k-token BPE CLIP: ~60 s on a loaded 2-core machine
def test_train_gan_and_evaluate_take_the_files(files, tmp_path, capsys) -> None:
    from clip_t2i.gan.model import load_gan

    run = tmp_path / "gan"
    args = ["train-gan", "--variant", "galip", "--clip", ARCH, "--pretrained", str(files["clipag"])]
    args += ["--steps", "1", "--batch-size", "2", "--eval-every", "-1", "--sample-every", "0", "--no-progress"]
    _run([*args, "--out", str(run), "--threads", "1"], capsys)
    gan = load_gan(run / "final.safetensors")
    ref = load_clip(ARCH, str(files["clipag"])).model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in gan.clip.model.state_dict().items())

    from clip_t2i.metrics.clip_score import compute_clip_score
    from clip_t2i.pipeline import generate

    folder = tmp_path / "imgs"
    generate(["a red circle", "a blue square"], model="vit-t32", seeds="0-1", steps=1, out=folder)
    ev = ["evaluate", str(folder), "--metrics", "clip_score", "--eval-clip", ARCH]
    out = json.loads(_run([*ev, "--pretrained", str(files["clipag"]), "--json"], capsys))
    from PIL import Image

    pngs = sorted(folder.glob("*.png"))
    images = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))) for p in pngs])
    prompts = [json.loads(p.with_suffix(".json").read_text())["prompt"] for p in pngs]
    res = compute_clip_score(
        images.permute(0, 3, 1, 2).float() / 255,
        prompts,
        load_clip(ARCH, str(files["clipag"])),
        eval_model_id=ARCH,
        guide_model_id="vit-t32",
    )
    assert out["metrics"]["clip_score"]["value"] == pytest.approx(float(res.score), abs=1e-3)
