//! MTCNN's detection cascade as facenet-pytorch's `detect_face` runs it (its defaults: minimum
//! face 20 px, pyramid factor 0.709, thresholds 0.6 / 0.7 / 0.7), so that boxes and landmarks
//! agree with it:
//!
//! 1. An image pyramid from scale `12 / min_face` down by `factor` while the short side stays
//!    at least 12 px; each level is resampled by area averaging (`interpolate(mode="area")`).
//! 2. P-Net on every level; cells with face probability >= `thresholds[0]` become 12x12
//!    windows mapped back to the image; NMS (IoU 0.5) per level, then NMS (IoU 0.7) over all,
//!    box regression, and squaring ("rerec").
//! 3. Each box cropped (clipped to the image, not padded), resized to 24x24 by area; R-Net keeps
//!    probability > `thresholds[1]`; NMS (IoU 0.7), regression, squaring.
//! 4. The same with 48x48 crops and O-Net (> `thresholds[2]`), which also gives the five
//!    landmarks; regression, then NMS by intersection over the smaller box (0.7).
//!
//! Box arithmetic is float32 in the order facenet-pytorch does it. The networks run on the
//! device of the [`Mtcnn`]; the cascade's bookkeeping runs on the CPU.
use super::mtcnn::{Mtcnn, PNet};
use super::{Face, Landmarks};
use tch::{Device, Kind, Tensor};

/// Detection settings; the defaults are facenet-pytorch's `MTCNN()` defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectConfig {
    /// Smallest face searched for, in pixels (sets the first pyramid scale, `12 / min_face`).
    pub min_face: f64,
    /// Probability thresholds of P-Net, R-Net and O-Net.
    pub thresholds: [f32; 3],
    /// Scale step between pyramid levels.
    pub factor: f64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self { min_face: 20.0, thresholds: [0.6, 0.7, 0.7], factor: 0.709 }
    }
}

/// A box during the cascade: corners `[x1, y1, x2, y2]`, score, and the regression offsets of
/// the network that scored it.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    corners: [f32; 4],
    score: f32,
    reg: [f32; 4],
}

/// The most pixels of one pyramid level (as many as the largest photo read, 8192x8192): a
/// level costs 12 bytes a pixel, and P-Net's maps about 40 more per row of a band, so a smaller
/// `min_face` than the photo allows ([`check_min_face`]) would need tens of gigabytes.
pub const MAX_LEVEL_PIXELS: i64 = 8192 * 8192;

/// The side of a pyramid level at `scale`, as facenet-pytorch rounds it.
fn level_side(n: i64, scale: f64) -> i64 {
    (n as f64 * scale + 1.0) as i64
}

/// Refuses a `min_face` whose first pyramid level for an `h` x `w` photo would exceed
/// [`MAX_LEVEL_PIXELS`], with the smallest value this photo takes.
pub fn check_min_face(h: i64, w: i64, config: &DetectConfig) -> Result<(), String> {
    let scale = 12.0 / config.min_face;
    let (hs, ws) = (level_side(h, scale), level_side(w, scale));
    if (hs as f64) * (ws as f64) <= MAX_LEVEL_PIXELS as f64 {
        return Ok(());
    }
    // The level is about (h * 12 / m) x (w * 12 / m): solve for m, with a pixel of margin.
    let smallest = (12.0 * ((h * w) as f64 / MAX_LEVEL_PIXELS as f64).sqrt()).ceil() + 1.0;
    Err(format!(
        "a smallest face of {} px is too small for this {w}x{h} photo: the detector would scale it up to {ws}x{hs} pixels (at most {MAX_LEVEL_PIXELS}); use --min-face {smallest} or more",
        config.min_face
    ))
}

/// The pyramid scales for an `h` x `w` image (facenet-pytorch computes these in float64).
pub fn pyramid(h: i64, w: i64, min_face: f64, factor: f64) -> Vec<f64> {
    let m = 12.0 / min_face;
    let mut min_side = h.min(w) as f64 * m;
    let mut scale = m;
    let mut scales = vec![];
    while min_side >= 12.0 {
        scales.push(scale);
        scale *= factor;
        min_side *= factor;
    }
    scales
}

/// Finds faces in `image`, `[3,H,W]` with values 0..255 (8-bit values as floats), on any device.
/// Faces come largest first (by box area), as facenet-pytorch's `detect` returns them.
pub fn detect(mtcnn: &Mtcnn, image: &Tensor, config: &DetectConfig) -> Vec<Face> {
    detect_with(mtcnn, image, config, &mut |_, _| true).unwrap_or_default()
}

