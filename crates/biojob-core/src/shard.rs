//! Scatter plans: how calling is split into shards.

use std::collections::HashSet;
use std::fmt;
use std::num::NonZeroU64;

use serde::Serialize;

use crate::Contig;

/// A stretch of one contig: bases `start` to `end`, 1-based and closed (the SAM/VCF convention
/// and that of the `contig:start-end` region strings of samtools and bcftools).
///
/// Invariant, kept by the constructors: `1 <= start <= end <= contig.length`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Region {
    /// The contig the region lies on.
    pub contig: Contig,
    /// First base, 1-based.
    pub start: u64,
    /// Last base, 1-based, inclusive.
    pub end: u64,
}

impl Region {
    /// The whole contig: bases 1 to its length.
    pub fn whole(contig: Contig) -> Self {
        let end = contig.length;
        Region {
            contig,
            start: 1,
            end,
        }
    }

    /// Bases `start` to `end` of `contig`, or `None` unless `1 <= start <= end <= length`.
    pub fn new(contig: Contig, start: u64, end: u64) -> Option<Self> {
        (1 <= start && start <= end && end <= contig.length).then_some(Region {
            contig,
            start,
            end,
        })
    }

    /// Whether the region covers its contig from the first base to the last.
    pub fn is_whole(&self) -> bool {
        self.start == 1 && self.end == self.contig.length
    }

    /// Its length in bases (`end - start + 1`).
    pub fn bases(&self) -> u64 {
        self.end - self.start + 1
    }
}

impl Region {
    /// The region as htslib's `hts_parse_region` reads it (`samtools view BAM REGION`): as
    /// [`Region`]'s `Display`, but with the contig's name in braces (`{HLA-A*01:01}`,
    /// `{chr20:1-100}:5-10`) when it holds a `:`, so that it cannot be read as a contig and a
    /// range (htslib 1.10 and later; checked with samtools 1.16). bcftools 1.16 does not take
    /// braces: see [`BcftoolsRegions`].
    pub fn to_htslib_region(&self) -> String {
        let name = if self.contig.name.contains(':') {
            format!("{{{}}}", self.contig.name)
        } else {
            self.contig.name.clone()
        };
        if self.is_whole() {
            name
        } else {
            format!("{name}:{}-{}", self.start, self.end)
        }
    }

    /// The region as a line of a bcftools regions or targets file (`-R`, `-T`):
    /// `contig<TAB>start<TAB>end`, 1-based and closed (bcftools manual, `--regions-file`),
    /// with a line feed.
    pub fn to_regions_file_line(&self) -> String {
        format!("{}\t{}\t{}\n", self.contig.name, self.start, self.end)
    }
}

/// `contig` for a whole contig (what the tools take to mean all of it), else
/// `contig:start-end`. The human-readable form, for labels and manifests: a contig whose name
/// holds `:` or `-` makes it ambiguous, so tools are given [`BcftoolsRegions`] or
/// [`Region::to_htslib_region`] instead.
impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_whole() {
            f.write_str(&self.contig.name)
        } else {
            write!(f, "{}:{}-{}", self.contig.name, self.start, self.end)
        }
    }
}

/// `regions` in the human-readable form, joined by `,`: a whole contig as its name, else
/// `contig:start-end`.
fn joined(regions: &[Region]) -> String {
    let parts: Vec<String> = regions.iter().map(ToString::to_string).collect();
    parts.join(",")
}

/// A list of regions as bcftools is given them (`mpileup -r`/`-R`, `view -t`/`-T`), so that a
/// contig's name always means that contig.
///
/// bcftools 1.16 reads an inline list by splitting it at `,` and each item at its first `:`
/// (htslib `regidx_parse_reg`), and takes no `{name}` braces: a contig whose name holds a
/// `:` (GRCh38's `HLA-A*01:01:01:01`, or one named `chr20:1-100`) cannot be named inline,
/// and `-r HLA-A*01:01:01:01` silently calls nothing. Regions on such contigs go through a
/// regions file instead, one [`Region::to_regions_file_line`] per region, which bcftools
/// splits at tabs. Names without `:` (`chr1-2` included) stay inline, so the usual command
/// lines are unchanged. A name starting with `#` cannot be given either way (bcftools skips it
/// as a comment): [`crate::contig_name_error`] refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BcftoolsRegions {
    text: String,
    file: Option<String>,
}

