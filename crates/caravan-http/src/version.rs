//! The version Caravan reports where Nomad reports its own.

use serde_json::{json, Value};

/// The Nomad API level Caravan implements; tools that gate features on the
/// server version read this.
pub const NOMAD_VERSION: &str = "1.10.0";
/// Caravan's own version, carried as build metadata.
pub const CARAVAN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `1.10.0+caravan.0.1.0`: a semver Nomad's tools parse, naming Caravan.
pub fn full_version() -> String {
    format!("{NOMAD_VERSION}+caravan.{CARAVAN_VERSION}")
}

pub fn version_json() -> Value {
    json!({
        "Version": NOMAD_VERSION,
        "VersionPrerelease": "",
        "VersionMetadata": format!("caravan.{CARAVAN_VERSION}"),
        "Revision": "",
        "BuildDate": null,
    })
}
