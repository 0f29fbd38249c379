//! The static Huffman code of HPACK (RFC 7541 §5.2, Appendix B).
//!
//! The code is canonical: ordered by length, then by symbol, each code is
//! the one before it plus one, shifted to its length. So the table here is
//! the Appendix's code lengths alone, and the codes and the decoder's
//! state machine are derived from them when the crate is compiled.
//!
//! The decoder reads four bits a step. A state is a node of the code's
//! tree (256 inner nodes for 257 symbols); as no code is shorter than five
//! bits, a step ends at most one symbol. A string is well formed when its
//! last step ends on a symbol or inside the padding the encoder appends:
//! at most seven bits, all ones, the start of the EOS code (§5.2). EOS
//! itself inside a string is an error.

/// Code length in bits of each symbol: the bytes 0..=255, then EOS (256).
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];

const EOS: usize = 256;

/// Each symbol's code, right-aligned in its [`LENGTHS`] bits.
const CODES: [u32; 257] = canonical();

const fn canonical() -> [u32; 257] {
    let mut codes = [0u32; 257];
    let mut code = 0u32;
    let mut prev = 0u32;
    let mut first = true;
    let mut len = 1u32;
    while len <= 30 {
        let mut sym = 0;
        while sym < 257 {
            if LENGTHS[sym] as u32 == len {
                if !first {
                    code = (code + 1) << (len - prev);
                }
                first = false;
                prev = len;
                codes[sym] = code;
            }
            sym += 1;
        }
        len += 1;
    }
    codes
}

/// The step ends a symbol: [`Step::sym`] is it.
const EMIT: u8 = 1;
/// The step reached EOS: the string is malformed.
const FAIL: u8 = 2;
/// A string may end after this step.
const ACCEPT: u8 = 4;

/// Four bits read from a state.
#[derive(Clone, Copy)]
struct Step {
    next: u8,
    sym: u8,
    flags: u8,
}

/// Inner nodes of the code's tree.
const NODES: usize = 256;

/// The decoder's steps: `STEPS[state][nibble]`.
static STEPS: [[Step; 16]; NODES] = steps();

const fn steps() -> [[Step; 16]; NODES] {
    // children[node][bit]: an inner node's index, or -(symbol + 1).
    let mut children = [[0i16; 2]; NODES];
    let mut depth = [0u8; NODES];
    let mut ones = [false; NODES];
    ones[0] = true;
    let mut inner = 1;
    let mut sym = 0;
    while sym < 257 {
        let len = LENGTHS[sym] as u32;
        let code = CODES[sym];
        let mut node = 0;
        let mut i = len;
        while i > 1 {
            i -= 1;
            let bit = ((code >> i) & 1) as usize;
            if children[node][bit] == 0 {
                children[node][bit] = inner as i16;
                depth[inner] = depth[node] + 1;
                ones[inner] = ones[node] && bit == 1;
                inner += 1;
            }
            node = children[node][bit] as usize;
        }
        children[node][(code & 1) as usize] = -(sym as i16) - 1;
        sym += 1;
    }
    assert!(
        inner == NODES,
        "a canonical code of 257 symbols has 256 inner nodes"
    );

    let mut steps = [[Step {
        next: 0,
        sym: 0,
        flags: 0,
    }; 16]; NODES];
    let mut state = 0;
    while state < NODES {
        let mut nibble = 0;
        while nibble < 16 {
            let mut node = state;
            let mut step = Step {
                next: 0,
                sym: 0,
                flags: 0,
            };
            let mut k = 4;
            while k > 0 {
                k -= 1;
                let child = children[node][(nibble >> k) & 1];
                if child >= 0 {
                    node = child as usize;
                    continue;
                }
                let s = (-(child + 1)) as usize;
                if s == EOS {
                    step.flags = FAIL;
                    break;
                }
                step.flags = EMIT;
                step.sym = s as u8;
                node = 0;
            }
            if step.flags & FAIL == 0 && (node == 0 || (ones[node] && depth[node] <= 7)) {
                step.flags |= ACCEPT;
            }
            step.next = node as u8;
            steps[state][nibble] = step;
            nibble += 1;
        }
        state += 1;
    }
    steps
}

/// A Huffman-coded string that is not one: it holds EOS, or its padding
/// is longer than seven bits or not all ones (RFC 7541 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed Huffman-coded string")]
pub struct HuffmanError;

/// Appends the decoding of `src` to `dst`.
///
/// # Errors
/// `src` is no Huffman-coded string; `dst` may then hold part of it.
pub fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HuffmanError> {
    // Each byte yields at most eight fifths of a symbol: reserve once.
    dst.reserve(src.len() * 8 / 5);
    let mut state = 0usize;
    let mut accept = true;
    for &byte in src {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step = STEPS[state][usize::from(nibble)];
            if step.flags & FAIL != 0 {
                return Err(HuffmanError);
            }
            if step.flags & EMIT != 0 {
                dst.push(step.sym);
            }
            state = usize::from(step.next);
            accept = step.flags & ACCEPT != 0;
        }
    }
    if accept {
        Ok(())
    } else {
        Err(HuffmanError)
    }
}

/// The length `src` takes Huffman-coded, padding included.
#[must_use]
pub fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(LENGTHS[usize::from(b)]))
        .sum();
    bits.div_ceil(8)
}

/// Appends the Huffman coding of `src` to `dst`, padded with ones to a
/// byte's end.
pub fn encode(src: &[u8], dst: &mut Vec<u8>) {
    dst.reserve(encoded_len(src));
    let mut bits = 0u64;
    let mut pending = 0u32;
    for &b in src {
        let len = u32::from(LENGTHS[usize::from(b)]);
        bits = (bits << len) | u64::from(CODES[usize::from(b)]);
        pending += len;
        while pending >= 8 {
            pending -= 8;
            dst.push((bits >> pending) as u8);
        }
    }
    if pending > 0 {
        dst.push(((bits << (8 - pending)) as u8) | (0xff >> pending));
    }
}

#[cfg(test)]
mod tests;
