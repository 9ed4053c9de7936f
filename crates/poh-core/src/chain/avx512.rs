//! Sixteen PoH hash chains at once, one per 32-bit lane of the AVX-512 registers.
//!
//! Verification is embarrassingly parallel across entries, so instead of one SHA-256 per
//! instruction stream this runs sixteen: `vprord` and the three-input `vpternlogd` make a
//! round about seventeen vector instructions for all lanes. The block's padding words are
//! constants, so LLVM folds every term of the message schedule that only involves them.

use core::arch::x86_64::{
    __m512i, _mm512_add_epi32, _mm512_loadu_si512, _mm512_ror_epi32, _mm512_set1_epi32,
    _mm512_srli_epi32, _mm512_storeu_si512, _mm512_ternarylogic_epi32,
};

use super::{IV, K};

/// Lanes per call.
pub(crate) const WIDTH: usize = 16;

/// Whether this CPU runs the routines of this module.
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

/// Advances each of the sixteen hashes in `states` by `n` steps of `h = SHA-256(h)`.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn chains16(states: &mut [[u8; 32]; WIDTH], n: u64) {
    let splat = |x: u32| _mm512_set1_epi32(x as i32);
    // Transpose: s[j] holds word j of every lane.
    let mut s: [__m512i; 8] = core::array::from_fn(|j| {
        let words: [u32; WIDTH] = core::array::from_fn(|l| {
            u32::from_be_bytes([
                states[l][4 * j],
                states[l][4 * j + 1],
                states[l][4 * j + 2],
                states[l][4 * j + 3],
            ])
        });
        // SAFETY: `words` is 64 readable bytes; the load is unaligned.
        unsafe { _mm512_loadu_si512(words.as_ptr().cast()) }
    });

    let add = |a: __m512i, b: __m512i| _mm512_add_epi32(a, b);
    let xor3 = |a, b, c| _mm512_ternarylogic_epi32::<0x96>(a, b, c);
    let big_sigma0 = |x| {
        xor3(
            _mm512_ror_epi32::<2>(x),
            _mm512_ror_epi32::<13>(x),
            _mm512_ror_epi32::<22>(x),
        )
    };
    let big_sigma1 = |x| {
        xor3(
            _mm512_ror_epi32::<6>(x),
            _mm512_ror_epi32::<11>(x),
            _mm512_ror_epi32::<25>(x),
        )
    };
    let small_sigma0 = |x| {
        xor3(
            _mm512_ror_epi32::<7>(x),
            _mm512_ror_epi32::<18>(x),
            _mm512_srli_epi32::<3>(x),
        )
    };
    let small_sigma1 = |x| {
        xor3(
            _mm512_ror_epi32::<17>(x),
            _mm512_ror_epi32::<19>(x),
            _mm512_srli_epi32::<10>(x),
        )
    };

    for _ in 0..n {
        let mut w: [__m512i; 16] = core::array::from_fn(|i| match i {
            0..8 => s[i],
            8 => splat(0x8000_0000),
            15 => splat(256),
            _ => splat(0),
        });
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = IV.map(splat);
        macro_rules! round {
            ($i:expr) => {{
                if $i >= 16 {
                    w[$i % 16] = add(
                        add(small_sigma1(w[($i - 2) % 16]), w[($i - 7) % 16]),
                        add(small_sigma0(w[($i - 15) % 16]), w[$i % 16]),
                    );
                }
                let ch = _mm512_ternarylogic_epi32::<0xCA>(e, f, g);
                let t1 = add(
                    add(h, big_sigma1(e)),
                    add(ch, add(splat(K[$i]), w[$i % 16])),
                );
                let maj = _mm512_ternarylogic_epi32::<0xE8>(a, b, c);
                let t2 = add(big_sigma0(a), maj);
                h = g;
                g = f;
                f = e;
                e = add(d, t1);
                d = c;
                c = b;
                b = a;
                a = add(t1, t2);
            }};
        }
        macro_rules! rounds8 {
            ($i:expr) => {
                round!($i);
                round!($i + 1);
                round!($i + 2);
                round!($i + 3);
                round!($i + 4);
                round!($i + 5);
                round!($i + 6);
                round!($i + 7);
            };
        }
        rounds8!(0);
        rounds8!(8);
        rounds8!(16);
        rounds8!(24);
        rounds8!(32);
        rounds8!(40);
        rounds8!(48);
        rounds8!(56);
        let out = [a, b, c, d, e, f, g, h];
        for j in 0..8 {
            s[j] = add(out[j], splat(IV[j]));
        }
    }

    for (j, word) in s.iter().enumerate() {
        let mut words = [0u32; WIDTH];
        // SAFETY: `words` is 64 writable bytes; the store is unaligned.
        unsafe { _mm512_storeu_si512(words.as_mut_ptr().cast(), *word) };
        for (l, state) in states.iter_mut().enumerate() {
            state[4 * j..4 * j + 4].copy_from_slice(&words[l].to_be_bytes());
        }
    }
}
