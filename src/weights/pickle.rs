//! A restricted unpickler for the pickles inside `torch.save` files (docs/design.md, "Weight files")
//! and for NVIDIA's TensorFlow StyleGAN pickles (`nvidia`).
//!
//! Python's pickle format is a small stack machine whose `GLOBAL` + `REDUCE` opcodes can call any
//! Python function, which is how a malicious `.pt` file runs code. This reader is pure data, like
//! PyTorch's `weights_only=True`: there is no code execution path at all. A `GLOBAL` is resolved
//! only against a short allow-list of names whose effect this module implements itself (building
//! an `OrderedDict`, rebuilding a tensor from a storage, ...); any other name is refused with
//! [`ErrorKind::RefusedGlobal`] the moment it is read, before anything could call it.
//!
//! Each kind of file has its own allow-list ([`Flavour`]): a `torch.save` pickle may name the
//! tensor-rebuild functions, a dnnlib pickle only the numpy array/dtype/scalar reconstructors,
//! `_codecs.encode` (how protocol 2 writes `bytes`) and the `dnnlib.tflib.network.Network` class,
//! which is never instantiated: its `NEWOBJ` + `BUILD` becomes a plain record of its state dict.
//!
//! Objects live in an arena (`Vec<Obj>`) and refer to each other by index, so shared and even
//! cyclic references (possible through the memo) need no reference counting and cannot leak or
//! recurse. Every length read from the file is checked against the bytes actually left before
//! anything is allocated, and [`MAX_WORK`], [`MAX_MEMO`], [`MAX_STACK`] and [`MAX_MARKS`] bound
//! time and memory whatever the input.
use super::dtype::Dtype;
use super::error::{limit, malformed, one_line, ErrorKind};
use std::collections::HashMap;

/// Upper bound on opcodes executed plus elements copied by one pickle. PULSE's synthesis
/// network needs about 5 000; a state dict needs roughly 30 per tensor.
pub(crate) const MAX_WORK: usize = 4_000_000;
/// Upper bound on memo entries (a legitimate pickle memoizes at most once per opcode).
pub(crate) const MAX_MEMO: usize = 1_000_000;
/// Upper bound on the value stack length.
pub(crate) const MAX_STACK: usize = 1_000_000;
/// Upper bound on nested MARKs (tuples/dicts being built inside one another).
pub(crate) const MAX_MARKS: usize = 1_000;
/// Upper bound on storage key length (torch.save writes decimal numbers).
pub(crate) const MAX_STORAGE_KEY_BYTES: usize = 256;
/// Upper bound on tensor dimensions (PyTorch's own limit is lower).
pub(crate) const MAX_NDIM: usize = 64;
/// A strided view may describe more elements than its storage holds (stride 0 broadcasts), but
/// copying it would allocate them all; such views are accepted only up to this many elements.
pub(crate) const MAX_BROADCAST_NUMEL: u64 = 1 << 24;

/// Index of an object in [`Pickle::objs`].
pub(crate) type ObjId = usize;

/// A Python value as far as weight files need them.
#[derive(Debug)]
pub(crate) enum Obj {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as its little-endian two's complement bytes (the legacy
    /// magic number is one).
    BigInt(Vec<u8>),
    /// A float (its value is never needed by a weight file).
    Float,
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<ObjId>),
    List(Vec<ObjId>),
    /// Insertion-ordered pairs, duplicates included (the last one wins, as in Python).
    Dict(Vec<(ObjId, ObjId)>),
    Global(Global),
    Storage(Box<StorageRef>),
    Tensor(Box<TensorSpec>),
    /// A long byte string left in the input (`data[start..start + len]`) instead of copied:
    /// NVIDIA's pickle holds 310 MB of array data (dnnlib flavour only).
    BytesRef {
        start: usize,
        len: usize,
    },
    /// A `dnnlib.tflib.network.Network`: its state dict once `BUILD` has set it.
    Network(Option<ObjId>),
    /// A numpy array or scalar.
    Array(Box<NpArray>),
    /// A numpy dtype.
    Dtype(Box<NpDtype>),
    /// A `torch_utils.persistence` object of NVIDIA's stylegan2-ada-pytorch pickles: its
    /// `meta` dict (`type`, `version`, `module_src`, `class_name`, `state`). The module source
    /// is text, never run.
    Persistent(ObjId),
}

impl Obj {
    /// The Python type name, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Obj::None => "None",
            Obj::Bool(_) => "bool",
            Obj::Int(_) | Obj::BigInt(_) => "int",
            Obj::Float => "float",
            Obj::Str(_) => "str",
            Obj::Bytes(_) | Obj::BytesRef { .. } => "bytes",
            Obj::Tuple(_) => "tuple",
            Obj::List(_) => "list",
            Obj::Dict(_) => "dict",
            Obj::Global(_) => "class or function",
            Obj::Storage(_) => "storage",
            Obj::Tensor(_) => "tensor",
            Obj::Network(_) => "dnnlib Network",
            Obj::Array(_) => "numpy array",
            Obj::Dtype(_) => "numpy dtype",
            Obj::Persistent(_) => "persistent object",
        }
    }
}

/// The allow-list: every global a weight file may name, and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Global {
    /// `collections.OrderedDict`: state dicts are OrderedDicts.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor(storage, offset, size, stride)` (older files)
    RebuildTensor,
    /// `torch._utils._rebuild_parameter(data, requires_grad, hooks)`: an `nn.Parameter`
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state(data, requires_grad, hooks, state)`
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`: a tensor with attributes
    RebuildFromTypeV2,
    /// `torch.Tensor` / `torch.nn.parameter.Parameter`: only as the type of `_rebuild_from_type_v2`
    TensorClass,
    /// `torch.Size(tuple)`: a tuple
    TorchSize,
    /// `torch.FloatStorage` & co. (also `torch.cuda.*`): only inside storage persistent ids
    StorageClass(Dtype),
    /// `dnnlib.tflib.network.Network`: only through `NEWOBJ` with no arguments, then `BUILD`.
    Network,
    /// `numpy.ndarray`: only as the first argument of `_reconstruct`.
    NdArray,
    /// `numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')`: an empty array that
    /// `BUILD` fills.
    Reconstruct,
    /// `numpy.dtype(name, align, copy)`, then `BUILD` with its byte order.
    NpDtype,
    /// `numpy.core.multiarray.scalar(dtype, bytes)`: a numpy scalar such as TF's `lod`.
    NpScalar,
    /// `_codecs.encode(text, 'latin1')`: how pickle protocol 2 writes `bytes`.
    CodecsEncode,
    /// `torch_utils.persistence._reconstruct_persistent_obj(meta)`: becomes an
    /// [`Obj::Persistent`] record of `meta`; nothing of it is imported or run.
    PersistentObj,
    /// `torch.storage._load_from_bytes(b)`: a storage pickled on its own, `b` being a legacy
    /// `torch.save` of it (how a plain `pickle.dump` writes tensors).
    LoadFromBytes,
    /// `dnnlib.util.EasyDict`: a dict (`NEWOBJ` with no arguments, then `SETITEMS`).
    EasyDict,
    /// `builtins.set(items)`: how protocols 2 and 3 write a set (kept as a list).
    Set,
}

/// Which allow-list a pickle is read with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// The pickles of `torch.save` files.
    Torch,
    /// NVIDIA's dnnlib (TensorFlow StyleGAN) network pickles.
    Dnnlib,
    /// NVIDIA's stylegan2-ada-pytorch network pickles (`torch_utils.persistence` objects).
    Persistence,
}

