//! Whether the engine answers, and what the node says of it (Nomad's
//! `driver.docker.*` attributes).

use std::sync::atomic::Ordering;

use bollard::errors::Error as EngineError;

use super::{Docker, FINGERPRINT_LIMIT};
use crate::Fingerprint;

impl Docker {
    async fn probe(&self) -> Result<Fingerprint, EngineError> {
        let engine = self.engine().await?;
        let version = engine.version().await?;
        let info = engine.info().await.ok();
        let bridge = engine.inspect_network("bridge", None).await.ok();
        let mut attributes = std::collections::BTreeMap::new();
        attributes.insert("driver.docker".to_string(), "true".to_string());
        attributes.insert(
            "driver.docker.version".to_string(),
            version.version.unwrap_or_default(),
        );
        attributes.insert(
            "driver.docker.os_type".to_string(),
            version.os.unwrap_or_default(),
        );
        if let Some(runtimes) = info.and_then(|info| info.runtimes) {
            let mut names: Vec<String> = runtimes.into_keys().collect();
            names.sort();
            attributes.insert("driver.docker.runtimes".to_string(), names.join(","));
        }
        let gateway = bridge
            .and_then(|bridge| bridge.ipam)
            .and_then(|ipam| ipam.config)
            .and_then(|configs| configs.into_iter().find_map(|config| config.gateway));
        if let Some(gateway) = gateway {
            attributes.insert("driver.docker.bridge_ip".to_string(), gateway);
        }
        Ok(Fingerprint {
            detected: true,
            healthy: true,
            description: "Healthy".to_string(),
            attributes,
        })
    }

    pub(super) async fn fingerprint_engine(&self) -> Fingerprint {
        let outcome = tokio::time::timeout(FINGERPRINT_LIMIT, self.probe()).await;
        let error = match outcome {
            Ok(Ok(fingerprint)) => {
                self.seen.store(true, Ordering::Relaxed);
                return fingerprint;
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "timed out".to_string(),
        };
        // A new connection next time: the engine may have restarted.
        *self.engine.lock().await = None;
        Fingerprint {
            detected: self.seen.load(Ordering::Relaxed),
            healthy: false,
            description: format!("Failed to connect to docker daemon: {error}"),
            attributes: Default::default(),
        }
    }
}
