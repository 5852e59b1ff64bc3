//! SAM read groups (`@RG` header lines), built from structured fields.

use serde::Serialize;

use crate::SampleId;

/// A SAM read group: the `@RG` header line that `bwa mem -R` writes and that every read carries
/// as its `RG:Z` tag (SAM spec v1, section 1.3, `@RG`).
///
/// Values may hold spaces, quotes and any other printable character but a backslash; the SAM
/// spec forbids tabs, newlines and other control characters in header values, so [`ReadGroup`]
/// refuses them instead of letting them split the line. A backslash is refused because
/// `bwa mem -R` reads it as the start of an escape (`\t` becomes a tab, `\n` a newline), and
/// bwa 0.7.17 unescapes the line twice, so no escaping of ours gets a backslash through
/// (`docs/formats.md`, "Read groups"). No shell is ever involved, so nothing else needs quoting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadGroup {
    /// `ID`: unique read group identifier.
    pub id: String,
    /// `SM`: sample.
    pub sample: String,
    /// `LB`: library, if known.
    pub library: Option<String>,
    /// `PL`: platform (`ILLUMINA`, …), if known.
    pub platform: Option<String>,
    /// `PU`: platform unit (flowcell-barcode.lane), if known.
    pub platform_unit: Option<String>,
}

/// Why a read group value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadGroupError {
    /// A value is empty.
    #[error("read group {tag} is empty")]
    Empty {
        /// The SAM tag (`ID`, `SM`, …).
        tag: &'static str,
    },
    /// A value holds a tab, newline or other control character.
    #[error(
        "read group {tag} value {value:?} holds control character {character:?}; SAM header values cannot contain tabs, newlines or other control characters"
    )]
    ControlCharacter {
        /// The SAM tag (`ID`, `SM`, …).
        tag: &'static str,
        /// The rejected value.
        value: String,
        /// The offending character.
        character: char,
    },
    /// A value holds a backslash, which `bwa mem -R` would turn into something else.
    #[error(
        "read group {tag} value {value:?} holds a backslash{}; bwa mem -R reads a backslash as an escape (\\t becomes a tab, \\n a newline) and would change the value",
        escape_shown(value)
    )]
    Backslash {
        /// The SAM tag (`ID`, `SM`, …).
        tag: &'static str,
        /// The rejected value.
        value: String,
    },
}

/// ` (the escape sequence \t)` when `value` holds one of the sequences bwa turns into a control
/// character, else nothing.
fn escape_shown(value: &str) -> String {
    ["\\t", "\\n", "\\r"]
        .into_iter()
        .find(|sequence| value.contains(sequence))
        .map_or_else(String::new, |sequence| {
            format!(" (the escape sequence {sequence})")
        })
}

/// The platform unit (`PU`) an Illumina read name gives: `<flowcell>.<lane>`, from the
/// CASAVA 1.8 form `<instrument>:<run>:<flowcell>:<lane>:<tile>:<x>:<y>` (seven fields) or the
/// older `<flowcell>:<lane>:<tile>:<x>:<y>` (five fields, a `#index/1` suffix allowed), where
/// the lane, tile, x and y are numbers. `None` for any other name (SAM spec v1, section 1.3,
/// `PU`: "flowcell-barcode.lane").
///
/// ```
/// # use biojob_core::platform_unit_from_read_name;
/// assert_eq!(platform_unit_from_read_name("20FUKAAXX100202:1:1:1229:90686").as_deref(), Some("20FUKAAXX100202.1"));
/// assert_eq!(platform_unit_from_read_name("M1:7:H3KLLBBXX:4:1101:10003:10029").as_deref(), Some("H3KLLBBXX.4"));
/// assert_eq!(platform_unit_from_read_name("chr22.bin8.cram:166:5973"), None);
/// ```
pub fn platform_unit_from_read_name(name: &str) -> Option<String> {
    let name = name.split(['/', '#']).next().unwrap_or(name);
    let fields: Vec<&str> = name.split(':').collect();
    let numeric = |fields: &[&str]| {
        fields
            .iter()
            .all(|field| !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()))
    };
    let (flowcell, rest) = match fields.as_slice() {
        [_, _, flowcell, rest @ ..] if rest.len() == 4 => (*flowcell, rest),
        [flowcell, rest @ ..] if rest.len() == 4 => (*flowcell, rest),
        _ => return None,
    };
    let valid_flowcell = !flowcell.is_empty()
        && flowcell
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (valid_flowcell && numeric(rest)).then(|| format!("{flowcell}.{}", rest[0]))
}

