//! Validation of every rule of SPEC §2, each failure a typed [`ValidationError`] that names the
//! field and the rule. Validation checks shape only; signatures are checked by
//! [`Tx::verify_signature`](crate::Tx::verify_signature), which is far more expensive.

use std::{collections::HashSet, fmt};

use crate::{
    Tx,
    signing::{PUBLIC_KEY_LEN, SIGNATURE_LEN},
};

/// Longest `tx_id` and `holder_id`, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Most `parent_ids` one transaction may name.
pub const MAX_PARENTS: usize = 64;
/// Default `max_payload_bytes` (1 MiB).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// What a node accepts beyond the fixed rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload in bytes.
    pub max_payload_bytes: usize,
    /// Whether an unsigned transaction is refused.
    pub require_signatures: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            require_signatures: false,
        }
    }
}

/// A transaction field, named as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Field {
    TxId,
    HolderId,
    Timestamp,
    Payload,
    ParentIds,
    PublicKey,
    Signature,
}

impl Field {
    /// The wire name (`tx_id`, `holder_id`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::TxId => "tx_id",
            Self::HolderId => "holder_id",
            Self::Timestamp => "timestamp",
            Self::Payload => "payload",
            Self::ParentIds => "parent_ids",
            Self::PublicKey => "public_key",
            Self::Signature => "signature",
        }
    }
}

/// The rule a field broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Its length in bytes is outside `min..=max`.
    Length {
        /// Shortest allowed.
        min: usize,
        /// Longest allowed.
        max: usize,
        /// What was sent.
        actual: usize,
    },
    /// A byte at this offset is not one of `[A-Za-z0-9._:-]`.
    Charset {
        /// Byte offset of the first offending character.
        at: usize,
    },
    /// A control character (U+0000–U+001F, U+007F–U+009F) at this byte offset.
    ControlCharacter {
        /// Byte offset of the first control character.
        at: usize,
    },
    /// NaN or infinite.
    NotFinite,
    /// Below zero.
    Negative,
    /// Larger than the node's limit.
    TooLarge {
        /// The limit in bytes.
        max: usize,
        /// What was sent.
        actual: usize,
    },
    /// More entries than allowed.
    TooMany {
        /// The limit.
        max: usize,
        /// What was sent.
        actual: usize,
    },
    /// The parent at this index is not a valid tx id.
    BadParent {
        /// Index into `parent_ids`.
        index: usize,
    },
    /// The parent at this index repeats an earlier one.
    DuplicateParent {
        /// Index into `parent_ids`.
        index: usize,
    },
    /// The transaction names itself as a parent, which could never be satisfied.
    SelfParent,
    /// Not the length of an ML-DSA-87 key or signature.
    WrongLength {
        /// The only accepted non-zero length.
        expected: usize,
        /// What was sent.
        actual: usize,
    },
    /// `public_key` and `signature` must be both present or both empty.
    Unpaired,
    /// This node requires signed transactions.
    Required,
}

/// A transaction broke `rule` in `field`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field `{}`: {rule}", field.name())]
pub struct ValidationError {
    /// Where.
    pub field: Field,
    /// What.
    pub rule: Rule,
}

impl ValidationError {
    /// Whether this is the payload-size rule (answered `TOO_LARGE` / 413, not `INVALID`).
    pub fn is_too_large(&self) -> bool {
        matches!(self.rule, Rule::TooLarge { .. })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length { min, max, actual } => {
                write!(f, "must be {min}–{max} bytes, got {actual}")
            }
            Self::Charset { at } => write!(
                f,
                "byte {at} is not allowed; use only A-Z, a-z, 0-9 and . _ : -"
            ),
            Self::ControlCharacter { at } => {
                write!(f, "control character at byte {at}; remove it")
            }
            Self::NotFinite => f.write_str("must be a finite number (not NaN or infinity)"),
            Self::Negative => f.write_str("must be ≥ 0 (Unix seconds)"),
            Self::TooLarge { max, actual } => {
                write!(f, "is {actual} bytes, above this node's limit of {max}")
            }
            Self::TooMany { max, actual } => {
                write!(f, "has {actual} entries, at most {max} allowed")
            }
            Self::BadParent { index } => write!(
                f,
                "entry {index} is not a valid tx_id (1–128 bytes of A-Z a-z 0-9 . _ : -)"
            ),
            Self::DuplicateParent { index } => write!(f, "entry {index} repeats an earlier parent"),
            Self::SelfParent => f.write_str("a transaction cannot be its own parent"),
            Self::WrongLength { expected, actual } => write!(
                f,
                "must be empty or exactly {expected} bytes (ML-DSA-87), got {actual}"
            ),
            Self::Unpaired => f.write_str("public_key and signature must be sent together"),
            Self::Required => f.write_str("this node requires signed transactions"),
        }
    }
}

fn err(field: Field, rule: Rule) -> ValidationError {
    ValidationError { field, rule }
}

