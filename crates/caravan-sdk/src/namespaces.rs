//! `/v1/namespaces` and `/v1/namespace/:name`: listing, reading, writing
//! and deleting namespaces, as Nomad's `api.Namespaces()`.
//!
//! Anyone may list (seeing only the namespaces their token grants something
//! in) and read a namespace they have a capability in; writing and
//! deleting need a management token when ACLs are enabled.
//!
//! ```no_run
//! # async fn example(client: caravan_sdk::Client) -> Result<(), caravan_sdk::Error> {
//! use caravan_api_types::namespace::Namespace;
//! use caravan_sdk::{QueryOptions, WriteOptions};
//! let team = Namespace {
//!     name: "team".into(),
//!     description: "the team's jobs".into(),
//!     ..Namespace::default()
//! };
//! client.namespaces().register(&team, &WriteOptions::default()).await?;
//! let (namespaces, _) = client.namespaces().list(&QueryOptions::default()).await?;
//! for namespace in namespaces {
//!     println!("{} {}", namespace.name, namespace.description);
//! }
//! client.namespaces().delete("team", &WriteOptions::default()).await?;
//! # Ok(())
//! # }
//! ```

use caravan_api_types::namespace::Namespace;
use reqwest::Method;
use serde_json::Value;

use crate::jobs::escape;
use crate::{Client, Error, QueryMeta, QueryOptions, WriteMeta, WriteOptions};

pub struct Namespaces<'a> {
    pub(crate) client: &'a Client,
}

impl Namespaces<'_> {
    /// Every namespace the token may see (those whose name starts with
    /// `options.prefix`, when set), the most recently created first: the
    /// server lists them by name and Nomad's `List` sorts them again by
    /// creation index, highest first, which is what `-json` shows.
    pub async fn list(&self, options: &QueryOptions) -> Result<(Vec<Namespace>, QueryMeta), Error> {
        let (mut namespaces, meta): (Vec<Namespace>, _) =
            self.client.get("/v1/namespaces", &[], options).await?;
        // Stable, so namespaces created at the same index keep name order.
        namespaces.sort_by_key(|namespace| std::cmp::Reverse(namespace.create_index));
        Ok((namespaces, meta))
    }

    /// The namespaces whose name starts with `prefix` (Nomad's
    /// `PrefixList`): [`Namespaces::list`] with the prefix set.
    pub async fn prefix_list(
        &self,
        prefix: &str,
        options: &QueryOptions,
    ) -> Result<(Vec<Namespace>, QueryMeta), Error> {
        let options = QueryOptions {
            prefix: Some(prefix.to_string()),
            ..options.clone()
        };
        self.list(&options).await
    }

    /// One namespace by its exact name; a 404 ("Namespace not found") when
    /// there is none.
    pub async fn info(
        &self,
        name: &str,
        options: &QueryOptions,
    ) -> Result<(Namespace, QueryMeta), Error> {
        self.client
            .get(&format!("/v1/namespace/{}", escape(name)), &[], options)
            .await
    }

    /// Creates or replaces `namespace` (its name is the body's), as Nomad's
    /// `Register`: `PUT /v1/namespace`. Fields left unset are cleared, not
    /// kept: read, change and write back to update one field.
    pub async fn register(
        &self,
        namespace: &Namespace,
        options: &WriteOptions,
    ) -> Result<WriteMeta, Error> {
        let (_, meta) = self
            .client
            .write::<_, Value>(Method::PUT, "/v1/namespace", Some(namespace), &[], options)
            .await?;
        Ok(meta)
    }

    /// Deletes the namespace `name`. The server refuses `default` and a
    /// namespace that still has non-terminal jobs or allocations.
    pub async fn delete(&self, name: &str, options: &WriteOptions) -> Result<WriteMeta, Error> {
        let (_, meta) = self
            .client
            .write::<(), Value>(
                Method::DELETE,
                &format!("/v1/namespace/{}", escape(name)),
                None,
                &[],
                options,
            )
            .await?;
        Ok(meta)
    }
}
