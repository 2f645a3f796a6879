//! Binary token shards: what `ingot data prepare` writes and training memory-maps.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! offset 0   b"INGOTTOK"                       magic, 8 bytes
//! offset 8   u32 header_len                    bytes of JSON that follow
//! offset 12  header JSON                       ShardHeader, possibly followed by spaces
//!            zero bytes up to a multiple of 64
//! offset D   n_tokens x (u16 | u32)            the token ids, D = align64(12 + header_len)
//! ```
//!
//! The writer streams tokens before it knows their count, so it reserves a fixed 500-byte header
//! (JSON padded with spaces, which JSON allows) and tokens start at byte 512; the reader accepts
//! any header length. The reader checks that the file is exactly as long as the header says, so
//! a shard cut short by a full disk or an interrupted copy is refused with the byte counts
//! instead of yielding a wrong batch or a panic.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ingot_core::atomic::StagedFile;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The first eight bytes of every shard.
pub const MAGIC: &[u8; 8] = b"INGOTTOK";
/// Bumped when the layout or the header's meaning changes.
pub const FORMAT_VERSION: u32 = 1;
/// Token data starts on a multiple of this, so the ids are aligned for any reader.
const ALIGN: u64 = 64;
/// Magic plus the header length field.
const PREAMBLE: u64 = 12;
/// Header bytes the writer reserves: 12 + 500 = 512, already aligned. Headers are ~200 bytes.
const RESERVED_HEADER: usize = 500;

/// The integer width of the stored token ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    U16,
    U32,
}

impl Dtype {
    /// u16 when every id fits (vocab up to 65536, GPT-2's 50257 included), halving disk and
    /// page-cache use; u32 otherwise.
    pub fn for_vocab(vocab_size: u64) -> Self {
        if vocab_size <= 1 << 16 {
            Dtype::U16
        } else {
            Dtype::U32
        }
    }

    /// Bytes per token.
    pub fn width(self) -> u64 {
        match self {
            Dtype::U16 => 2,
            Dtype::U32 => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::U16 => "u16",
            Dtype::U32 => "u32",
        }
    }
}

/// The JSON header of a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHeader {
    pub format_version: u32,
    pub dtype: Dtype,
    pub n_tokens: u64,
    pub vocab_size: u64,
    /// [`ingot_tokenizer::Tokenizer::content_hash`] of the tokenizer that produced the ids.
    pub tokenizer_hash: String,
    /// "train" or "val".
    pub split: String,
    /// Documents that end in this shard (each ends with the separator token).
    pub n_documents: u64,
}

/// Writes one shard: to a temporary file beside `path` (`ingot_core::atomic`), renamed over `path`
/// by [`ShardWriter::finish`] after an fsync. Dropped unfinished, it removes the temporary file.
pub struct ShardWriter {
    path: PathBuf,
    file: Option<StagedFile>,
    header: ShardHeader,
}

impl ShardWriter {
    /// Start a shard of `split` for ids below `vocab_size`, stored as `dtype`.
    pub fn create(path: &Path, dtype: Dtype, vocab_size: u64, tokenizer_hash: &str, split: &str) -> Result<Self> {
        if dtype == Dtype::U16 && vocab_size > 1 << 16 {
            return Err(Error::Invalid(format!(
                "{}: a vocabulary of {vocab_size} ids does not fit u16 shards",
                path.display()
            )));
        }
        let mut file = StagedFile::create(path)?;
        // Placeholder preamble and header; `finish` writes the real ones.
        let tmp = file.tmp_path().to_path_buf();
        file.writer().write_all(&[0u8; PREAMBLE as usize + RESERVED_HEADER]).map_err(Error::io("write", &tmp))?;
        let header = ShardHeader {
            format_version: FORMAT_VERSION,
            dtype,
            n_tokens: 0,
            vocab_size,
            tokenizer_hash: tokenizer_hash.to_string(),
            split: split.to_string(),
            n_documents: 0,
        };
        Ok(Self { path: path.to_path_buf(), file: Some(file), header })
    }

