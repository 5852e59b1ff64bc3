//! Test support shared by the test binaries that need S3: never a normal dependency.
//!
//! - [`s3_server`]: one real S3-compatible server (SeaweedFS `weed mini`, installed by
//!   `scripts/test.sh`) per test binary, on free loopback ports, killed when the test binary
//!   exits (a watchdog ends it when the binary's end of a pipe closes). It fails loudly when
//!   the server cannot start: S3 tests never skip.
//! - [`FaultProxy`]: a loopback HTTP/1.1 proxy in front of it with scripted faults (connection
//!   reset mid-body, `503 SlowDown`, a flipped byte), counting what it injected.
//!
//! ```no_run
//! let server = biojob_testkit::s3_server();
//! let proxy = biojob_testkit::FaultProxy::start(&server.endpoint);
//! proxy.add(biojob_testkit::Rule::new("GET", "", biojob_testkit::Fault::SlowDown));
//! ```

mod proxy;
mod server;

pub use proxy::{Fault, FaultProxy, Rule};
pub use server::{S3Server, TEST_BUCKET, s3_server};
