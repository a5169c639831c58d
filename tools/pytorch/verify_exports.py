"""Checks MaeMl's exports with real PyTorch (not part of the .NET test suite: CI has no PyTorch).

    python3 verify_exports.py FIXTURE_DIR EXPORT_DIR

FIXTURE_DIR: tests/MaeMl.Tests/Fixtures/mae-official-tiny. EXPORT_DIR holds files written by MaeMl:
  ours.pth          (maeml convert --from FIXTURE_DIR/checkpoint-full.pth --to ours.pth)
  ours.safetensors  (... --to ours.safetensors)
  ours-hf.safetensors (... --to ours-hf.safetensors --naming hf)
For each it checks that the tensors equal the fixture's bit for bit; for ours.pth also that
torch.load(weights_only=True) reads it, that a module with models_mae.py's structure and names loads
ckpt['model'] with strict=True, and that its forward reproduces the fixture's pred and loss.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mini_models_mae import MaskedAutoencoderViT


def fixture_state(fixture):
    manifest = json.loads((fixture / "manifest.json").read_text())
    return {e["name"]: np.load(fixture / e["file"]) for e in manifest["state_dict"]}, manifest["config"]


def read_safetensors(path):
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        assert e["dtype"] == "F32", (name, e["dtype"])
        b, f = e["data_offsets"]
        out[name] = np.frombuffer(data[b:f], dtype="<f4").reshape(e["shape"])
    return out, meta


def hf_to_official(hf):
    """Independent rename (transformers' ViTMAEForPreTraining -> models_mae), fusing q, k, v."""
    out, qkv = {}, {}
    fixed = {"vit.embeddings.cls_token": "cls_token", "vit.embeddings.position_embeddings": "pos_embed",
             "vit.embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
             "vit.embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
             "vit.layernorm.weight": "norm.weight", "vit.layernorm.bias": "norm.bias",
             "decoder.mask_token": "mask_token", "decoder.decoder_pos_embed": "decoder_pos_embed"}
    parts = {"attention.output.dense": "attn.proj", "layernorm_before": "norm1", "layernorm_after": "norm2",
             "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"}
    for name, t in hf.items():
        if name in fixed:
            out[fixed[name]] = t
            continue
        for pre, block in (("vit.encoder.layer.", "blocks."), ("decoder.decoder_layers.", "decoder_blocks.")):
            if name.startswith(pre):
                i, rest = name[len(pre):].split(".", 1)
                sub, kind = rest.rsplit(".", 1)
                if sub.startswith("attention.attention."):
                    qkv.setdefault(f"{block}{i}.attn.qkv.{kind}", {})[sub.split(".")[-1]] = t
                else:
                    out[f"{block}{i}.{parts[sub]}.{kind}"] = t
                break
        else:
            assert name.startswith("decoder.decoder_"), name
            out[name[len("decoder."):]] = t
    for name, d in qkv.items():
        out[name] = np.concatenate([d["query"], d["key"], d["value"]], 0)
    return out


def same(reference, got, what):
    assert sorted(reference) == sorted(got), f"{what}: names differ: {sorted(set(reference) ^ set(got))}"
    for k, v in reference.items():
        g = np.asarray(got[k])
        assert g.shape == v.shape and g.dtype == v.dtype and np.array_equal(g, v), f"{what}: {k} differs"
    print(f"{what}: {len(reference)} tensors identical to the fixture")


def main(fixture, exports):
    reference, c = fixture_state(fixture)

    ckpt = torch.load(exports / "ours.pth", map_location="cpu", weights_only=True)
    assert list(ckpt.keys()) == ["model"], list(ckpt.keys())
    same(reference, {k: v.numpy() for k, v in ckpt["model"].items()}, "ours.pth via torch.load(weights_only=True)")
    model = MaskedAutoencoderViT(img_size=c["img_size"], patch_size=c["patch_size"], in_chans=c["in_chans"],
                                 embed_dim=c["embed_dim"], depth=c["depth"], num_heads=c["num_heads"],
                                 decoder_embed_dim=c["decoder_embed_dim"], decoder_depth=c["decoder_depth"],
                                 decoder_num_heads=c["decoder_num_heads"], mlp_ratio=c["mlp_ratio"],
                                 norm_pix_loss=c["norm_pix_loss"])
    print("load_state_dict(strict=True):", model.load_state_dict(ckpt["model"], strict=True))
    with torch.no_grad():
        imgs = torch.from_numpy(np.load(fixture / "input.npy"))
        noise = torch.from_numpy(np.load(fixture / "noise.npy"))
        loss, pred, mask = model(imgs, mask_ratio=c["mask_ratio"], noise=noise)
    pred_err = (pred - torch.from_numpy(np.load(fixture / "pred.npy"))).abs().max().item()
    loss_err = abs(loss.item() - float(np.load(fixture / "loss.npy")))
    print(f"ours.pth in PyTorch: pred max abs err {pred_err:.2e}, loss abs err {loss_err:.2e}")
    assert pred_err <= 1e-5 and loss_err <= 1e-5

    st, meta = read_safetensors(exports / "ours.safetensors")
    print("ours.safetensors metadata:", meta)
    same(reference, st, "ours.safetensors")
    hf, meta = read_safetensors(exports / "ours-hf.safetensors")
    same(reference, hf_to_official(hf), "ours-hf.safetensors (Hugging Face names)")
    print("OK")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
