//! bgzipped VCF files: the quickcheck-equivalent, the workflow's rules, and variant counts, in
//! one streaming pass.

use std::io;

use biojob_core::{Contig, Region};
use camino::Utf8Path;
use noodles::bgzf;
use noodles::vcf;
use noodles::vcf::variant::record::AlternateBases as _;
use noodles::vcf::variant::record::samples::series::Value;

use crate::{FormatError, check_bgzf_eof, describe_contig_difference};

/// A `##contig` header line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VcfContig {
    /// `ID`.
    pub name: String,
    /// `length`, in bases, when the line has one.
    pub length: Option<u64>,
}

/// The parts of a VCF header that the workflow checks.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct VcfHeaderSummary {
    /// `##contig` lines, in header order.
    pub contigs: Vec<VcfContig>,
    /// The sample columns of the `#CHROM` line, in order.
    pub samples: Vec<String>,
}

/// What a VCF must be, beyond well-formed.
#[derive(Debug, Clone, Copy)]
pub struct VcfRules<'a> {
    /// The reference's contigs (`.fai` order): the `##contig` lines must declare exactly these,
    /// with their lengths, in this order.
    pub contigs: &'a [Contig],
    /// The sample columns the VCF must have, in order: one sample's, or a cohort's.
    pub samples: &'a [&'a str],
    /// When set, every record's `POS` must lie in one of these regions (a call shard's VCF:
    /// a record belongs to the shard that holds its `POS`, as `bcftools view -t` keeps them).
    pub only_regions: Option<&'a [Region]>,
}

/// Variant counts of one VCF, as `bcftools stats` makes them (bcftools 1.16 `vcfstats.c`):
/// records are classified by their ALT alleles, and one record with alleles of two kinds
/// counts once for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct VariantCounts {
    /// Records.
    pub records: u64,
    /// Records with at least one SNV allele (REF and ALT one base each, differing).
    pub snvs: u64,
    /// Records with at least one MNP allele (REF and ALT of the same length, above one).
    pub mnps: u64,
    /// Records with at least one indel allele (REF and ALT of different lengths).
    pub indels: u64,
    /// Records with at least one other allele (`*`, symbolic `<...>`, breakends).
    pub others: u64,
    /// Records with more than one ALT allele.
    pub multiallelic: u64,
    /// SNV alleles that are transitions (A↔G, C↔T), over all ALT alleles.
    pub transitions: u64,
    /// SNV alleles that are transversions.
    pub transversions: u64,
    /// Genotypes of the first sample with two different alleles (`0/1`, `1/2`), among
    /// genotypes with an SNV allele (as `bcftools stats` PSC `nHets`: indel genotypes are
    /// counted apart there, and not here).
    pub het: u64,
    /// Genotypes of the first sample with one ALT allele twice (`1/1`), among genotypes with
    /// an SNV allele (PSC `nNonRefHom`).
    pub hom_alt: u64,
    /// Genotypes of the first sample that are reference only (`0/0`, PSC `nRefHom`).
    pub hom_ref: u64,
    /// Genotypes of the first sample that are missing (`./.`) or absent.
    pub missing_genotype: u64,
}

impl VariantCounts {
    /// Transitions / transversions, `None` without transversions (bcftools prints 0.00).
    pub fn ti_tv(&self) -> Option<f64> {
        (self.transversions > 0).then(|| self.transitions as f64 / self.transversions as f64)
    }

    /// Heterozygous / homozygous-alternate genotypes, `None` without homozygous ones.
    pub fn het_hom_ratio(&self) -> Option<f64> {
        (self.hom_alt > 0).then(|| self.het as f64 / self.hom_alt as f64)
    }
}

/// Records and counts of one contig.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContigVariants {
    /// The contig.
    pub name: String,
    /// Its variant counts.
    pub counts: VariantCounts,
}

/// What [`scan_vcf`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VcfScan {
    /// The header.
    pub header: VcfHeaderSummary,
    /// Counts over the whole file.
    pub counts: VariantCounts,
    /// Counts per contig, for every `##contig`, in header order (zero when it has no records).
    pub contigs: Vec<ContigVariants>,
    /// `CHROM` and `POS` (1-based) of the first and the last record; `None` without records.
    pub span: Option<RecordSpan>,
}

/// Where a sorted VCF's records start and end: `CHROM` and `POS` (1-based) of its first and its
/// last record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordSpan {
    /// The first record's contig and position.
    pub first: (String, u64),
    /// The last record's contig and position.
    pub last: (String, u64),
}