    /// Append token ids; each must be below the vocabulary size.
    pub fn push(&mut self, ids: &[u32]) -> Result<()> {
        let Some(staged) = self.file.as_mut() else { return Err(finished(&self.path)) };
        if let Some(&id) = ids.iter().find(|&&id| u64::from(id) >= self.header.vocab_size) {
            return Err(Error::TokenOutOfRange { path: self.path.clone(), id, vocab_size: self.header.vocab_size });
        }
        let tmp = staged.tmp_path().to_path_buf();
        let file = staged.writer();
        let result = match self.header.dtype {
            Dtype::U16 => ids.iter().try_for_each(|&id| file.write_all(&(id as u16).to_le_bytes())),
            Dtype::U32 => ids.iter().try_for_each(|&id| file.write_all(&id.to_le_bytes())),
        };
        result.map_err(Error::io("write", &tmp))?;
        self.header.n_tokens += ids.len() as u64;
        Ok(())
    }

    /// Count one more document as ending in this shard.
    pub fn end_document(&mut self) {
        self.header.n_documents += 1;
    }

    /// Tokens written so far.
    pub fn len(&self) -> u64 {
        self.header.n_tokens
    }

    pub fn is_empty(&self) -> bool {
        self.header.n_tokens == 0
    }

    /// Write the header, then fsync and rename the shard into place.
    pub fn finish(mut self) -> Result<ShardHeader> {
        let Some(mut staged) = self.file.take() else { return Err(finished(&self.path)) };
        let mut json = serde_json::to_vec(&self.header).map_err(|e| Error::Invalid(format!("shard header: {e}")))?;
        if json.len() > RESERVED_HEADER {
            return Err(Error::Invalid(format!(
                "{}: shard header is {} bytes, over the {RESERVED_HEADER} reserved (tokenizer hash too long?)",
                self.path.display(),
                json.len()
            )));
        }
        json.resize(RESERVED_HEADER, b' ');
        let tmp = staged.tmp_path().to_path_buf();
        let file = staged.file()?;
        let write = |file: &mut File| -> std::io::Result<()> {
            file.seek(SeekFrom::Start(0))?;
            file.write_all(MAGIC)?;
            file.write_all(&(RESERVED_HEADER as u32).to_le_bytes())?;
            file.write_all(&json)?;
            file.seek(SeekFrom::End(0)).map(|_| ())
        };
        write(file).map_err(Error::io("write", &tmp))?;
        staged.commit()?;
        Ok(self.header.clone())
    }
}

impl std::fmt::Debug for ShardWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardWriter").field("path", &self.path).field("header", &self.header).finish()
    }
}

fn finished(path: &Path) -> Error {
    Error::Invalid(format!("{}: shard writer used after finish", path.display()))
}

/// A memory-mapped, validated shard.
pub struct TokenShard {
    path: PathBuf,
    mmap: Mmap,
    header: ShardHeader,
    /// Byte offset of token 0.
    data_offset: usize,
}

impl std::fmt::Debug for TokenShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenShard").field("path", &self.path).field("header", &self.header).finish()
    }
}

