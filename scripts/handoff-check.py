#!/usr/bin/env python3
"""Checks the MaeMl <-> official main_pretrain.py hand-off against real PyTorch (optional; Debian's python3-torch 1.13 is enough).

    apt-get install -y python3-torch libopenblas0-openmp      # once
    /usr/bin/python3 scripts/handoff-check.py [--work DIR] [--no-build]

PyTorch -> MaeMl: a tiny models_mae MAE (tools/pytorch/mini_models_mae.py, same module tree) is trained a few steps with
torch.optim.AdamW over timm 0.3.2's add_weight_decay groups, as main_pretrain.py does, and saved as util/misc.save_model writes
it (py/before.pth); one more step's gradients, lr and result are saved too (py/grads, py/step.json, py/after.pth). MaeMl imports
before.pth, takes that step with its AdamW and compares (tests/MaeMl.Tests/Training/HandoffPythonCheckTests.cs, run here with
dotnet test).
MaeMl -> PyTorch: MaeMl exports a run (ml/before.pth), takes one more step (gradients saved) and exports it (ml/after.pth); here
before.pth is resumed exactly as util/misc.load_model does (model.load_state_dict, optimizer.load_state_dict, start_epoch =
epoch + 1, the scaler dict), the step is taken with torch.optim.AdamW and compared with after.pth.
Each way twice: with the other side's gradients (the optimizer alone) and with this side's own forward/backward (end to end).
Prints the largest differences and exits non-zero when one is out of tolerance.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools" / "pytorch"))
from mini_models_mae import MaskedAutoencoderViT, add_weight_decay  # noqa: E402

ARCH = dict(img_size=16, patch_size=4, in_chans=3, embed_dim=32, depth=2, num_heads=2,
            decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2, mlp_ratio=4.0, norm_pix_loss=True)
MODEL_NAME = "mae_vit_e32d2h2_patch4_dec16d1h2"   # what MaeMl's export writes for this architecture (heads included)
GRAD_SCALER_KEYS = ["scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"]


def adjust_learning_rate(epoch, args):
    """util/lr_sched.adjust_learning_rate (the lr it sets)."""
    if epoch < args.warmup_epochs:
        return args.lr * epoch / args.warmup_epochs
    return args.min_lr + (args.lr - args.min_lr) * 0.5 * (1. + math.cos(math.pi * (epoch - args.warmup_epochs) / (args.epochs - args.warmup_epochs)))


def new_model_and_optimizer(args):
    model = MaskedAutoencoderViT(**ARCH)
    optimizer = torch.optim.AdamW(add_weight_decay(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95))
    return model, optimizer


def pretrain_args():
    return argparse.Namespace(batch_size=4, epochs=10, accum_iter=1, model=MODEL_NAME, input_size=16, mask_ratio=0.75, norm_pix_loss=True,
                              weight_decay=0.05, lr=2e-3, blr=1e-3, min_lr=1e-5, warmup_epochs=2, data_path="", output_dir="./output_dir",
                              log_dir="./output_dir", device="cpu", seed=7, resume="", start_epoch=0, num_workers=10, pin_mem=True,
                              world_size=1, local_rank=-1, dist_on_itp=False, dist_url="env://", distributed=False)


def save_model(path, model, optimizer, epoch, args):
    """util/misc.save_model's dict (the GradScaler is off on a CPU, so its dict is written as an enabled one's)."""
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 0}
    torch.save({'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'epoch': epoch, 'scaler': scaler, 'args': args}, path)


def step_once(model, optimizer, lr, imgs, noise, grads=None):
    for g in optimizer.param_groups:
        g["lr"] = lr
    optimizer.zero_grad()
    if grads is None:
        loss, _, _ = model(imgs, mask_ratio=0.75, noise=noise)
        loss.backward()
    else:
        for name, p in model.named_parameters():
            if name in grads:
                p.grad = grads[name].clone()
    optimizer.step()


def write_pytorch_side(py):
    """PyTorch trains 2 epochs x 2 steps, saves checkpoint-1 (epoch 1 finished), then takes the first step of epoch 2."""
    torch.manual_seed(7)
    args = pretrain_args()
    model, optimizer = new_model_and_optimizer(args)
    gen = torch.Generator().manual_seed(123)
    steps_per_epoch = 2
    for epoch in range(2):
        for it in range(steps_per_epoch):
            lr = adjust_learning_rate(it / steps_per_epoch + epoch, args)
            step_once(model, optimizer, lr, torch.randn(4, 3, 16, 16, generator=gen), torch.rand(4, 16, generator=gen))
    (py / "grads").mkdir(parents=True, exist_ok=True)
    save_model(py / "before.pth", model, optimizer, 1, args)
    imgs, noise = torch.randn(4, 3, 16, 16, generator=gen), torch.rand(4, 16, generator=gen)
    lr = adjust_learning_rate(2.0, args)
    optimizer.zero_grad()
    loss, _, _ = model(imgs, mask_ratio=0.75, noise=noise)
    loss.backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            np.save(py / "grads" / f"{name}.npy", p.grad.numpy())
    np.save(py / "input.npy", imgs.numpy())
    np.save(py / "noise.npy", noise.numpy())
    for g in optimizer.param_groups:
        g["lr"] = lr
    optimizer.step()
    save_model(py / "after.pth", model, optimizer, 1, args)
    (py / "step.json").write_text(json.dumps({"lr": [g["lr"] for g in optimizer.param_groups]}))


def max_diff(a, b):
    return (a.double() - b.double()).abs().max().item()


def check_maeml_side(ml):
    """util/misc.load_model on MaeMl's export, one torch.optim.AdamW step, compared with MaeMl's step."""
    step = json.loads((ml / "step.json").read_text())
    before = torch.load(ml / "before.pth", map_location="cpu")
    after = torch.load(ml / "after.pth", map_location="cpu")
    out = {"entries": sorted(before.keys()), "epoch": before["epoch"]}
    assert sorted(before.keys()) == ["args", "epoch", "model", "optimizer", "scaler"], before.keys()
    assert sorted(before["scaler"].keys()) == sorted(GRAD_SCALER_KEYS), before["scaler"]
    assert isinstance(before["args"], argparse.Namespace), type(before["args"])
    args = before["args"]
    out["schedule_max_diff"] = max(abs(adjust_learning_rate(e, args) - lr) for e, lr in step["schedule"])
    grads = {p.stem: torch.from_numpy(np.load(p)) for p in (ml / "grads").glob("*.npy")}
    imgs, noise = torch.from_numpy(np.load(ml / "input.npy")), torch.from_numpy(np.load(ml / "noise.npy"))
    for mode in ("gradients", "end_to_end"):
        model, optimizer = new_model_and_optimizer(args)
        checkpoint = before
        model.load_state_dict(checkpoint['model'])            # util/misc.load_model, strict
        optimizer.load_state_dict(checkpoint['optimizer'])
        start_epoch = checkpoint['epoch'] + 1
        assert start_epoch == step["resumes_at_epoch"], (start_epoch, step)
        sd = optimizer.state_dict()
        assert [len(g["params"]) for g in sd["param_groups"]] == [len(g["params"]) for g in checkpoint["optimizer"]["param_groups"]]
        lr = adjust_learning_rate(float(start_epoch), args)     # data_iter_step 0 of the resumed epoch
        out["lr_diff"] = abs(lr - step["lr"])
        step_once(model, optimizer, lr, imgs, noise, grads if mode == "gradients" else None)
        expected_model = after["model"]
        weights = max(max_diff(v, expected_model[k]) for k, v in model.state_dict().items())
        state, expected = optimizer.state_dict()["state"], after["optimizer"]["state"]
        assert sorted(state.keys()) == sorted(expected.keys()), (sorted(state.keys()), sorted(expected.keys()))
        out[mode] = {
            "weights": weights,
            "exp_avg": max(max_diff(state[i]["exp_avg"], expected[i]["exp_avg"]) for i in state),
            "exp_avg_sq": max(max_diff(state[i]["exp_avg_sq"], expected[i]["exp_avg_sq"]) for i in state),
            "steps_equal": all(float(state[i]["step"]) == float(expected[i]["step"]) for i in state),
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, help="folder for the files (default: a temporary one)")
    parser.add_argument("--no-build", action="store_true", help="pass --no-build to dotnet test")
    a = parser.parse_args()
    torch.set_num_threads(1)
    work = a.work or Path(tempfile.mkdtemp(prefix="maeml-handoff-"))
    py, ml = work / "py", work / "ml"
    py.mkdir(parents=True, exist_ok=True)
    ml.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}; files in {work}")

    write_pytorch_side(py)
    cmd = ["dotnet", "test", str(ROOT / "tests" / "MaeMl.Tests"), "-c", "Release", "--filter", "FullyQualifiedName~HandoffPythonCheckTests",
           "--logger", "console;verbosity=normal"] + (["--no-build"] if a.no_build else [])
    done = subprocess.run(cmd, env={**os.environ, "MAEML_HANDOFF_DIR": str(work)}, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-4000:])
        sys.exit("dotnet test failed")
    from_pytorch = json.loads((py / "result.json").read_text())
    to_pytorch = check_maeml_side(ml)

    print("PyTorch -> MaeMl (official checkpoint imported, one MaeMl AdamW step vs PyTorch's):")
    print(f"  import exact: weights {from_pytorch['import_weights_identical']}, moments and steps {from_pytorch['import_moments_identical']}; "
          f"resumes at epoch {from_pytorch['epoch']}, {from_pytorch['optimizer_steps']} steps taken")
    for mode in ("gradients", "end_to_end"):
        print(f"  {mode:10s}: max |diff| weights {from_pytorch[mode]['weights']:.3e}, exp_avg {from_pytorch[mode]['exp_avg']:.3e}, "
              f"exp_avg_sq {from_pytorch[mode]['exp_avg_sq']:.3e}, steps equal {from_pytorch[mode]['steps_equal']}")
    print("MaeMl -> PyTorch (export resumed by util/misc.load_model, one torch.optim.AdamW step vs MaeMl's):")
    print(f"  entries {to_pytorch['entries']}, epoch {to_pytorch['epoch']}; lr schedule max |diff| {to_pytorch['schedule_max_diff']:.3e}, "
          f"resume lr |diff| {to_pytorch['lr_diff']:.3e}")
    for mode in ("gradients", "end_to_end"):
        print(f"  {mode:10s}: max |diff| weights {to_pytorch[mode]['weights']:.3e}, exp_avg {to_pytorch[mode]['exp_avg']:.3e}, "
              f"exp_avg_sq {to_pytorch[mode]['exp_avg_sq']:.3e}, steps equal {to_pytorch[mode]['steps_equal']}")

    ok = from_pytorch["import_weights_identical"] and from_pytorch["import_moments_identical"]
    for side in (from_pytorch, to_pytorch):
        ok &= side["gradients"]["weights"] <= 1e-6 and side["gradients"]["steps_equal"] and side["end_to_end"]["steps_equal"]
        ok &= side["end_to_end"]["weights"] <= 1e-3   # through two engines' forward/backward; Adam's first steps amplify tiny gradients
    ok &= to_pytorch["schedule_max_diff"] <= 1e-12 and to_pytorch["lr_diff"] <= 1e-12
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
