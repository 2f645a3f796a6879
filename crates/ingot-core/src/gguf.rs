//! GGUF v2/v3: reader and writer.
//!
//! Follows the format description in ggml's `docs/gguf.md`: a little-endian header (magic "GGUF",
//! version, tensor count, metadata count), typed key/value metadata, tensor infos (name, dims with
//! the fastest-varying first, GGML type, offset), padding to `general.alignment` (default 32), then
//! the tensor data. Every length read from the file is checked against the bytes that remain, so a
//! truncated or corrupt file is an error, never a panic or an absurd allocation.
//!
//! Tensor shapes are returned in candle's order (slowest-varying first), i.e. GGUF dims reversed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::error::{CandleContext, Error, Result};
use crate::text::quoted;

const MAGIC: [u8; 4] = *b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;

/// A GGML tensor type as numbered in ggml.h.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
}

impl GgmlType {
    /// Decode a type id, or name the (known but unsupported, or unknown) type for the error.
    pub fn from_id(id: u32) -> std::result::Result<Self, &'static str> {
        Ok(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            10 => Self::Q2K,
            11 => Self::Q3K,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            30 => Self::BF16,
            4 | 5 => return Err("Q4_2/Q4_3, removed from ggml"),
            // Activation formats for dot products; candle cannot load them as stored tensors.
            9 => return Err("Q8_1"),
            15 => return Err("Q8_K"),
            16 => return Err("IQ2_XXS"),
            17 => return Err("IQ2_XS"),
            18 => return Err("IQ3_XXS"),
            19 => return Err("IQ1_S"),
            20 => return Err("IQ4_NL"),
            21 => return Err("IQ3_S"),
            22 => return Err("IQ2_S"),
            23 => return Err("IQ4_XS"),
            24 => return Err("I8"),
            25 => return Err("I16"),
            26 => return Err("I32"),
            27 => return Err("I64"),
            28 => return Err("F64"),
            29 => return Err("IQ1_M"),
            34 => return Err("TQ1_0"),
            35 => return Err("TQ2_0"),
            39 => return Err("MXFP4"),
            _ => return Err("unknown"),
        })
    }

    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q8_1 => 9,
            Self::Q2K => 10,
            Self::Q3K => 11,
            Self::Q4K => 12,
            Self::Q5K => 13,
            Self::Q6K => 14,
            Self::Q8K => 15,
            Self::BF16 => 30,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q5_0 => "Q5_0",
            Self::Q5_1 => "Q5_1",
            Self::Q8_0 => "Q8_0",
            Self::Q8_1 => "Q8_1",
            Self::Q2K => "Q2_K",
            Self::Q3K => "Q3_K",
            Self::Q4K => "Q4_K",
            Self::Q5K => "Q5_K",
            Self::Q6K => "Q6_K",
            Self::Q8K => "Q8_K",
        }
    }

    /// The matching candle storage type.
    pub fn candle(self) -> GgmlDType {
        match self {
            Self::F32 => GgmlDType::F32,
            Self::F16 => GgmlDType::F16,
            Self::BF16 => GgmlDType::BF16,
            Self::Q4_0 => GgmlDType::Q4_0,
            Self::Q4_1 => GgmlDType::Q4_1,
            Self::Q5_0 => GgmlDType::Q5_0,
            Self::Q5_1 => GgmlDType::Q5_1,
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q8_1 => GgmlDType::Q8_1,
            Self::Q2K => GgmlDType::Q2K,
            Self::Q3K => GgmlDType::Q3K,
            Self::Q4K => GgmlDType::Q4K,
            Self::Q5K => GgmlDType::Q5K,
            Self::Q6K => GgmlDType::Q6K,
            Self::Q8K => GgmlDType::Q8K,
        }
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        self.candle().block_size()
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        self.candle().type_size()
    }

    /// True for the plain float types, which load as dense tensors.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F16 | Self::BF16)
    }
}

