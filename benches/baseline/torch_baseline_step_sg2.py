#!/usr/bin/env python3
"""Baseline: one PULSE step on StyleGAN2 in plain PyTorch eager mode, with NVIDIA's own generator.

NVlabs/stylegan2-ada-pytorch `training/networks.py` (its pure-PyTorch reference ops on the CPU),
FFHQ config-f size (1024, channel_base 32768, channel_max 512, 8 mapping layers) with NVIDIA's
random initialisation, run as PULSE on StyleGAN2 runs it (docs/design.md, "PULSE on StyleGAN2"):
latent [B,18,512], W+ = leaky_relu(latent * std + mean, 0.2), the 17 noise maps fed to the
synthesis (each layer's `noise_const` replaced, `noise_mode='const'`), the first 5 optimized,
map 16 zero; bicubic downscale to 32x32, 100*L2 + 0.05*GEOCROSS, backward, Adam, projection.

    python -m pip install --target /tmp/sg2py numpy requests
    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ref   # d72cc7d
    PYTHONPATH=/tmp/sg2py:/tmp/sg2ref .venv/bin/python benches/baseline/torch_baseline_step_sg2.py

usage: torch_baseline_step_sg2.py [--batch-size B] [--steps N] [--warmup W] [--threads T]
       [--resolution R] [--device cpu|cuda] [--non-fused] [--json]
Prints ms per step (median of N timed steps after W warm-up steps)."""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pulse_ops import downscaler, loss, project, radii  # noqa: E402
from training import networks  # noqa: E402  (NVIDIA's, from PYTHONPATH)

p = argparse.ArgumentParser()
p.add_argument("--batch-size", type=int, default=1)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--threads", type=int, default=0)
p.add_argument("--resolution", type=int, default=1024)
p.add_argument("--device", default="cpu")
p.add_argument("--non-fused", action="store_true",
               help="NVIDIA's non-fused modulated conv (what it runs in training mode); by default "
                    "the generator is in eval mode, as inference code loads it, which fuses")
p.add_argument("--json", action="store_true")
a = p.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)
dev = torch.device(a.device)
sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
B, R = a.batch_size, a.resolution

G = networks.Generator(
    z_dim=512, c_dim=0, w_dim=512, img_resolution=R, img_channels=3,
    mapping_kwargs=dict(num_layers=8),
    synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None),
).train(a.non_fused).requires_grad_(False).to(dev)
L = G.num_ws
layers = []
for res in G.synthesis.block_resolutions:
    block = getattr(G.synthesis, f"b{res}")
    layers += ([block.conv0] if hasattr(block, "conv0") else []) + [block.conv1]
with torch.no_grad():
    for layer in layers:
        layer.noise_strength.copy_(torch.rand([]) * 0.1)

mean, std = (torch.randn(512) * 0.3).to(dev), (torch.rand(512) * 0.5 + 0.2).to(dev)
latent = torch.randn(B, L, 512, device=dev, requires_grad=True)
noise = [torch.randn(B, 1, l.resolution, l.resolution, device=dev) for l in layers]
noise[-1].zero_()
for n in noise[:5]:
    n.requires_grad_(True)
for layer, n in zip(layers, noise):
    del layer.noise_const
    layer.noise_const = n
params = [latent] + noise[:5]
rs = radii(params)
opt = torch.optim.Adam(params, lr=0.4)
ref = torch.rand(B, 3, 32, 32, device=dev)
down = downscaler(R // 32)

times = []
for s in range(a.warmup + a.steps):
    sync()
    t = time.perf_counter()
    opt.zero_grad()
    wp = F.leaky_relu(latent * std + mean, 0.2)
    gen = (G.synthesis(wp, noise_mode="const", force_fp32=True) + 1) / 2
    loss(down(gen), ref, wp).backward()
    opt.step()
    project(params, rs)
    sync()
    if s >= a.warmup:
        times.append((time.perf_counter() - t) * 1000)
ms = statistics.median(times)
if a.json:
    print(json.dumps({"ms_per_step": ms, "batch_size": B, "device": a.device,
                      "threads": torch.get_num_threads(), "resolution": R, "architecture": "stylegan2",
                      "fused_modconv": not a.non_fused}))
else:
    print(f"baseline (stylegan2): {ms:.0f} ms per step (median of {len(times)}), batch {B}, "
          f"{a.device}, {torch.get_num_threads()} threads, resolution {R}")