/// [`detect`], reporting progress: `progress(done, total)` after each band of P-Net rows and each
/// later stage (a large photo takes seconds); when it returns false the detection stops and
/// `None` is returned. Pyramid levels over [`MAX_LEVEL_PIXELS`] are skipped (refuse such a
/// `min_face` first with [`check_min_face`]).
pub fn detect_with(
    mtcnn: &Mtcnn,
    image: &Tensor,
    config: &DetectConfig,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Option<Vec<Face>> {
    tch::no_grad(|| {
        let image = image.to_device(mtcnn.device).to_kind(Kind::Float).unsqueeze(0);
        let (h, w) = (image.size()[2], image.size()[3]);
        let levels: Vec<f64> = pyramid(h, w, config.min_face, config.factor)
            .into_iter()
            .filter(|&s| level_side(h, s) * level_side(w, s) <= MAX_LEVEL_PIXELS)
            .collect();
        let total = levels.iter().map(|&s| bands(level_side(h, s))).sum::<usize>() + 2;
        let mut done = 0;
        let mut tick = || {
            done += 1;
            progress(done, total)
        };
        let candidates = propose(mtcnn, &image, &levels, config, &mut tick)?;
        let candidates = refine(mtcnn, &image, candidates, config.thresholds[1], h, w);
        if !tick() {
            return None;
        }
        let mut faces = output(mtcnn, &image, candidates, config.thresholds[2], h, w);
        if !tick() {
            return None;
        }
        // Largest first; equal areas (rare) left to right, then top to bottom.
        let area = |f: &Face| (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]);
        faces.sort_by(|a, b| {
            area(b)
                .total_cmp(&area(a))
                .then(a.bbox[0].total_cmp(&b.bbox[0]))
                .then(a.bbox[1].total_cmp(&b.bbox[1]))
        });
        Some(faces)
    })
}

/// `(x - 127.5) * 0.0078125`: the networks' input normalisation.
fn normalise(x: &Tensor) -> Tensor {
    (x - 127.5) * 0.0078125
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view([-1]))
        .expect("float tensor")
}

/// Stage 1: P-Net over the pyramid levels `scales`, NMS per level and over all levels,
/// regression, squaring. `tick` is called after each band; `None` when it says stop.
fn propose(
    mtcnn: &Mtcnn,
    image: &Tensor,
    scales: &[f64],
    config: &DetectConfig,
    tick: &mut dyn FnMut() -> bool,
) -> Option<Vec<Candidate>> {
    let (h, w) = (image.size()[2], image.size()[3]);
    let mut all = vec![];
    for &scale in scales {
        let (hs, ws) = (level_side(h, scale), level_side(w, scale));
        let level = normalise(&image.adaptive_avg_pool2d([hs, ws]));
        let (reg, prob) = pnet_banded(&mtcnn.pnet, &level, tick)?;
        let found = windows(&reg, &prob, scale as f32, config.thresholds[0]);
        all.extend(nms(&found, 0.5, Overlap::Union).into_iter().map(|i| found[i]));
    }
    let kept = nms(&all, 0.7, Overlap::Union)
        .into_iter()
        .map(|i| {
            let c = all[i];
            let [x1, y1, x2, y2] = c.corners;
            let (rw, rh) = (x2 - x1, y2 - y1);
            let corners =
                [x1 + c.reg[0] * rw, y1 + c.reg[1] * rh, x2 + c.reg[2] * rw, y2 + c.reg[3] * rh];
            Candidate { corners: square(corners), ..c }
        })
        .collect();
    Some(kept)
}

/// Rows of a pyramid level above which P-Net runs in horizontal bands, to bound the memory of
/// its feature maps on large photos (a 4915-px level would need about 1 GB per map).
const BAND_ROWS: i64 = 512;

