"""Writes tests/MaeMl.Tests/Fixtures/pytorch-checkpoints with real PyTorch (run once; the files are committed).

    python3 make_training_fixtures.py FIXTURE_DIR OUT_DIR

checkpoint-1.pth: a training checkpoint laid out as facebookresearch/mae's util/misc.save_model writes it:
  {'model': model.state_dict() (an OrderedDict with _metadata), 'optimizer': AdamW state after one step,
   'epoch': 1, 'scaler': GradScaler-style dict, 'args': argparse.Namespace}; the model holds the tiny fixture's weights.
{pos_embed,decoder_pos_embed}.interpolated{6,8}.npy: the fixture's tables resized to 6x6 / 8x8 grids as
  util/pos_embed.interpolate_pos_embed does.
finetuned.pth: {'model': state_dict} of models_vit.VisionTransformer (global pool, fc_norm, 10-class head) whose encoder
  is the fixture's, with seeded fc_norm and head; logits.npy: its output on the fixture's input.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from mini_models_mae import MaskedAutoencoderViT, VisionTransformer


def main(fixture, out):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    c = json.loads((fixture / "manifest.json").read_text())["config"]
    arch = dict(img_size=c["img_size"], patch_size=c["patch_size"], in_chans=c["in_chans"], embed_dim=c["embed_dim"],
                depth=c["depth"], num_heads=c["num_heads"], mlp_ratio=c["mlp_ratio"])
    sd = torch.load(fixture / "checkpoint-full.pth", map_location="cpu")["model"]
    mae = MaskedAutoencoderViT(**arch, decoder_embed_dim=c["decoder_embed_dim"], decoder_depth=c["decoder_depth"],
                               decoder_num_heads=c["decoder_num_heads"], norm_pix_loss=c["norm_pix_loss"])
    mae.load_state_dict(sd, strict=True)
    imgs = torch.from_numpy(np.load(fixture / "input.npy"))
    optimizer = torch.optim.AdamW(mae.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05)
    loss, _, _ = mae(imgs, mask_ratio=c["mask_ratio"], noise=torch.from_numpy(np.load(fixture / "noise.npy")))
    loss.backward()
    optimizer.step()
    args = argparse.Namespace(batch_size=2, epochs=400, model="mae_tiny_fixture", input_size=c["img_size"], mask_ratio=0.75,
                              norm_pix_loss=True, weight_decay=0.05, lr=None, blr=1.5e-4, output_dir="./output_dir", device="cpu")
    torch.save({"model": mae.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 1,
                "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 0},
                "args": args}, out / "checkpoint-1.pth")
    np.save(out / "checkpoint-1.pos_embed.npy", mae.pos_embed.detach().numpy())
    np.save(out / "checkpoint-1.blocks.0.attn.qkv.weight.npy", mae.blocks[0].attn.qkv.weight.detach().numpy())

    vit = VisionTransformer(**arch, num_classes=10, global_pool=True)
    encoder = {k: v for k, v in sd.items() if not (k.startswith("decoder") or k == "mask_token" or k.startswith("norm."))}
    missing, unexpected = vit.load_state_dict(encoder, strict=False)
    assert set(missing) == {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"} and not unexpected, (missing, unexpected)
    with torch.no_grad():
        torch.nn.init.normal_(vit.head.weight, std=0.5)
        torch.nn.init.normal_(vit.head.bias, std=0.1)
        torch.nn.init.normal_(vit.fc_norm.weight, mean=1.0, std=0.1)
        vit.eval()
        np.save(out / "finetuned.logits.npy", vit(imgs).numpy())
    torch.save({"model": vit.state_dict()}, out / "finetuned.pth")
    (out / "README.md").write_text(__doc__.replace("OUT_DIR", str(out.name)) + f"\nWritten by torch {torch.__version__}.\n")




def interpolate_pos_embed_fixtures(fixture, out):
    """pos_embed tables of the fixture resized as util/pos_embed.interpolate_pos_embed does (bicubic, cls kept)."""
    sd = torch.load(fixture / "checkpoint-full.pth", map_location="cpu")["model"]
    for key in ("pos_embed", "decoder_pos_embed"):
        for new_size in (6, 8):
            pos = sd[key]
            extra, tokens = pos[:, :1], pos[:, 1:]
            orig = int(tokens.shape[1] ** 0.5)
            tokens = tokens.reshape(-1, orig, orig, pos.shape[-1]).permute(0, 3, 1, 2)
            tokens = torch.nn.functional.interpolate(tokens, size=(new_size, new_size), mode="bicubic", align_corners=False)
            tokens = tokens.permute(0, 2, 3, 1).flatten(1, 2)
            np.save(out / f"{key}.interpolated{new_size}.npy", torch.cat((extra, tokens), dim=1).numpy())


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
    interpolate_pos_embed_fixtures(Path(sys.argv[1]), Path(sys.argv[2]))