impl BcftoolsRegions {
    /// The list for `regions` (in reference order).
    pub fn new(regions: &[Region]) -> BcftoolsRegions {
        let needs_file = regions
            .iter()
            .any(|region| region.contig.name.contains(':'));
        BcftoolsRegions {
            text: joined(regions),
            file: needs_file.then(|| regions.iter().map(Region::to_regions_file_line).collect()),
        }
    }

    /// The human-readable list (`chr20:1-100,chr22`, as [`Shard::region`]): the inline
    /// argument when [`BcftoolsRegions::file_contents`] is `None`, and a label in any case.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What the regions file must hold when bcftools has to read the list from a file
    /// (`-R`/`-T`), or `None` when the inline form is unambiguous (`-r`/`-t`).
    pub fn file_contents(&self) -> Option<&str> {
        self.file.as_deref()
    }
}

/// One unit of scattered work: one or more regions, called together by one job.
///
/// `index` is the shard's position in reference (`.fai`) order among the shards of its plan, so
/// gathering shards by index gives reference order whatever order they finished in. The
/// regions are in reference order and do not overlap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shard {
    /// Position in the plan, 0-based, in reference order.
    pub index: usize,
    /// The regions the shard covers, in reference order; never empty.
    pub regions: Vec<Region>,
    /// [`Shard::region`], made once.
    region: String,
}

impl Shard {
    /// Shard `index` of `regions` (in reference order, not overlapping, not empty).
    pub fn new(index: usize, regions: Vec<Region>) -> Self {
        let region = joined(&regions);
        Shard {
            index,
            regions,
            region,
        }
    }

    /// The human-readable region string, for labels, manifests and file names: the regions
    /// joined by `,`, each a contig name when whole, else `contig:start-end`. A by-contig
    /// shard's region is therefore its contig's name. Not for tools: a contig name with `:` or
    /// `-` makes it ambiguous there ([`Shard::bcftools_regions`]).
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The shard's regions as bcftools is to be given them ([`BcftoolsRegions`]).
    pub fn bcftools_regions(&self) -> BcftoolsRegions {
        BcftoolsRegions::new(&self.regions)
    }

    /// The bases the shard covers: the sum of its regions' lengths.
    pub fn bases(&self) -> u64 {
        self.regions.iter().map(Region::bases).sum()
    }

    /// The contig of the shard's only region's contig when all its regions lie on one contig,
    /// else `None`.
    pub fn single_contig(&self) -> Option<&Contig> {
        let first = &self.regions.first()?.contig;
        self.regions
            .iter()
            .all(|region| region.contig.name == first.name)
            .then_some(first)
    }

    /// Whether every region is a whole contig (as in a [`ScatterPlan::by_contig`] plan).
    pub fn is_whole_contigs(&self) -> bool {
        self.regions.iter().all(Region::is_whole)
    }
}

/// An ordered list of shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScatterPlan {
    shards: Vec<Shard>,
}

impl ScatterPlan {
    /// One shard per contig, in the order given; shard `i` is the `i`-th contig, so when
    /// `contigs` is the whole `.fai`, a contig's shard index is its line in the `.fai` and stays
    /// the same whichever contigs a run selects (see [`ScatterPlan::restricted_to`]).
    pub fn by_contig(contigs: impl IntoIterator<Item = Contig>) -> Self {
        let shards = contigs
            .into_iter()
            .enumerate()
            .map(|(index, contig)| Shard::new(index, vec![Region::whole(contig)]))
            .collect();
        ScatterPlan { shards }
    }

