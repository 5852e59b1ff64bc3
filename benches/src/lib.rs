//! Benchmarks of biojob: `cargo bench -p biojob-benches`. The benches live in `benches/`;
//! `benches/align-validation.sh` times the align step with and without the FASTQ check on the
//! benchmark data set. Figures are recorded in `BENCHMARKS.md`.
