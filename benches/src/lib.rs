//! Benchmarks of biojob: `cargo bench -p biojob-benches`. The criterion benches live in
//! `benches/` (FASTQ validation, scatter planning, gather planning, the QC BAM pass);
//! `benches/e2e.sh` runs the whole workflow against the reference design's chain and the
//! tools alone; `benches/align-validation.sh` times the align step with and without the FASTQ
//! check. Figures are recorded in `BENCHMARKS.md`.
//!
//! This library holds the synthetic references the benches share.

use std::fmt::Write as _;

use camino::Utf8Path;

/// GRCh38's primary chromosomes and their lengths.
pub const PRIMARY: [(&str, u64); 25] = [
    ("chr1", 248_956_422),
    ("chr2", 242_193_529),
    ("chr3", 198_295_559),
    ("chr4", 190_214_555),
    ("chr5", 181_538_259),
    ("chr6", 170_805_979),
    ("chr7", 159_345_973),
    ("chr8", 145_138_636),
    ("chr9", 138_394_717),
    ("chr10", 133_797_422),
    ("chr11", 135_086_622),
    ("chr12", 133_275_309),
    ("chr13", 114_364_328),
    ("chr14", 107_043_718),
    ("chr15", 101_991_189),
    ("chr16", 90_338_345),
    ("chr17", 83_257_441),
    ("chr18", 80_373_285),
    ("chr19", 58_617_616),
    ("chr20", 64_444_167),
    ("chr21", 46_709_983),
    ("chr22", 50_818_468),
    ("chrX", 156_040_895),
    ("chrY", 57_227_415),
    ("chrM", 16_569),
];

/// Contig names and lengths like the Broad `Homo_sapiens_assembly38.fasta` (3,366 contigs).
pub fn grch38_like() -> Vec<(String, u64)> {
    let mut contigs: Vec<(String, u64)> = PRIMARY
        .iter()
        .map(|(name, length)| ((*name).to_owned(), *length))
        .collect();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let kinds = [
        (42, "_random", 1),
        (127, "chrUn_", 2),
        (261, "_alt", 3),
        (525, "HLA-", 4),
    ];
    for (count, suffix, kind) in kinds {
        for i in 0..count {
            let chromosome = 1 + next() % 22;
            let name = match kind {
                1 => format!("chr{chromosome}_KI270{:03}v1{suffix}", 300 + i),
                2 => format!("chrUn_GL000{:03}v1", 100 + i),
                3 => format!("chr{chromosome}_KI270{:03}v1{suffix}", 700 + i),
                _ => format!(
                    "HLA-A*{:02}:{:02}:01:{:02}",
                    1 + i / 100,
                    i % 100,
                    1 + i % 7
                ),
            };
            contigs.push((name, 1_000 + next() % 400_000));
        }
    }
    let mut decoy = 1;
    while contigs.len() < 3_366 {
        contigs.push((
            format!("chrUn_JTFH0100{decoy:05}v1_decoy"),
            1_000 + next() % 30_000,
        ));
        decoy += 1;
    }
    contigs
}

/// A draft assembly: `count` scaffolds of 1 kb to 2 Mb.
pub fn scaffolds(count: usize) -> Vec<(String, u64)> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (format!("scaffold_{i}"), 1_000 + state % 2_000_000)
        })
        .collect()
}

/// Writes `contigs` as a `.fai` (60-base lines, offsets as `samtools faidx` computes them).
///
/// # Panics
/// When the file cannot be written.
pub fn write_fai(path: &Utf8Path, contigs: &[(String, u64)]) {
    let mut text = String::new();
    let mut offset = 0u64;
    for (name, length) in contigs {
        offset += name.len() as u64 + 2;
        writeln!(text, "{name}\t{length}\t{offset}\t60\t61").expect("writing to a String");
        offset += length + length.div_ceil(60);
    }
    std::fs::write(path, text).expect("writing the .fai");
}