/// A numpy array: `shape`, element type and where its bytes are, once `BUILD` has set them.
#[derive(Clone, Debug)]
pub(crate) struct NpArray {
    pub shape: Vec<i64>,
    pub dtype: Dtype,
    /// Column-major element order (numpy writes the bytes in the array's own order).
    pub fortran: bool,
    /// A `Bytes` or `BytesRef` object holding exactly `numel * dtype.size()` bytes; `None`
    /// until `BUILD`.
    pub data: Option<ObjId>,
}

/// A numpy dtype: the element type, and whether `BUILD` gave it a byte order.
#[derive(Clone, Debug)]
pub(crate) struct NpDtype {
    pub dtype: Dtype,
    pub built: bool,
}

/// A reference to (a slice of) a storage: the raw element buffer several tensors may share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StorageRef {
    /// Which storage: an index into [`Pickle::storages`] (not the key itself, so that a
    /// reference repeated through the memo costs no copy of a long key).
    pub index: usize,
    pub dtype: Dtype,
    /// First element of the slice within the storage (legacy "view" storages are slices).
    pub offset: u64,
    /// Number of elements in the slice.
    pub len: u64,
}

/// A tensor to build once storages are read: `as_strided(size, stride, offset)` of its storage.
#[derive(Clone, Debug)]
pub(crate) struct TensorSpec {
    pub storage: StorageRef,
    /// In elements, relative to the start of `storage`'s slice.
    pub offset: u64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

/// A storage declared by a persistent id: its data must then come from the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeclaredStorage {
    pub key: String,
    pub dtype: Dtype,
    pub numel: u64,
    /// The bytes of a storage the pickle holds itself ([`Global::LoadFromBytes`]).
    pub inline: Option<Inline>,
}

/// Where an inline storage's elements are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Inline {
    /// `data[start..start + len]` of the pickle's input.
    Range { start: usize, len: usize },
    /// Bytes the unpickler made (protocol 2's `_codecs.encode`).
    Owned(Vec<u8>),
}

/// The result of one pickle: the object arena, the root object and the storages it declared.
#[derive(Debug)]
pub(crate) struct Pickle {
    pub objs: Vec<Obj>,
    pub root: ObjId,
    /// In order of first appearance.
    pub storages: Vec<DeclaredStorage>,
}

impl Pickle {
    pub(crate) fn get(&self, id: ObjId) -> &Obj {
        // Ids only ever come from the arena itself, so this cannot fail; `None` keeps it total.
        self.objs.get(id).unwrap_or(&Obj::None)
    }

    pub(crate) fn root(&self) -> &Obj {
        self.get(self.root)
    }
}

/// Limits that depend on the container.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Largest storage (in bytes) the container could possibly hold: a bigger declaration is
    /// refused with `LimitExceeded` (`u64::MAX`: only byte counts that overflow are refused).
    pub max_storage_bytes: u64,
}

/// Unpickles one pickle starting at `data[start]`; returns it and the position after its STOP.
/// Error offsets are `base_offset + position in data`.
pub(crate) fn unpickle(
    data: &[u8],
    start: usize,
    base_offset: u64,
    limits: Limits,
) -> Result<(Pickle, usize), ErrorKind> {
    unpickle_as(data, start, base_offset, limits, Flavour::Torch)
}

/// [`unpickle`] with the allow-list of `flavour`.
pub(crate) fn unpickle_as(
    data: &[u8],
    start: usize,
    base_offset: u64,
    limits: Limits,
    flavour: Flavour,
) -> Result<(Pickle, usize), ErrorKind> {
    let mut u = Unpickler {
        data,
        pos: start,
        base_offset,
        limits,
        flavour,
        objs: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        work: 0,
        storages: Vec::new(),
        storage_index: HashMap::new(),
    };
    let root = u.run()?;
    let pickle = Pickle { objs: u.objs, root, storages: u.storages };
    Ok((pickle, u.pos))
}

// Opcodes (Python's Lib/pickle.py names). Protocol 0/1 text opcodes, INST/OBJ, EXT* and sets are
// deliberately absent: torch.save never writes them.
const MARK: u8 = b'(';
const STOP: u8 = b'.';
const POP: u8 = b'0';
const POP_MARK: u8 = b'1';
const DUP: u8 = b'2';
const BINFLOAT: u8 = b'G';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const NONE: u8 = b'N';
const BINPERSID: u8 = b'Q';
const REDUCE: u8 = b'R';
const BINSTRING: u8 = b'T';
const SHORT_BINSTRING: u8 = b'U';
const BINUNICODE: u8 = b'X';
const APPEND: u8 = b'a';
const BUILD: u8 = b'b';
const GLOBAL: u8 = b'c';
const APPENDS: u8 = b'e';
const BINGET: u8 = b'h';
const LONG_BINGET: u8 = b'j';
const EMPTY_LIST: u8 = b']';
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const SETITEM: u8 = b's';
const TUPLE: u8 = b't';
const SETITEMS: u8 = b'u';
const EMPTY_DICT: u8 = b'}';
const EMPTY_TUPLE: u8 = b')';
const BINBYTES: u8 = b'B';
const SHORT_BINBYTES: u8 = b'C';
const PROTO: u8 = 0x80;
const NEWOBJ: u8 = 0x81;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const LONG1: u8 = 0x8a;
const LONG4: u8 = 0x8b;
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE8: u8 = 0x8d;
const BINBYTES8: u8 = 0x8e;
const STACK_GLOBAL: u8 = 0x93;
const MEMOIZE: u8 = 0x94;
const FRAME: u8 = 0x95;
const BYTEARRAY8: u8 = 0x96;
const EMPTY_SET: u8 = 0x8f;
const ADDITEMS: u8 = 0x90;

/// Highest pickle protocol understood (Python 3.8+ writes 5 at most).
const MAX_PROTOCOL: u8 = 5;
/// Byte strings at least this long are kept as [`Obj::BytesRef`] in a dnnlib pickle.
const BYTES_REF_MIN: usize = 1024;

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    base_offset: u64,
    limits: Limits,
    flavour: Flavour,
    objs: Vec<Obj>,
    stack: Vec<ObjId>,
    /// Stack lengths at each pending MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, ObjId>,
    /// Opcodes executed plus elements copied, checked against [`MAX_WORK`].
    work: usize,
    storages: Vec<DeclaredStorage>,
    storage_index: HashMap<String, usize>,
}

