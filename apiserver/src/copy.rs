//! Copies of long byte runs, made in pieces.
//!
//! glibc's `memcpy` copies 2,112 bytes or more with `rep movsb` on x86-64
//! (its `x86_rep_movsb_threshold`), shorter runs with a vector loop. On the
//! AMD EPYC machines this server is measured on, the long copies of a watch
//! flood (events gathered into one frame, frames into the connection's write
//! buffer, plaintext into TLS records) took a fifth of the server's samples;
//! with every copy on the vector loop they took half that, and the delivery
//! p99 of 10,000 watchers fell by about a fifth (BENCHMARKS.md, issue 15,
//! sixth session). Copying in pieces of [`PIECE`] bytes keeps each `memcpy` short.

use std::io::IoSlice;

/// The longest piece copied at once: below glibc's `rep movsb` threshold.
pub const PIECE: usize = 2048;

/// Appends `src` to `out` piece by piece. Growing `out` copies its bytes in
/// pieces too (a reallocation would copy them in one run).
pub fn extend(out: &mut Vec<u8>, src: &[u8]) {
    if out.capacity() - out.len() < src.len() {
        let mut grown = Vec::with_capacity((out.len() + src.len()).max(out.capacity().saturating_mul(2)));
        out.chunks(PIECE).for_each(|piece| grown.extend_from_slice(piece));
        *out = grown;
    }
    src.chunks(PIECE).for_each(|piece| out.extend_from_slice(piece));
}

/// How many slices [`io_slices`] makes at most (128 KiB of pieces).
pub const MAX_SLICES: usize = 64;

/// The start of `src` as at most [`MAX_SLICES`] slices of at most [`PIECE`]
/// bytes, for a vectored write: rustls copies each slice into its TLS record
/// on its own. Returns the slices and how many of them are used.
pub fn io_slices(src: &[u8]) -> ([IoSlice<'_>; MAX_SLICES], usize) {
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let mut used = 0;
    for (slot, piece) in slices.iter_mut().zip(src.chunks(PIECE)) {
        *slot = IoSlice::new(piece);
        used += 1;
    }
    (slices, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_appends_every_byte_in_order_and_grows_as_needed() {
        let src: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for start in [0usize, 1, 2047, 2048, 2049, 5000] {
            let mut out = src[..start].to_vec();
            extend(&mut out, &src[start..]);
            assert_eq!(out, src, "split at {start}");
        }
        let mut small = Vec::with_capacity(4);
        extend(&mut small, b"");
        extend(&mut small, b"abcdef");
        assert_eq!(small, b"abcdef");
    }

    #[test]
    fn io_slices_cover_the_start_in_short_pieces() {
        let src = vec![7u8; PIECE * MAX_SLICES + 100];
        let (slices, used) = io_slices(&src);
        assert_eq!(used, MAX_SLICES);
        assert!(slices.iter().all(|s| s.len() == PIECE));
        let (slices, used) = io_slices(&src[..PIECE + 1]);
        assert_eq!((used, slices[0].len(), slices[1].len()), (2, PIECE, 1));
        assert_eq!(io_slices(&[]).1, 0);
    }
}
