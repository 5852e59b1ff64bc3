//! Sample identifiers.

use std::fmt;

use serde::Serialize;

/// A sample identifier: the SAM `SM` value and the first part of every file name biojob writes.
///
/// Because it names files, it is restricted to ASCII letters, digits, `.`, `_` and `-`, at most
/// 128 bytes, and may not start with `.` or `-`. (SAM itself allows more in `SM`; a read group
/// built with [`ReadGroup::for_sample`](crate::ReadGroup::for_sample) uses this value.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SampleId(String);

/// Why a string is not a valid [`SampleId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SampleIdError {
    /// The value is empty.
    #[error("sample id is empty")]
    Empty,
    /// The value is longer than 128 bytes.
    #[error("sample id {value:?} is longer than 128 bytes")]
    TooLong {
        /// The rejected value.
        value: String,
    },
    /// The value holds a character outside `[A-Za-z0-9._-]` or starts with `.` or `-`.
    #[error(
        "sample id {value:?} has {character:?} at byte {offset}; use letters, digits, '.', '_' and '-', not starting with '.' or '-'"
    )]
    InvalidCharacter {
        /// The rejected value.
        value: String,
        /// The first offending character.
        character: char,
        /// Its byte offset in `value`.
        offset: usize,
    },
}

impl SampleId {
    /// Checks and wraps a sample identifier.
    ///
    /// # Errors
    /// [`SampleIdError`] when the value is empty, too long, or holds a character that is not
    /// safe in a file name.
    pub fn new(value: impl Into<String>) -> Result<Self, SampleIdError> {
        let value = value.into();
        if value.is_empty() {
            return Err(SampleIdError::Empty);
        }
        if value.len() > 128 {
            return Err(SampleIdError::TooLong { value });
        }
        for (offset, character) in value.char_indices() {
            let allowed = character.is_ascii_alphanumeric()
                || (offset > 0 && matches!(character, '.' | '-'))
                || character == '_';
            if !allowed {
                return Err(SampleIdError::InvalidCharacter {
                    value,
                    character,
                    offset,
                });
            }
        }
        Ok(SampleId(value))
    }

    /// The identifier as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SampleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_ids() {
        for id in ["NA12878", "NIST7035", "sample_1.run-2", "_x"] {
            assert_eq!(SampleId::new(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn rejects_unsafe_ids() {
        assert_eq!(SampleId::new(""), Err(SampleIdError::Empty));
        assert_eq!(
            SampleId::new("a/b").unwrap_err().to_string(),
            "sample id \"a/b\" has '/' at byte 1; use letters, digits, '.', '_' and '-', not starting with '.' or '-'"
        );
        assert!(matches!(
            SampleId::new("..x"),
            Err(SampleIdError::InvalidCharacter {
                character: '.',
                offset: 0,
                ..
            })
        ));
        assert!(matches!(
            SampleId::new("a b"),
            Err(SampleIdError::InvalidCharacter {
                character: ' ',
                offset: 1,
                ..
            })
        ));
        assert!(matches!(
            SampleId::new("x".repeat(129)),
            Err(SampleIdError::TooLong { .. })
        ));
    }
}