/// A metadata value, with every type the GGUF spec defines.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    pub fn type_name(&self) -> String {
        match self {
            Value::Array(items) => match items.first() {
                Some(first) => format!("array of {} {}", items.len(), first.type_name()),
                None => "empty array".to_string(),
            },
            other => ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "", "u64", "i64", "f64"]
                [other.type_id() as usize]
                .to_string(),
        }
    }

    /// Any integer type that fits, as u64 (GGUF writers disagree on u32 vs i32 vs u64).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v as i64),
            Value::I16(v) => Some(v as i64),
            Value::I32(v) => Some(v as i64),
            Value::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// One tensor's entry in the file's tensor table.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// Shape in candle order (slowest-varying dimension first).
    pub shape: Vec<usize>,
    pub ggml_type: GgmlType,
    /// Byte offset of the data from the start of the file.
    pub offset: usize,
    pub n_bytes: usize,
}

impl TensorInfo {
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An open GGUF file: parsed metadata and tensor table over a memory map of the data.
pub struct GgufFile {
    path: PathBuf,
    version: u32,
    metadata: BTreeMap<String, Value>,
    tensors: Vec<TensorInfo>,
    by_name: BTreeMap<String, usize>,
    data: memmap2::Mmap,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// Bounds-checked little-endian cursor over the mapped file.
struct Cursor<'a> {
    path: &'a Path,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        match end {
            Some(end) => {
                let bytes = &self.buf[self.pos..end];
                self.pos = end;
                Ok(bytes)
            }
            None => Err(Error::Truncated {
                path: self.path.to_path_buf(),
                detail: format!(
                    "needs {n} more bytes for {what} at offset {} but the file has {} bytes",
                    self.pos,
                    self.buf.len()
                ),
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count or length; v1 files used u32, v2+ use u64.
    fn len(&mut self, version: u32, what: &str) -> Result<usize> {
        let n = if version == 1 { self.u32(what)? as u64 } else { self.u64(what)? };
        usize::try_from(n).map_err(|_| self.corrupt(format!("{what} {n} does not fit in memory")))
    }

    fn string(&mut self, version: u32, what: &str) -> Result<String> {
        let n = self.len(version, what)?;
        let bytes = self.take(n, what)?;
        // Token strings are meant to be UTF-8; a stray invalid byte should not make the whole
        // file unreadable, so decode lossily.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::Corrupt { path: self.path.to_path_buf(), format: "GGUF", detail }
    }

    /// One value of type `type_id`; `key` describes it for errors ("metadata 'general.name'").
    fn value(&mut self, version: u32, type_id: u32, key: &str, depth: usize) -> Result<Value> {
        Ok(match type_id {
            0 => Value::U8(self.array::<1>(key)?[0]),
            1 => Value::I8(self.array::<1>(key)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(key)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(key)?)),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(i32::from_le_bytes(self.array(key)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.corrupt(format!("{key}: bool byte {b}"))),
            },
            8 => Value::String(self.string(version, key)?),
            9 => {
                if depth > 4 {
                    return Err(self.corrupt(format!("{key}: arrays nested too deeply")));
                }
                let elem_type = self.u32(key)?;
                let n = self.len(version, key)?;
                // Each element takes at least one byte: a count past the end of the file is a
                // truncated (or lying) file, caught before allocating for it.
                if n > self.buf.len() - self.pos {
                    return Err(Error::Truncated {
                        path: self.path.to_path_buf(),
                        detail: format!("{key} claims {n} array elements"),
                    });
                }
                // Reserve for at most 4096 up front: a lying count must not reserve gigabytes.
                let mut items = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    items.push(self.value(version, elem_type, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(i64::from_le_bytes(self.array(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(key)?)),
            other => return Err(self.corrupt(format!("{key} has unknown value type {other}"))),
        })
    }
}

impl GgufFile {
    /// Open and parse a GGUF file; tensor data stays memory-mapped until asked for.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => {
                Error::NotFound { what: "model file".into(), path: path.to_path_buf(), hint: String::new() }
            }
            _ => Error::Io { op: "open", path: path.to_path_buf(), source },
        })?;
        // SAFETY: the map is read-only; Ingot never writes a GGUF file in place while reading it
        // (writers go through a temporary file and a rename, which leaves this mapping intact).
        let data = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io {
            op: "map",
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path.to_path_buf(), data)
    }

    fn parse(path: PathBuf, data: memmap2::Mmap) -> Result<Self> {
        let mut c = Cursor { path: &path, buf: &data, pos: 0 };
        let magic: [u8; 4] = match c.array("the magic number") {
            Ok(m) => m,
            // An empty file or a prefix of "GGUF" is an interrupted download, not another format.
            Err(e) if MAGIC.starts_with(&data) => return Err(e),
            Err(_) => {
                let mut found = [0u8; 4];
                found[..data.len()].copy_from_slice(&data);
                return Err(Error::BadMagic { path, found });
            }
        };
        if magic != MAGIC {
            return Err(Error::BadMagic { path, found: magic });
        }
        let version = c.u32("the version")?;
        if !(1..=3).contains(&version) {
            let detail = if version.swap_bytes() <= 3 {
                "big-endian GGUF files are not supported".to_string()
            } else {
                format!("unsupported version {version} (Ingot reads versions 1 to 3)")
            };
            return Err(c.corrupt(detail));
        }
        let n_tensors = c.len(version, "the tensor count")?;
        let n_kv = c.len(version, "the metadata count")?;

        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string(version, "a metadata key")?;
            // Keys come from the file: quoted and capped wherever they appear in a message.
            let what = format!("metadata {}", quoted(&key));
            let type_id = c.u32(&what)?;
            let value = c.value(version, type_id, &what, 0)?;
            if metadata.contains_key(&key) {
                return Err(c.corrupt(format!("{what} appears twice")));
            }
            metadata.insert(key, value);
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a,
                _ => {
                    let found = v.as_f64().map_or_else(|| v.type_name(), |a| a.to_string());
                    return Err(c.corrupt(format!("general.alignment is {found}, not a power of two")));
                }
            },
        };

