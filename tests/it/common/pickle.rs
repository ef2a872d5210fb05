//! One writer of pickles as Python's `pickle` writes them (NVIDIA's dnnlib networks, numpy
//! arrays) and one loop of random byte edits, for the weight-loader tests.
use tch::{Kind, Tensor};

/// The file a dnnlib pickle's `build_module_src` would create if anything ran it.
pub const MARKER: &str = "BUILD_MODULE_SRC_WAS_EXECUTED";

// ---- a writer of dnnlib pickles, as Python's pickle writes them ----------------------------

/// Writes pickle opcodes the way Python's `pickle` does for protocol 2 (`GLOBAL`, `bytes` as
/// `_codecs.encode(text, 'latin1')`) or 4 (`STACK_GLOBAL`, `MEMOIZE`, `BINBYTES`).
#[derive(Clone)]
pub struct Writer {
    out: Vec<u8>,
    proto: u8,
}

impl Writer {
    pub fn new(proto: u8) -> Self {
        Self { out: vec![0x80, proto], proto }
    }
    pub fn op(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b);
        self
    }
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        if self.proto >= 4 {
            self.str(module).str(name).op(&[0x93, 0x94])
        } else {
            self.op(format!("c{module}\n{name}\n").as_bytes())
        }
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        if self.proto >= 4 && s.len() < 256 {
            self.op(&[0x8c, s.len() as u8]).op(s.as_bytes())
        } else {
            self.op(b"X").op(&(s.len() as u32).to_le_bytes()).op(s.as_bytes())
        }
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        if self.proto >= 3 {
            self.op(b"B").op(&(b.len() as u32).to_le_bytes()).op(b)
        } else {
            let text: String = b.iter().map(|&c| char::from(c)).collect();
            self.global("_codecs", "encode").str(&text).str("latin1").op(&[0x86]).op(b"R")
        }
    }
    pub fn int(&mut self, v: i32) -> &mut Self {
        self.op(b"J").op(&v.to_le_bytes())
    }
    pub fn none(&mut self) -> &mut Self {
        self.op(b"N")
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.op(if v { &[0x88] } else { &[0x89] })
    }
    pub fn mark(&mut self) -> &mut Self {
        self.op(b"(")
    }
    pub fn tuple(&mut self) -> &mut Self {
        self.op(b"t")
    }
    pub fn dtype_f4(&mut self) -> &mut Self {
        self.global("numpy", "dtype").str("f4").bool(false).bool(true).op(&[0x87]).op(b"R");
        self.mark().int(3).str("<").none().none().none().int(-1).int(-1).int(0).tuple().op(b"b")
    }
    pub fn array(&mut self, shape: &[i64], data: &[f32]) -> &mut Self {
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.array_raw(shape, &raw)
    }
    pub fn array_raw(&mut self, shape: &[i64], raw: &[u8]) -> &mut Self {
        self.global("numpy.core.multiarray", "_reconstruct").global("numpy", "ndarray");
        self.int(0).op(&[0x85]).bytes(b"b").op(&[0x87]).op(b"R");
        self.mark().int(1).mark();
        for &d in shape {
            self.int(d as i32);
        }
        self.tuple().dtype_f4().bool(false).bytes(raw).tuple().op(b"b")
    }
    pub fn scalar_f4(&mut self, v: f32) -> &mut Self {
        self.global("numpy.core.multiarray", "scalar").dtype_f4().bytes(&v.to_le_bytes());
        self.op(&[0x86]).op(b"R")
    }
    pub fn stop(&mut self) -> Vec<u8> {
        self.op(b".");
        std::mem::take(&mut self.out)
    }
}

/// A TF variable: name, TF shape, values in TF's (C) order.
pub type TfVar = (String, Vec<i64>, Vec<f32>);

/// A sub-network of `components`: its key and how to write it.
pub type Component<'a> = (&'a str, &'a dyn Fn(&mut Writer));

/// A dnnlib Network: NEWOBJ of the class, then BUILD with its `__getstate__` dict.
pub fn network(w: &mut Writer, name: &str, func: &str, vars: &[TfVar], components: &[Component]) {
    network_v(w, 3, name, func, vars, components)
}