    /// Shards of at most `max_bases` bases each, in the order of `contigs`:
    ///
    /// - a contig longer than `max_bases` is cut into `n = ceil(length / max_bases)` regions of
    ///   equal length (the first `length mod n` one base longer), each its own shard, so no
    ///   piece of a cut contig is shorter than half of `max_bases`;
    /// - consecutive contigs of at most `max_bases` are grouped, whole, into one shard while
    ///   their sum stays within `max_bases` (a shard of many small contigs rather than many tiny
    ///   shards: two neighbouring groups together always exceed `max_bases`);
    /// - contigs of length 0 have no bases to call and get no shard.
    ///
    /// Every base of every contig given is in exactly one region of one shard. Shard indices
    /// are positions in this plan (0-based), so they are not `.fai` lines as in
    /// [`ScatterPlan::by_contig`].
    pub fn by_size(contigs: impl IntoIterator<Item = Contig>, max_bases: NonZeroU64) -> Self {
        let max = max_bases.get();
        let mut shards: Vec<Shard> = Vec::new();
        let mut group: Vec<Region> = Vec::new();
        let mut group_bases = 0u64;
        let push = |shards: &mut Vec<Shard>, regions: Vec<Region>| {
            let index = shards.len();
            shards.push(Shard::new(index, regions));
        };
        for contig in contigs {
            let length = contig.length;
            if length == 0 {
                continue;
            }
            if length <= max {
                if group_bases + length > max && !group.is_empty() {
                    push(&mut shards, std::mem::take(&mut group));
                    group_bases = 0;
                }
                group_bases += length;
                group.push(Region::whole(contig));
                continue;
            }
            if !group.is_empty() {
                push(&mut shards, std::mem::take(&mut group));
                group_bases = 0;
            }
            let pieces = length.div_ceil(max);
            let (size, longer) = (length / pieces, length % pieces);
            let mut start = 1u64;
            for piece in 0..pieces {
                let bases = size + u64::from(piece < longer);
                let end = start + bases - 1;
                push(
                    &mut shards,
                    vec![Region {
                        contig: contig.clone(),
                        start,
                        end,
                    }],
                );
                start = end + 1;
            }
        }
        if !group.is_empty() {
            push(&mut shards, group);
        }
        ScatterPlan { shards }
    }