        let mut infos = Vec::new();
        for _ in 0..n_tensors.min(1 << 20) {
            let name = c.string(version, "a tensor name")?;
            let what = format!("tensor {}", quoted(&name));
            let n_dims = c.u32(&what)? as usize;
            if n_dims > 4 {
                return Err(c.corrupt(format!("{what} has {n_dims} dimensions (at most 4)")));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                dims.push(c.len(version, &what)?);
            }
            let type_id = c.u32(&what)?;
            let ggml_type = GgmlType::from_id(type_id).map_err(|type_name| Error::UnsupportedTensorType {
                path: path.clone(),
                tensor: name.clone(),
                type_id,
                name: type_name,
            })?;
            let offset = c.u64(&what)?;
            infos.push((name, dims, ggml_type, offset));
        }
        if n_tensors > 1 << 20 {
            return Err(c.corrupt(format!("{n_tensors} tensors is not a plausible count")));
        }
        let data_start = (c.pos as u64).div_ceil(alignment) * alignment;

        let mut tensors = Vec::with_capacity(infos.len());
        let mut by_name = BTreeMap::new();
        for (name, dims, ggml_type, offset) in infos {
            let elem_count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
            let bs = ggml_type.block_size();
            let n_bytes = match elem_count {
                // The fastest-varying dim is whole blocks; with no dims (a scalar) that is n itself.
                Some(n) if n % bs == 0 && dims.first().is_none_or(|d0| d0 % bs == 0) => {
                    (n / bs).checked_mul(ggml_type.type_size())
                }
                _ => None,
            }
            .ok_or_else(|| {
                c.corrupt(format!(
                    "tensor {} has dims {dims:?}, not whole {} blocks of {bs}",
                    quoted(&name),
                    ggml_type.name()
                ))
            })?;
            // The GGUF spec puts every tensor at a multiple of general.alignment from the data start.
            if offset % alignment != 0 {
                return Err(c.corrupt(format!(
                    "tensor {} starts at offset {offset}, not a multiple of general.alignment {alignment}",
                    quoted(&name)
                )));
            }
            let start = data_start.checked_add(offset).and_then(|s| usize::try_from(s).ok());
            let end = start.and_then(|s| s.checked_add(n_bytes));
            match (start, end) {
                (Some(start), Some(end)) if end <= data.len() => {
                    if by_name.contains_key(&name) {
                        return Err(c.corrupt(format!("tensor {} appears twice", quoted(&name))));
                    }
                    by_name.insert(name.clone(), tensors.len());
                    tensors.push(TensorInfo {
                        name,
                        shape: dims.iter().rev().copied().collect(),
                        ggml_type,
                        offset: start,
                        n_bytes,
                    });
                }
                _ => {
                    return Err(Error::Truncated {
                        detail: format!(
                            "tensor {} needs bytes {}..{} but the file has {} bytes",
                            quoted(&name),
                            data_start.saturating_add(offset),
                            data_start.saturating_add(offset).saturating_add(n_bytes as u64),
                            data.len()
                        ),
                        path,
                    })
                }
            }
        }
        Ok(Self { path, version, metadata, tensors, by_name, data })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn metadata(&self) -> &BTreeMap<String, Value> {
        &self.metadata
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    fn wrong_type(&self, key: &str, expected: &'static str, found: &Value) -> Error {
        Error::WrongType { path: self.path.clone(), key: key.into(), expected, found: found.type_name() }
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| Error::Missing { path: self.path.clone(), what: "metadata key", key: key.into() })
    }

    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| self.wrong_type(key, "an unsigned integer", v)),
        }
    }

    pub fn get_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| self.wrong_type(key, "a number", v)),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| self.wrong_type(key, "a string", v)),
        }
    }

    pub fn require_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_u64().ok_or_else(|| self.wrong_type(key, "an unsigned integer", v))
    }

    pub fn require_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| self.wrong_type(key, "a string", v))
    }

    /// An array of strings (vocabularies, merges).
    pub fn get_str_array(&self, key: &str) -> Result<Option<Vec<&str>>> {
        let Some(v) = self.get(key) else { return Ok(None) };
        let items = v.as_array().ok_or_else(|| self.wrong_type(key, "an array of strings", v))?;
        items
            .iter()
            .map(|item| item.as_str().ok_or_else(|| self.wrong_type(key, "an array of strings", v)))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    fn require_tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor_info(name).ok_or_else(|| Error::Missing {
            path: self.path.clone(),
            what: "tensor",
            key: name.into(),
        })
    }

    /// The raw bytes of a tensor as stored.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        &self.data[info.offset..info.offset + info.n_bytes]
    }

    /// A tensor in its stored (possibly quantized) form.
    pub fn qtensor(&self, name: &str, device: &Device) -> Result<QTensor> {
        let info = self.require_tensor(name)?;
        let bytes = self.tensor_bytes(info);
        // candle reinterprets the bytes as blocks in place; blocks hold f16/f32 fields, so the
        // slice must be aligned. Data offsets honour general.alignment, but a file may set a tiny
        // one: copy to an aligned buffer in that case.
        let aligned: Vec<u64>;
        let bytes = if (bytes.as_ptr() as usize).is_multiple_of(8) {
            bytes
        } else {
            let mut buf = vec![0u64; bytes.len().div_ceil(8)];
            // SAFETY: buf holds at least bytes.len() bytes; u8 has no alignment requirement.
            let dst = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, bytes.len()) };
            dst.copy_from_slice(bytes);
            aligned = buf;
            // SAFETY: as above, reading back the bytes just written.
            unsafe { std::slice::from_raw_parts(aligned.as_ptr() as *const u8, bytes.len()) }
        };
        qtensor_from_ggml(info.ggml_type.candle(), bytes, info.shape.clone(), device)
            .context(|| format!("{}: loading tensor {}", self.path.display(), quoted(name)))
    }

    /// A tensor dequantized to f32.
    pub fn tensor(&self, name: &str, device: &Device) -> Result<Tensor> {
        self.qtensor(name, device)?
            .dequantize(device)
            .context(|| format!("{}: dequantizing tensor {}", self.path.display(), quoted(name)))
    }
}