/// [`network`] with the dnnlib state version (StyleGAN writes 3, StyleGAN2 4).
pub fn network_v(
    w: &mut Writer,
    version: i32,
    name: &str,
    func: &str,
    vars: &[TfVar],
    components: &[Component],
) {
    w.global("dnnlib.tflib.network", "Network").op(b")").op(&[0x81]);
    w.op(b"}").mark();
    w.str("version").int(version);
    w.str("name").str(name);
    w.str("static_kwargs")
        .op(b"}")
        .mark()
        .str("resolution")
        .int(1024)
        .str("use_noise")
        .bool(true)
        .op(b"u");
    w.str("components").op(b"}").mark();
    for (key, write) in components {
        w.str(key);
        write(w);
    }
    w.op(b"u");
    w.str("build_module_src")
        .str(&format!("import pathlib\npathlib.Path('{MARKER}').write_text('ran')\n"));
    w.str("build_func_name").str(func);
    w.str("variables").op(b"]").mark();
    for (n, shape, data) in vars {
        w.str(n);
        if shape.is_empty() {
            w.scalar_f4(data[0]);
        } else {
            w.array(shape, data);
        }
        w.op(&[0x86]);
    }
    w.op(b"e").op(b"u").op(b"b");
}

pub fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_kind(Kind::Float).contiguous().flatten(0, -1)).unwrap()
}

/// The same writer by value, for crafting `torch.save` pickles in one expression (protocol 2
/// opcodes: `GLOBAL` lines, `BINUNICODE` strings).
#[derive(Clone)]
pub struct Pickle(Writer);

impl Default for Pickle {
    fn default() -> Self {
        Self::new()
    }
}

impl Pickle {
    pub fn new() -> Self {
        Pickle(Writer::new(2))
    }
    /// A pickle of another protocol (4: `STACK_GLOBAL` spellings).
    pub fn protocol(proto: u8) -> Self {
        Pickle(Writer::new(proto))
    }
    /// Appends the opcodes of `other` (without its protocol header).
    pub fn then(self, other: &Pickle) -> Self {
        let ops = other.0.out[2..].to_vec();
        self.op(&ops)
    }
    pub fn op(mut self, bytes: &[u8]) -> Self {
        self.0.op(bytes);
        self
    }
    pub fn global(mut self, module: &str, name: &str) -> Self {
        self.0.global(module, name);
        self
    }
    pub fn str(mut self, s: &str) -> Self {
        self.0.str(s);
        self
    }
    /// BININT when it fits in an i32, else LONG1 (8 bytes and a zero sign byte).
    pub fn int(mut self, v: u64) -> Self {
        match i32::try_from(v) {
            Ok(v) => self.0.int(v),
            Err(_) => self.0.op(&[0x8a, 9]).op(&v.to_le_bytes()).op(&[0]),
        };
        self
    }
    pub fn mark(self) -> Self {
        self.op(b"(")
    }
    pub fn tuple(self) -> Self {
        self.op(b"t")
    }
    pub fn ints(self, v: &[u32]) -> Self {
        v.iter().fold(self.mark(), |p, &i| p.int(i.into())).tuple()
    }
    /// `_rebuild_tensor_v2(("storage", torch.<class>, key, "cpu", numel[, view]), offset, size,
    /// stride, False, OrderedDict())`
    #[allow(clippy::too_many_arguments)]
    pub fn tensor(
        self,
        class: &str,
        key: &str,
        numel: u64,
        view: Option<(&str, u64, u64)>,
        offset: u32,
        size: &[u32],
        stride: &[u32],
    ) -> Self {
        let p = self
            .global("torch._utils", "_rebuild_tensor_v2")
            .mark()
            .mark()
            .str("storage")
            .global("torch", class)
            .str(key)
            .str("cpu")
            .int(numel);
        let p = match view {
            Some((k, o, n)) => p.mark().str(k).int(o).int(n).tuple(),
            None => p.op(b"N"),
        };
        p.tuple()
            .op(b"Q")
            .int(offset.into())
            .ints(size)
            .ints(stride)
            .op(b"\x89")
            .global("collections", "OrderedDict")
            .op(b")R")
            .tuple()
            .op(b"R")
    }
    pub fn stop(mut self) -> Vec<u8> {
        self.0.stop()
    }
}

/// Calls `f` on `rounds` randomly damaged copies of `original` (bit flips, 0xff bytes, random
/// bytes, sometimes a cut), from a fixed xorshift seed: the fuzz target's entry point must return
/// on each without panicking (cargo fuzz explores far more: scripts/fuzz.sh).
pub fn mutations(original: &[u8], rounds: usize, seed: u64, mut f: impl FnMut(&[u8])) {
    let mut seed = seed;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..rounds {
        let mut bytes = original.to_vec();
        for _ in 0..(1 + next() % 4) {
            let i = (next() as usize) % bytes.len();
            bytes[i] = match next() % 3 {
                0 => bytes[i] ^ (1 << (next() % 8)),
                1 => 0xff,
                _ => next() as u8,
            };
        }
        if next() % 5 == 0 {
            bytes.truncate((next() as usize) % bytes.len());
        }
        f(&bytes);
    }
}
