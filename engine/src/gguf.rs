//! GGUF (v2/v3) reader over a memory map: header, metadata, tensor infos and
//! dequantisation of tensors straight from the mapped bytes.

use crate::error::{EngineError, Result};
use crate::quant::{dequantize, GgmlType};
use memmap2::Mmap;
use std::collections::HashMap;
use std::path::Path;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) if v >= 0 => Some(v as u64),
            Value::I16(v) if v >= 0 => Some(v as u64),
            Value::I32(v) if v >= 0 => Some(v as u64),
            Value::I64(v) if v >= 0 => Some(v as u64),
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
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One tensor's description. `shape` is in PyTorch order (outermost first),
/// i.e. ggml's `ne` reversed.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub ty: GgmlType,
    /// Absolute byte offset in the file.
    pub offset: usize,
    pub n_bytes: usize,
}

impl TensorInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A parsed GGUF file, memory mapped.
pub struct GgufFile {
    mmap: Mmap,
    pub version: u32,
    pub metadata: HashMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                EngineError::Gguf(format!(
                    "unexpected end of file at byte {} (file is truncated or corrupt)",
                    self.pos
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    fn len(&mut self) -> Result<usize> {
        let n = self.u64()?;
        // A length can never exceed what is left of the file.
        if n > (self.buf.len() - self.pos) as u64 {
            return Err(EngineError::Gguf(format!(
                "length {n} at byte {} runs past the end of the file",
                self.pos
            )));
        }
        Ok(n as usize)
    }
    fn string(&mut self) -> Result<String> {
        let n = self.len()?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| EngineError::Gguf(format!("invalid UTF-8 string at byte {}", self.pos)))
    }
    fn value(&mut self, ty: u32, depth: usize) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.u8()?),
            1 => Value::I8(self.u8()? as i8),
            2 => Value::U16(self.u16()?),
            3 => Value::I16(self.u16()? as i16),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(self.u32()? as i32),
            6 => Value::F32(f32::from_bits(self.u32()?)),
            7 => Value::Bool(self.u8()? != 0),
            8 => Value::String(self.string()?),
            9 => {
                if depth > 2 {
                    return Err(EngineError::Gguf("arrays nested too deeply".into()));
                }
                let ety = self.u32()?;
                let n = self.len()?;
                let mut v = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    v.push(self.value(ety, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(self.u64()? as i64),
            12 => Value::F64(f64::from_bits(self.u64()?)),
            other => {
                return Err(EngineError::Gguf(format!(
                    "unknown metadata value type {other}"
                )))
            }
        })
    }
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
        // SAFETY: the file is opened read-only; the engine never mutates it. As with
        // every mmap, another process truncating the file underneath is undefined.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| EngineError::io(path, e))?;
        Self::parse(mmap)
    }

    fn parse(mmap: Mmap) -> Result<Self> {
        let buf: &[u8] = &mmap;
        let mut c = Cursor { buf, pos: 0 };
        let magic = c
            .take(4)
            .map_err(|_| EngineError::Gguf("file too short for a GGUF header".into()))?;
        if magic != b"GGUF" {
            return Err(EngineError::Gguf(format!(
                "bad magic {magic:02x?} (expected \"GGUF\")"
            )));
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(EngineError::Unsupported(format!(
                "GGUF version {version} (supported: 2, 3)"
            )));
        }
        let n_tensors = c.u64()?;
        let n_kv = c.u64()?;
        if n_tensors > (buf.len() as u64) || n_kv > (buf.len() as u64) {
            return Err(EngineError::Gguf(
                "implausible tensor/metadata counts".into(),
            ));
        }
        let mut metadata = HashMap::new();
        for _ in 0..n_kv {
            let key = c.string()?;
            let ty = c.u32()?;
            let v = c.value(ty, 0)?;
            metadata.insert(key, v);
        }
        let alignment = match metadata.get("general.alignment") {
            Some(v) => v
                .as_u64()
                .filter(|&a| a > 0 && a.is_power_of_two())
                .ok_or_else(|| EngineError::Gguf("bad general.alignment".into()))?
                as usize,
            None => 32,
        };
        let mut infos = Vec::new();
        for _ in 0..n_tensors {
            let name = c.string()?;
            let nd = c.u32()? as usize;
            if nd == 0 || nd > 4 {
                return Err(EngineError::Gguf(format!(
                    "tensor `{name}` has {nd} dimensions"
                )));
            }
            let mut ne = Vec::with_capacity(nd);
            for _ in 0..nd {
                ne.push(c.u64()? as usize);
            }
            let ty_id = c.u32()?;
            let ty = GgmlType::from_id(ty_id)
                .map_err(|e| EngineError::Gguf(format!("tensor `{name}`: {e}")))?;
            let off = c.u64()? as usize;
            ne.reverse();
            infos.push((name, ne, ty, off));
        }
        let data_start = c.pos.div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(infos.len());
        let mut index = HashMap::new();
        for (name, shape, ty, off) in infos {
            let numel = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| EngineError::Gguf(format!("tensor `{name}` is too large")))?;
            let n_bytes = ty
                .bytes_for(numel)
                .map_err(|e| EngineError::Gguf(format!("tensor `{name}`: {e}")))?;
            let offset = data_start
                .checked_add(off)
                .ok_or_else(|| EngineError::Gguf(format!("tensor `{name}` offset overflows")))?;
            if offset.checked_add(n_bytes).is_none_or(|e| e > buf.len()) {
                return Err(EngineError::Gguf(format!(
                    "tensor `{name}` ({n_bytes} bytes at {offset}) lies past the end of the file ({} bytes): truncated?",
                    buf.len()
                )));
            }
            index.insert(name.clone(), tensors.len());
            tensors.push(TensorInfo {
                name,
                shape,
                ty,
                offset,
                n_bytes,
            });
        }
        Ok(GgufFile {
            mmap,
            version,
            metadata,
            tensors,
            index,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// Raw bytes of a tensor (borrowed from the map).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        &self.mmap[info.offset..info.offset + info.n_bytes]
    }

    /// Dequantise a tensor to f32 (PyTorch order shape).
    pub fn dequantize(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| EngineError::MissingTensor(name.to_string()))?;
        let mut out = Vec::new();
        dequantize(info.ty, self.tensor_bytes(info), info.numel(), &mut out)?;
        Ok((out, info.shape.clone()))
    }
}
