//! Contigs: reference sequences by name and length.

use serde::Serialize;

/// A reference sequence, as listed in a FASTA index (`.fai`) or a SAM `@SQ` header line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Contig {
    /// The name: the first word of the FASTA header line, `@SQ SN`.
    pub name: String,
    /// Length in bases.
    pub length: u64,
}

impl Contig {
    /// A contig of `length` bases.
    pub fn new(name: impl Into<String>, length: u64) -> Self {
        Contig {
            name: name.into(),
            length,
        }
    }
}

/// Why `name` cannot be a contig name in SAM and VCF, or cannot be called, or `None` when it
/// can.
///
/// The rule is the SAM spec's (v1, section 1.2.1): `[0-9A-Za-z!#$%&+./:;?@^_|~-]` first, then
/// also `*` and `=`; VCF 4.3 (section 1.4.7) refers to the same set. Commas, brackets, quotes,
/// backslashes, whitespace and control characters are excluded because region strings and
/// `##contig` lines could not be parsed with them. A name starting with `#`, which SAM allows,
/// is refused too: bcftools skips such a region, inline or in a regions file, as a comment
/// (htslib `regidx`), so the contig would be called empty.
pub fn contig_name_error(name: &str) -> Option<String> {
    let Some(first) = name.chars().next() else {
        return Some("the name is empty".to_owned());
    };
    if first == '*' || first == '=' {
        return Some(format!("it starts with {first:?}"));
    }
    if first == '#' {
        return Some(
            "it starts with '#', which bcftools reads as a comment in a region list".to_owned(),
        );
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "!#$%&+./:;?@^_|~-*=".contains(c);
    name.chars()
        .find(|&c| !allowed(c))
        .map(|c| format!("it contains {c:?}"))
}

/// A name in `available` that `requested` probably meant: `20` ↔ `chr20`, `MT` ↔ `chrM`,
/// compared case-insensitively after removing a `chr` prefix. `None` when nothing matches.
pub fn suggest_contig_mapping<'a>(
    requested: &str,
    available: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    fn core(name: &str) -> String {
        let lower = name.to_ascii_lowercase();
        let stripped = lower.strip_prefix("chr").unwrap_or(&lower);
        match stripped {
            "mt" => "m".to_owned(),
            other => other.to_owned(),
        }
    }
    let wanted = core(requested);
    available
        .into_iter()
        .find(|candidate| *candidate != requested && core(candidate) == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for name in [
            "chr20",
            "20",
            "HLA-A*01:01:01:01",
            "chrUn_KI270302v1",
            "NC_001807.4",
        ] {
            assert_eq!(contig_name_error(name), None, "{name}");
        }
    }

    #[test]
    fn invalid_names() {
        assert_eq!(contig_name_error(""), Some("the name is empty".into()));
        assert_eq!(contig_name_error("chr1,2"), Some("it contains ','".into()));
        assert_eq!(contig_name_error("chr 1"), Some("it contains ' '".into()));
        assert_eq!(contig_name_error("*x"), Some("it starts with '*'".into()));
        assert_eq!(
            contig_name_error("#x"),
            Some("it starts with '#', which bcftools reads as a comment in a region list".into())
        );
        assert_eq!(contig_name_error("x#1"), None);
        assert_eq!(contig_name_error("a\tb"), Some("it contains '\\t'".into()));
    }

    #[test]
    fn suggestions() {
        let names = ["chr20", "chr22", "chrM"];
        assert_eq!(suggest_contig_mapping("20", names), Some("chr20"));
        assert_eq!(suggest_contig_mapping("MT", names), Some("chrM"));
        assert_eq!(suggest_contig_mapping("X", names), None);
        assert_eq!(suggest_contig_mapping("chr20", ["1", "20"]), Some("20"));
        assert_eq!(suggest_contig_mapping("chrM", ["MT"]), Some("MT"));
    }
}
