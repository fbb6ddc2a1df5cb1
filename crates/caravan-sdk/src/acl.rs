//! `/v1/acl`: bootstrap, policies and tokens.
//!
//! ```no_run
//! # async fn example(client: caravan_sdk::Client) -> Result<(), caravan_sdk::Error> {
//! use caravan_sdk::WriteOptions;
//! let management = client.acl().bootstrap().await?;
//! let client = client.with_token(&management.secret_id)?;
//! client
//!     .acl()
//!     .upsert_policy("readonly", "", "namespace \"default\" {\n  policy = \"read\"\n}\n", &WriteOptions::default())
//!     .await?;
//! # Ok(())
//! # }
//! ```

use caravan_api_types::acl::{
    AclBootstrapRequest, AclPolicy, AclPolicyListStub, AclToken, AclTokenListStub,
};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::jobs::escape;
use crate::{Client, Error, QueryMeta, QueryOptions, WriteOptions};

pub struct Acl<'a> {
    pub(crate) client: &'a Client,
}

impl Acl<'_> {
    /// Creates the first management token (once per cluster).
    pub async fn bootstrap(&self) -> Result<AclToken, Error> {
        self.bootstrap_with_secret("").await
    }

    /// Creates the first management token with the operator's `secret`
    /// (a UUID) as its secret; an empty secret lets the server pick one.
    pub async fn bootstrap_with_secret(&self, secret: &str) -> Result<AclToken, Error> {
        self.bootstrap_as(secret).await
    }

    /// [`Acl::bootstrap_with_secret`], the answer read as `T` (a
    /// `serde_json::Value` keeps it as the server wrote it).
    pub async fn bootstrap_as<T: DeserializeOwned>(&self, secret: &str) -> Result<T, Error> {
        let body = AclBootstrapRequest {
            bootstrap_secret: secret.to_string(),
        };
        let (token, _) = self
            .client
            .write(
                Method::PUT,
                "/v1/acl/bootstrap",
                (!secret.is_empty()).then_some(&body),
                &[],
                &WriteOptions::default(),
            )
            .await?;
        Ok(token)
    }

    pub async fn policies(
        &self,
        options: &QueryOptions,
    ) -> Result<(Vec<AclPolicyListStub>, QueryMeta), Error> {
        self.policies_as(options).await
    }

    /// [`Acl::policies`], the answer read as `T`.
    pub async fn policies_as<T: DeserializeOwned>(
        &self,
        options: &QueryOptions,
    ) -> Result<(T, QueryMeta), Error> {
        self.client.get("/v1/acl/policies", &[], options).await
    }

    pub async fn policy(
        &self,
        name: &str,
        options: &QueryOptions,
    ) -> Result<(AclPolicy, QueryMeta), Error> {
        self.policy_as(name, options).await
    }

    /// [`Acl::policy`], the answer read as `T`.
    pub async fn policy_as<T: DeserializeOwned>(
        &self,
        name: &str,
        options: &QueryOptions,
    ) -> Result<(T, QueryMeta), Error> {
        self.client
            .get(&format!("/v1/acl/policy/{}", escape(name)), &[], options)
            .await
    }

    /// Creates or replaces the policy `name`.
    pub async fn upsert_policy(
        &self,
        name: &str,
        description: &str,
        rules: &str,
        options: &WriteOptions,
    ) -> Result<(), Error> {
        let body = json!({"Name": name, "Description": description, "Rules": rules});
        self.client
            .write::<_, Value>(
                Method::PUT,
                &format!("/v1/acl/policy/{}", escape(name)),
                Some(&body),
                &[],
                options,
            )
            .await?;
        Ok(())
    }

    pub async fn delete_policy(&self, name: &str, options: &WriteOptions) -> Result<(), Error> {
        self.client
            .write::<(), Value>(
                Method::DELETE,
                &format!("/v1/acl/policy/{}", escape(name)),
                None,
                &[],
                options,
            )
            .await?;
        Ok(())
    }

    pub async fn tokens(
        &self,
        options: &QueryOptions,
    ) -> Result<(Vec<AclTokenListStub>, QueryMeta), Error> {
        self.tokens_as(options).await
    }

    /// [`Acl::tokens`], the answer read as `T`.
    pub async fn tokens_as<T: DeserializeOwned>(
        &self,
        options: &QueryOptions,
    ) -> Result<(T, QueryMeta), Error> {
        // `ExpirationTime` is left out for a token that never expires (as
        // Nomad does); the type reads that as `None`.
        self.client.get("/v1/acl/tokens", &[], options).await
    }

    pub async fn token(
        &self,
        accessor: &str,
        options: &QueryOptions,
    ) -> Result<(AclToken, QueryMeta), Error> {
        self.token_as(accessor, options).await
    }

    /// [`Acl::token`], the answer read as `T`.
    pub async fn token_as<T: DeserializeOwned>(
        &self,
        accessor: &str,
        options: &QueryOptions,
    ) -> Result<(T, QueryMeta), Error> {
        self.client
            .get(&format!("/v1/acl/token/{}", escape(accessor)), &[], options)
            .await
    }

    /// The token this client calls with.
    pub async fn token_self(&self, options: &QueryOptions) -> Result<(AclToken, QueryMeta), Error> {
        self.token_self_as(options).await
    }

    /// [`Acl::token_self`], the answer read as `T`.
    pub async fn token_self_as<T: DeserializeOwned>(
        &self,
        options: &QueryOptions,
    ) -> Result<(T, QueryMeta), Error> {
        self.client.get("/v1/acl/token/self", &[], options).await
    }

    /// Creates a `client` (or `management`) token with `policies`.
    pub async fn create_token(
        &self,
        name: &str,
        token_type: &str,
        policies: &[&str],
        options: &WriteOptions,
    ) -> Result<AclToken, Error> {
        let body = json!({"Name": name, "Type": token_type, "Policies": policies});
        let (token, _) = self
            .client
            .write(Method::PUT, "/v1/acl/token", Some(&body), &[], options)
            .await?;
        Ok(token)
    }

    pub async fn delete_token(&self, accessor: &str, options: &WriteOptions) -> Result<(), Error> {
        self.client
            .write::<(), Value>(
                Method::DELETE,
                &format!("/v1/acl/token/{}", escape(accessor)),
                None,
                &[],
                options,
            )
            .await?;
        Ok(())
    }

    /// Creates `token` as given (name, type, policies, global, TTL); the
    /// server picks its accessor and secret.
    pub async fn create(
        &self,
        token: &AclToken,
        options: &WriteOptions,
    ) -> Result<AclToken, Error> {
        self.create_as(token, options).await
    }

    /// [`Acl::create`], the answer read as `T`.
    pub async fn create_as<T: DeserializeOwned>(
        &self,
        token: &AclToken,
        options: &WriteOptions,
    ) -> Result<T, Error> {
        let (token, _) = self
            .client
            .write(Method::PUT, "/v1/acl/token", Some(token), &[], options)
            .await?;
        Ok(token)
    }

    /// Replaces the name, type, policies and global flag of the token
    /// `token.accessor_id`; its secret and expiry never change.
    pub async fn update_token(
        &self,
        token: &AclToken,
        options: &WriteOptions,
    ) -> Result<AclToken, Error> {
        self.update_token_as(token, options).await
    }

    /// [`Acl::update_token`], the answer read as `T`.
    pub async fn update_token_as<T: DeserializeOwned>(
        &self,
        token: &AclToken,
        options: &WriteOptions,
    ) -> Result<T, Error> {
        if token.accessor_id.is_empty() {
            return Err(Error::Config(
                "an updated token needs its accessor ID".to_string(),
            ));
        }
        let (token, _) = self
            .client
            .write(
                Method::PUT,
                &format!("/v1/acl/token/{}", escape(&token.accessor_id)),
                Some(token),
                &[],
                options,
            )
            .await?;
        Ok(token)
    }
}
