//! HPACK, HTTP/2's header compression (RFC 7541).

mod decoder;
mod encoder;
pub mod huffman;
mod table;

pub use decoder::{DecodeError, Decoder, Field};
pub use encoder::{encode_field, encode_status};
pub use table::{static_name, DEFAULT_TABLE_SIZE};