impl TokenShard {
    /// Map `path` and check magic, header and length; see the module docs for the layout.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(Error::io("open the token shard", path))?;
        let file_len = file.metadata().map_err(Error::io("read the size of", path))?.len();
        let bad = |detail: String| Error::BadShard { path: path.to_path_buf(), detail };
        if file_len < PREAMBLE {
            return Err(bad(format!(
                "the file is {file_len} bytes, shorter than the {PREAMBLE}-byte preamble (truncated?)"
            )));
        }
        // SAFETY: the map is read-only and shards are replaced by rename, never rewritten in
        // place, so the mapped bytes do not change under us (short of another program editing
        // the file, which memory-mapping readers cannot guard against).
        let mmap = unsafe { Mmap::map(&file) }.map_err(Error::io("memory-map", path))?;
        if &mmap[..8] != MAGIC {
            return Err(bad(format!("it starts with \"{}\", expected \"INGOTTOK\"", mmap[..8].escape_ascii())));
        }
        let header_len = u64::from(u32::from_le_bytes([mmap[8], mmap[9], mmap[10], mmap[11]]));
        if PREAMBLE + header_len > file_len {
            return Err(bad(format!(
                "the header length field says {header_len} bytes, but only {} follow it (truncated or corrupt)",
                file_len - PREAMBLE
            )));
        }
        let header_bytes = &mmap[PREAMBLE as usize..(PREAMBLE + header_len) as usize];
        let header: ShardHeader = serde_json::from_slice(header_bytes).map_err(|e| {
            // serde quotes the offending text from the file: escaped and capped.
            bad(format!("the header is not valid JSON: {}", ingot_core::text::escaped(&e.to_string(), 200)))
        })?;
        if header.format_version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} (this build reads version {FORMAT_VERSION})",
                header.format_version
            )));
        }
        if header.dtype == Dtype::U16 && header.vocab_size > 1 << 16 {
            return Err(bad(format!("dtype u16 cannot hold a vocabulary of {} ids", header.vocab_size)));
        }

        let data_offset = (PREAMBLE + header_len).next_multiple_of(ALIGN);
        let actual = file_len.saturating_sub(data_offset);
        let expected = header
            .n_tokens
            .checked_mul(header.dtype.width())
            .ok_or_else(|| bad(format!("n_tokens = {} is impossibly large", header.n_tokens)))?;
        if actual < expected || file_len < data_offset {
            return Err(Error::TruncatedShard {
                path: path.to_path_buf(),
                n_tokens: header.n_tokens,
                dtype: header.dtype.as_str(),
                offset: data_offset,
                expected,
                actual,
            });
        }
        if actual > expected {
            return Err(bad(format!(
                "{} bytes follow the {} {} tokens its header declares",
                actual - expected,
                header.n_tokens,
                header.dtype.as_str()
            )));
        }
        Ok(Self { path: path.to_path_buf(), mmap, header, data_offset: data_offset as usize })
    }

    pub fn header(&self) -> &ShardHeader {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of tokens.
    pub fn len(&self) -> u64 {
        self.header.n_tokens
    }

    pub fn is_empty(&self) -> bool {
        self.header.n_tokens == 0
    }

    /// Token `i`, or None past the end.
    pub fn get(&self, i: u64) -> Option<u32> {
        if i >= self.len() {
            return None;
        }
        let at = self.data_offset + (i * self.header.dtype.width()) as usize;
        Some(match self.header.dtype {
            Dtype::U16 => u32::from(u16::from_le_bytes([self.mmap[at], self.mmap[at + 1]])),
            Dtype::U32 => u32::from_le_bytes([self.mmap[at], self.mmap[at + 1], self.mmap[at + 2], self.mmap[at + 3]]),
        })
    }

    /// Append tokens `start .. start + len` to `out`.
    pub fn read(&self, start: u64, len: usize, out: &mut Vec<u32>) -> Result<()> {
        let end = start.checked_add(len as u64).filter(|&end| end <= self.len()).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: tokens {start}..{start}+{len} are past the end of the shard ({} tokens)",
                self.path.display(),
                self.len()
            ))
        })?;
        let width = self.header.dtype.width();
        let bytes = &self.mmap[self.data_offset + (start * width) as usize..self.data_offset + (end * width) as usize];
        out.reserve(len);
        match self.header.dtype {
            Dtype::U16 => out.extend(bytes.chunks_exact(2).map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))),
            Dtype::U32 => out.extend(bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        }
        Ok(())
    }

    /// Check every id against the header's vocabulary size (one pass over the file).
    pub fn check_ids(&self) -> Result<()> {
        let vocab_size = self.header.vocab_size;
        let bytes = &self.mmap[self.data_offset..];
        let bad = match self.header.dtype {
            Dtype::U16 => bytes
                .chunks_exact(2)
                .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
                .find(|&id| u64::from(id) >= vocab_size),
            Dtype::U32 => bytes
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .find(|&id| u64::from(id) >= vocab_size),
        };
        match bad {
            Some(id) => Err(Error::TokenOutOfRange { path: self.path.clone(), id, vocab_size }),
            None => Ok(()),
        }
    }
}
