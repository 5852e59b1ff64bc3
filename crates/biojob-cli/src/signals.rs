//! SIGTERM and SIGINT: cancel the running tools, clean up, exit 143 or 130.

use biojob_process::{CancelReason, CancelToken};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Installs the handlers and returns the token they cancel. AWS Batch stops a job (and Spot
/// reclaims its host) with SIGTERM, then SIGKILL after the stop timeout (30 s by default): the
/// supervisor forwards the stop to every tool's process group, the run unwinds, scratch is
/// removed, and the exit code says which signal arrived.
pub fn install() -> std::io::Result<CancelToken> {
    let cancel = CancelToken::new();
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let token = cancel.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let reason = if signal == SIGINT {
                    CancelReason::Interrupt
                } else {
                    CancelReason::Terminate
                };
                tracing::warn!(
                    signal = if signal == SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    },
                    "stopping: forwarding to running tools"
                );
                token.cancel(reason);
            }
        })?;
    Ok(cancel)
}
