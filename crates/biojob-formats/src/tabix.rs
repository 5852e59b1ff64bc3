//! Tabix (`.tbi`) indexes.

use camino::Utf8Path;
use noodles::csi::BinningIndex;
use noodles::tabix;

use crate::FormatError;

/// The reference sequence names recorded in a tabix index, in index order.
///
/// A `.tbi` (tabix format, htslib `tabix.pdf`, field `names`) lists the contigs that have records
/// in the indexed file, in the order they occur there; contigs declared in the VCF header but
/// without records are absent. The gather step uses this to order per-contig VCFs by content.
///
/// # Errors
/// [`FormatError::Io`] when the file cannot be opened or read; [`FormatError::Parse`] when it is
/// not a BGZF-compressed tabix index; [`FormatError::Invalid`] when it has no header or a name
/// is not UTF-8.
pub fn tabix_contigs(tbi: &Utf8Path) -> Result<Vec<String>, FormatError> {
    let file = fs_err::File::open(tbi).map_err(|source| FormatError::Io {
        path: tbi.to_owned(),
        source,
    })?;
    let index = tabix::io::Reader::new(file)
        .read_index()
        .map_err(FormatError::reading(tbi, "tabix index (.tbi)"))?;
    let invalid = |reason: String| FormatError::Invalid {
        path: tbi.to_owned(),
        reason,
    };
    let header = index
        .header()
        .ok_or_else(|| invalid("the index has no tabix header".to_owned()))?;
    let names = header
        .reference_sequence_names()
        .iter()
        .map(|name| {
            let bytes: &[u8] = name.as_ref();
            String::from_utf8(bytes.to_vec())
                .map_err(|_| invalid(format!("contig name {name:?} is not UTF-8")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    tracing::debug!(%tbi, contigs = names.len(), "tabix index read");
    Ok(names)
}
