//! Reading a GGUF's tensors for duet's kernels: mapped, repacked, checked.
//!
//! Every tensor is checked against the shape its architecture says it has
//! before any byte of it is used, so a damaged or crafted file is refused at
//! load with the tensor's name instead of panicking a worker mid-answer.

use super::Unsupported;
use crate::engine::local::gguf::Gguf;
use crate::engine::local::kernels::QMatrix;
use candle_core::quantized::GgmlDType;
use std::io::{Read, Seek, SeekFrom};

/// GGML type codes of the matrix types duet's kernels run.
pub fn ggml_code(t: GgmlDType) -> Option<u32> {
    Some(match t {
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q4K => 12,
        GgmlDType::Q6K => 14,
        _ => return None,
    })
}

/// The file's bytes for the repack: mapped, so nothing is copied into a
/// buffer first and pages come straight from the OS's file cache; read whole
/// where the file cannot be mapped.
pub enum FileBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl FileBytes {
    pub fn of(file: &std::fs::File) -> Result<Self, Unsupported> {
        // SAFETY: the mapping is read only during `load` and dropped at its end;
        // `Gguf::open` checked the file holds every tensor. Another program
        // truncating the model file in that window would fault this one, the
        // same risk every mmap-based loader (llama.cpp's too) takes.
        if let Ok(map) = unsafe { memmap2::Mmap::map(file) } {
            // A hint only; `madvise` exists on Unix alone.
            #[cfg(unix)]
            let _ = map.advise(memmap2::Advice::Sequential);
            return Ok(FileBytes::Mapped(map));
        }
        let mut bytes = Vec::new();
        let mut f = file;
        f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        f.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        Ok(FileBytes::Read(bytes))
    }

    fn bytes(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Read(v) => v,
        }
    }

    /// Done with `range`: a mapped file's pages leave this process's memory
    /// (they stay in the OS's file cache), so peak RSS stays near the
    /// repacked weights instead of weights plus file.
    fn release(&self, range: std::ops::Range<usize>) {
        // Windows has no `madvise`; its working-set manager trims clean file
        // pages on its own, so there is nothing to do there.
        #[cfg(unix)]
        if let FileBytes::Mapped(m) = self {
            // `madvise` wants a page-aligned start, and pages are 4 KiB on x86,
            // 16 KiB on Apple silicon, 64 KiB on some ARM servers; rounding to
            // a too-large size would keep tens of MB resident until load ends.
            // SAFETY: sysconf reads a constant and has no preconditions.
            let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
            let start = range.start.div_ceil(page) * page;
            let end = range.end / page * page;
            if end > start {
                // SAFETY: a read-only shared file mapping that nothing writes:
                // dropped pages are read again from the file if touched, never lost.
                let _ = unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
            }
        }
        #[cfg(not(unix))]
        let _ = range;
    }
}

/// Bytes of a matrix repacked at a time (see `Tensors::matrix`).
const REPACK_CHUNK_BYTES: usize = 8 << 20;

/// One GGUF's tensors, read by name.
pub struct Tensors<'a> {
    pub g: &'a Gguf,
    pub file: &'a FileBytes,
}

impl<'a> Tensors<'a> {
    pub fn has(&self, name: &str) -> bool {
        self.g.content.tensor_infos.contains_key(name)
    }

    fn raw(&self, name: &str) -> Result<(GgmlDType, Vec<usize>, &'a [u8]), Unsupported> {
        let info = self.g.content.tensor_infos.get(name).ok_or_else(|| format!("the tensor {name} is missing"))?;
        let elems = info.shape.elem_count();
        let len = elems / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
        let start = (self.g.content.tensor_data_offset + info.offset) as usize;
        let bytes =
            self.file.bytes().get(start..start + len).ok_or_else(|| format!("{name} lies past the end of the file"))?;
        Ok((info.ggml_dtype, info.shape.dims().to_vec(), bytes))
    }

    /// A weight matrix of `rows` outputs × `cols` inputs, repacked.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<QMatrix, Unsupported> {
        let (dtype, dims, raw) = self.raw(name)?;
        if dims != [rows, cols] {
            return Err(format!("{name} has shape {dims:?}; this model needs [{rows}, {cols}]"));
        }
        let code = ggml_code(dtype).ok_or_else(|| format!("{name} is {dtype:?}"))?;
        let bad = || format!("{name} has an unexpected layout");
        // A few MB of rows at a time, each chunk's file pages let go once
        // repacked: Gemma's 168 MB embedding table would otherwise sit in
        // memory twice (file pages and repacked copy) at the peak of loading.
        let row_bytes = raw.len() / rows.max(1);
        let chunk_rows = (REPACK_CHUNK_BYTES / row_bytes.max(1)).max(1);
        let mut whole: Option<QMatrix> = None;
        for first in (0..rows).step_by(chunk_rows) {
            let n = chunk_rows.min(rows - first);
            let part = &raw[first * row_bytes..(first + n) * row_bytes];
            let m = QMatrix::from_ggml(code, n, cols, part).ok_or_else(bad)?;
            self.file.release(self.range_of(part));
            match &mut whole {
                Some(w) => w.append(m),
                None => {
                    let mut m = m;
                    m.reserve_rows(rows - n);
                    whole = Some(m);
                }
            }
        }
        whole.ok_or_else(bad)
    }

    /// A vector of `len` f32 values (norm weights, biases, RoPE factors).
    pub fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, Unsupported> {
        let (dtype, dims, raw) = self.raw(name)?;
        if dtype != GgmlDType::F32 {
            return Err(format!("{name} is {dtype:?}, not F32"));
        }
        if dims != [len] {
            return Err(format!("{name} has shape {dims:?}; this model needs [{len}]"));
        }
        Ok(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    /// `vector`, or None where the file has no such tensor.
    pub fn optional_vector(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>, Unsupported> {
        if self.has(name) {
            self.vector(name, len).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Where `part` (a slice of the file's bytes) sits in the file.
    fn range_of(&self, part: &[u8]) -> std::ops::Range<usize> {
        let start = part.as_ptr() as usize - self.file.bytes().as_ptr() as usize;
        start..start + part.len()
    }
}