/// Checks a transaction id: 1–128 bytes of `[A-Za-z0-9._:-]`.
pub fn check_tx_id(id: &str) -> Result<(), Rule> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(Rule::Length {
            min: 1,
            max: MAX_ID_BYTES,
            actual: id.len(),
        });
    }
    match id
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')))
    {
        Some(at) => Err(Rule::Charset { at }),
        None => Ok(()),
    }
}

impl Tx {
    /// Checks every shape rule of SPEC §2 against `limits`, in field order; the first broken
    /// rule is returned. A present signature is *not* verified here.
    pub fn validate(&self, limits: &Limits) -> Result<(), ValidationError> {
        check_tx_id(&self.tx_id).map_err(|r| err(Field::TxId, r))?;

        if self.holder_id.len() > MAX_ID_BYTES {
            return Err(err(
                Field::HolderId,
                Rule::Length {
                    min: 0,
                    max: MAX_ID_BYTES,
                    actual: self.holder_id.len(),
                },
            ));
        }
        // `char::is_control` is exactly the Cc category: U+0000–U+001F and U+007F–U+009F.
        if let Some((at, _)) = self.holder_id.char_indices().find(|(_, c)| c.is_control()) {
            return Err(err(Field::HolderId, Rule::ControlCharacter { at }));
        }

        if !self.timestamp.is_finite() {
            return Err(err(Field::Timestamp, Rule::NotFinite));
        }
        if self.timestamp < 0.0 {
            return Err(err(Field::Timestamp, Rule::Negative));
        }

        if self.payload.len() > limits.max_payload_bytes {
            return Err(err(
                Field::Payload,
                Rule::TooLarge {
                    max: limits.max_payload_bytes,
                    actual: self.payload.len(),
                },
            ));
        }

        if self.parent_ids.len() > MAX_PARENTS {
            return Err(err(
                Field::ParentIds,
                Rule::TooMany {
                    max: MAX_PARENTS,
                    actual: self.parent_ids.len(),
                },
            ));
        }
        let mut seen = HashSet::with_capacity(self.parent_ids.len());
        for (index, parent) in self.parent_ids.iter().enumerate() {
            if check_tx_id(parent).is_err() {
                return Err(err(Field::ParentIds, Rule::BadParent { index }));
            }
            if !seen.insert(parent.as_str()) {
                return Err(err(Field::ParentIds, Rule::DuplicateParent { index }));
            }
            if *parent == self.tx_id {
                return Err(err(Field::ParentIds, Rule::SelfParent));
            }
        }

        for (field, bytes, expected) in [
            (Field::PublicKey, &self.public_key, PUBLIC_KEY_LEN),
            (Field::Signature, &self.signature, SIGNATURE_LEN),
        ] {
            if !bytes.is_empty() && bytes.len() != expected {
                return Err(err(
                    field,
                    Rule::WrongLength {
                        expected,
                        actual: bytes.len(),
                    },
                ));
            }
        }
        match (self.public_key.is_empty(), self.signature.is_empty()) {
            (true, false) => return Err(err(Field::PublicKey, Rule::Unpaired)),
            (false, true) => return Err(err(Field::Signature, Rule::Unpaired)),
            (true, true) if limits.require_signatures => {
                return Err(err(Field::Signature, Rule::Required));
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Tx {
        Tx {
            tx_id: "tx-1".into(),
            holder_id: "holder".into(),
            timestamp: 1.5,
            payload: vec![7; 10],
            parent_ids: vec!["p1".into()],
            ..Tx::default()
        }
    }

    /// Applies `change` to a valid transaction and returns the error it causes.
    fn broken(change: impl FnOnce(&mut Tx)) -> Option<ValidationError> {
        broken_with(&Limits::default(), change)
    }

    fn broken_with(limits: &Limits, change: impl FnOnce(&mut Tx)) -> Option<ValidationError> {
        let mut tx = valid();
        change(&mut tx);
        tx.validate(limits).err()
    }

    fn expect(field: Field, rule: Rule) -> Option<ValidationError> {
        Some(ValidationError { field, rule })
    }

    #[test]
    fn the_base_transaction_and_the_boundaries_are_valid() {
        assert_eq!(broken(|_| {}), None);
        assert_eq!(broken(|t| t.tx_id = "aZ09._:-".repeat(16)), None); // 128 bytes
        assert_eq!(broken(|t| t.holder_id = "é".repeat(64)), None); // 128 bytes of UTF-8
        assert_eq!(broken(|t| t.holder_id.clear()), None);
        assert_eq!(broken(|t| t.timestamp = 0.0), None);
        assert_eq!(
            broken(|t| t.payload = vec![0; DEFAULT_MAX_PAYLOAD_BYTES]),
            None
        );
        assert_eq!(
            broken(|t| t.parent_ids = (0..64).map(|i| format!("p{i}")).collect()),
            None
        );
        assert_eq!(
            broken(|t| {
                t.public_key = vec![0; PUBLIC_KEY_LEN];
                t.signature = vec![0; SIGNATURE_LEN];
            }),
            None,
            "shape only: signature verification is separate"
        );
    }

    #[test]
    fn tx_id_length_and_charset() {
        let len = |actual| Rule::Length {
            min: 1,
            max: 128,
            actual,
        };
        assert_eq!(broken(|t| t.tx_id.clear()), expect(Field::TxId, len(0)));
        assert_eq!(
            broken(|t| t.tx_id = "a".repeat(129)),
            expect(Field::TxId, len(129))
        );
        for (bad, at) in [("a b", 1), ("a/b", 1), ("é", 0), ("ok\n", 2), ("x#", 1)] {
            assert_eq!(
                broken(|t| t.tx_id = bad.into()),
                expect(Field::TxId, Rule::Charset { at }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn holder_id_length_and_control_characters() {
        assert_eq!(
            broken(|t| t.holder_id = "h".repeat(129)),
            expect(
                Field::HolderId,
                Rule::Length {
                    min: 0,
                    max: 128,
                    actual: 129
                }
            )
        );
        for c in ['\u{0}', '\u{1f}', '\u{7f}', '\u{80}', '\u{9f}'] {
            assert_eq!(
                broken(|t| t.holder_id = format!("ab{c}")),
                expect(Field::HolderId, Rule::ControlCharacter { at: 2 }),
                "{c:?}"
            );
        }
        assert_eq!(broken(|t| t.holder_id = "\u{a0}\u{20}".into()), None);
    }

    #[test]
    fn timestamp_finite_and_not_negative() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(
                broken(|t| t.timestamp = bad),
                expect(Field::Timestamp, Rule::NotFinite)
            );
        }
        assert_eq!(
            broken(|t| t.timestamp = -0.001),
            expect(Field::Timestamp, Rule::Negative)
        );
    }

    #[test]
    fn payload_limit_is_too_large() {
        let limits = Limits {
            max_payload_bytes: 16,
            ..Limits::default()
        };
        let e = broken_with(&limits, |t| t.payload = vec![0; 17]).unwrap();
        assert_eq!(
            e,
            ValidationError {
                field: Field::Payload,
                rule: Rule::TooLarge {
                    max: 16,
                    actual: 17
                }
            }
        );
        assert!(e.is_too_large());
        assert_eq!(broken_with(&limits, |t| t.payload = vec![0; 16]), None);
    }

    #[test]
    fn parent_rules() {
        assert_eq!(
            broken(|t| t.parent_ids = (0..65).map(|i| format!("p{i}")).collect()),
            expect(
                Field::ParentIds,
                Rule::TooMany {
                    max: 64,
                    actual: 65
                }
            )
        );
        assert_eq!(
            broken(|t| t.parent_ids = vec!["ok".into(), "not ok".into()]),
            expect(Field::ParentIds, Rule::BadParent { index: 1 })
        );
        assert_eq!(
            broken(|t| t.parent_ids = vec!["".into()]),
            expect(Field::ParentIds, Rule::BadParent { index: 0 })
        );
        assert_eq!(
            broken(|t| t.parent_ids = vec!["a".into(), "b".into(), "a".into()]),
            expect(Field::ParentIds, Rule::DuplicateParent { index: 2 })
        );
        assert_eq!(
            broken(|t| t.parent_ids = vec![t.tx_id.clone()]),
            expect(Field::ParentIds, Rule::SelfParent)
        );
    }

    #[test]
    fn key_and_signature_lengths_and_pairing() {
        assert_eq!(
            broken(|t| {
                t.public_key = vec![0; 32];
                t.signature = vec![0; SIGNATURE_LEN];
            }),
            expect(
                Field::PublicKey,
                Rule::WrongLength {
                    expected: PUBLIC_KEY_LEN,
                    actual: 32
                }
            )
        );
        assert_eq!(
            broken(|t| {
                t.public_key = vec![0; PUBLIC_KEY_LEN];
                t.signature = vec![0; SIGNATURE_LEN - 1];
            }),
            expect(
                Field::Signature,
                Rule::WrongLength {
                    expected: SIGNATURE_LEN,
                    actual: SIGNATURE_LEN - 1
                }
            )
        );
        assert_eq!(
            broken(|t| t.signature = vec![0; SIGNATURE_LEN]),
            expect(Field::PublicKey, Rule::Unpaired)
        );
        assert_eq!(
            broken(|t| t.public_key = vec![0; PUBLIC_KEY_LEN]),
            expect(Field::Signature, Rule::Unpaired)
        );
        let strict = Limits {
            require_signatures: true,
            ..Limits::default()
        };
        assert_eq!(
            broken_with(&strict, |_| {}),
            expect(Field::Signature, Rule::Required)
        );
    }

    #[test]
    fn errors_name_the_field_and_the_rule() {
        let e = broken(|t| t.tx_id.clear()).unwrap();
        assert_eq!(e.to_string(), "field `tx_id`: must be 1–128 bytes, got 0");
    }
}
