//! What every step runs with.

use biojob_process::Supervisor;
use biojob_tools::{ToolVersions, Toolset};

use crate::Resources;

/// The tools, the supervisor that runs them, and the job's resource budget.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The resolved tools.
    pub toolset: Toolset,
    /// Their versions, as probed.
    pub versions: ToolVersions,
    /// Runs the tools (logs, cancellation, timeouts).
    pub supervisor: Supervisor,
    /// CPU and memory budget.
    pub resources: Resources,
}
