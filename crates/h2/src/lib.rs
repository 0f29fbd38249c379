//! The HTTP/2 wire format (RFC 9113), its header compression, HPACK
//! (RFC 7541), and a server connection's protocol state, all without I/O:
//! what a connection reads is parsed here, what it writes is built here,
//! and the streams, windows and limits between the two are kept here
//! (`server`). Reading, writing, timers and running each request's work
//! are the driver's.
//!
//! Why our own: `h2`'s encoder Huffman-codes every literal and hashes
//! every field into its dynamic table, and its decoder hands each request
//! over as a `HeaderMap` built field by field. The proxy answers with the
//! fields the upstream wrote and reads only a handful of a request's, so
//! the cheaper choices are open to it: an encoder that sends literals
//! without indexing (as HAProxy's does) and a decoder that hands each
//! field to the caller as bytes.

pub mod frame;
pub mod hpack;
pub mod server;

#[cfg(test)]
mod robustness;

#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}
