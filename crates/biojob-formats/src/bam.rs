//! BAM headers: summaries, the quickcheck-equivalent, and the workflow's header rules.

use std::io;

use biojob_core::Contig;
use camino::Utf8Path;
use noodles::bam;
use noodles::sam::header::record::value::map::header::tag::SORT_ORDER;

use crate::{FormatError, check_bgzf_eof, describe_contig_difference};

/// The parts of a BAM header that the workflow checks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BamHeaderSummary {
    /// `@HD SO`: `coordinate`, `queryname`, `unsorted`, `unknown` (SAM spec v1, section 1.3), or
    /// `None` when the header has no `@HD` line or no `SO` field.
    pub sort_order: Option<String>,
    /// `@RG` lines in header order: the `ID`, and every field of the line as (tag, value) pairs,
    /// `ID` first, then the other fields in header order.
    pub read_groups: Vec<(String, Vec<(String, String)>)>,
    /// `@SQ` lines in header order: `SN` and `LN` (bases).
    pub contigs: Vec<Contig>,
}

/// Reads the header of the BAM file at `path` (SAM spec v1, section 4.2: magic, SAM header text,
/// reference sequences), without reading any alignment record.
///
/// # Errors
/// [`FormatError::Io`] when the file cannot be opened or read; [`FormatError::Parse`] when it is
/// not BGZF-compressed BAM or the header is malformed (noodles' message in the source).
pub fn read_bam_header_summary(path: &Utf8Path) -> Result<BamHeaderSummary, FormatError> {
    let file = fs_err::File::open(path).map_err(|source| FormatError::Io {
        path: path.to_owned(),
        source,
    })?;
    bam_header_summary(file, path)
}

/// As [`read_bam_header_summary`], from the BAM bytes `reader` gives (a BAM, or its first
/// bytes: those that hold its header); errors name `path`.
///
/// # Errors
/// As [`read_bam_header_summary`]; [`FormatError::Parse`] too when the bytes end inside the
/// header.
pub fn bam_header_summary(
    reader: impl io::Read,
    path: &Utf8Path,
) -> Result<BamHeaderSummary, FormatError> {
    let header = bam::io::Reader::new(reader)
        .read_header()
        .map_err(FormatError::reading(path, "BAM header"))?;

    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let sort_order = header
        .header()
        .and_then(|hd| hd.other_fields().get(&SORT_ORDER))
        .map(|value| text(value));
    let read_groups = header
        .read_groups()
        .iter()
        .map(|(id, map)| {
            let fields = std::iter::once(("ID".to_owned(), text(id)))
                .chain(
                    map.other_fields()
                        .iter()
                        .map(|(tag, value)| (text(tag.as_ref()), text(value))),
                )
                .collect();
            (text(id), fields)
        })
        .collect();
    let contigs = header
        .reference_sequences()
        .iter()
        .map(|(name, map)| Contig::new(text(name), map.length().get() as u64))
        .collect();
    let summary = BamHeaderSummary {
        sort_order,
        read_groups,
        contigs,
    };
    tracing::debug!(
        %path,
        sort_order = summary.sort_order.as_deref(),
        read_groups = summary.read_groups.len(),
        contigs = summary.contigs.len(),
        "BAM header read"
    );
    Ok(summary)
}

impl BamHeaderSummary {
    /// The first way this header breaks the workflow's rules for a BAM of `sample` aligned to
    /// a reference with `contigs`, or `None` when it follows them all:
    ///
    /// 1. `@HD SO:coordinate` (SAM spec v1, section 1.3): the call step reads regions through
    ///    the index, which needs coordinate order;
    /// 2. at least one `@RG` line, and every `@RG` has `SM` equal to `sample` (section 1.3,
    ///    `@RG SM`): bcftools names the VCF's sample column after `SM`, so another sample or a
    ///    second one would give a VCF of the wrong or several samples;
    /// 3. the `@SQ` lines have the names and lengths of the `.fai`, in the same order (see
    ///    [`describe_contig_difference`]).
    pub fn rule_violation(&self, contigs: &[Contig], sample: &str) -> Option<String> {
        match self.sort_order.as_deref() {
            Some("coordinate") => {}
            Some(other) => {
                return Some(format!(
                    "the BAM is not coordinate-sorted: @HD SO:{other} (expected SO:coordinate)"
                ));
            }
            None => {
                return Some(
                    "the BAM does not say it is coordinate-sorted: no @HD SO field (expected \
                     SO:coordinate)"
                        .to_owned(),
                );
            }
        }
        if self.read_groups.is_empty() {
            return Some(format!(
                "the header has no @RG line (expected one with SM:{sample})"
            ));
        }
        for (id, fields) in &self.read_groups {
            let found = fields
                .iter()
                .find(|(tag, _)| tag == "SM")
                .map(|(_, value)| value.as_str());
            if found != Some(sample) {
                return Some(match found {
                    Some(other) => {
                        format!("@RG ID:{id} has SM:{other}, expected SM:{sample}")
                    }
                    None => format!("@RG ID:{id} has no SM field, expected SM:{sample}"),
                });
            }
        }
        describe_contig_difference("@SQ", &self.contigs, contigs)
    }
}

/// What `samtools quickcheck` checks, natively: `path` is BGZF and ends with the EOF block
/// ([`check_bgzf_eof`], SAM spec v1, section 4.1.2), its BAM header parses (section 4.2), and
/// it declares at least one reference sequence. Reads only the header and the last 28 bytes.
///
/// # Errors
/// As [`check_bgzf_eof`] and [`read_bam_header_summary`]; [`FormatError::Invalid`] when the
/// header has no `@SQ` line.
pub fn quickcheck_bam(path: &Utf8Path) -> Result<BamHeaderSummary, FormatError> {
    check_bgzf_eof(path)?;
    let summary = read_bam_header_summary(path)?;
    if summary.contigs.is_empty() {
        return Err(FormatError::Invalid {
            path: path.to_owned(),
            reason: "the header declares no reference sequence (@SQ)".to_owned(),
        });
    }
    Ok(summary)
}

/// [`quickcheck_bam`], then the workflow's header rules for a BAM of `sample` aligned to
/// `contigs` ([`BamHeaderSummary::rule_violation`]): for a BAM staged in from elsewhere (the
/// `call` step's `--bam`) and for the align step's own output.
///
/// # Errors
/// As [`quickcheck_bam`]; [`FormatError::Invalid`] naming the first rule broken.
pub fn check_bam_header(
    path: &Utf8Path,
    contigs: &[Contig],
    sample: &str,
) -> Result<BamHeaderSummary, FormatError> {
    let summary = quickcheck_bam(path)?;
    if let Some(reason) = summary.rule_violation(contigs, sample) {
        return Err(FormatError::Invalid {
            path: path.to_owned(),
            reason,
        });
    }
    Ok(summary)
}
