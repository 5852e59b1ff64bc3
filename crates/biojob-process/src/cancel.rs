//! Cancellation shared between the binary's signal handler and running pipelines.

use std::fmt;
use std::sync::{Arc, OnceLock};

use biojob_core::ExitClass;

/// Why a run was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// SIGTERM received (AWS Batch job stop, Spot reclaim).
    Terminate,
    /// SIGINT received (Ctrl-C at a terminal).
    Interrupt,
    /// Another part of the same step failed; the caller reports that failure instead.
    Sibling,
}

impl CancelReason {
    /// The exit class of work stopped for this reason: 143 for SIGTERM, 130 for SIGINT; a
    /// sibling's failure is reported by the caller (its own error), so work stopped for it
    /// counts as a tool failure.
    pub fn exit_class(self) -> ExitClass {
        match self {
            CancelReason::Terminate => ExitClass::Terminated,
            CancelReason::Interrupt => ExitClass::Interrupted,
            CancelReason::Sibling => ExitClass::ToolFailed,
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CancelReason::Terminate => "SIGTERM received",
            CancelReason::Interrupt => "SIGINT received",
            CancelReason::Sibling => "another part of the step failed",
        })
    }
}

/// A cancellation flag shared by clones, with an optional parent.
///
/// Clones share one flag (an `Arc` inside). [`child`](Self::child) makes a new token that is
/// cancelled when its parent is, while cancelling the child leaves the parent alone: a step gives
/// each of its scattered pipelines a child token and cancels them with
/// [`CancelReason::Sibling`] when one fails, while the binary's signal handler cancels the root.
///
/// The first [`cancel`](Self::cancel) wins: later calls do not change the reason.
///
/// ```
/// use biojob_process::{CancelReason, CancelToken};
///
/// let root = CancelToken::new();
/// let shard = root.child();
/// shard.cancel(CancelReason::Sibling);
/// assert!(!root.is_cancelled());
/// root.cancel(CancelReason::Terminate);
/// assert_eq!(shard.reason(), Some(CancelReason::Sibling));
/// assert_eq!(root.child().reason(), Some(CancelReason::Terminate));
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    node: Arc<Node>,
}

#[derive(Debug, Default)]
struct Node {
    reason: OnceLock<CancelReason>,
    parent: Option<Arc<Node>>,
}

impl CancelToken {
    /// A token that is not cancelled and has no parent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels this token (and so every token made from it by [`child`](Self::child)).
    ///
    /// Only the first call sets the reason. Safe to call from any thread.
    pub fn cancel(&self, reason: CancelReason) {
        // A second cancel keeps the first reason, as documented.
        let _ = self.node.reason.set(reason);
    }

    /// The reason this token or one of its ancestors was cancelled, if any.
    ///
    /// The token's own reason comes first, then its parent's, and so on up.
    pub fn reason(&self) -> Option<CancelReason> {
        let mut node = Some(&self.node);
        while let Some(current) = node {
            if let Some(reason) = current.reason.get() {
                return Some(*reason);
            }
            node = current.parent.as_ref();
        }
        None
    }

    /// Whether this token or one of its ancestors was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.reason().is_some()
    }

    /// A new token cancelled when `self` is; cancelling it does not cancel `self`.
    pub fn child(&self) -> Self {
        Self {
            node: Arc::new(Node {
                reason: OnceLock::new(),
                parent: Some(Arc::clone(&self.node)),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_token_is_not_cancelled() {
        let token = CancelToken::new();
        assert!(!token.is_cancelled());
        assert_eq!(token.reason(), None);
    }

    #[test]
    fn clones_share_the_flag() {
        let token = CancelToken::new();
        let clone = token.clone();
        clone.cancel(CancelReason::Interrupt);
        assert_eq!(token.reason(), Some(CancelReason::Interrupt));
    }

    #[test]
    fn first_reason_wins() {
        let token = CancelToken::new();
        token.cancel(CancelReason::Terminate);
        token.cancel(CancelReason::Interrupt);
        assert_eq!(token.reason(), Some(CancelReason::Terminate));
    }

    #[test]
    fn parent_cancels_grandchild_but_not_the_reverse() {
        let root = CancelToken::new();
        let child = root.child();
        let grandchild = child.child();
        grandchild.cancel(CancelReason::Sibling);
        assert_eq!(root.reason(), None);
        assert_eq!(child.reason(), None);
        assert_eq!(grandchild.reason(), Some(CancelReason::Sibling));

        let other = child.child();
        root.cancel(CancelReason::Terminate);
        assert_eq!(other.reason(), Some(CancelReason::Terminate));
        assert_eq!(child.reason(), Some(CancelReason::Terminate));
        // The grandchild's own reason was set first and is kept.
        assert_eq!(grandchild.reason(), Some(CancelReason::Sibling));
    }

    #[test]
    fn reasons_display() {
        assert_eq!(CancelReason::Terminate.to_string(), "SIGTERM received");
        assert_eq!(CancelReason::Interrupt.to_string(), "SIGINT received");
        assert_eq!(
            CancelReason::Sibling.to_string(),
            "another part of the step failed"
        );
    }
}