impl<'a> Unpickler<'a> {
    fn run(&mut self) -> Result<ObjId, ErrorKind> {
        loop {
            self.charge(1)?;
            let op_pos = self.pos;
            let op = self.read_u8()?;
            match op {
                PROTO => {
                    let version = self.read_u8()?;
                    if version > MAX_PROTOCOL {
                        return Err(malformed(format!(
                            "pickle protocol {version} is newer than the {MAX_PROTOCOL} this reader understands"
                        )));
                    }
                }
                FRAME => {
                    // Frames only group opcodes for buffered reading; the content is read as usual.
                    self.read_u64()?;
                }
                STOP => return self.pop(),
                MARK => {
                    if self.marks.len() >= MAX_MARKS {
                        return Err(limit(format!("more than {MAX_MARKS} nested pickle MARKs")));
                    }
                    self.marks.push(self.stack.len());
                }
                POP => {
                    self.pop()?;
                }
                POP_MARK => {
                    self.pop_mark()?;
                }
                DUP => {
                    let top = self.top()?;
                    self.push_id(top)?;
                }
                NONE => self.push(Obj::None)?,
                NEWTRUE => self.push(Obj::Bool(true))?,
                NEWFALSE => self.push(Obj::Bool(false))?,
                BININT => {
                    let v = i32::from_le_bytes(self.read_array()?);
                    self.push(Obj::Int(v.into()))?
                }
                BININT1 => {
                    let v = self.read_u8()?;
                    self.push(Obj::Int(v.into()))?
                }
                BININT2 => {
                    let v = u16::from_le_bytes(self.read_array()?);
                    self.push(Obj::Int(v.into()))?
                }
                LONG1 => {
                    let n = usize::from(self.read_u8()?);
                    let bytes = self.read_bytes(n)?;
                    self.push(decode_long(bytes))?
                }
                LONG4 => {
                    let n = self.read_len_i32()?;
                    let bytes = self.read_bytes(n)?;
                    self.push(decode_long(bytes))?
                }
                BINFLOAT => {
                    self.read_array::<8>()?;
                    self.push(Obj::Float)?
                }
                BINUNICODE => {
                    let n = u32::from_le_bytes(self.read_array()?) as usize;
                    self.push_str(n, op_pos)?
                }
                SHORT_BINUNICODE => {
                    let n = usize::from(self.read_u8()?);
                    self.push_str(n, op_pos)?
                }
                BINUNICODE8 => {
                    let n = self.read_len_u64()?;
                    self.push_str(n, op_pos)?
                }
                // Python 2 `str`: torch.load decodes them as UTF-8 text.
                BINSTRING => {
                    let n = self.read_len_i32()?;
                    self.push_str(n, op_pos)?
                }
                SHORT_BINSTRING => {
                    let n = usize::from(self.read_u8()?);
                    self.push_str(n, op_pos)?
                }
                BINBYTES => {
                    let n = u32::from_le_bytes(self.read_array()?) as usize;
                    self.push_bytes(n)?
                }
                SHORT_BINBYTES => {
                    let n = usize::from(self.read_u8()?);
                    self.push_bytes(n)?
                }
                BINBYTES8 | BYTEARRAY8 => {
                    let n = self.read_len_u64()?;
                    self.push_bytes(n)?
                }
                EMPTY_TUPLE => self.push(Obj::Tuple(Vec::new()))?,
                EMPTY_LIST => self.push(Obj::List(Vec::new()))?,
                EMPTY_DICT => self.push(Obj::Dict(Vec::new()))?,
                // Sets (a module's `_non_persistent_buffers_set`) are kept as lists.
                EMPTY_SET => self.push(Obj::List(Vec::new()))?,
                ADDITEMS => {
                    let items = self.pop_mark()?;
                    let set = self.top()?;
                    self.list_extend(set, items)?
                }
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items))?
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(op - TUPLE1 + 1);
                    if self.stack.len() < n + self.mark_floor() {
                        return Err(self.underflow(op_pos));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Obj::Tuple(items))?
                }
                APPEND => {
                    let value = self.pop()?;
                    let list = self.top()?;
                    self.list_extend(list, vec![value])?
                }
                APPENDS => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.list_extend(list, items)?
                }
                SETITEM => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?;
                    self.dict_extend(dict, vec![key, value])?
                }
                SETITEMS => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?;
                    self.dict_extend(dict, items)?
                }
                BINPUT => {
                    let idx = self.read_u8()?;
                    self.memo_put(idx.into())?
                }
                LONG_BINPUT => {
                    let idx = u32::from_le_bytes(self.read_array()?);
                    self.memo_put(idx)?
                }
                MEMOIZE => {
                    let idx =
                        u32::try_from(self.memo.len()).map_err(|_| limit("pickle memo is full"))?;
                    self.memo_put(idx)?
                }
                BINGET => {
                    let idx = self.read_u8()?;
                    self.memo_get(idx.into())?
                }
                LONG_BINGET => {
                    let idx = u32::from_le_bytes(self.read_array()?);
                    self.memo_get(idx)?
                }
                GLOBAL => {
                    let module = self.read_line()?;
                    let name = self.read_line()?;
                    let g = resolve_global(&module, &name, self.flavour)?;
                    self.push(Obj::Global(g))?
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let g = match (&self.objs[module], &self.objs[name]) {
                        (Obj::Str(m), Obj::Str(n)) => resolve_global(m, n, self.flavour)?,
                        _ => return Err(malformed("STACK_GLOBAL needs two strings")),
                    };
                    self.push(Obj::Global(g))?
                }
                REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let result = self.call(callable, args, 0)?;
                    self.push_id(result)?
                }
                NEWOBJ => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let result = self.new_object(class, args)?;
                    self.push_id(result)?
                }
                BUILD => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    self.build(target, state, op_pos)?
                }
                BINPERSID if self.flavour != Flavour::Torch => {
                    return Err(malformed(format!(
                    "a persistent id at byte {} in a network pickle (only torch.save writes them)",
                    self.offset(op_pos)
                )))
                }
                BINPERSID => {
                    let pid = self.pop()?;
                    let storage = self.persistent_load(pid)?;
                    self.push(storage)?
                }
                _ => {
                    return Err(ErrorKind::UnsupportedOpcode {
                        opcode: op,
                        offset: self.offset(op_pos),
                    })
                }
            }
        }
    }

    // ---- reading bytes: every read is bounds-checked and ends in `Truncated` at end of input

    fn offset(&self, pos: usize) -> u64 {
        self.base_offset.saturating_add(pos as u64)
    }

    fn read_bytes(&mut self, n: usize) -> Result<&'a [u8], ErrorKind> {
        let end = self.pos.checked_add(n).ok_or(ErrorKind::Truncated)?;
        let bytes = self.data.get(self.pos..end).ok_or(ErrorKind::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N], ErrorKind> {
        let bytes = self.read_bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn read_u8(&mut self) -> Result<u8, ErrorKind> {
        Ok(self.read_array::<1>()?[0])
    }

    fn read_u64(&mut self) -> Result<u64, ErrorKind> {
        Ok(u64::from_le_bytes(self.read_array()?))
    }

    /// A length that must fit in the bytes left (checked again by `read_bytes`).
    fn read_len_u64(&mut self) -> Result<usize, ErrorKind> {
        let n = self.read_u64()?;
        usize::try_from(n).map_err(|_| ErrorKind::Truncated)
    }

    fn read_len_i32(&mut self) -> Result<usize, ErrorKind> {
        let n = i32::from_le_bytes(self.read_array()?);
        usize::try_from(n).map_err(|_| malformed(format!("negative length {n} in pickle")))
    }

    /// A newline-terminated line (the operands of GLOBAL).
    fn read_line(&mut self) -> Result<String, ErrorKind> {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        let n = rest.iter().position(|&b| b == b'\n').ok_or(ErrorKind::Truncated)?;
        let line = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(line)
    }

    /// BINBYTES & co.: a dnnlib pickle's long payloads (array data) stay in the input.
    fn push_bytes(&mut self, n: usize) -> Result<(), ErrorKind> {
        let start = self.pos;
        let b = self.read_bytes(n)?;
        if self.flavour != Flavour::Torch && n >= BYTES_REF_MIN {
            return self.push(Obj::BytesRef { start, len: n });
        }
        let b = b.to_vec();
        self.push(Obj::Bytes(b))
    }

    fn push_str(&mut self, n: usize, op_pos: usize) -> Result<(), ErrorKind> {
        let bytes = self.read_bytes(n)?;
        let s = std::str::from_utf8(bytes).map_err(|_| {
            malformed(format!("invalid UTF-8 string at byte {}", self.offset(op_pos)))
        })?;
        self.push(Obj::Str(s.to_owned()))
    }

    // ---- the stack, marks and memo

    fn charge(&mut self, n: usize) -> Result<(), ErrorKind> {
        self.work = self.work.saturating_add(n);
        if self.work > MAX_WORK {
            return Err(limit(format!("the pickle needs more than {MAX_WORK} operations")));
        }
        Ok(())
    }

    fn push(&mut self, obj: Obj) -> Result<(), ErrorKind> {
        self.objs.push(obj);
        self.push_id(self.objs.len() - 1)
    }

    fn push_id(&mut self, id: ObjId) -> Result<(), ErrorKind> {
        if self.stack.len() >= MAX_STACK {
            return Err(limit(format!("pickle stack deeper than {MAX_STACK} entries")));
        }
        self.stack.push(id);
        Ok(())
    }

    /// The lowest stack index the current MARK lets opcodes pop to.
    fn mark_floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn underflow(&self, op_pos: usize) -> ErrorKind {
        malformed(format!("pickle stack underflow at byte {}", self.offset(op_pos)))
    }

    /// Pops the top of the stack; like Python, an opcode cannot reach below the latest MARK.
    fn pop(&mut self) -> Result<ObjId, ErrorKind> {
        let top = self.top()?;
        self.stack.pop();
        Ok(top)
    }

    fn top(&self) -> Result<ObjId, ErrorKind> {
        if self.stack.len() <= self.mark_floor() {
            return Err(malformed("pickle stack underflow"));
        }
        self.stack.last().copied().ok_or_else(|| malformed("pickle stack underflow"))
    }

    /// Pops everything above the latest MARK, and the MARK.
    fn pop_mark(&mut self) -> Result<Vec<ObjId>, ErrorKind> {
        let mark =
            self.marks.pop().ok_or_else(|| malformed("pickle uses a MARK that was never set"))?;
        if mark > self.stack.len() {
            return Err(malformed("pickle MARK is above the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_put(&mut self, idx: u32) -> Result<(), ErrorKind> {
        let top = self.top()?;
        if !self.memo.contains_key(&idx) && self.memo.len() >= MAX_MEMO {
            return Err(limit(format!("more than {MAX_MEMO} pickle memo entries")));
        }
        self.memo.insert(idx, top);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> Result<(), ErrorKind> {
        let id = *self.memo.get(&idx).ok_or_else(|| {
            malformed(format!("pickle memo entry {idx} is used before it is set"))
        })?;
        self.push_id(id)
    }

    // ---- containers

    fn list_extend(&mut self, list: ObjId, items: Vec<ObjId>) -> Result<(), ErrorKind> {
        match &mut self.objs[list] {
            Obj::List(v) => {
                v.extend(items);
                Ok(())
            }
            other => Err(malformed(format!("APPEND to a {} instead of a list", other.type_name()))),
        }
    }

    fn dict_extend(&mut self, dict: ObjId, items: Vec<ObjId>) -> Result<(), ErrorKind> {
        if !items.len().is_multiple_of(2) {
            return Err(malformed("SETITEMS with a key but no value"));
        }
        match &mut self.objs[dict] {
            Obj::Dict(pairs) => {
                pairs.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1])));
                Ok(())
            }
            other => {
                Err(malformed(format!("SETITEM on a {} instead of a dict", other.type_name())))
            }
        }
    }

    fn tuple_items(&mut self, id: ObjId, what: &str) -> Result<Vec<ObjId>, ErrorKind> {
        match &self.objs[id] {
            Obj::Tuple(items) | Obj::List(items) => {
                let items = items.clone();
                self.charge(items.len())?;
                Ok(items)
            }
            other => {
                Err(malformed(format!("{what} is a {} instead of a tuple", other.type_name())))
            }
        }
    }

    fn int(&self, id: ObjId, what: &str) -> Result<i64, ErrorKind> {
        match &self.objs[id] {
            Obj::Int(v) => Ok(*v),
            Obj::Bool(b) => Ok(i64::from(*b)),
            other => {
                Err(malformed(format!("{what} is a {} instead of an integer", other.type_name())))
            }
        }
    }

    fn ints(&mut self, id: ObjId, what: &str) -> Result<Vec<i64>, ErrorKind> {
        let items = self.tuple_items(id, what)?;
        items.iter().map(|&i| self.int(i, what)).collect()
    }

    // ---- the allow-listed callables

    /// REDUCE: `callable(*args)` for the allow-listed callables only. Each family of globals
    /// (see [`resolve_global`]) has its own function.
    fn call(&mut self, callable: ObjId, args: ObjId, depth: u8) -> Result<ObjId, ErrorKind> {
        let global = match &self.objs[callable] {
            Obj::Global(g) => *g,
            other => {
                return Err(malformed(format!(
                    "REDUCE calls a {}, which is not callable",
                    other.type_name()
                )))
            }
        };
        let args = self.tuple_items(args, "REDUCE arguments")?;
        match global {
            Global::OrderedDict
            | Global::TorchSize
            | Global::RebuildTensorV2
            | Global::RebuildTensor
            | Global::RebuildParameter
            | Global::RebuildParameterWithState
            | Global::RebuildFromTypeV2
            | Global::TensorClass
            | Global::StorageClass(_) => self.call_torch(global, &args, depth),
            Global::NdArray
            | Global::Reconstruct
            | Global::NpDtype
            | Global::NpScalar
            | Global::CodecsEncode => self.call_numpy(global, &args),
            Global::PersistentObj | Global::LoadFromBytes | Global::EasyDict | Global::Set => {
                self.call_persistence(global, &args)
            }
            Global::Network => Err(malformed(
                "the dnnlib Network class is called (a __reduce__ payload): a network pickle only rebuilds it from its state",
            )),
        }
    }

    /// State dicts, `torch.Size` and tensor rebuilding.
    fn call_torch(
        &mut self,
        global: Global,
        args: &[ObjId],
        depth: u8,
    ) -> Result<ObjId, ErrorKind> {
        match global {
            Global::OrderedDict => {
                arity(args, 0..=1, "OrderedDict")?;
                let pairs = match args.first() {
                    None => Vec::new(),
                    Some(&items) => self.dict_pairs(items)?,
                };
                self.new_obj(Obj::Dict(pairs))
            }
            Global::TorchSize => {
                arity(args, 1..=1, "torch.Size")?;
                let dims = self.tuple_items(args[0], "torch.Size argument")?;
                self.new_obj(Obj::Tuple(dims))
            }
            Global::RebuildTensorV2 => {
                arity(args, 6..=7, "_rebuild_tensor_v2")?;
                self.rebuild_tensor(&args[..4])
            }
            Global::RebuildTensor => {
                arity(args, 4..=4, "_rebuild_tensor")?;
                self.rebuild_tensor(&args[..4])
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                arity(args, 3..=4, "_rebuild_parameter")?;
                match &self.objs[args[0]] {
                    Obj::Tensor(_) => Ok(args[0]),
                    other => Err(malformed(format!(
                        "a parameter wraps a {} instead of a tensor",
                        other.type_name()
                    ))),
                }
            }
            Global::RebuildFromTypeV2 => {
                arity(args, 4..=4, "_rebuild_from_type_v2")?;
                // Only one level: the inner function must be a plain tensor rebuild.
                if depth > 0 || !matches!(self.objs[args[1]], Obj::Global(Global::TensorClass)) {
                    return Err(malformed("_rebuild_from_type_v2 of a non-tensor type"));
                }
                self.call(args[0], args[2], depth + 1)
            }
            Global::TensorClass | Global::StorageClass(_) => Err(malformed(
                "a tensor or storage class is called directly instead of through torch._utils",
            )),
            other => unreachable_global(other),
        }
    }

    /// numpy arrays, dtypes and scalars, and protocol 2's bytes.
    fn call_numpy(&mut self, global: Global, args: &[ObjId]) -> Result<ObjId, ErrorKind> {
        match global {
            Global::NdArray => Err(malformed("numpy.ndarray is called directly")),
            Global::Reconstruct => {
                arity(args, 3..=3, "numpy _reconstruct")?;
                if !matches!(self.objs[args[0]], Obj::Global(Global::NdArray)) {
                    return Err(malformed("numpy _reconstruct of a class other than ndarray"));
                }
                self.new_obj(Obj::Array(Box::new(NpArray {
                    shape: Vec::new(),
                    dtype: Dtype::U8,
                    fortran: false,
                    data: None,
                })))
            }
            Global::NpDtype => {
                arity(args, 1..=3, "numpy.dtype")?;
                let name = short_text(&self.objs[args[0]], 16, "numpy dtype name")?;
                let dtype = numpy_dtype(&name)?;
                self.new_obj(Obj::Dtype(Box::new(NpDtype { dtype, built: false })))
            }
            Global::NpScalar => {
                arity(args, 2..=2, "numpy scalar")?;
                let dtype = match &self.objs[args[0]] {
                    Obj::Dtype(d) => d.dtype,
                    other => {
                        return Err(malformed(format!(
                            "numpy scalar of a {} instead of a dtype",
                            other.type_name()
                        )))
                    }
                };
                self.check_array_bytes(args[1], &[], dtype)?;
                self.new_obj(Obj::Array(Box::new(NpArray {
                    shape: Vec::new(),
                    dtype,
                    fortran: false,
                    data: Some(args[1]),
                })))
            }
            Global::CodecsEncode => {
                arity(args, 2..=2, "_codecs.encode")?;
                match &self.objs[args[1]] {
                    Obj::Str(e) if matches!(e.as_str(), "latin1" | "latin-1" | "iso-8859-1") => {}
                    _ => {
                        return Err(malformed("_codecs.encode with an encoding other than latin1"))
                    }
                }
                let Obj::Str(text) = &self.objs[args[0]] else {
                    return Err(malformed("_codecs.encode of something other than text"));
                };
                let bytes: Option<Vec<u8>> =
                    text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
                let bytes = bytes.ok_or_else(|| {
                    malformed("_codecs.encode of text with characters beyond latin1")
                })?;
                self.charge(bytes.len() / 1024)?;
                self.new_obj(Obj::Bytes(bytes))
            }

            other => unreachable_global(other),
        }
    }

    /// stylegan2-ada-pytorch's persistent objects, nested storages, `EasyDict` and sets.
    fn call_persistence(&mut self, global: Global, args: &[ObjId]) -> Result<ObjId, ErrorKind> {
        match global {
            Global::PersistentObj => {
                arity(args, 1..=1, "_reconstruct_persistent_obj")?;
                if !matches!(self.objs[args[0]], Obj::Dict(_)) {
                    return Err(malformed("a persistent object's description is not a dict"));
                }
                self.new_obj(Obj::Persistent(args[0]))
            }
            Global::LoadFromBytes => {
                arity(args, 1..=1, "torch.storage._load_from_bytes")?;
                self.load_from_bytes(args[0])
            }
            Global::EasyDict => {
                arity(args, 0..=1, "EasyDict")?;
                let pairs = match args.first() {
                    None => Vec::new(),
                    Some(&items) => self.dict_pairs(items)?,
                };
                self.new_obj(Obj::Dict(pairs))
            }
            Global::Set => {
                arity(args, 0..=1, "set")?;
                let items = match args.first() {
                    None => Vec::new(),
                    Some(&items) => self.tuple_items(items, "set argument")?,
                };
                self.new_obj(Obj::List(items))
            }
            other => unreachable_global(other),
        }
    }

    /// BUILD: sets an object's state. `OrderedDict._metadata` in state dicts and the
    /// attributes of a tensor subclass are not needed, so dropped; a dnnlib network keeps its
    /// state dict; numpy arrays and dtypes take their layout from it.
    fn build(&mut self, target: ObjId, state: ObjId, op_pos: usize) -> Result<(), ErrorKind> {
        let at = self.offset(op_pos);
        match (&self.objs[target], self.flavour) {
            (Obj::Dict(_) | Obj::Tensor(_), Flavour::Torch | Flavour::Persistence) => Ok(()),
            (Obj::Network(None), _) => {
                if !matches!(self.objs[state], Obj::Dict(_)) {
                    return Err(malformed(format!(
                        "a dnnlib Network's state is a {} instead of a dict (byte {at})",
                        self.objs[state].type_name()
                    )));
                }
                self.objs[target] = Obj::Network(Some(state));
                Ok(())
            }
            (Obj::Dtype(d), _) if !d.built => {
                let fields = self.tuple_items(state, "numpy dtype state")?;
                if !(8..=9).contains(&fields.len()) {
                    return Err(malformed("numpy dtype state is not an 8- or 9-tuple"));
                }
                let order = short_text(&self.objs[fields[1]], 1, "numpy byte order")?;
                if !matches!(&*order, "<" | "=" | "|") {
                    return Err(ErrorKind::UnsupportedDtype(format!(
                        "numpy byte order '{}' (only little-endian arrays are read)",
                        one_line(&order)
                    )));
                }
                // Sub-arrays, records and object fields would make this no plain number type.
                if fields[2..5].iter().any(|&f| !matches!(self.objs[f], Obj::None)) {
                    return Err(ErrorKind::UnsupportedDtype("structured numpy dtype".into()));
                }
                if let Obj::Dtype(d) = &mut self.objs[target] {
                    d.built = true;
                }
                Ok(())
            }
            (Obj::Array(a), _) if a.data.is_none() => {
                let mut fields = self.tuple_items(state, "numpy array state")?;
                // numpy writes (version, shape, dtype, fortran, data); old versions lack the
                // version.
                if fields.len() == 5 {
                    fields.remove(0);
                }
                if fields.len() != 4 {
                    return Err(malformed("numpy array state is not a 5-tuple"));
                }
                let shape = self.ints(fields[0], "numpy array shape")?;
                if shape.len() > MAX_NDIM {
                    return Err(limit(format!("numpy array has more than {MAX_NDIM} dimensions")));
                }
                if shape.iter().any(|&d| d < 0) {
                    return Err(malformed("negative numpy array dimension"));
                }
                let dtype = match &self.objs[fields[1]] {
                    Obj::Dtype(d) => d.dtype,
                    other => {
                        return Err(malformed(format!(
                            "numpy array dtype is a {}",
                            other.type_name()
                        )))
                    }
                };
                let fortran = match &self.objs[fields[2]] {
                    Obj::Bool(b) => *b,
                    Obj::Int(i) => *i != 0,
                    _ => return Err(malformed("numpy array order flag is not a bool")),
                };
                self.check_array_bytes(fields[3], &shape, dtype)?;
                self.objs[target] =
                    Obj::Array(Box::new(NpArray { shape, dtype, fortran, data: Some(fields[3]) }));
                Ok(())
            }
            (other, _) => Err(malformed(format!("BUILD on a {} at byte {at}", other.type_name()))),
        }
    }

    /// The bytes of an array or scalar must be exactly `numel * size` long (no object arrays).
    fn check_array_bytes(&self, data: ObjId, shape: &[i64], dtype: Dtype) -> Result<(), ErrorKind> {
        let len = match &self.objs[data] {
            Obj::Bytes(b) => b.len(),
            Obj::BytesRef { len, .. } => *len,
            other => {
                return Err(malformed(format!(
                    "numpy data is a {} instead of bytes",
                    other.type_name()
                )))
            }
        };
        let expected = shape
            .iter()
            .try_fold(dtype.size() as u64, |n, &d| n.checked_mul(d as u64))
            .ok_or_else(|| limit("numpy array size overflows"))?;
        if expected != len as u64 {
            return Err(malformed(format!(
                "numpy array of shape {shape:?} has {len} bytes of data, {expected} expected"
            )));
        }
        Ok(())
    }

    /// NEWOBJ: `cls.__new__(cls, *args)`, which only makes sense for the container classes.
    fn new_object(&mut self, class: ObjId, args: ObjId) -> Result<ObjId, ErrorKind> {
        match &self.objs[class] {
            Obj::Global(Global::OrderedDict | Global::EasyDict) => {
                self.new_obj(Obj::Dict(Vec::new()))
            }
            Obj::Global(Global::TorchSize) => self.call(class, args, 0),
            Obj::Global(Global::Network) => {
                if !matches!(&self.objs[args], Obj::Tuple(v) if v.is_empty()) {
                    return Err(malformed("a dnnlib Network is created with arguments"));
                }
                self.new_obj(Obj::Network(None))
            }
            other => Err(malformed(format!("NEWOBJ of a {} is not supported", other.type_name()))),
        }
    }

    fn new_obj(&mut self, obj: Obj) -> Result<ObjId, ErrorKind> {
        self.objs.push(obj);
        Ok(self.objs.len() - 1)
    }

    /// The pairs of `OrderedDict(items)`: a dict, or a sequence of 2-item sequences.
    fn dict_pairs(&mut self, items: ObjId) -> Result<Vec<(ObjId, ObjId)>, ErrorKind> {
        if let Obj::Dict(pairs) = &self.objs[items] {
            let pairs = pairs.clone();
            self.charge(pairs.len())?;
            return Ok(pairs);
        }
        let items = self.tuple_items(items, "OrderedDict argument")?;
        let mut pairs = Vec::with_capacity(items.len());
        for item in items {
            match &self.objs[item] {
                Obj::Tuple(kv) | Obj::List(kv) if kv.len() == 2 => pairs.push((kv[0], kv[1])),
                _ => return Err(malformed("OrderedDict item is not a (key, value) pair")),
            }
        }
        Ok(pairs)
    }

    /// `_rebuild_tensor(storage, storage_offset, size, stride)`: checks that the view stays
    /// inside its storage, so building it later can never read out of bounds.
    fn rebuild_tensor(&mut self, args: &[ObjId]) -> Result<ObjId, ErrorKind> {
        let storage = match &self.objs[args[0]] {
            Obj::Storage(s) => (**s).clone(),
            other => {
                return Err(malformed(format!(
                    "a tensor is built from a {} instead of a storage",
                    other.type_name()
                )))
            }
        };
        let offset = self.int(args[1], "tensor storage offset")?;
        let size = self.ints(args[2], "tensor size")?;
        let stride = self.ints(args[3], "tensor stride")?;
        let offset = u64::try_from(offset)
            .map_err(|_| malformed(format!("negative tensor storage offset {offset}")))?;
        check_view(&storage, offset, &size, &stride)?;
        self.new_obj(Obj::Tensor(Box::new(TensorSpec { storage, offset, size, stride })))
    }

    // ---- persistent ids: where the storages come from

    /// BINPERSID `("storage", storage_class, key, location, numel[, view_metadata])`: a storage
    /// whose bytes the container holds elsewhere. The location (`cpu`, `cuda:0`, ...) is
    /// ignored: everything loads onto the CPU.
    fn persistent_load(&mut self, pid: ObjId) -> Result<Obj, ErrorKind> {
        let fields = self.tuple_items(pid, "persistent id")?;
        let tag = match fields.first() {
            Some(&f) => short_text(&self.objs[f], 16, "persistent id tag")?,
            None => "".into(),
        };
        match &*tag {
            "storage" if (5..=6).contains(&fields.len()) => {}
            "module" => {
                return Err(malformed(
                    "the file holds a whole pickled model, not a state dict (save model.state_dict() instead)",
                ))
            }
            other => {
                return Err(malformed(format!(
                    "unknown persistent id '{}' with {} fields",
                    one_line(other),
                    fields.len()
                )))
            }
        }
        let dtype = match &self.objs[fields[1]] {
            Obj::Global(Global::StorageClass(dtype)) => *dtype,
            other => {
                return Err(malformed(format!(
                    "storage type is a {} instead of a storage class",
                    other.type_name()
                )))
            }
        };
        let key =
            short_text(&self.objs[fields[2]], MAX_STORAGE_KEY_BYTES, "storage key")?.into_owned();
        let numel = self.int(fields[4], "storage size")?;
        let numel = u64::try_from(numel)
            .map_err(|_| malformed(format!("negative storage size {numel}")))?;
        let nbytes = numel.checked_mul(dtype.size() as u64);
        if nbytes.is_none_or(|n| n > self.limits.max_storage_bytes) {
            return Err(limit(format!(
                "storage '{}' declares {numel} elements of {} bytes, more than the file can hold ({} bytes at most)",
                one_line(&key),
                dtype.size(),
                self.limits.max_storage_bytes
            )));
        }
        let index = self.declare_storage(key, dtype, numel)?;
        let mut storage = StorageRef { index, dtype, offset: 0, len: numel };
        // Legacy files of old torch versions: the storage is a slice (view_key, offset, size).
        if let Some(&view) = fields.get(5) {
            if !matches!(self.objs[view], Obj::None) {
                let view = self.tuple_items(view, "storage view")?;
                if view.len() != 3 {
                    return Err(malformed("storage view is not (key, offset, size)"));
                }
                let offset = self.int(view[1], "storage view offset")?;
                let len = self.int(view[2], "storage view size")?;
                let (offset, len) = match (u64::try_from(offset), u64::try_from(len)) {
                    (Ok(o), Ok(l)) if o.checked_add(l).is_some_and(|end| end <= numel) => (o, l),
                    _ => return Err(malformed("storage view lies outside its storage")),
                };
                storage.offset = offset;
                storage.len = len;
            }
        }
        Ok(Obj::Storage(Box::new(storage)))
    }

    /// `torch.storage._load_from_bytes(b)`: `b` is a legacy `torch.save` of one storage. Its
    /// pickles are read with the `torch.save` allow-list; its elements stay where they are.
    fn load_from_bytes(&mut self, b: ObjId) -> Result<ObjId, ErrorKind> {
        let owned;
        let (bytes, base) = match &self.objs[b] {
            Obj::BytesRef { start, len } => {
                let data: &'a [u8] = self.data;
                (&data[*start..*start + *len], Some(*start))
            }
            Obj::Bytes(v) => {
                owned = v.clone();
                (owned.as_slice(), None)
            }
            other => {
                return Err(malformed(format!(
                    "a storage is loaded from a {} instead of bytes",
                    other.type_name()
                )))
            }
        };
        let nested = nested_storage(bytes)?;
        // Each byte of the nested pickles is at most one opcode: reading them is work.
        self.charge(nested.data_start)?;
        let data = &bytes[nested.data_start..nested.data_start + nested.data_len];
        let inline = match base {
            Some(start) => Inline::Range { start: start + nested.data_start, len: nested.data_len },
            None => Inline::Owned(data.to_vec()),
        };
        let index = self.storages.len();
        let key = format!("inline storage {index}");
        self.storage_index.insert(key.clone(), index);
        self.storages.push(DeclaredStorage {
            key,
            dtype: nested.dtype,
            numel: nested.numel,
            inline: Some(inline),
        });
        let storage = StorageRef { index, dtype: nested.dtype, offset: 0, len: nested.numel };
        self.new_obj(Obj::Storage(Box::new(storage)))
    }

    /// Records a storage and returns its index; a key declared twice must agree on dtype and
    /// size.
    fn declare_storage(
        &mut self,
        key: String,
        dtype: Dtype,
        numel: u64,
    ) -> Result<usize, ErrorKind> {
        if let Some(&i) = self.storage_index.get(&key) {
            let known = &self.storages[i];
            if known.dtype != dtype || known.numel != numel {
                return Err(malformed(format!(
                    "storage '{}' is declared twice with different types or sizes",
                    one_line(&key)
                )));
            }
            return Ok(i);
        }
        let i = self.storages.len();
        self.storage_index.insert(key.clone(), i);
        self.storages.push(DeclaredStorage { key, dtype, numel, inline: None });
        Ok(i)
    }
}