/// P-Net on one level, in bands of rows when the level is tall. Output row `r` sees input rows
/// `2r..2r+12`, so a band of input rows `[2a, 2b+12)` gives exactly output rows `a..=b`; the last
/// band runs to the end of the level, where `ceil_mode` pooling behaves as on the whole level.
/// `tick` is called after each band; `None` when it says stop.
fn pnet_banded(
    pnet: &PNet,
    level: &Tensor,
    tick: &mut dyn FnMut() -> bool,
) -> Option<(Tensor, Tensor)> {
    let h = level.size()[2];
    if h <= BAND_ROWS + 12 {
        let out = pnet.forward(level);
        return tick().then_some(out);
    }
    let out_rows = (h - 2 + 1) / 2 - 4;
    let step = BAND_ROWS / 2; // output rows per band
    let (mut regs, mut probs) = (vec![], vec![]);
    let mut a = 0;
    while a < out_rows {
        let b = (a + step - 1).min(out_rows - 1);
        let start = 2 * a;
        let len = if b == out_rows - 1 { h - start } else { 2 * b + 12 - start };
        let (reg, prob) = pnet.forward(&level.narrow(2, start, len));
        regs.push(reg);
        probs.push(prob);
        if !tick() {
            return None;
        }
        a = b + 1;
    }
    Some((Tensor::cat(&regs, 2), Tensor::cat(&probs, 2)))
}

/// How many bands [`pnet_banded`] runs on a level of `h` rows.
fn bands(h: i64) -> usize {
    if h <= BAND_ROWS + 12 {
        return 1;
    }
    let out_rows = (h - 2 + 1) / 2 - 4;
    (out_rows as usize).div_ceil((BAND_ROWS / 2) as usize)
}

/// P-Net cells with face probability >= `threshold`, as 12x12 windows in image pixels
/// (facenet-pytorch's `generateBoundingBox`: stride 2, cell 12, corners floored).
fn windows(reg: &Tensor, prob: &Tensor, scale: f32, threshold: f32) -> Vec<Candidate> {
    let (oh, ow) = (prob.size()[2], prob.size()[3]);
    let p = to_vec(&prob.select(1, 1));
    let r = to_vec(reg);
    let plane = (oh * ow) as usize;
    let mut out = vec![];
    for (i, &score) in p.iter().enumerate() {
        if score >= threshold {
            let (y, x) = ((i / ow as usize) as f32, (i % ow as usize) as f32);
            let corners = [
                ((2.0 * x + 1.0) / scale).floor(),
                ((2.0 * y + 1.0) / scale).floor(),
                ((2.0 * x + 12.0) / scale).floor(),
                ((2.0 * y + 12.0) / scale).floor(),
            ];
            let reg = [r[i], r[plane + i], r[2 * plane + i], r[3 * plane + i]];
            out.push(Candidate { corners, score, reg });
        }
    }
    out
}

/// Crops R-Net and O-Net take at a time: a large photo gives thousands of P-Net candidates (7,500
/// for a 2048-pixel photo filled by one face), and R-Net's feature maps for all of them at once
/// took 1.2 GB.
const NET_BATCH: i64 = 256;

/// `forward` on `x`'s first dimension [`NET_BATCH`] at a time, each output concatenated back.
fn in_batches<const N: usize>(x: &Tensor, forward: impl Fn(&Tensor) -> [Tensor; N]) -> [Tensor; N] {
    let n = x.size()[0];
    if n <= NET_BATCH {
        return forward(x);
    }
    let parts: Vec<[Tensor; N]> = (0..n)
        .step_by(NET_BATCH as usize)
        .map(|a| forward(&x.narrow(0, a, NET_BATCH.min(n - a))))
        .collect();
    std::array::from_fn(|k| Tensor::cat(&parts.iter().map(|p| &p[k]).collect::<Vec<_>>(), 0))
}

/// Stage 2: R-Net on 24x24 crops, threshold, NMS, regression, squaring.
fn refine(
    mtcnn: &Mtcnn,
    image: &Tensor,
    candidates: Vec<Candidate>,
    threshold: f32,
    h: i64,
    w: i64,
) -> Vec<Candidate> {
    let (kept, crops) = crops(image, &candidates, 24, h, w);
    if kept.is_empty() {
        return vec![];
    }
    let [reg, prob] = in_batches(&normalise(&crops), |x| {
        let (reg, prob) = mtcnn.rnet.forward(x);
        [reg, prob]
    });
    let (reg, score) = (to_vec(&reg), to_vec(&prob.select(1, 1)));
    let passed: Vec<Candidate> = kept
        .iter()
        .enumerate()
        .filter(|&(k, _)| score[k] > threshold)
        .map(|(k, &c)| Candidate {
            corners: candidates[c].corners,
            score: score[k],
            reg: [reg[4 * k], reg[4 * k + 1], reg[4 * k + 2], reg[4 * k + 3]],
        })
        .collect();
    nms(&passed, 0.7, Overlap::Union)
        .into_iter()
        .map(|i| {
            let c = passed[i];
            Candidate { corners: square(regress(c.corners, c.reg)), ..c }
        })
        .collect()
}

