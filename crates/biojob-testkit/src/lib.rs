//! Test support shared by the test binaries: never a normal dependency.
//!
//! - [`testdata`], [`fake_tool`]: the real NA12878 test data and the fake tools.
//! - [`Tmpfs`]: a scratch filesystem of an exact size (tests that mount need root).
//! - [`s3_server`]: one real S3-compatible server (SeaweedFS `weed mini`, installed by
//!   `scripts/test.sh`) per test binary, on free loopback ports, killed when the test binary
//!   exits (a watchdog ends it when the binary's end of a pipe closes). It fails loudly when
//!   the server cannot start: S3 tests never skip.
//! - [`FaultProxy`]: a loopback HTTP/1.1 proxy in front of it with scripted faults (connection
//!   resets before or mid-body, bursts of `503 SlowDown` or `500 InternalError`, a flipped
//!   byte) on the requests a [`Rule`] picks (method, target, a header such as `Range`), counting
//!   what it injected.
//!
//! ```no_run
//! let server = biojob_testkit::s3_server();
//! let proxy = biojob_testkit::FaultProxy::start(&server.endpoint);
//! proxy.add(biojob_testkit::Rule::new("GET", "", biojob_testkit::Fault::SlowDown));
//! ```

mod data;
mod proxy;
mod server;

pub use data::{Tmpfs, fake_tool, testdata, workspace_root};
pub use proxy::{Fault, FaultProxy, INTERNAL_ERROR_MESSAGE, Rule, SLOW_DOWN_MESSAGE};
pub use server::{S3Server, TEST_BUCKET, s3_server};
