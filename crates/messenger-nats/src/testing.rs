//! For tests that run a real nats-server, this crate's and the service's: which server they
//! run, and what they do when there is none.

use std::io::Write;
use std::path::PathBuf;

/// Set (to anything) by scripts/test where nats-server could be installed: a missing server
/// then fails the tests that need one instead of skipping them.
pub const REQUIRE_ENV: &str = "MESSENGER_TEST_REQUIRE_NATS";

/// Where Debian installs the server, looked at after `PATH` (`/usr/sbin` is often not on a
/// user's `PATH`).
const DEBIAN_NATS_SERVER: &str = "/usr/sbin/nats-server";

/// The nats-server to test with: the first on `PATH`, so that another release can be put
/// first (scripts/test runs the NATS tests with a current release that way), else Debian's.
/// Without one: `None`, said on stderr so that the skip is seen, or a panic when
/// [`REQUIRE_ENV`] is set.
pub fn nats_server() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nats-server"))
        .chain([PathBuf::from(DEBIAN_NATS_SERVER)])
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os(REQUIRE_ENV).is_none(),
            "nats-server is not installed (Debian package nats-server) and {REQUIRE_ENV} is set"
        );
        // Straight to the process's stderr: the test harness captures `eprintln!` of a
        // passing test, and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: nats-server is not installed (Debian package nats-server; scripts/test \
             installs it); this test needs a real server"
        );
    }
    found
}