/// Stage 3: O-Net on 48x48 crops: threshold, landmarks, regression, NMS over the smaller box.
fn output(
    mtcnn: &Mtcnn,
    image: &Tensor,
    candidates: Vec<Candidate>,
    threshold: f32,
    h: i64,
    w: i64,
) -> Vec<Face> {
    let (kept, crops) = crops(image, &candidates, 48, h, w);
    if kept.is_empty() {
        return vec![];
    }
    let [reg, points, prob] = in_batches(&normalise(&crops), |x| {
        let (reg, points, prob) = mtcnn.onet.forward(x);
        [reg, points, prob]
    });
    let (reg, points, score) = (to_vec(&reg), to_vec(&points), to_vec(&prob.select(1, 1)));
    let mut faces = vec![];
    let mut boxes = vec![];
    for (k, &c) in kept.iter().enumerate() {
        if score[k] <= threshold {
            continue;
        }
        let [x1, y1, x2, y2] = candidates[c].corners;
        let (bw, bh) = (x2 - x1 + 1.0, y2 - y1 + 1.0);
        let p = &points[10 * k..10 * k + 10];
        let landmarks: Landmarks =
            std::array::from_fn(|j| [bw * p[j] + x1 - 1.0, bh * p[5 + j] + y1 - 1.0]);
        let corners = regress(
            candidates[c].corners,
            [reg[4 * k], reg[4 * k + 1], reg[4 * k + 2], reg[4 * k + 3]],
        );
        boxes.push(Candidate { corners, score: score[k], reg: [0.0; 4] });
        faces.push(Face { bbox: corners, score: score[k], landmarks });
    }
    nms(&boxes, 0.7, Overlap::Min).into_iter().map(|i| faces[i]).collect()
}

/// facenet-pytorch's `bbreg`: offsets scaled by the inclusive width and height.
fn regress(b: [f32; 4], r: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
    [b[0] + r[0] * w, b[1] + r[1] * h, b[2] + r[2] * w, b[3] + r[3] * h]
}

/// facenet-pytorch's `rerec`: the square of side max(w, h) with the same centre.
fn square(b: [f32; 4]) -> [f32; 4] {
    let (h, w) = (b[3] - b[1], b[2] - b[0]);
    let l = w.max(h);
    let x1 = b[0] + w * 0.5 - l * 0.5;
    let y1 = b[1] + h * 0.5 - l * 0.5;
    [x1, y1, x1 + l, y1 + l]
}

/// Crops of the candidates (truncated to integers and clipped to the image, as
/// facenet-pytorch's `pad` does: not padded), each resized to `side` x `side` by area averaging.
/// Returns the indices of the candidates cropped (those overlapping the image) and the crops
/// `[N,3,side,side]` on the image's device. The averaging runs here on each crop's pixels (as
/// `adaptive_avg_pool2d` computes it), which spares one libtorch call per box.
fn crops(
    image: &Tensor,
    candidates: &[Candidate],
    side: i64,
    h: i64,
    w: i64,
) -> (Vec<usize>, Tensor) {
    let mut kept = vec![];
    let mut out: Vec<f32> = vec![];
    for (i, c) in candidates.iter().enumerate() {
        let [x, y, ex, ey] = c.corners.map(|v| v.trunc() as i64);
        let (x, y, ex, ey) = (x.max(1), y.max(1), ex.min(w), ey.min(h));
        if ey > y - 1 && ex > x - 1 {
            let (ch, cw) = (ey - y + 1, ex - x + 1);
            let crop = image.narrow(2, y - 1, ch).narrow(3, x - 1, cw);
            let pixels = to_vec(&crop);
            out.extend(area_resize(&pixels, ch as usize, cw as usize, side as usize));
            kept.push(i);
        }
    }
    let n = kept.len() as i64;
    let crops = Tensor::from_slice(&out).view([n, 3, side, side]).to_device(image.device());
    (kept, crops)
}