fn parse_error(path: &Utf8Path, source: io::Error) -> FormatError {
    match source.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof => {
            FormatError::Parse {
                path: path.to_owned(),
                format: "VCF",
                source,
            }
        }
        _ => FormatError::Io {
            path: path.to_owned(),
            source,
        },
    }
}

fn open(path: &Utf8Path) -> Result<vcf::io::Reader<bgzf::io::Reader<fs_err::File>>, FormatError> {
    let file = fs_err::File::open(path).map_err(|source| FormatError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(vcf::io::Reader::new(bgzf::io::Reader::new(file)))
}

fn summarise(header: &vcf::Header) -> VcfHeaderSummary {
    VcfHeaderSummary {
        contigs: header
            .contigs()
            .iter()
            .map(|(name, map)| VcfContig {
                name: name.clone(),
                length: map.length().map(|length| length as u64),
            })
            .collect(),
        samples: header.sample_names().iter().cloned().collect(),
    }
}

/// What `samtools quickcheck` checks, for a bgzipped VCF: BGZF with the EOF block
/// ([`check_bgzf_eof`], SAM spec v1, section 4.1.2) and a header that parses up to and including
/// the `#CHROM` line (VCF 4.3, section 1.5). Reads the header and the last 28 bytes only.
///
/// # Errors
/// As [`check_bgzf_eof`]; [`FormatError::Parse`] for a malformed header.
pub fn quickcheck_vcf(path: &Utf8Path) -> Result<VcfHeaderSummary, FormatError> {
    check_bgzf_eof(path)?;
    let header = open(path)?
        .read_header()
        .map_err(|source| parse_error(path, source))?;
    Ok(summarise(&header))
}

impl VcfHeaderSummary {
    /// The first way this header breaks `rules`, or `None`: the `##contig` lines must be the
    /// reference's contigs, every one with a `length` equal to the `.fai`'s, in `.fai` order
    /// (VCF 4.3, section 1.4.7; tabix and bcftools index contigs by header position); and the
    /// sample columns must be exactly `rules.samples`, in order (section 1.5).
    pub fn rule_violation(&self, rules: &VcfRules<'_>) -> Option<String> {
        let mut declared = Vec::with_capacity(self.contigs.len());
        for contig in &self.contigs {
            let Some(length) = contig.length else {
                return Some(format!("##contig {} has no length", contig.name));
            };
            declared.push(Contig::new(contig.name.clone(), length));
        }
        if let Some(difference) = describe_contig_difference("##contig", &declared, rules.contigs) {
            return Some(difference);
        }
        if self
            .samples
            .iter()
            .map(String::as_str)
            .eq(rules.samples.iter().copied())
        {
            return None;
        }
        let expected = rules.samples.join(", ");
        Some(match (self.samples.as_slice(), rules.samples) {
            ([one], [_]) => format!("the sample column is {one}, expected {expected}"),
            ([], [_]) => format!("the VCF has no sample column, expected {expected}"),
            (several, [_]) => format!(
                "the VCF has {} sample columns ({}), expected one: {expected}",
                several.len(),
                several.join(", ")
            ),
            (found, _) => format!(
                "the VCF's sample columns are [{}], expected [{expected}]",
                found.join(", ")
            ),
        })
    }
}

/// Checks the bgzipped VCF at `path` against `rules` and counts its variants, in one streaming
/// pass:
///
/// 1. [`quickcheck_vcf`]: BGZF, complete, header parses;
/// 2. the header follows the rules ([`VcfHeaderSummary::rule_violation`]);
/// 3. every record is on a declared contig (VCF 4.3, section 1.6.1 `CHROM`), on
///    with a position (`POS`) in one of `rules.only_regions` when set;
/// 4. records are sorted: by position within a contig, and contigs in `##contig` order, each
///    in one block (what `bcftools sort` produces and tabix needs, section 1.6.1 and tabix's
///    manual).
///
/// Counts follow `bcftools stats` (see [`VariantCounts`]). Memory is constant (one record).
///
/// # Errors
/// As [`quickcheck_vcf`]; [`FormatError::Parse`] for a malformed record;
/// [`FormatError::Invalid`] naming the first rule broken (record numbers are 1-based, counted
/// after the header).
pub fn scan_vcf(path: &Utf8Path, rules: &VcfRules<'_>) -> Result<VcfScan, FormatError> {
    check_bgzf_eof(path)?;
    let mut reader = open(path)?;
    let header = reader
        .read_header()
        .map_err(|source| parse_error(path, source))?;
    let summary = summarise(&header);
    let invalid = |reason: String| FormatError::Invalid {
        path: path.to_owned(),
        reason,
    };
    if let Some(reason) = summary.rule_violation(rules) {
        return Err(invalid(reason));
    }
    let mut contigs: Vec<ContigVariants> = summary
        .contigs
        .iter()
        .map(|contig| ContigVariants {
            name: contig.name.clone(),
            counts: VariantCounts::default(),
        })
        .collect();
    let mut total = VariantCounts::default();
    let mut record = vcf::Record::default();
    let mut number: u64 = 0;
    // (contig index in the header, position)
    let mut previous: Option<(usize, usize)> = None;
    let mut first: Option<(usize, usize)> = None;
    loop {
        let read = reader
            .read_record(&mut record)
            .map_err(|source| parse_error(path, source))?;
        if read == 0 {
            break;
        }
        number += 1;
        let name = record.reference_sequence_name();
        let cached = previous
            .map(|(index, _)| index)
            .filter(|&index| contigs[index].name == name);
        let Some(index) = cached.or_else(|| contigs.iter().position(|c| c.name == name)) else {
            return Err(invalid(format!(
                "record {number} is on {name}, which has no ##contig line"
            )));
        };
        let position = record
            .variant_start()
            .transpose()
            .map_err(|source| parse_error(path, source))?
            .ok_or_else(|| invalid(format!("record {number} has no position")))?
            .get();
        if let Some(regions) = rules.only_regions
            && !regions.iter().any(|region| {
                region.contig.name == name
                    && (region.start..=region.end).contains(&(position as u64))
            })
        {
            let held: Vec<String> = regions.iter().map(ToString::to_string).collect();
            return Err(invalid(format!(
                "record {number} ({name}:{position}) is outside the regions this VCF must hold: {}",
                held.join(",")
            )));
        }
        if let Some((previous_index, previous_position)) = previous {
            let previous_name = &contigs[previous_index].name;
            if index == previous_index && position < previous_position {
                return Err(invalid(format!(
                    "record {number} ({name}:{position}) comes after \
                     {previous_name}:{previous_position}: records are not sorted by position"
                )));
            }
            if index < previous_index {
                return Err(invalid(format!(
                    "record {number} ({name}:{position}) comes after records of \
                     {previous_name}: contigs are not in ##contig order"
                )));
            }
        }
        previous = Some((index, position));
        first = first.or(previous);
        let counts = classify(&record, &header).map_err(|source| parse_error(path, source))?;
        contigs[index].counts.add(&counts);
        total.add(&counts);
    }
    tracing::debug!(%path, records = total.records, "VCF scanned");
    let at = |(index, position): (usize, usize)| {
        let name: &ContigVariants = &contigs[index];
        (name.name.clone(), position as u64)
    };
    let span = first.zip(previous).map(|(first, last)| RecordSpan {
        first: at(first),
        last: at(last),
    });
    Ok(VcfScan {
        header: summary,
        counts: total,
        contigs,
        span,
    })
}

impl VariantCounts {
    fn add(&mut self, other: &VariantCounts) {
        self.records += other.records;
        self.snvs += other.snvs;
        self.mnps += other.mnps;
        self.indels += other.indels;
        self.others += other.others;
        self.multiallelic += other.multiallelic;
        self.transitions += other.transitions;
        self.transversions += other.transversions;
        self.het += other.het;
        self.hom_alt += other.hom_alt;
        self.hom_ref += other.hom_ref;
        self.missing_genotype += other.missing_genotype;
    }
}

/// The counts of one record.
fn classify(record: &vcf::Record, header: &vcf::Header) -> io::Result<VariantCounts> {
    let mut counts = VariantCounts {
        records: 1,
        ..VariantCounts::default()
    };
    let reference = record.reference_bases().as_bytes();
    let alternates = record.alternate_bases();
    let (mut snv, mut mnp, mut indel, mut other) = (false, false, false, false);
    let mut alleles = 0;
    let mut types = Vec::with_capacity(2);
    for allele in alternates.iter() {
        let allele = allele?.as_bytes();
        alleles += 1;
        let kind = allele_type(reference, allele);
        types.push(kind);
        match kind {
            AlleleType::Reference => {}
            AlleleType::Snv => {
                snv = true;
                // bcftools compares the first bases of REF and ALT (vcfstats.c, do_snp_stats).
                let (r, a) = (reference[0], allele[0]);
                if !r.eq_ignore_ascii_case(&a) && is_base(r) && is_base(a) {
                    if is_transition(r, a) {
                        counts.transitions += 1;
                    } else {
                        counts.transversions += 1;
                    }
                }
            }
            AlleleType::Mnp => mnp = true,
            AlleleType::Indel => indel = true,
            AlleleType::Other => other = true,
        }
    }
    counts.snvs = u64::from(snv);
    counts.mnps = u64::from(mnp);
    counts.indels = u64::from(indel);
    counts.others = u64::from(other);
    counts.multiallelic = u64::from(alleles > 1);

    match genotype(record, header)? {
        None => counts.missing_genotype = 1,
        Some(called) if called.is_empty() => counts.missing_genotype = 1,
        Some(called) => {
            // bcftools stats (vcfstats.c, do_sample_stats) counts het/hom only for genotypes
            // whose ALT alleles include an SNV, or that have none (0/0).
            let alt_types: Vec<AlleleType> = called
                .iter()
                .filter(|&&allele| allele > 0)
                .filter_map(|&allele| types.get(allele - 1).copied())
                .collect();
            let counted = alt_types.is_empty() || alt_types.contains(&AlleleType::Snv);
            if counted {
                if called.iter().all(|&allele| allele == 0) {
                    counts.hom_ref = 1;
                } else if called.iter().all(|&allele| allele == called[0]) {
                    counts.hom_alt = 1;
                } else {
                    counts.het = 1;
                }
            }
        }
    }
    Ok(counts)
}

/// The called allele indexes of the first sample's `GT` (missing alleles left out), or `None`
/// when there is no sample or no `GT`.
fn genotype(record: &vcf::Record, header: &vcf::Header) -> io::Result<Option<Vec<usize>>> {
    let samples = record.samples();
    let Some(gt_index) = samples.keys().iter().position(|key| key == "GT") else {
        return Ok(None);
    };
    let Some(sample) = samples.get_index(0) else {
        return Ok(None);
    };
    match sample.get_index(header, gt_index) {
        Some(Some(value)) => match value? {
            Value::Genotype(genotype) => {
                let mut called = Vec::with_capacity(2);
                for allele in genotype.iter() {
                    if let (Some(position), _) = allele? {
                        called.push(position);
                    }
                }
                Ok(Some(called))
            }
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

/// The kind of one ALT allele against REF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AlleleType {
    Reference,
    Snv,
    Mnp,
    Indel,
    Other,
}

/// htslib's classification (`vcf.c`, `bcf_set_variant_type`), which `bcftools stats` counts
/// by: after removing the common prefix and suffix of REF and ALT, one differing base is an
/// SNV, equal-length runs an MNP, a pure insertion or deletion an indel; `*`, symbolic and
/// breakend alleles, and anything else, are other.
fn allele_type(reference: &[u8], allele: &[u8]) -> AlleleType {
    let same = |a: u8, b: u8| a.eq_ignore_ascii_case(&b);
    if matches!(allele, b"<X>" | b"<*>" | b"<NON_REF>") {
        return AlleleType::Reference;
    }
    if allele == b"*"
        || allele.starts_with(b"<")
        || allele.contains(&b'[')
        || allele.contains(&b']')
    {
        return AlleleType::Other;
    }
    if reference.len() == 1 && allele.len() == 1 {
        return if allele[0] == b'.' || allele[0] == b'X' || same(reference[0], allele[0]) {
            AlleleType::Reference
        } else {
            AlleleType::Snv
        };
    }
    let prefix = reference
        .iter()
        .zip(allele)
        .take_while(|(r, a)| same(**r, **a))
        .count();
    let (r, a) = (&reference[prefix..], &allele[prefix..]);
    match (r.is_empty(), a.is_empty()) {
        (true, true) => return AlleleType::Reference,
        (true, false) | (false, true) => return AlleleType::Indel,
        (false, false) => {}
    }
    // Walk back from the ends while the bases agree, keeping at least one base of each.
    let (mut re, mut ae) = (r.len() - 1, a.len() - 1);
    while re > 0 && ae > 0 && same(r[re], a[ae]) {
        re -= 1;
        ae -= 1;
    }
    if ae == 0 {
        if re == 0 {
            return AlleleType::Snv;
        }
        return if same(r[re], a[ae]) {
            AlleleType::Indel
        } else {
            AlleleType::Other
        };
    }
    if re == 0 {
        return if same(r[re], a[ae]) {
            AlleleType::Indel
        } else {
            AlleleType::Other
        };
    }
    if re == ae {
        AlleleType::Mnp
    } else {
        AlleleType::Other
    }
}

fn is_base(base: u8) -> bool {
    matches!(base.to_ascii_uppercase(), b'A' | b'C' | b'G' | b'T')
}

/// A↔G and C↔T are transitions; the other SNVs are transversions.
fn is_transition(reference: u8, alternate: u8) -> bool {
    matches!(
        (
            reference.to_ascii_uppercase(),
            alternate.to_ascii_uppercase()
        ),
        (b'A', b'G') | (b'G', b'A') | (b'C', b'T') | (b'T', b'C')
    )
}
