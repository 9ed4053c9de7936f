//! Hash chains `h = SHA-256(h)`: the PoH hash step, with the fastest implementation this CPU
//! has chosen at run time and the `sha2` crate as the portable fallback. Every backend is
//! byte-identical to [`Backend::portable`], which the tests check on random inputs.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::Hash;

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod x86;

/// SHA-256 round constants (FIPS 180-4 §4.2.2).
pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 initial state H0..H7.
pub(crate) const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// How many independent chains the SHA-NI backend interleaves on one core. Measured on this
/// project's machines: two lanes already saturate `sha256rnds2` (1.7× one chain); four leave
/// headroom for CPUs with a shorter latency, and more only spill registers.
pub const LANES: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Portable,
    #[cfg(target_arch = "x86_64")]
    ShaNi,
    /// Sixteen AVX-512 lanes for many chains; SHA-NI (when present) for a single one.
    #[cfg(target_arch = "x86_64")]
    Avx512 {
        sha_ni: bool,
    },
}

/// An implementation of the hash step. Only constructible for what this CPU supports, so
/// holding one is the proof that calling it is sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend(Kind);

impl Backend {
    /// The generic `sha2` hasher: works everywhere, the reference for every other backend.
    pub const fn portable() -> Self {
        Self(Kind::Portable)
    }

    /// The SHA-NI backend, when this CPU has the SHA extensions.
    pub fn sha_ni() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if x86::available() {
            return Some(Self(Kind::ShaNi));
        }
        None
    }

    /// The 16-lane AVX-512 backend, when this CPU has AVX-512F.
    pub fn avx512() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            return Some(Self(Kind::Avx512 {
                sha_ni: x86::available(),
            }));
        }
        None
    }

    /// The fastest backend this CPU supports (detected once).
    pub fn fastest() -> Self {
        static FASTEST: OnceLock<Backend> = OnceLock::new();
        *FASTEST.get_or_init(|| {
            Self::avx512()
                .or_else(Self::sha_ni)
                .unwrap_or(Self::portable())
        })
    }

    /// Every backend this CPU supports, the portable one first.
    pub fn all() -> Vec<Self> {
        std::iter::once(Self::portable())
            .chain(Self::sha_ni())
            .chain(Self::avx512())
            .collect()
    }

    /// How many chains [`Backend::chains`] runs at once to full effect.
    pub fn lanes(self) -> usize {
        match self.0 {
            Kind::Portable => 1,
            #[cfg(target_arch = "x86_64")]
            Kind::ShaNi => LANES,
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 { .. } => avx512::WIDTH,
        }
    }

    /// A short name for logs and benchmark output.
    pub fn name(self) -> &'static str {
        match self.0 {
            Kind::Portable => "sha2",
            #[cfg(target_arch = "x86_64")]
            Kind::ShaNi => "sha-ni",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 { .. } => "avx512",
        }
    }

    /// Applies `n` hash steps to `h`.
    pub fn chain(self, h: &mut Hash, n: u64) {
        match self.0 {
            Kind::Portable => {
                for _ in 0..n {
                    h.0 = Sha256::digest(h.0).into();
                }
            }
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 { sha_ni: false } => Self::portable().chain(h, n),
            #[cfg(target_arch = "x86_64")]
            Kind::ShaNi | Kind::Avx512 { sha_ni: true } => {
                let mut one = [h.0];
                // SAFETY: a `ShaNi` backend exists only where `x86::available()` said yes.
                unsafe { x86::chains::<1>(&mut one, n) };
                h.0 = one[0];
            }
        }
    }

    /// Applies `n` hash steps to each of `hashes`, interleaving up to [`LANES`] chains.
    pub fn chains(self, hashes: &mut [Hash], n: u64) {
        match self.0 {
            Kind::Portable => hashes.iter_mut().for_each(|h| self.chain(h, n)),
            #[cfg(target_arch = "x86_64")]
            Kind::ShaNi => {
                for group in hashes.chunks_mut(LANES) {
                    // SAFETY (each arm): a `ShaNi` backend exists only where the CPU has it.
                    unsafe {
                        match group.len() {
                            1 => shani_group::<1>(group, n),
                            2 => shani_group::<2>(group, n),
                            3 => shani_group::<3>(group, n),
                            _ => shani_group::<LANES>(group, n),
                        }
                    }
                }
            }
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 { sha_ni } => {
                let tail = if sha_ni {
                    Self(Kind::ShaNi)
                } else {
                    Self::portable()
                };
                for group in hashes.chunks_mut(avx512::WIDTH) {
                    if group.len() < avx512::WIDTH / 2 {
                        // A short tail costs less one chain at a time than in idle lanes.
                        tail.chains(group, n);
                        continue;
                    }
                    let mut states = [[0u8; 32]; avx512::WIDTH];
                    for (s, h) in states.iter_mut().zip(group.iter()) {
                        *s = h.0;
                    }
                    // SAFETY: an `Avx512` backend exists only where the CPU has AVX-512F.
                    unsafe { avx512::chains16(&mut states, n) };
                    for (h, s) in group.iter_mut().zip(states) {
                        h.0 = s;
                    }
                }
            }
        }
    }
}

/// # Safety
/// The CPU must have SHA-NI; `group.len()` must be `L`.
#[cfg(target_arch = "x86_64")]
unsafe fn shani_group<const L: usize>(group: &mut [Hash], n: u64) {
    let mut states: [[u8; 32]; L] = core::array::from_fn(|i| group[i].0);
    // SAFETY: forwarded from the caller.
    unsafe { x86::chains::<L>(&mut states, n) };
    for (h, s) in group.iter_mut().zip(states) {
        h.0 = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256;
    use proptest::prelude::*;

    #[test]
    fn portable_matches_the_definition() {
        let mut h = sha256(b"seed");
        let mut expected = h;
        for _ in 0..3 {
            expected = sha256(&expected.0);
        }
        Backend::portable().chain(&mut h, 3);
        assert_eq!(h, expected);
    }

    proptest! {
        #[test]
        fn every_backend_agrees(seeds in prop::collection::vec(any::<[u8; 32]>(), 1..40), n in 0u64..200) {
            let start: Vec<Hash> = seeds.into_iter().map(Hash).collect();
            let mut reference = start.clone();
            Backend::portable().chains(&mut reference, n);
            for backend in Backend::all() {
                let mut got = start.clone();
                backend.chains(&mut got, n);
                prop_assert_eq!(&got, &reference, "backend {}", backend.name());
                let mut one = start[0];
                backend.chain(&mut one, n);
                prop_assert_eq!(one, reference[0], "backend {} single", backend.name());
            }
        }
    }
}