/// Area averaging of a `[3,h,w]` image to `[3,side,side]`, as PyTorch's `adaptive_avg_pool2d`
/// (`interpolate(mode="area")`): output `i` averages inputs `floor(i*n/side)..ceil((i+1)*n/side)`,
/// summed row by row in float32 and divided by the rows, then the columns.
fn area_resize(pixels: &[f32], h: usize, w: usize, side: usize) -> Vec<f32> {
    let start = |i: usize, n: usize| (i * n) / side;
    let end = |i: usize, n: usize| ((i + 1) * n).div_ceil(side);
    let mut out = Vec::with_capacity(3 * side * side);
    for plane in pixels.chunks_exact(h * w) {
        for oy in 0..side {
            let (y0, y1) = (start(oy, h), end(oy, h));
            for ox in 0..side {
                let (x0, x1) = (start(ox, w), end(ox, w));
                let mut sum = 0f32;
                for row in plane[y0 * w..y1 * w].chunks_exact(w) {
                    for v in &row[x0..x1] {
                        sum += v;
                    }
                }
                out.push(sum / (y1 - y0) as f32 / (x1 - x0) as f32);
            }
        }
    }
    out
}

/// How two boxes' overlap is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overlap {
    /// Intersection over union, areas `(x2-x1)*(y2-y1)` (torchvision's `nms`).
    Union,
    /// Intersection over the smaller box, areas `(x2-x1+1)*(y2-y1+1)` (facenet-pytorch's
    /// `nms_numpy(..., 'Min')`).
    Min,
}

