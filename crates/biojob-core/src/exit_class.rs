//! Process exit codes, one per failure class.
//!
//! AWS Batch's `retryStrategy.evaluateOnExit` and the state machine's resubmit choices match on
//! these codes, so they are part of biojob's public contract: a code never changes meaning.

use serde::{Deserialize, Serialize};

/// The class of a step's outcome, and the exit code the `biojob` process returns for it.
///
/// Each variant's [`code`](Self::code), [`name`](Self::name) and whether it is
/// [`retryable`](Self::retryable) are the contract; `docs/exit-codes.md` is their table (with
/// when each occurs), checked against this type by `tests/exit_codes_doc.rs`. 130 and 143 follow
/// the shell convention of 128 + signal number (SIGINT = 2, SIGTERM = 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExitClass {
    /// Success.
    Ok,
    /// Wrong flags, a malformed input JSON, an unknown setting, credentials or permissions
    /// that do not allow a transfer (S3's HTTP 403).
    Usage,
    /// Inputs could not be fetched (network, throttling, a server error).
    InputStaging,
    /// Inputs were fetched but are wrong: bad FASTQ, missing contig, corrupt file.
    InputInvalid,
    /// Scratch space ran out or never grew.
    Scratch,
    /// A tool exited with a non-zero status.
    ToolFailed,
    /// A tool was killed by a signal (the OOM killer, a timeout).
    ToolKilled,
    /// Outputs could not be written to their destination.
    OutputStaging,
    /// An output failed verification (truncated BGZF, index did not build).
    OutputInvalid,
    /// SIGINT received.
    Interrupted,
    /// SIGTERM received (AWS Batch job stop, Spot reclaim).
    Terminated,
}

impl ExitClass {
    /// Every class, in code order.
    pub const ALL: [ExitClass; 11] = [
        ExitClass::Ok,
        ExitClass::Usage,
        ExitClass::InputStaging,
        ExitClass::InputInvalid,
        ExitClass::Scratch,
        ExitClass::ToolFailed,
        ExitClass::ToolKilled,
        ExitClass::OutputStaging,
        ExitClass::OutputInvalid,
        ExitClass::Interrupted,
        ExitClass::Terminated,
    ];

    /// The process exit code (0–255).
    pub fn code(self) -> u8 {
        match self {
            ExitClass::Ok => 0,
            ExitClass::Usage => 2,
            ExitClass::InputStaging => 10,
            ExitClass::InputInvalid => 11,
            ExitClass::Scratch => 12,
            ExitClass::ToolFailed => 20,
            ExitClass::ToolKilled => 21,
            ExitClass::OutputStaging => 30,
            ExitClass::OutputInvalid => 31,
            ExitClass::Interrupted => 130,
            ExitClass::Terminated => 143,
        }
    }

    /// A short snake_case name, as written in logs and run manifests.
    pub fn name(self) -> &'static str {
        match self {
            ExitClass::Ok => "ok",
            ExitClass::Usage => "usage",
            ExitClass::InputStaging => "input_staging",
            ExitClass::InputInvalid => "input_invalid",
            ExitClass::Scratch => "scratch",
            ExitClass::ToolFailed => "tool_failed",
            ExitClass::ToolKilled => "tool_killed",
            ExitClass::OutputStaging => "output_staging",
            ExitClass::OutputInvalid => "output_invalid",
            ExitClass::Interrupted => "interrupted",
            ExitClass::Terminated => "terminated",
        }
    }

    /// Whether running the same job again (possibly on a larger host) may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ExitClass::InputStaging
                | ExitClass::Scratch
                | ExitClass::ToolKilled
                | ExitClass::OutputStaging
                | ExitClass::Terminated
        )
    }

    /// The class whose [`code`](Self::code) is `code`, if any.
    pub fn from_code(code: u8) -> Option<ExitClass> {
        Self::ALL.into_iter().find(|class| class.code() == code)
    }
}

/// Errors that know their [`ExitClass`] and, where one exists, what the user can do about them.
pub trait Classify {
    /// The exit class this error maps to.
    fn exit_class(&self) -> ExitClass;

    /// One line telling the user how to fix the cause, when biojob knows it.
    fn remedy(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let codes: Vec<u8> = ExitClass::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes, [0, 2, 10, 11, 12, 20, 21, 30, 31, 130, 143]);
    }

    #[test]
    fn from_code_round_trips() {
        for class in ExitClass::ALL {
            assert_eq!(ExitClass::from_code(class.code()), Some(class));
        }
        assert_eq!(ExitClass::from_code(1), None);
    }

    #[test]
    fn retryable_classes() {
        let retryable: Vec<&str> = ExitClass::ALL
            .iter()
            .filter(|c| c.retryable())
            .map(|c| c.name())
            .collect();
        assert_eq!(
            retryable,
            [
                "input_staging",
                "scratch",
                "tool_killed",
                "output_staging",
                "terminated"
            ]
        );
    }
}
