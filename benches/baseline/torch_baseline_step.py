#!/usr/bin/env python3
"""Baseline: one PULSE step in plain PyTorch eager mode, the way the reference implementation runs it.

FFHQ-size StyleGAN (v1) synthesis network with random weights (docs/design.md, "The networks"),
latent transform, bicubic downscale to 32x32, 100*L2 + 0.05*GEOCROSS, backward, Adam, projection.
Scaled weights and the fused upsample kernel are rebuilt every step, as the reference does.

usage: .venv/bin/python benches/baseline/torch_baseline_step.py [--batch-size B] [--steps N] [--warmup W] [--threads T] [--device cpu|cuda] [--json]
Prints ms per step (median of N timed steps after W warm-up steps)."""
import argparse, json, math, statistics, time
import torch
import torch.nn.functional as F
from pulse_ops import downscaler, loss, project, radii

p = argparse.ArgumentParser()
p.add_argument("--batch-size", type=int, default=1)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--threads", type=int, default=0)
p.add_argument("--resolution", type=int, default=1024)
p.add_argument("--fmap-max", type=int, default=512)
p.add_argument("--device", default="cpu")
p.add_argument("--json", action="store_true")
a = p.parse_args()
if a.threads: torch.set_num_threads(a.threads)
torch.manual_seed(0)
dev = torch.device(a.device)
torch.set_default_device(dev)
sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
B, R = a.batch_size, a.resolution
k = int(math.log2(R)); L = 2 * k - 2
ch = lambda r: min(8192 // 2 ** (r - 1), a.fmap_max)

def epi_params(c):
    return dict(nw=torch.rand(c) * 0.1, sw=torch.randn(2 * c, 512), sb=torch.randn(2 * c) * 0.1)

blocks = []
for r in range(2, k + 1):
    c, cin = ch(r), ch(r - 1) if r > 2 else ch(r)
    blk = dict(res=2 ** r, c=c, cin=cin, e1=epi_params(c), e2=epi_params(c),
               w0=torch.randn(c, cin, 3, 3), b0=torch.randn(c) * 0.1, w1=torch.randn(c, c, 3, 3), b1=torch.randn(c) * 0.1)
    if r == 2: blk["const"] = torch.randn(1, c, 4, 4)
    blocks.append(blk)
rgb_w, rgb_b = torch.randn(3, ch(k), 1, 1), torch.zeros(3)
blur = (torch.tensor([1., 2., 1.])[:, None] * torch.tensor([1., 2., 1.])[None, :] / 16)[None, None]

def epilogue(x, e, w, n):
    x = x + e["nw"].view(1, -1, 1, 1) * n
    x = F.instance_norm(F.leaky_relu(x, 0.2), eps=1e-5)
    s = F.linear(w, e["sw"] / math.sqrt(512), e["sb"]).view(-1, 2, x.size(1), 1, 1)
    return x * (s[:, 0] + 1) + s[:, 1]

def synthesis(wp, noise):
    x = None
    for i, blk in enumerate(blocks):
        c = blk["c"]
        if i == 0:
            x = blk["const"].expand(wp.size(0), -1, -1, -1) + blk["b0"].view(1, -1, 1, 1)
            x = epilogue(x, blk["e1"], wp[:, 0], noise[0])
            x = F.conv2d(x, blk["w1"] * math.sqrt(2 / (c * 9)), blk["b1"], padding=1)
            x = epilogue(x, blk["e2"], wp[:, 1], noise[1])
            continue
        w = blk["w0"] * math.sqrt(2 / (blk["cin"] * 9))
        if blk["res"] >= 128:
            w = F.pad(w.permute(1, 0, 2, 3), (1, 1, 1, 1))
            w = w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]
            x = F.conv_transpose2d(x, w, stride=2, padding=1)
        else:
            x = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), w, padding=1)
        x = F.conv2d(x, blur.expand(c, -1, -1, -1), padding=1, groups=c) + blk["b0"].view(1, -1, 1, 1)
        x = epilogue(x, blk["e1"], wp[:, 2 * i], noise[2 * i])
        x = F.conv2d(x, blk["w1"] * math.sqrt(2 / (c * 9)), blk["b1"], padding=1)
        x = epilogue(x, blk["e2"], wp[:, 2 * i + 1], noise[2 * i + 1])
    return F.conv2d(x, rgb_w / math.sqrt(ch(k)), rgb_b)

down = downscaler(R // 32)

mean, std = torch.randn(512) * 0.3, torch.rand(512) * 0.5 + 0.2
latent = torch.randn(B, L, 512, requires_grad=True)
noise = [torch.randn(B, 1, 2 ** (i // 2 + 2), 2 ** (i // 2 + 2)) for i in range(L)]
for n in noise[:5]: n.requires_grad_(True)
params = [latent] + noise[:5]
rs = radii(params)
opt = torch.optim.Adam(params, lr=0.4)
ref = torch.rand(B, 3, 32, 32)

times = []
for s in range(a.warmup + a.steps):
    sync(); t = time.perf_counter()
    opt.zero_grad()
    wp = F.leaky_relu(latent * std + mean, 0.2)
    gen = (synthesis(wp, noise) + 1) / 2
    loss(down(gen), ref, wp).backward()
    opt.step()
    project(params, rs)
    sync()
    if s >= a.warmup: times.append((time.perf_counter() - t) * 1000)
ms = statistics.median(times)
if a.json:
    print(json.dumps({"ms_per_step": ms, "batch_size": B, "device": a.device, "threads": torch.get_num_threads(), "resolution": R}))
else:
    print(f"baseline: {ms:.0f} ms per step (median of {len(times)}), batch {B}, {a.device}, {torch.get_num_threads()} threads, resolution {R}")