/// Text of a short string-like value (`str`, Python 2 `bytes`, or a number used as a key).
/// The length is checked before anything is decoded or copied: a hostile pickle can repeat one
/// huge string millions of times through the memo.
pub(crate) fn short_text<'o>(
    obj: &'o Obj,
    max: usize,
    what: &str,
) -> Result<std::borrow::Cow<'o, str>, ErrorKind> {
    let too_long = || limit(format!("{what} is longer than {max} bytes"));
    match obj {
        Obj::Str(s) if s.len() > max => Err(too_long()),
        Obj::Bytes(b) if b.len() > max => Err(too_long()),
        Obj::BytesRef { .. } => Err(too_long()),
        Obj::Str(s) => Ok(s.as_str().into()),
        Obj::Bytes(b) => Ok(String::from_utf8_lossy(b)),
        Obj::Int(i) => Ok(i.to_string().into()),
        other => Err(malformed(format!("{what} is a {} instead of a string", other.type_name()))),
    }
}

/// Checks a strided view against its storage slice: non-negative sizes and strides, every
/// element it can reach inside the slice, and a bounded element count.
pub(crate) fn check_view(
    storage: &StorageRef,
    offset: u64,
    size: &[i64],
    stride: &[i64],
) -> Result<(), ErrorKind> {
    if size.len() != stride.len() {
        return Err(malformed(format!(
            "tensor has {} sizes but {} strides",
            size.len(),
            stride.len()
        )));
    }
    if size.len() > MAX_NDIM {
        return Err(limit(format!("tensor has more than {MAX_NDIM} dimensions")));
    }
    if size.iter().chain(stride).any(|&v| v < 0) {
        return Err(malformed("negative tensor size or stride"));
    }
    let bad = || malformed("tensor reaches past the end of its storage");
    if offset > storage.len {
        return Err(bad());
    }
    let mut numel: u64 = 1;
    let mut last: u64 = offset;
    for (&n, &s) in size.iter().zip(stride) {
        numel = numel.saturating_mul(n as u64);
        if n > 0 {
            let reach = ((n - 1) as u64).checked_mul(s as u64).ok_or_else(bad)?;
            last = last.checked_add(reach).ok_or_else(bad)?;
        }
    }
    if numel > 0 && last >= storage.len {
        return Err(bad());
    }
    if numel > storage.len.max(MAX_BROADCAST_NUMEL) {
        return Err(limit(format!(
            "tensor view of {numel} elements over a storage of {}",
            storage.len
        )));
    }
    Ok(())
}

