#!/usr/bin/env python3
"""Times the official MAE pretraining step in PyTorch on this machine, for `maeml bench --pytorch PYTHON` to print beside its own.

    /usr/bin/python3 tools/pytorch/bench_official.py --img-size 32 --patch-size 4 --embed-dim 192 --depth 6 --num-heads 3 \
        --decoder-embed-dim 128 --decoder-depth 2 --decoder-num-heads 4 --batch-size 128 --steps 8 --threads 2

The step is main_pretrain.py's train_one_epoch on a CPU (float32; its autocast/GradScaler only act on CUDA): models_mae's
forward with mask ratio 0.75 and norm_pix_loss, loss.backward(), torch.optim.AdamW(betas 0.9, 0.95) over timm's
add_weight_decay groups, zero_grad. The model is tools/pytorch/mini_models_mae.py (models_mae with timm 0.3.2's Block inlined:
the same operations). Random images; warm-up steps are not timed. Prints one JSON line: images_per_s, seconds_per_step, torch.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mini_models_mae import MaskedAutoencoderViT, add_weight_decay  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    for name, default in [("img-size", 32), ("patch-size", 4), ("embed-dim", 192), ("depth", 6), ("num-heads", 3),
                          ("decoder-embed-dim", 128), ("decoder-depth", 2), ("decoder-num-heads", 4),
                          ("batch-size", 128), ("steps", 8), ("warmup", 3), ("threads", 0)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--mlp-ratio", type=float, default=4.0)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = MaskedAutoencoderViT(img_size=a.img_size, patch_size=a.patch_size, in_chans=3, embed_dim=a.embed_dim, depth=a.depth,
                                 num_heads=a.num_heads, decoder_embed_dim=a.decoder_embed_dim, decoder_depth=a.decoder_depth,
                                 decoder_num_heads=a.decoder_num_heads, mlp_ratio=a.mlp_ratio, norm_pix_loss=True)
    model.train()
    optimizer = torch.optim.AdamW(add_weight_decay(model, 0.05), lr=1.5e-4 * a.batch_size / 256, betas=(0.9, 0.95))
    imgs = torch.randn(a.batch_size, 3, a.img_size, a.img_size)
    start = None
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            start = time.perf_counter()
        loss, _, _ = model(imgs, mask_ratio=0.75)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    seconds = time.perf_counter() - start
    print(json.dumps({"images_per_s": a.batch_size * a.steps / seconds, "seconds_per_step": seconds / a.steps,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
