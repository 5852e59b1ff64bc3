//! BAM header summaries.

use std::io;

use biojob_core::Contig;
use camino::Utf8Path;
use noodles::bam;
use noodles::sam::header::record::value::map::header::tag::SORT_ORDER;

use crate::FormatError;

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
    let header =
        bam::io::Reader::new(file)
            .read_header()
            .map_err(|source| match source.kind() {
                io::ErrorKind::InvalidData
                | io::ErrorKind::InvalidInput
                | io::ErrorKind::UnexpectedEof => FormatError::Parse {
                    path: path.to_owned(),
                    format: "BAM header",
                    source,
                },
                _ => FormatError::Io {
                    path: path.to_owned(),
                    source,
                },
            })?;

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