/// Checks the number of arguments of a call.
fn arity(args: &[ObjId], n: std::ops::RangeInclusive<usize>, name: &str) -> Result<(), ErrorKind> {
    if n.contains(&args.len()) {
        Ok(())
    } else {
        Err(malformed(format!("{name} called with {} arguments", args.len())))
    }
}

/// A global dispatched to a family it does not belong to: cannot happen (see `call`).
fn unreachable_global(g: Global) -> Result<ObjId, ErrorKind> {
    Err(malformed(format!("internal: {g:?} called in the wrong family")))
}

/// The first pickle of a legacy `torch.save` file: the integer 0x1950a86a20f9469cfc6c, as
/// LONG1 bytes.
pub(crate) const LEGACY_MAGIC: [u8; 10] =
    [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The second pickle of a legacy file.
pub(crate) const LEGACY_PROTOCOL_VERSION: i64 = 1001;

/// A storage saved on its own as a legacy `torch.save` byte string.
struct NestedStorage {
    dtype: Dtype,
    numel: u64,
    /// Where its elements start in the byte string (after the five pickles and the count).
    data_start: usize,
    data_len: usize,
}

/// Reads `torch.save(storage)` in the legacy format: magic, version, system info, the storage
/// (one persistent id), its key, then the element count and the elements.
fn nested_storage(bytes: &[u8]) -> Result<NestedStorage, ErrorKind> {
    let limits = Limits { max_storage_bytes: bytes.len() as u64 };
    let next = |pos: usize| unpickle(bytes, pos, 0, limits);
    let bad = |what: &str| malformed(format!("a pickled storage is not torch.save's: {what}"));
    let (magic, pos) = next(0)?;
    if !matches!(magic.root(), Obj::BigInt(b) if b[..] == LEGACY_MAGIC) {
        return Err(bad("no magic number"));
    }
    let (version, pos) = next(pos)?;
    if !matches!(version.root(), Obj::Int(LEGACY_PROTOCOL_VERSION)) {
        return Err(bad("unknown format version"));
    }
    let (_sys_info, pos) = next(pos)?;
    let (object, pos) = next(pos)?;
    let (keys, pos) = next(pos)?;
    let (Obj::Storage(storage), [declared]) = (object.root(), &object.storages[..]) else {
        return Err(bad("it holds something other than one storage"));
    };
    if storage.offset != 0 || storage.len != declared.numel {
        return Err(bad("it holds a storage view"));
    }
    let one_key = match keys.root() {
        Obj::List(v) | Obj::Tuple(v) if v.len() == 1 => {
            short_text(keys.get(v[0]), MAX_STORAGE_KEY_BYTES, "storage key")?
        }
        _ => return Err(bad("its key list does not name one storage")),
    };
    if one_key != declared.key {
        return Err(bad("its key list names another storage"));
    }
    let count = bytes
        .get(pos..pos + 8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .ok_or(ErrorKind::Truncated)?;
    if count != declared.numel {
        return Err(bad("its element count disagrees with its declaration"));
    }
    // The declared size was checked against the byte string's length when unpickled.
    let data_len =
        usize::try_from(count * declared.dtype.size() as u64).map_err(|_| ErrorKind::Truncated)?;
    let data_start = pos + 8;
    if data_start.checked_add(data_len).is_none_or(|end| end > bytes.len()) {
        return Err(ErrorKind::Truncated);
    }
    Ok(NestedStorage { dtype: declared.dtype, numel: count, data_start, data_len })
}

/// The allow-lists (see [`Global`] and [`Flavour`]): each family of globals is listed once, and
/// a flavour is the families it may name. Anything else is refused by name.
fn resolve_global(module: &str, name: &str, flavour: Flavour) -> Result<Global, ErrorKind> {
    let found = match flavour {
        Flavour::Torch => torch_global(module, name)?,
        Flavour::Dnnlib => dnnlib_global(module, name).or_else(|| numpy_global(module, name)),
        Flavour::Persistence => match persistence_global(module, name) {
            Some(g) => Some(g),
            None => torch_global(module, name)?.or_else(|| numpy_global(module, name)),
        },
    };
    found.ok_or_else(|| ErrorKind::RefusedGlobal { module: one_line(module), name: one_line(name) })
}

/// The globals of a `torch.save` pickle: state dicts and tensor rebuilding.
fn torch_global(module: &str, name: &str) -> Result<Option<Global>, ErrorKind> {
    Ok(Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch", "Tensor") | ("torch.nn.parameter", "Parameter") => Global::TensorClass,
        ("torch", "Size") => Global::TorchSize,
        ("torch" | "torch.cuda", class) if class.ends_with("Storage") => {
            Global::StorageClass(Dtype::from_storage_class(module, class)?)
        }
        _ => return Ok(None),
    }))
}