/// Greedy non-maximum suppression: highest score first, dropping every later box that overlaps
/// a kept one by more than `threshold`. Returns the kept indices, highest score first.
fn nms(boxes: &[Candidate], threshold: f32, overlap: Overlap) -> Vec<usize> {
    let one = if overlap == Overlap::Min { 1.0 } else { 0.0 };
    let area = |b: &[f32; 4]| (b[2] - b[0] + one) * (b[3] - b[1] + one);
    let areas: Vec<f32> = boxes.iter().map(|b| area(&b.corners)).collect();
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| boxes[b].score.total_cmp(&boxes[a].score));
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = vec![];
    for (n, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let a = boxes[i].corners;
        for &j in &order[n + 1..] {
            if suppressed[j] {
                continue;
            }
            let b = boxes[j].corners;
            let iw = (a[2].min(b[2]) - a[0].max(b[0]) + one).max(0.0);
            let ih = (a[3].min(b[3]) - a[1].max(b[1]) + one).max(0.0);
            let inter = iw * ih;
            let o = match overlap {
                Overlap::Union => inter / (areas[i] + areas[j] - inter),
                Overlap::Min => inter / areas[i].min(areas[j]),
            };
            if o > threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(corners: [f32; 4], score: f32) -> Candidate {
        Candidate { corners, score, reg: [0.0; 4] }
    }

    /// R-Net and O-Net in batches give what one call on every crop gives.
    #[test]
    fn networks_in_batches_are_one_call() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mtcnn");
        let mtcnn = Mtcnn::load(&dir, Device::Cpu).unwrap();
        let _seed = crate::rng::seed(3);
        let n = 2 * NET_BATCH + 7;
        let x24 = Tensor::rand([n, 3, 24, 24], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let x48 = Tensor::rand([n, 3, 48, 48], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let rnet = |x: &Tensor| {
            let (a, b) = mtcnn.rnet.forward(x);
            [a, b]
        };
        let onet = |x: &Tensor| {
            let (a, b, c) = mtcnn.onet.forward(x);
            [a, b, c]
        };
        let close = |a: &Tensor, b: &Tensor| {
            assert_eq!(a.size(), b.size());
            let d = (a - b).abs().max().double_value(&[]);
            assert!(d < 1e-5, "{d}");
        };
        for (got, want) in in_batches(&x24, rnet).iter().zip(rnet(&x24).iter()) {
            close(got, want);
        }
        for (got, want) in in_batches(&x48, onet).iter().zip(onet(&x48).iter()) {
            close(got, want);
        }
    }

    #[test]
    fn pyramid_matches_facenet_for_a_512_image() {
        // 512 * 0.6 = 307.2 first; stops once the short side would fall under 12 px.
        let s = pyramid(512, 512, 20.0, 0.709);
        assert!((s[0] - 0.6).abs() < 1e-12);
        assert_eq!(s.len(), 10, "{s:?}");
        assert!(512.0 * s[9] >= 12.0 && 512.0 * s[9] * 0.709 < 12.0);
        assert!(pyramid(11, 500, 20.0, 0.709).is_empty());
    }

    #[test]
    fn min_face_is_bounded_by_the_first_level_size() {
        let tiny = DetectConfig { min_face: 1.0, ..Default::default() };
        let e = check_min_face(4000, 6000, &tiny).unwrap_err();
        assert!(e.contains("6000x4000") && e.contains("--min-face 9 "), "{e}");
        let ok = DetectConfig { min_face: 9.0, ..Default::default() };
        assert!(check_min_face(4000, 6000, &ok).is_ok());
        // The largest photo read takes the default, and any photo takes 13.
        assert!(check_min_face(8192, 8192, &DetectConfig::default()).is_ok());
        let m13 = DetectConfig { min_face: 13.0, ..Default::default() };
        assert!(check_min_face(8192, 8192, &m13).is_ok());
        // A small photo is scaled up as facenet-pytorch does.
        assert!(check_min_face(100, 100, &tiny).is_ok());
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let boxes = [
            cand([0.0, 0.0, 10.0, 10.0], 0.8),
            cand([1.0, 1.0, 11.0, 11.0], 0.9),
            cand([20.0, 20.0, 30.0, 30.0], 0.7),
        ];
        assert_eq!(nms(&boxes, 0.5, Overlap::Union), [1, 2]);
        // IoU of the first two is 81/119 = 0.68: kept apart at 0.7.
        assert_eq!(nms(&boxes, 0.7, Overlap::Union), [1, 0, 2]);
        // A small box inside a big one: IoU small, intersection over the smaller box 1.
        let nested = [cand([0.0, 0.0, 99.0, 99.0], 0.9), cand([10.0, 10.0, 19.0, 19.0], 0.95)];
        assert_eq!(nms(&nested, 0.7, Overlap::Union), [1, 0]);
        assert_eq!(nms(&nested, 0.7, Overlap::Min), [1]);
    }

    #[test]
    fn square_keeps_the_centre() {
        assert_eq!(square([10.0, 20.0, 30.0, 60.0]), [0.0, 20.0, 40.0, 60.0]);
        assert_eq!(regress([0.0, 0.0, 9.0, 19.0], [0.1, 0.0, -0.1, 0.5]), [1.0, 0.0, 8.0, 29.0]);
    }

    #[test]
    fn banded_pnet_equals_the_whole_level() {
        let _seed = crate::rng::seed(0);
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let pnet = PNet::new(&vs.root());
        for h in [BAND_ROWS + 13, 2 * BAND_ROWS + 7, 3 * BAND_ROWS + 40] {
            let level = Tensor::randn([1, 3, h, 30], (Kind::Float, Device::Cpu));
            let (reg, prob) = tch::no_grad(|| pnet.forward(&level));
            let mut count = 0;
            let (breg, bprob) = tch::no_grad(|| {
                pnet_banded(&pnet, &level, &mut || {
                    count += 1;
                    true
                })
            })
            .unwrap();
            assert_eq!(count, bands(h), "{h} rows");
            assert_eq!(breg.size(), reg.size(), "{h} rows");
            assert_eq!(bprob.size(), prob.size(), "{h} rows");
            let diff = (breg - reg).abs().max().double_value(&[]);
            let pdiff = (bprob - prob).abs().max().double_value(&[]);
            assert!(diff < 1e-5 && pdiff < 1e-5, "{h} rows: {diff}, {pdiff}");
        }
    }

    #[test]
    fn area_resize_is_adaptive_avg_pool2d() {
        let _seed = crate::rng::seed(0);
        for (h, w, side) in [(37, 53, 24), (10, 7, 24), (48, 48, 48), (100, 61, 48)] {
            let x = Tensor::rand([1, 3, h, w], (Kind::Float, Device::Cpu)) * 255.0;
            let ours = area_resize(&to_vec(&x), h as usize, w as usize, side as usize);
            let theirs = to_vec(&x.adaptive_avg_pool2d([side, side]));
            let diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-3, "{h}x{w} -> {side}: max difference {diff}");
        }
    }

    #[test]
    fn windows_map_cells_back_to_the_image() {
        // One cell (row 1, column 2) above threshold on a 3x4 map, at scale 0.5.
        let mut p = vec![0f32; 12];
        p[6] = 0.9;
        let prob = Tensor::cat(
            &[
                Tensor::zeros([1, 1, 3, 4], (Kind::Float, Device::Cpu)),
                Tensor::from_slice(&p).view([1, 1, 3, 4]),
            ],
            1,
        );
        let reg = Tensor::arange(48, (Kind::Float, Device::Cpu)).view([1, 4, 3, 4]);
        let w = windows(&reg, &prob, 0.5, 0.6);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].corners, [10.0, 6.0, 32.0, 28.0]);
        assert_eq!(w[0].reg, [6.0, 18.0, 30.0, 42.0]);
    }
}