    /// The shards whose region is one of `names` (in any order): for a
    /// [`ScatterPlan::by_contig`] plan, the shards of the named contigs, still in reference
    /// order and keeping their indices.
    ///
    /// Linear in the shards plus the names (hash sets), so a list naming every scaffold of a
    /// draft assembly costs no more than planning them all.
    ///
    /// # Errors
    /// The names that match no shard, in the order given.
    pub fn restricted_to(&self, names: &[String]) -> Result<ScatterPlan, Vec<String>> {
        let available: HashSet<&str> = self.shards.iter().map(Shard::region).collect();
        let missing: Vec<String> = names
            .iter()
            .filter(|name| !available.contains(name.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
        let shards = self
            .shards
            .iter()
            .filter(|shard| wanted.contains(shard.region()))
            .cloned()
            .collect();
        Ok(ScatterPlan { shards })
    }

    /// The contigs the plan's shards cover, each once, in plan order.
    pub fn contigs(&self) -> Vec<Contig> {
        let mut contigs: Vec<Contig> = Vec::new();
        for region in self.shards.iter().flat_map(|shard| &shard.regions) {
            if contigs
                .last()
                .is_none_or(|last| last.name != region.contig.name)
            {
                contigs.push(region.contig.clone());
            }
        }
        contigs
    }

    /// The shards in reference order.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Shard positions ordered most bases first (ties in reference order): running shards in
    /// this order on a fixed pool of workers shortens the longest-running worker's queue.
    pub fn longest_first(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.shards.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(self.shards[i].bases()), i));
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_contig_keeps_reference_order() {
        let plan = ScatterPlan::by_contig([
            Contig::new("chr20", 300_000),
            Contig::new("chr22", 12_356),
            Contig::new("chrM", 16_571),
        ]);
        let names: Vec<&str> = plan.shards().iter().map(Shard::region).collect();
        assert_eq!(names, ["chr20", "chr22", "chrM"]);
        assert_eq!(plan.longest_first(), [0, 2, 1]);
        let some = plan
            .restricted_to(&["chrM".to_owned(), "chr20".to_owned()])
            .unwrap();
        let picked: Vec<(usize, &str)> = some
            .shards()
            .iter()
            .map(|s| (s.index, s.region()))
            .collect();
        assert_eq!(picked, [(0, "chr20"), (2, "chrM")]);
        assert_eq!(some.longest_first(), [0, 1]);
        assert_eq!(
            plan.restricted_to(&["20".to_owned(), "chr22".to_owned(), "X".to_owned()]),
            Err(vec!["20".to_owned(), "X".to_owned()])
        );
        // A name given twice selects its shard once.
        let twice = plan
            .restricted_to(&["chr22".to_owned(), "chr22".to_owned()])
            .unwrap();
        assert_eq!(twice.shards().len(), 1);
        assert_eq!(twice.shards()[0].index, 1);
    }

    fn size_plan(contigs: &[(&str, u64)], max: u64) -> ScatterPlan {
        ScatterPlan::by_size(
            contigs
                .iter()
                .map(|(name, length)| Contig::new(*name, *length)),
            NonZeroU64::new(max).unwrap(),
        )
    }

    #[test]
    fn by_size_cuts_long_contigs_evenly_and_groups_short_ones() {
        let plan = size_plan(
            &[
                ("chr20", 300_000),
                ("chr22", 12_356),
                ("chrM", 16_571),
                ("empty", 0),
                ("chrUn", 100_000),
            ],
            100_000,
        );
        let regions: Vec<(usize, &str, u64)> = plan
            .shards()
            .iter()
            .map(|s| (s.index, s.region(), s.bases()))
            .collect();
        assert_eq!(
            regions,
            [
                (0, "chr20:1-100000", 100_000),
                (1, "chr20:100001-200000", 100_000),
                (2, "chr20:200001-300000", 100_000),
                (3, "chr22,chrM", 28_927),
                (4, "chrUn", 100_000),
            ]
        );
        // 250,001 bases in pieces of at most 100,000: three pieces, the first one base longer.
        let odd = size_plan(&[("c", 250_001)], 100_000);
        let odd: Vec<&str> = odd.shards().iter().map(Shard::region).collect();
        assert_eq!(odd, ["c:1-83334", "c:83335-166668", "c:166669-250001"]);
        assert_eq!(plan.longest_first(), [0, 1, 2, 4, 3]);
        assert_eq!(plan.shards()[3].single_contig(), None);
        assert_eq!(
            plan.shards()[1].single_contig().map(|c| c.name.as_str()),
            Some("chr20")
        );
        let names: Vec<String> = plan.contigs().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["chr20", "chr22", "chrM", "chrUn"]);
        assert_eq!(Region::new(Contig::new("c", 10), 0, 5), None);
        assert_eq!(Region::new(Contig::new("c", 10), 6, 5), None);
        assert_eq!(Region::new(Contig::new("c", 10), 5, 11), None);
        assert_eq!(
            Region::new(Contig::new("c", 10), 5, 10).map(|r| r.to_string()),
            Some("c:5-10".to_owned())
        );
    }

