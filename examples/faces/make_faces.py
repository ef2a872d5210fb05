"""Re-create the low-resolution example faces in this folder.

Needs: numpy, Pillow, torch, scikit-image (for the source images).
Run from anywhere:  python examples/faces/make_faces.py
"""
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data

HERE = Path(__file__).resolve().parent

# Crop boxes (left, top, right, bottom) in the 512x512 source images, chosen by
# eye so the face is aligned roughly like FFHQ: face centred, eyes at ~40% of
# the height, eye distance ~25% of the width, some hair and the chin visible.
ASTRONAUT_BOX = (140, 35, 308, 203)   # eyes at ~(203,101) and ~(245,103)
CAMERAMAN_BOX = (150, 92, 290, 232)   # profile; visible eye at ~(234,147)


def cubic(x, a=-0.5):
    """Keys' cubic convolution kernel."""
    x = abs(x)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


def bicubic_downscale(img, f):
    """PULSE's BicubicDownSample: img is float HxWxC in [0,1], factor f."""
    K = 4 * f
    k = torch.tensor([cubic((i - math.floor(K / 2) + 0.5) / f) for i in range(K)],
                     dtype=torch.float64)
    k = k / k.sum()
    x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(1)  # C,1,H,W (channels as batch)
    pad0 = (K - f) // 2
    pad1 = (K - f) - pad0
    # rows: pad top/bottom, vertical kernel, stride f along H
    x = F.pad(x, (0, 0, pad0, pad1), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, K, 1), stride=(f, 1))
    # columns: pad left/right, horizontal kernel, stride f along W
    x = F.pad(x, (pad0, pad1, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, K), stride=(1, f))
    return x.squeeze(1).permute(1, 2, 0).numpy()


def to_u8(x):
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def make(src, box, size):
    """Crop, resize to 1024 with LANCZOS, then PULSE-bicubic down to `size`."""
    hr = Image.fromarray(src).crop(box).resize((1024, 1024), Image.LANCZOS)
    arr = np.asarray(hr, dtype=np.float64) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    out = to_u8(bicubic_downscale(arr, 1024 // size))
    return Image.fromarray(out[:, :, 0] if out.shape[2] == 1 else out)


if __name__ == "__main__":
    astro = data.astronaut()          # 512x512 RGB, public domain (NASA)
    camera = data.camera()            # 512x512 grey uint8
    make(astro, ASTRONAUT_BOX, 32).save(HERE / "astronaut32.png")
    make(astro, ASTRONAUT_BOX, 128).save(HERE / "astronaut128.png")
    make(camera, CAMERAMAN_BOX, 32).save(HERE / "cameraman32.png")  # mode "L"
    print("wrote astronaut32.png, astronaut128.png, cameraman32.png")
