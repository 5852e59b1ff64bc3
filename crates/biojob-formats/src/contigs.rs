//! Comparing the contigs a header declares with the reference's.

use biojob_core::Contig;

/// The first difference between the contigs a header declares (`found`, in header order) and
/// the reference's (`expected`, in `.fai` order), in words, or `None` when they are equal:
/// same names, same lengths, same order.
///
/// `what` names the header lines in the message (`@SQ`, `##contig`). The rule is the one tools
/// rely on: BAM records and tabix/CSI indexes refer to contigs by their position in the header
/// (SAM spec v1, section 4.2 `refID`; VCF 4.3, section 1.4.7), so a header in another order
/// or with another length silently shifts or truncates records against the reference.
///
/// ```
/// use biojob_core::Contig;
/// use biojob_formats::describe_contig_difference;
///
/// let fai = [Contig::new("chr20", 300_000), Contig::new("chr22", 12_356)];
/// let swapped = [Contig::new("chr22", 12_356), Contig::new("chr20", 300_000)];
/// assert_eq!(
///     describe_contig_difference("@SQ", &swapped, &fai).as_deref(),
///     Some("@SQ 1 is chr22 where the reference's contig 1 is chr20: same contigs in another order \
///           (header: chr22, chr20; reference: chr20, chr22)")
/// );
/// ```
pub fn describe_contig_difference(
    what: &str,
    found: &[Contig],
    expected: &[Contig],
) -> Option<String> {
    if found == expected {
        return None;
    }
    let names = |contigs: &[Contig]| -> String {
        let shown: Vec<&str> = contigs.iter().take(10).map(|c| c.name.as_str()).collect();
        let more = contigs.len().saturating_sub(shown.len());
        if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    for contig in found {
        match expected.iter().find(|e| e.name == contig.name) {
            None => {
                return Some(format!(
                    "{what} declares {}, which is not in the reference (reference: {})",
                    contig.name,
                    names(expected)
                ));
            }
            Some(reference) if reference.length != contig.length => {
                return Some(format!(
                    "{what} {} has length {}, the reference's has {}",
                    contig.name, contig.length, reference.length
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(missing) = expected
        .iter()
        .find(|e| !found.iter().any(|c| c.name == e.name))
    {
        return Some(format!(
            "{what} lacks {}, which is in the reference ({} of {} contigs declared)",
            missing.name,
            found.len(),
            expected.len()
        ));
    }
    // Same names and lengths, so only the order differs.
    let (index, (header, reference)) = found
        .iter()
        .zip(expected)
        .enumerate()
        .find(|(_, (a, b))| a.name != b.name)?;
    Some(format!(
        "{what} {} is {} where the reference's contig {} is {}: same contigs in another order \
         (header: {}; reference: {})",
        index + 1,
        header.name,
        index + 1,
        reference.name,
        names(found),
        names(expected)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fai() -> Vec<Contig> {
        vec![
            Contig::new("chr20", 300_000),
            Contig::new("chr22", 12_356),
            Contig::new("chrM", 16_571),
        ]
    }

    #[test]
    fn equal_contigs_have_no_difference() {
        assert_eq!(describe_contig_difference("@SQ", &fai(), &fai()), None);
    }

    #[test]
    fn each_kind_of_difference() {
        let mut longer = fai();
        longer[1].length = 12_357;
        assert_eq!(
            describe_contig_difference("##contig", &longer, &fai()).unwrap(),
            "##contig chr22 has length 12357, the reference's has 12356"
        );
        let mut extra = fai();
        extra.push(Contig::new("chrX", 10));
        assert_eq!(
            describe_contig_difference("@SQ", &extra, &fai()).unwrap(),
            "@SQ declares chrX, which is not in the reference (reference: chr20, chr22, chrM)"
        );
        let fewer = &fai()[..2];
        assert_eq!(
            describe_contig_difference("@SQ", fewer, &fai()).unwrap(),
            "@SQ lacks chrM, which is in the reference (2 of 3 contigs declared)"
        );
        let mut moved = fai();
        moved.rotate_left(1);
        assert_eq!(
            describe_contig_difference("@SQ", &moved, &fai()).unwrap(),
            "@SQ 1 is chr22 where the reference's contig 1 is chr20: same contigs in another \
             order (header: chr22, chrM, chr20; reference: chr20, chr22, chrM)"
        );
    }
}
