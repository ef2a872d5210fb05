"""Draw the 32x32 region map for the hair-colour workflow.

The map is laid out for examples/faces/astronaut32.png (FFHQ-like alignment).
Legend: red = hair, green = skin, blue = background, black = unconstrained.
Shapes are hand-placed in 32x32 pixel units (pixel (x, y) covers [x, x+1) x
[y, y+1)); they are drawn at 8x and sampled at pixel centres.
Run:  python examples/hair/make_regions.py
"""
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
FACE = HERE.parent / "faces" / "astronaut32.png"
S = 8  # drawing scale

HAIR, SKIN, BG, FREE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0)


def sc(points):
    return [(x * S, y * S) for x, y in points]


def ellipse(draw, cx, cy, rx, ry, colour):
    draw.ellipse([(cx - rx) * S, (cy - ry) * S, (cx + rx) * S, (cy + ry) * S], fill=colour)


def make_map():
    img = Image.new("RGB", (32 * S, 32 * S), FREE)
    d = ImageDraw.Draw(img)
    # Background: the grey studio wall left and right of the head.
    d.polygon(sc([(0, 0), (7.5, 0), (3, 2), (1.5, 5), (1.5, 13), (3, 16.5),
                  (7, 17.5), (7, 21), (0, 21)]), fill=BG)
    d.polygon(sc([(28.5, 0), (32, 0), (32, 26), (24, 26), (24, 20), (25.5, 18),
                  (29, 16), (30.5, 12), (30.5, 5)]), fill=BG)
    # Hair: the crown and both sides, leaving a 1-pixel gap to face and wall.
    d.polygon(sc([(9, 0), (27, 0), (29.5, 4), (29.5, 12), (28, 15), (25, 16),
                  (24, 12), (23.5, 8.5), (20, 7.5), (12, 7.5), (8.5, 8.5),
                  (7.5, 14), (5.5, 16), (2.5, 13), (2.5, 4), (5, 1.5)]), fill=HAIR)
    # Skin: the face oval below the fringe (forehead, cheeks, nose, chin) ...
    ellipse(d, 15.5, 16.8, 6.6, 8.8, SKIN)
    # ... minus the eyes and the mouth, which stay unconstrained.
    ellipse(d, 11.8, 12.5, 2.6, 1.4, FREE)
    ellipse(d, 20.8, 12.5, 2.6, 1.4, FREE)
    ellipse(d, 15.5, 21.2, 4.2, 1.8, FREE)
    return img.resize((32, 32), Image.NEAREST)  # sample at pixel centres


if __name__ == "__main__":
    regions = make_map()
    regions.save(HERE / "regions32.png")
    face = Image.open(FACE).convert("RGB")
    preview = Image.new("RGB", (64, 32))
    preview.paste(regions, (0, 0))
    preview.paste(face, (32, 0))
    preview.resize((64 * 8, 32 * 8), Image.NEAREST).save(HERE / "regions32_preview.png")
    print("wrote regions32.png, regions32_preview.png")
