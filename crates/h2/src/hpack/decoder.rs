//! Reading a header block (RFC 7541 §6).

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use super::huffman::{self, HuffmanError};
use super::table::{Dynamic, ENTRY_OVERHEAD};

/// One decoded field, borrowed from the block, the tables or the
/// decoder's scratch space until the callback returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    /// Sent as a literal never indexed (§6.2.3): an intermediary passing
    /// it on must send it the same way.
    pub never_indexed: bool,
    /// For a field read from the dynamic table: the entry's buffer, which
    /// `value` is a slice of, so a caller can keep the value by reference
    /// count (`Bytes::slice_ref`) rather than copy it.
    pub shared: Option<&'a Bytes>,
    /// For a field read from the dynamic table: the field as `http` types
    /// when it is a valid regular field (RFC 9113 §8.2), checked when the
    /// entry was added.
    pub parsed: Option<&'a (HeaderName, HeaderValue)>,
}

/// A header block that cannot be decoded. Every one is a connection
/// error of type `COMPRESSION_ERROR` (RFC 9113 §4.3): the peer's table and
/// ours no longer agree, so no later block can be trusted either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the header block ends inside a field")]
    Truncated,
    #[error("an integer in the header block overflows")]
    Integer,
    #[error("index {0} is in neither table")]
    Index(usize),
    #[error(transparent)]
    Huffman(#[from] HuffmanError),
    #[error("a table size update to {0} bytes, over the {1} the settings allow")]
    TableSize(usize, usize),
    #[error("a table size update after the block's first field")]
    LateTableSize,
}

/// A connection's HPACK decoder: its dynamic table and scratch space for
/// Huffman-coded strings, kept across blocks.
#[derive(Debug)]
pub struct Decoder {
    table: Dynamic,
    /// The table size our `SETTINGS_HEADER_TABLE_SIZE` allows the peer.
    limit: usize,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Decoder {
    /// A decoder whose peer may use a table of up to `limit` bytes: the
    /// value this side sends as `SETTINGS_HEADER_TABLE_SIZE`.
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self {
            table: Dynamic::new(limit),
            limit,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    /// The dynamic table's size as RFC 7541 §4.1 counts it.
    #[must_use]
    pub fn table_size(&self) -> usize {
        self.table.size()
    }

    /// Entries in the dynamic table.
    #[must_use]
    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// Decodes a whole header block (a `HEADERS` frame's fragment and its
    /// `CONTINUATION`s joined), handing each field to `each` in order.
    ///
    /// The block is always decoded to its end, so the table stays in step
    /// with the peer's. Fields are handed over while the header list's
    /// size (§4.1's count: name, value and 32 bytes a field) stays within
    /// `max_list`; the returned size is the whole list's, so a caller sees
    /// a list over its limit (and may answer 431) without having held it.
    ///
    /// # Errors
    /// The block is malformed (see [`DecodeError`]).
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list: usize,
        mut each: impl FnMut(Field<'_>),
    ) -> Result<usize, DecodeError> {
        let Self {
            table,
            limit,
            name: name_buf,
            value: value_buf,
        } = self;
        let mut pos = 0;
        let mut list = 0usize;
        let mut fields_seen = false;
        while let Some(&first) = block.get(pos) {
            if first & 0x80 != 0 {
                // Indexed field (§6.1).
                let index = integer(block, &mut pos, 7)?;
                let found = table.find(index).ok_or(DecodeError::Index(index))?;
                list = list.saturating_add(found.name.len() + found.value.len() + ENTRY_OVERHEAD);
                if list <= max_list {
                    each(Field {
                        name: found.name,
                        value: found.value,
                        never_indexed: false,
                        shared: found.shared,
                        parsed: found.parsed,
                    });
                }
                fields_seen = true;
                continue;
            }
            if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3), only before the fields.
                if fields_seen {
                    return Err(DecodeError::LateTableSize);
                }
                let size = integer(block, &mut pos, 5)?;
                if size > *limit {
                    return Err(DecodeError::TableSize(size, *limit));
                }
                table.resize(size);
                continue;
            }
            // A literal (§6.2): with incremental indexing (01), never
            // indexed (0001) or without indexing (0000).
            let (prefix, indexing, never_indexed) = if first & 0xc0 == 0x40 {
                (6, true, false)
            } else {
                (4, false, first & 0x10 != 0)
            };
            let index = integer(block, &mut pos, prefix)?;
            let name: &[u8] = if index == 0 {
                string(block, &mut pos, name_buf)?
            } else {
                table.get(index).ok_or(DecodeError::Index(index))?.0
            };
            let value = string(block, &mut pos, value_buf)?;
            list = list.saturating_add(name.len() + value.len() + ENTRY_OVERHEAD);
            if list <= max_list {
                each(Field {
                    name,
                    value,
                    never_indexed,
                    shared: None,
                    parsed: None,
                });
            }
            fields_seen = true;
            if indexing {
                // The name may be the table's own: copied out before the
                // insert that may evict it.
                let name_len = name.len();
                table.insert([name, value].concat(), name_len);
            }
        }
        Ok(list)
    }
}

/// Reads an integer with an `n`-bit prefix (§5.1). Values past `u32`
/// are refused: no length or index a peer may send comes near.
fn integer(block: &[u8], pos: &mut usize, n: u32) -> Result<usize, DecodeError> {
    let mask = (1u8 << n) - 1;
    let first = *block.get(*pos).ok_or(DecodeError::Truncated)? & mask;
    *pos += 1;
    if first < mask {
        return Ok(usize::from(first));
    }
    let mut value = u64::from(mask);
    let mut shift = 0;
    loop {
        let b = *block.get(*pos).ok_or(DecodeError::Truncated)?;
        *pos += 1;
        value += u64::from(b & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return Err(DecodeError::Integer);
        }
        if b & 0x80 == 0 {
            return usize::try_from(value).map_err(|_| DecodeError::Integer);
        }
        shift += 7;
        if shift > 28 {
            return Err(DecodeError::Integer);
        }
    }
}

/// Reads a string literal (§5.2): a slice of the block when sent raw,
/// decoded into `scratch` when Huffman-coded.
fn string<'a>(
    block: &'a [u8],
    pos: &mut usize,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], DecodeError> {
    let huffman = *block.get(*pos).ok_or(DecodeError::Truncated)? & 0x80 != 0;
    let len = integer(block, pos, 7)?;
    let end = pos.checked_add(len).ok_or(DecodeError::Truncated)?;
    let raw = block.get(*pos..end).ok_or(DecodeError::Truncated)?;
    *pos = end;
    if !huffman {
        return Ok(raw);
    }
    scratch.clear();
    huffman::decode(raw, scratch)?;
    Ok(scratch)
}

#[cfg(test)]
mod tests;
