//! The client: one HTTP connection pool to one agent, and the requests
//! every area's calls are made of.

use std::sync::Arc;

use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::options::go_duration;
use crate::{Config, Error, QueryMeta, QueryOptions, WriteMeta, WriteOptions};

/// The most [`Client::raw`] reads of an answer's body.
pub const RAW_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// An answer to [`Client::raw_response`]: any status, as it came.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// The answer's headers, in order, a repeated header once per value.
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
}

/// A client of one Caravan (or Nomad) agent. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    config: Arc<Config>,
}

impl Client {
    /// A client as Nomad's tools configure one from the environment
    /// (`NOMAD_ADDR`, `NOMAD_TOKEN`, ...).
    pub fn from_env() -> Result<Self, Error> {
        Self::new(Config::from_env()?)
    }

    /// A client with `config`.
    pub fn new(config: Config) -> Result<Self, Error> {
        let tls = config.address.starts_with("https://")
            || config.ca_cert.is_some()
            || config.client_cert.is_some();
        if tls {
            // reqwest is built without a default TLS provider; the agent's
            // own is used (installing it twice is harmless).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let read = |path: &str| {
            std::fs::read(path).map_err(|error| Error::Config(format!("{path}: {error}")))
        };
        let mut builder = reqwest::Client::builder()
            // A redirect would carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &config.ca_cert {
            // Only this CA, as Nomad trusts only its CA file: the system's
            // roots (a TLS-inspecting proxy's among them) are not added.
            let certificates = reqwest::Certificate::from_pem_bundle(&read(ca)?)
                .map_err(|error| Error::Config(format!("{ca}: {error}")))?;
            builder = builder.tls_certs_only(certificates);
        }
        match (&config.client_cert, &config.client_key) {
            (Some(cert), Some(key)) => {
                let mut pem = read(cert)?;
                pem.extend(read(key)?);
                let identity = reqwest::Identity::from_pem(&pem)
                    .map_err(|error| Error::Config(format!("{cert}: {error}")))?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(Error::Config(
                    "a client certificate needs its key, and a key its certificate".into(),
                ))
            }
        }
        if config.skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|error| Error::Config(format!("cannot build the HTTP client: {error}")))?;
        Ok(Self {
            http,
            config: Arc::new(config),
        })
    }

    /// The settings this client was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.config.address));
        if let Some(token) = token.or(self.config.token.as_deref()) {
            request = request.header("X-Nomad-Token", token);
        }
        if let Some((user, password)) = &self.config.http_auth {
            request = request.basic_auth(user, password.as_ref());
        }
        request
    }

    fn query_params(&self, options: &QueryOptions) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if let Some(region) = options.region.as_ref().or(self.config.region.as_ref()) {
            params.push(("region", region.clone()));
        }
        if let Some(namespace) = options
            .namespace
            .as_ref()
            .or(self.config.namespace.as_ref())
        {
            params.push(("namespace", namespace.clone()));
        }
        if options.allow_stale {
            params.push(("stale", String::new()));
        }
        if options.wait_index > 0 {
            params.push(("index", options.wait_index.to_string()));
        }
        if let Some(wait) = options.wait_time {
            params.push(("wait", go_duration(wait)));
        }
        for (name, value) in [
            ("prefix", &options.prefix),
            ("filter", &options.filter),
            ("next_token", &options.next_token),
        ] {
            if let Some(value) = value {
                params.push((name, value.clone()));
            }
        }
        if let Some(per_page) = options.per_page {
            params.push(("per_page", per_page.to_string()));
        }
        params
    }

    fn write_params(&self, options: &WriteOptions) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if let Some(region) = options.region.as_ref().or(self.config.region.as_ref()) {
            params.push(("region", region.clone()));
        }
        if let Some(namespace) = options
            .namespace
            .as_ref()
            .or(self.config.namespace.as_ref())
        {
            params.push(("namespace", namespace.clone()));
        }
        if let Some(token) = &options.idempotency_token {
            params.push(("idempotency_token", token.clone()));
        }
        params
    }

    async fn send(&self, request: RequestBuilder) -> Result<Response, Error> {
        let response = request.send().await.map_err(|source| Error::Transport {
            address: self.config.address.clone(),
            source,
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Err(Error::Api {
            status,
            text: text.trim().to_string(),
        })
    }

    async fn body(&self, response: Response) -> Result<bytes::Bytes, Error> {
        response.bytes().await.map_err(|source| Error::Transport {
            address: self.config.address.clone(),
            source,
        })
    }

    /// A read of `path` (with `extra` query parameters), decoded.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        extra: &[(&str, String)],
        options: &QueryOptions,
    ) -> Result<(T, QueryMeta), Error> {
        let request = self
            .request(Method::GET, path, options.token.as_deref())
            .query(&self.query_params(options))
            .query(extra);
        let response = self.send(request).await?;
        let meta = QueryMeta::from_headers(response.headers());
        let body = self.body(response).await?;
        Ok((serde_json::from_slice(&body)?, meta))
    }

    /// A read of `path` whose answer is read as it arrives (a followed
    /// log, a file stream): the response, once its status was a success.
    pub(crate) async fn open_stream(
        &self,
        path: &str,
        extra: &[(&str, String)],
    ) -> Result<Response, Error> {
        let request = self
            .request(Method::GET, path, None)
            .query(&self.query_params(&QueryOptions::default()))
            .query(extra);
        self.send(request).await
    }

    /// A read of `path` answered with text (a file, plain logs).
    pub async fn get_text(
        &self,
        path: &str,
        extra: &[(&str, String)],
        options: &QueryOptions,
    ) -> Result<String, Error> {
        let request = self
            .request(Method::GET, path, options.token.as_deref())
            .query(&self.query_params(options))
            .query(extra);
        let response = self.send(request).await?;
        let body = self.body(response).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// A write of `body` to `path` with `method`, its answer decoded (an
    /// empty answer decodes as JSON `null`).
    pub async fn write<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        extra: &[(&str, String)],
        options: &WriteOptions,
    ) -> Result<(T, WriteMeta), Error> {
        let mut request = self
            .request(method, path, options.token.as_deref())
            .query(&self.write_params(options))
            .query(extra);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request).await?;
        let meta = WriteMeta::from_headers(response.headers());
        let body = self.body(response).await?;
        let value = match body.is_empty() {
            true => serde_json::from_slice(b"null")?,
            false => serde_json::from_slice(&body)?,
        };
        Ok((value, meta))
    }

    /// Any call, as `nomad operator api` makes it: `method` on
    /// `path_and_query` (which starts with `/`) of this client's agent, with
    /// `headers` and `body`. The client's region and namespace are added to
    /// the query when it names none; its token and basic authentication are
    /// sent unless `headers` carry their own (`X-Nomad-Token`,
    /// `Authorization`). Any status is an answer, not an error: the status
    /// and the body (read up to [`RAW_BODY_LIMIT`]) come back as they are.
    pub async fn raw(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(u16, bytes::Bytes), Error> {
        let answer = self
            .raw_response(method, path_and_query, headers, body)
            .await?;
        Ok((answer.status, answer.body))
    }

    /// [`Client::raw`], with the answer's headers too.
    pub async fn raw_response(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, Error> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::Config(format!("invalid HTTP method {method:?}")))?;
        if !path_and_query.starts_with('/') {
            return Err(Error::Config(format!(
                "the path {path_and_query:?} does not start with /"
            )));
        }
        let mut url = reqwest::Url::parse(&format!("{}{path_and_query}", self.config.address))
            .map_err(|error| Error::Config(format!("invalid URL: {error}")))?;
        self.add_default_params(&mut url);
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| Error::Config(format!("invalid header name {name:?}")))?;
            let value = reqwest::header::HeaderValue::from_str(value.trim())
                .map_err(|_| Error::Config(format!("invalid value for header {name}")))?;
            map.append(name, value);
        }
        let mut request = self.http.request(method, url);
        if !map.contains_key("x-nomad-token") {
            if let Some(token) = &self.config.token {
                request = request.header("X-Nomad-Token", token);
            }
        }
        if !map.contains_key(reqwest::header::AUTHORIZATION) {
            if let Some((user, password)) = &self.config.http_auth {
                request = request.basic_auth(user, password.as_ref());
            }
        }
        request = request.headers(map);
        if let Some(body) = body {
            request = request.body(body);
        }
        let transport = |source| Error::Transport {
            address: self.config.address.clone(),
            source,
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.to_string(), value)
            })
            .collect();
        let too_large = Error::TooLarge {
            limit: RAW_BODY_LIMIT,
        };
        if response
            .content_length()
            .is_some_and(|length| length > RAW_BODY_LIMIT as u64)
        {
            return Err(too_large);
        }
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > RAW_BODY_LIMIT {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse {
            status,
            headers,
            body: body.freeze(),
        })
    }

    /// The client's region and namespace on `url`, each only when the
    /// query names none (an empty value counts as none, as in Nomad).
    fn add_default_params(&self, url: &mut reqwest::Url) {
        let defaults = [
            ("region", self.config.region.as_deref()),
            ("namespace", self.config.namespace.as_deref()),
        ];
        let missing: Vec<(&str, &str)> = defaults
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.filter(|value| !value.is_empty())?)))
            .filter(|(name, _)| {
                !url.query_pairs()
                    .any(|(key, value)| key == *name && !value.is_empty())
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(key, _)| !missing.iter().any(|(name, _)| key == name))
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .extend_pairs(missing);
    }

    /// This client, calling with `token` instead.
    pub fn with_token(&self, token: &str) -> Result<Self, Error> {
        Ok(Self {
            http: self.http.clone(),
            config: Arc::new(Config {
                token: Some(token.to_string()),
                ..(*self.config).clone()
            }),
        })
    }

    /// The ACL endpoints.
    pub fn acl(&self) -> crate::acl::Acl<'_> {
        crate::acl::Acl { client: self }
    }

    /// The client endpoints (files, logs, signals, ... of allocations).
    pub fn client(&self) -> crate::client_endpoints::ClientEndpoints<'_> {
        crate::client_endpoints::ClientEndpoints { client: self }
    }

    /// The status endpoints.
    pub fn status(&self) -> crate::status::Status<'_> {
        crate::status::Status { client: self }
    }

    /// The agent endpoints.
    pub fn agent(&self) -> crate::agent::Agent<'_> {
        crate::agent::Agent { client: self }
    }

    /// The nodes endpoints.
    pub fn nodes(&self) -> crate::nodes::Nodes<'_> {
        crate::nodes::Nodes { client: self }
    }

    /// The jobs endpoints.
    pub fn jobs(&self) -> crate::jobs::Jobs<'_> {
        crate::jobs::Jobs { client: self }
    }

    /// The allocations endpoints.
    pub fn allocations(&self) -> crate::allocations::Allocations<'_> {
        crate::allocations::Allocations { client: self }
    }

    /// The evaluations endpoints.
    pub fn evaluations(&self) -> crate::evaluations::Evaluations<'_> {
        crate::evaluations::Evaluations { client: self }
    }

    /// The operator endpoints.
    pub fn operator(&self) -> crate::operator::Operator<'_> {
        crate::operator::Operator { client: self }
    }

    /// The system endpoints (garbage collection, summary reconciliation).
    pub fn system(&self) -> crate::system::System<'_> {
        crate::system::System { client: self }
    }

    /// The namespace endpoints.
    pub fn namespaces(&self) -> crate::namespaces::Namespaces<'_> {
        crate::namespaces::Namespaces { client: self }
    }
}
