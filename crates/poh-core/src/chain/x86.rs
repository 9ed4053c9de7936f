//! SHA-NI routines for the PoH hash step `h = SHA-256(h)` on x86-64.
//!
//! A 32-byte input is exactly one compression of a block whose second half is constant
//! (`0x80`, zeros, bit length 256), so the generic hasher's buffering, padding and byte
//! swapping can all go: the state stays in message-word order between steps and the round
//! constants for words 8–15 are folded in ahead of time. Several independent chains are
//! interleaved so the latency of `sha256rnds2` (a long dependency chain for one hash) is
//! hidden behind the other lanes' work: that is what makes verification faster than
//! generation, which is one chain by definition.

use super::{IV, K};
use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_loadu_si128, _mm_set_epi32,
    _mm_set_epi64x, _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32,
    _mm_sha256rnds2_epu32, _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_storeu_si128,
};

/// Message words 8..15 of every block of a 32-byte message: the padding.
const PAD: [u32; 8] = [0x8000_0000, 0, 0, 0, 0, 0, 0, 256];

/// Whether this CPU runs the routines of this module.
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("sha")
        && std::is_x86_feature_detected!("sse2")
        && std::is_x86_feature_detected!("ssse3")
        && std::is_x86_feature_detected!("sse4.1")
}

/// Lane `i` of the result is `w[i]` (`_mm_set_epi32` takes the highest lane first).
macro_rules! words4 {
    ($w:expr, $at:expr) => {
        _mm_set_epi32(
            $w[$at + 3] as i32,
            $w[$at + 2] as i32,
            $w[$at + 1] as i32,
            $w[$at] as i32,
        )
    };
}

/// Four rounds over `wk` = message words plus round constants.
macro_rules! rounds4 {
    ($abef:expr, $cdgh:expr, $wk:expr) => {{
        let wk = $wk;
        $cdgh = _mm_sha256rnds2_epu32($cdgh, $abef, wk);
        $abef = _mm_sha256rnds2_epu32($abef, $cdgh, _mm_shuffle_epi32::<0x0E>(wk));
    }};
}

/// The next four message words from the previous sixteen.
macro_rules! schedule {
    ($v0:expr, $v1:expr, $v2:expr, $v3:expr) => {
        _mm_sha256msg2_epu32(
            _mm_add_epi32(
                _mm_sha256msg1_epu32($v0, $v1),
                _mm_alignr_epi8::<4>($v3, $v2),
            ),
            $v3,
        )
    };
}

/// Advances each of the `L` hashes in `states` by `n` steps of `h = SHA-256(h)`.
///
/// # Safety
/// The CPU must support SHA, SSE2, SSSE3 and SSE4.1 ([`available`]).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) unsafe fn chains<const L: usize>(states: &mut [[u8; 32]; L], n: u64) {
    // Byte-swaps each 32-bit lane: big-endian bytes <-> message words.
    let bswap = _mm_set_epi64x(0x0C0D_0E0F_0809_0A0B, 0x0405_0607_0001_0203);
    // The state registers hold A,B,E,F and C,D,G,H (highest lane first), as sha256rnds2 wants.
    let iv_abef = _mm_set_epi32(IV[0] as i32, IV[1] as i32, IV[4] as i32, IV[5] as i32);
    let iv_cdgh = _mm_set_epi32(IV[2] as i32, IV[3] as i32, IV[6] as i32, IV[7] as i32);
    let pad_lo = words4!(PAD, 0);
    let pad_hi = words4!(PAD, 4);
    // Rounds 8..15 see only padding, so their message-plus-constant words are fixed.
    let wk8 = _mm_add_epi32(pad_lo, words4!(K, 8));
    let wk12 = _mm_add_epi32(pad_hi, words4!(K, 12));
    let k: [__m128i; 16] = core::array::from_fn(|g| words4!(K, 4 * g));

    let mut w0 = [_mm_setzero_si128(); L];
    let mut w1 = [_mm_setzero_si128(); L];
    for l in 0..L {
        let p = states[l].as_ptr().cast::<__m128i>();
        // SAFETY: `states[l]` is 32 readable bytes; unaligned loads are allowed.
        unsafe {
            w0[l] = _mm_shuffle_epi8(_mm_loadu_si128(p), bswap);
            w1[l] = _mm_shuffle_epi8(_mm_loadu_si128(p.add(1)), bswap);
        }
    }

    for _ in 0..n {
        let mut abef = [iv_abef; L];
        let mut cdgh = [iv_cdgh; L];
        let mut m0 = w0;
        let mut m1 = w1;
        let mut m2 = [pad_lo; L];
        let mut m3 = [pad_hi; L];
        let mut m4 = [_mm_setzero_si128(); L];
        for l in 0..L {
            rounds4!(abef[l], cdgh[l], _mm_add_epi32(m0[l], k[0]));
        }
        for l in 0..L {
            rounds4!(abef[l], cdgh[l], _mm_add_epi32(m1[l], k[1]));
        }
        for l in 0..L {
            rounds4!(abef[l], cdgh[l], wk8);
        }
        for l in 0..L {
            rounds4!(abef[l], cdgh[l], wk12);
        }
        // Rounds 16..63: five registers rotate through the message schedule.
        macro_rules! group {
            ($out:ident = $a:ident, $b:ident, $c:ident, $d:ident; $g:expr) => {
                for l in 0..L {
                    $out[l] = schedule!($a[l], $b[l], $c[l], $d[l]);
                    rounds4!(abef[l], cdgh[l], _mm_add_epi32($out[l], k[$g]));
                }
            };
        }
        group!(m4 = m0, m1, m2, m3; 4);
        group!(m0 = m1, m2, m3, m4; 5);
        group!(m1 = m2, m3, m4, m0; 6);
        group!(m2 = m3, m4, m0, m1; 7);
        group!(m3 = m4, m0, m1, m2; 8);
        group!(m4 = m0, m1, m2, m3; 9);
        group!(m0 = m1, m2, m3, m4; 10);
        group!(m1 = m2, m3, m4, m0; 11);
        group!(m2 = m3, m4, m0, m1; 12);
        group!(m3 = m4, m0, m1, m2; 13);
        group!(m4 = m0, m1, m2, m3; 14);
        group!(m0 = m1, m2, m3, m4; 15);
        for l in 0..L {
            let abef = _mm_add_epi32(abef[l], iv_abef);
            let cdgh = _mm_add_epi32(cdgh[l], iv_cdgh);
            // Back to digest-word order, which is the next block's message-word order.
            let feba = _mm_shuffle_epi32::<0x1B>(abef);
            let dchg = _mm_shuffle_epi32::<0xB1>(cdgh);
            w0[l] = _mm_blend_epi16::<0xF0>(feba, dchg);
            w1[l] = _mm_alignr_epi8::<8>(dchg, feba);
        }
    }

    for l in 0..L {
        let p = states[l].as_mut_ptr().cast::<__m128i>();
        // SAFETY: `states[l]` is 32 writable bytes; unaligned stores are allowed.
        unsafe {
            _mm_storeu_si128(p, _mm_shuffle_epi8(w0[l], bswap));
            _mm_storeu_si128(p.add(1), _mm_shuffle_epi8(w1[l], bswap));
        }
    }
}