/// numpy's array, dtype and scalar reconstructors, and how protocol 2 writes bytes.
fn numpy_global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("numpy", "ndarray") => Global::NdArray,
        ("numpy", "dtype") => Global::NpDtype,
        ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => Global::Reconstruct,
        ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar") => Global::NpScalar,
        ("_codecs", "encode") => Global::CodecsEncode,
        _ => return None,
    })
}

/// The network class of NVIDIA's TensorFlow pickles.
fn dnnlib_global(module: &str, name: &str) -> Option<Global> {
    (module, name).eq(&("dnnlib.tflib.network", "Network")).then_some(Global::Network)
}

/// What stylegan2-ada-pytorch's pickles name besides tensors and numpy scalars.
fn persistence_global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("torch_utils.persistence", "_reconstruct_persistent_obj") => Global::PersistentObj,
        ("torch.storage", "_load_from_bytes") => Global::LoadFromBytes,
        ("dnnlib.util", "EasyDict") => Global::EasyDict,
        ("builtins", "set") => Global::Set,
        _ => return None,
    })
}

/// The element type of a numpy dtype name as numpy pickles it (`f4`, `i8`, `b1`, ...).
fn numpy_dtype(name: &str) -> Result<Dtype, ErrorKind> {
    Ok(match name {
        "f4" => Dtype::F32,
        "f8" => Dtype::F64,
        "f2" => Dtype::F16,
        "i8" => Dtype::I64,
        "i4" => Dtype::I32,
        "i2" => Dtype::I16,
        "i1" => Dtype::I8,
        "u1" => Dtype::U8,
        "b1" => Dtype::Bool,
        other => return Err(ErrorKind::UnsupportedDtype(format!("numpy '{}'", one_line(other)))),
    })
}