impl ReadGroup {
    /// The default read group for a sample: `ID` and `SM` set to the sample, `PL:ILLUMINA`.
    pub fn for_sample(sample: &SampleId) -> Self {
        ReadGroup {
            id: sample.as_str().to_owned(),
            sample: sample.as_str().to_owned(),
            library: None,
            platform: Some("ILLUMINA".to_owned()),
            platform_unit: None,
        }
    }

    /// Replaces the `ID` value.
    ///
    /// # Errors
    /// [`ReadGroupError`] when the value is empty or holds a control character.
    pub fn with_id(mut self, id: impl Into<String>) -> Result<Self, ReadGroupError> {
        self.id = checked("ID", id.into())?;
        Ok(self)
    }

    /// Sets the `LB` value.
    ///
    /// # Errors
    /// [`ReadGroupError`] when the value is empty or holds a control character.
    pub fn with_library(mut self, library: impl Into<String>) -> Result<Self, ReadGroupError> {
        self.library = Some(checked("LB", library.into())?);
        Ok(self)
    }

    /// Sets the `PL` value.
    ///
    /// # Errors
    /// [`ReadGroupError`] when the value is empty or holds a control character.
    pub fn with_platform(mut self, platform: impl Into<String>) -> Result<Self, ReadGroupError> {
        self.platform = Some(checked("PL", platform.into())?);
        Ok(self)
    }

    /// Sets the `PU` value.
    ///
    /// # Errors
    /// [`ReadGroupError`] when the value is empty or holds a control character.
    pub fn with_platform_unit(
        mut self,
        platform_unit: impl Into<String>,
    ) -> Result<Self, ReadGroupError> {
        self.platform_unit = Some(checked("PU", platform_unit.into())?);
        Ok(self)
    }

    /// Checks every field (useful after building the struct literally).
    ///
    /// # Errors
    /// [`ReadGroupError`] for the first empty value or value with a control character.
    pub fn validate(&self) -> Result<(), ReadGroupError> {
        for (tag, value) in self.fields() {
            checked(tag, value.to_owned())?;
        }
        Ok(())
    }

    /// `(tag, value)` pairs in header order: `ID`, `SM`, then `LB`, `PL`, `PU` when set.
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        let mut fields = vec![("ID", self.id.as_str()), ("SM", self.sample.as_str())];
        for (tag, value) in [
            ("LB", &self.library),
            ("PL", &self.platform),
            ("PU", &self.platform_unit),
        ] {
            if let Some(value) = value {
                fields.push((tag, value.as_str()));
            }
        }
        fields
    }

    /// The header line as it appears in a SAM/BAM header, fields separated by real tabs.
    pub fn to_header_line(&self) -> String {
        let mut line = String::from("@RG");
        for (tag, value) in self.fields() {
            line.push('\t');
            line.push_str(tag);
            line.push(':');
            line.push_str(value);
        }
        line
    }

    /// The argument for `bwa mem -R`: fields separated by the two characters `\t`, which bwa
    /// turns into tabs (bwa `bwa.c`, `bwa_escape`). Values hold no backslash (the constructors
    /// and [`ReadGroup::validate`] refuse one), so nothing else is escaped.
    pub fn to_bwa_argument(&self) -> String {
        let mut argument = String::from("@RG");
        for (tag, value) in self.fields() {
            argument.push_str("\\t");
            argument.push_str(tag);
            argument.push(':');
            argument.push_str(value);
        }
        argument
    }
}

