//! One module per subcommand: each turns its flags (and the environment behind them) into a
//! request for the pipeline, and nothing else.

pub mod align;
pub mod call;
pub mod gather;
pub mod merge;
pub mod plan_cohort;
pub mod plan_shards;
pub mod prepare_reference;
pub mod qc;
pub mod report;
pub mod run;
pub mod sample_vcf;
pub mod split;
pub mod stage;