/// LONG1/LONG4 payload: little-endian two's complement of any length.
fn decode_long(bytes: &[u8]) -> Obj {
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let pad = if negative { 0xff } else { 0x00 };
    // Drop redundant sign bytes so that a wide encoding of a small number still fits in i64.
    let mut n = bytes.len();
    while n > 1 && bytes[n - 1] == pad && (bytes[n - 2] & 0x80 != 0) == negative {
        n -= 1;
    }
    if n <= 8 {
        let mut buf = [pad; 8];
        buf[..n].copy_from_slice(&bytes[..n]);
        Obj::Int(i64::from_le_bytes(buf))
    } else {
        Obj::BigInt(bytes[..n].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Pickle, ErrorKind> {
        let limits = Limits { max_storage_bytes: 1 << 20 };
        unpickle(bytes, 0, 0, limits).map(|(p, _)| p)
    }

    #[test]
    fn decodes_longs() {
        assert!(matches!(decode_long(&[]), Obj::Int(0)));
        assert!(matches!(decode_long(&[0xff]), Obj::Int(-1)));
        assert!(matches!(decode_long(&[0x80, 0x00]), Obj::Int(128)));
        assert!(matches!(decode_long(&[0x00, 0x80]), Obj::Int(-32768)));
        assert!(matches!(decode_long(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Obj::Int(1)));
        let magic = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
        assert!(matches!(decode_long(&magic), Obj::BigInt(b) if b == magic));
    }

    #[test]
    fn builds_a_dict_with_memo_and_frames() {
        // protocol 4: {"a": 1, "b": [1, 2]} with MEMOIZE and BINGET sharing the 1
        let p = b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94K\x01\x94\x8c\x01b]\x94(h\x02K\x02eu.";
        let p = run(p).unwrap();
        let Obj::Dict(pairs) = p.root() else { panic!("not a dict") };
        assert_eq!(pairs.len(), 2);
        assert!(matches!(p.get(pairs[1].1), Obj::List(v) if v.len() == 2));
    }

    #[test]
    fn refuses_unknown_globals_by_name() {
        let err = run(b"\x80\x02cposix\nsystem\n.").unwrap_err();
        assert!(
            matches!(err, ErrorKind::RefusedGlobal { ref module, ref name } if module == "posix" && name == "system")
        );
        let err = run(b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.").unwrap_err();
        assert!(matches!(err, ErrorKind::RefusedGlobal { .. }));
    }

    #[test]
    fn errors_instead_of_panicking() {
        for bad in [
            &b""[..],
            b"\x80",
            b"0",
            b"t",
            b"(((((u",
            b"h\x05",
            b"K\x01K\x02b.",
            b"X\xff\xff\xff\xff",
            b"\x8e\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x8b\x00\x00\x00\x80",
            b"\x80\x09.",
            b"N\x94\x94\x94j\xff\xff\xff\xff.",
            b"(\x85.",
        ] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn view_checks() {
        let s = StorageRef { index: 0, dtype: Dtype::F32, offset: 0, len: 12 };
        assert!(check_view(&s, 0, &[3, 4], &[4, 1]).is_ok());
        assert!(check_view(&s, 0, &[4, 3], &[1, 4]).is_ok());
        assert!(check_view(&s, 1, &[3, 4], &[4, 1]).is_err());
        assert!(check_view(&s, 12, &[0, 4], &[4, 1]).is_ok());
        assert!(check_view(&s, 0, &[], &[]).is_ok());
        assert!(check_view(&s, 0, &[2], &[-1]).is_err());
        assert!(check_view(&s, 0, &[i64::MAX, 2], &[i64::MAX, 1]).is_err());
        assert!(matches!(
            check_view(&s, 0, &[1 << 20, 1 << 20], &[0, 0]),
            Err(ErrorKind::LimitExceeded(_))
        ));
    }
}