    #[test]
    fn tool_renderings_keep_a_contig_name_one_contig() {
        let hla = Contig::new("HLA-A*01:01:01:01", 3_503);
        let odd = Contig::new("chr20:1-100", 300_000);
        let dash = Contig::new("chr1-2", 16_571);
        // The human-readable form stays as it is.
        assert_eq!(Region::whole(hla.clone()).to_string(), "HLA-A*01:01:01:01");
        assert_eq!(
            Region::new(odd.clone(), 5, 10).unwrap().to_string(),
            "chr20:1-100:5-10"
        );
        // htslib regions: braces around a name with ':'.
        assert_eq!(
            Region::whole(hla.clone()).to_htslib_region(),
            "{HLA-A*01:01:01:01}"
        );
        assert_eq!(
            Region::new(odd.clone(), 5, 10).unwrap().to_htslib_region(),
            "{chr20:1-100}:5-10"
        );
        assert_eq!(Region::whole(dash.clone()).to_htslib_region(), "chr1-2");
        assert_eq!(
            Region::new(Contig::new("chr20", 300_000), 1, 100)
                .unwrap()
                .to_htslib_region(),
            "chr20:1-100"
        );
        // bcftools: inline unless a name holds ':', then a regions file.
        let usual = BcftoolsRegions::new(&[
            Region::new(Contig::new("chr20", 300_000), 1, 37_500).unwrap(),
            Region::whole(dash.clone()),
        ]);
        assert_eq!(usual.text(), "chr20:1-37500,chr1-2");
        assert_eq!(usual.file_contents(), None);
        let odd_regions = BcftoolsRegions::new(&[
            Region::whole(Contig::new("chr20", 300_000)),
            Region::new(odd, 1_000, 5_000).unwrap(),
            Region::whole(hla),
        ]);
        assert_eq!(
            odd_regions.text(),
            "chr20,chr20:1-100:1000-5000,HLA-A*01:01:01:01"
        );
        assert_eq!(
            odd_regions.file_contents(),
            Some("chr20\t1\t300000\nchr20:1-100\t1000\t5000\nHLA-A*01:01:01:01\t1\t3503\n")
        );
        let shard = Shard::new(0, vec![Region::whole(dash)]);
        assert_eq!(shard.bcftools_regions().text(), shard.region());
    }

    proptest::proptest! {
        /// Every base of every contig is in exactly one region of one shard; shards are within
        /// the limit, in reference order, indexed by position; cut pieces are at least half
        /// the limit and neighbouring groups of whole contigs could not have been one shard.
        #[test]
        fn by_size_covers_every_base_exactly_once(
            lengths in proptest::collection::vec(0u64..5_000, 1..12),
            max in 1u64..3_000,
        ) {
            let contigs: Vec<Contig> = lengths
                .iter()
                .enumerate()
                .map(|(i, length)| Contig::new(format!("c{i}"), *length))
                .collect();
            let plan = ScatterPlan::by_size(contigs.clone(), NonZeroU64::new(max).unwrap());
            // Per contig, the regions in plan order must tile 1..=length with no gap or overlap.
            let mut next_base: Vec<u64> = vec![1; contigs.len()];
            let mut last_contig = 0usize;
            for (position, shard) in plan.shards().iter().enumerate() {
                proptest::prop_assert_eq!(shard.index, position);
                proptest::prop_assert!(!shard.regions.is_empty());
                proptest::prop_assert!(shard.bases() <= max);
                for region in &shard.regions {
                    let c = contigs.iter().position(|c| c.name == region.contig.name).unwrap();
                    proptest::prop_assert!(c >= last_contig, "regions out of reference order");
                    last_contig = c;
                    proptest::prop_assert_eq!(region.start, next_base[c]);
                    proptest::prop_assert!(region.end >= region.start);
                    next_base[c] = region.end + 1;
                }
                if !shard.is_whole_contigs() {
                    proptest::prop_assert_eq!(shard.regions.len(), 1);
                    proptest::prop_assert!(2 * shard.bases() >= max);
                }
            }
            for (contig, next) in contigs.iter().zip(&next_base) {
                proptest::prop_assert_eq!(*next, contig.length + 1, "{} not fully covered", contig.name);
            }
            for pair in plan.shards().windows(2) {
                if pair[0].is_whole_contigs() && pair[1].is_whole_contigs() {
                    proptest::prop_assert!(pair[0].bases() + pair[1].bases() > max);
                }
            }
        }
    }
}