fn checked(tag: &'static str, value: String) -> Result<String, ReadGroupError> {
    if value.is_empty() {
        return Err(ReadGroupError::Empty { tag });
    }
    if let Some(character) = value.chars().find(|c| c.is_control()) {
        return Err(ReadGroupError::ControlCharacter {
            tag,
            value,
            character,
        });
    }
    if value.contains('\\') {
        return Err(ReadGroupError::Backslash { tag, value });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_units_come_from_illumina_names_only() {
        for (name, unit) in [
            ("20FUKAAXX100202:1:1:1229:90686", Some("20FUKAAXX100202.1")),
            ("C0D8DACXX:4:1103:557813:0", Some("C0D8DACXX.4")),
            ("HWI-ST1:8:1:2:3#0/1", Some("HWI-ST1.8")),
            ("M01:7:H3KLLBBXX:4:1101:10003:10029", Some("H3KLLBBXX.4")),
            ("chr22.bin8.cram:166:5973", None),
            ("r1", None),
            ("FC:x:1:2:3", None),
            ("a:b:FC:1:2:3", None),
            (":1:2:3:4", None),
        ] {
            assert_eq!(
                platform_unit_from_read_name(name).as_deref(),
                unit,
                "{name}"
            );
        }
    }

    fn sample() -> SampleId {
        SampleId::new("NA12878").unwrap()
    }

    #[test]
    fn default_read_group() {
        let read_group = ReadGroup::for_sample(&sample());
        assert_eq!(
            read_group.to_header_line(),
            "@RG\tID:NA12878\tSM:NA12878\tPL:ILLUMINA"
        );
    }

    #[test]
    fn spaces_and_quotes_survive() {
        let read_group = ReadGroup::for_sample(&sample())
            .with_id("run 1")
            .unwrap()
            .with_library(r#"it's "pcr-free" / lib"#)
            .unwrap()
            .with_platform_unit("HXXX.1")
            .unwrap();
        assert_eq!(
            read_group.to_bwa_argument(),
            r#"@RG\tID:run 1\tSM:NA12878\tLB:it's "pcr-free" / lib\tPL:ILLUMINA\tPU:HXXX.1"#
        );
        assert_eq!(
            read_group.to_header_line(),
            "@RG\tID:run 1\tSM:NA12878\tLB:it's \"pcr-free\" / lib\tPL:ILLUMINA\tPU:HXXX.1"
        );
    }

    #[test]
    fn backslashes_are_refused_naming_the_field_and_the_escape() {
        let error = ReadGroup::for_sample(&sample())
            .with_library(r"lib\t1")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"read group LB value "lib\\t1" holds a backslash (the escape sequence \t); bwa mem -R reads a backslash as an escape (\t becomes a tab, \n a newline) and would change the value"#
        );
        assert_eq!(
            ReadGroup::for_sample(&sample())
                .with_platform_unit(r"HX\nY")
                .unwrap_err()
                .to_string(),
            r#"read group PU value "HX\\nY" holds a backslash (the escape sequence \n); bwa mem -R reads a backslash as an escape (\t becomes a tab, \n a newline) and would change the value"#
        );
        assert_eq!(
            ReadGroup::for_sample(&sample())
                .with_id(r"a\b")
                .unwrap_err()
                .to_string(),
            r#"read group ID value "a\\b" holds a backslash; bwa mem -R reads a backslash as an escape (\t becomes a tab, \n a newline) and would change the value"#
        );
        assert_eq!(
            ReadGroup::for_sample(&sample()).with_platform(r"x\ry"),
            Err(ReadGroupError::Backslash {
                tag: "PL",
                value: r"x\ry".to_owned()
            })
        );
        let literal = ReadGroup {
            library: Some(r"\\t".into()),
            ..ReadGroup::for_sample(&sample())
        };
        assert_eq!(
            literal.validate(),
            Err(ReadGroupError::Backslash {
                tag: "LB",
                value: r"\\t".to_owned()
            })
        );
    }

    #[test]
    fn control_characters_are_refused() {
        let error = ReadGroup::for_sample(&sample())
            .with_library("a\tb")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "read group LB value \"a\\tb\" holds control character '\\t'; SAM header values cannot contain tabs, newlines or other control characters"
        );
        assert_eq!(
            ReadGroup::for_sample(&sample()).with_id(""),
            Err(ReadGroupError::Empty { tag: "ID" })
        );
        let literal = ReadGroup {
            platform: Some("x\ny".into()),
            ..ReadGroup::for_sample(&sample())
        };
        assert!(matches!(
            literal.validate(),
            Err(ReadGroupError::ControlCharacter {
                tag: "PL",
                character: '\n',
                ..
            })
        ));
    }
}