/// Builds a GGUF v3 file: metadata, then tensors given as raw stored bytes.
///
/// Used to export models and, in tests, to make small or deliberately broken files.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<usize>, GgmlType, Vec<u8>)>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn metadata(&mut self, key: impl Into<String>, value: Value) -> &mut Self {
        self.metadata.push((key.into(), value));
        self
    }

    /// Add a tensor; `shape` is in candle order, `data` is the stored bytes of `ggml_type`.
    pub fn tensor(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        ggml_type: GgmlType,
        data: Vec<u8>,
    ) -> &mut Self {
        self.tensors.push((name.into(), shape.to_vec(), ggml_type, data));
        self
    }

    /// Add a dense or quantized candle tensor.
    pub fn qtensor(&mut self, name: impl Into<String>, t: &QTensor) -> Result<&mut Self> {
        let name = name.into();
        let ggml_type = ggml_type_of(t.dtype());
        let data = t.data().context(|| format!("reading tensor '{name}' to write it"))?.into_owned();
        Ok(self.tensor(name, t.shape().dims(), ggml_type, data))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        fn value(out: &mut Vec<u8>, v: &Value) {
            match v {
                Value::U8(x) => out.push(*x),
                Value::I8(x) => out.push(*x as u8),
                Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
                Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
                Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
                Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
                Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
                Value::Bool(x) => out.push(*x as u8),
                Value::String(s) => string(out, s),
                Value::Array(items) => {
                    let elem_type = items.first().map_or(4, Value::type_id);
                    out.extend_from_slice(&elem_type.to_le_bytes());
                    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                    for item in items {
                        value(out, item);
                    }
                }
                Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
                Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
                Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
            }
        }
        // Lay the data out with the alignment the file declares, since readers will use it.
        let align = self
            .metadata
            .iter()
            .rev()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_u64())
            .filter(|a| *a > 0 && a.is_power_of_two())
            .unwrap_or(DEFAULT_ALIGNMENT) as usize;
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            string(&mut out, k);
            out.extend_from_slice(&v.type_id().to_le_bytes());
            value(&mut out, v);
        }
        let mut offset = 0usize;
        for (name, shape, ty, data) in &self.tensors {
            string(&mut out, name);
            out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
            for d in shape.iter().rev() {
                out.extend_from_slice(&(*d as u64).to_le_bytes());
            }
            out.extend_from_slice(&ty.id().to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offset = (offset + data.len()).div_ceil(align) * align;
        }
        out.resize(out.len().div_ceil(align) * align, 0);
        for (_, _, _, data) in &self.tensors {
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(align) * align, 0);
        }
        out
    }

    /// Write atomically: temporary file, fsync, rename.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::atomic::write_file(path.as_ref(), &self.to_bytes())
    }
}

/// The GGUF type of a candle quantized dtype.
pub fn ggml_type_of(dtype: GgmlDType) -> GgmlType {
    match dtype {
        GgmlDType::F32 => GgmlType::F32,
        GgmlDType::F16 => GgmlType::F16,
        GgmlDType::BF16 => GgmlType::BF16,
        GgmlDType::Q4_0 => GgmlType::Q4_0,
        GgmlDType::Q4_1 => GgmlType::Q4_1,
        GgmlDType::Q5_0 => GgmlType::Q5_0,
        GgmlDType::Q5_1 => GgmlType::Q5_1,
        GgmlDType::Q8_0 => GgmlType::Q8_0,
        GgmlDType::Q8_1 => GgmlType::Q8_1,
        GgmlDType::Q2K => GgmlType::Q2K,
        GgmlDType::Q3K => GgmlType::Q3K,
        GgmlDType::Q4K => GgmlType::Q4K,
        GgmlDType::Q5K => GgmlType::Q5K,
        GgmlDType::Q6K => GgmlType::Q6K,
        GgmlDType::Q8K => GgmlType::Q8K,
    }
}
