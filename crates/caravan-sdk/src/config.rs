//! Where the client talks to and as whom, from the environment Nomad's
//! tools read.

use crate::Error;

/// The client's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `http://127.0.0.1:4646` unless `NOMAD_ADDR` says otherwise.
    pub address: String,
    /// `NOMAD_TOKEN`: sent as `X-Nomad-Token`.
    pub token: Option<String>,
    /// `NOMAD_REGION`.
    pub region: Option<String>,
    /// `NOMAD_NAMESPACE`.
    pub namespace: Option<String>,
    /// `NOMAD_HTTP_AUTH` (`user[:password]`): HTTP basic authentication;
    /// else the credentials written in the address (`https://u:p@host`).
    pub http_auth: Option<(String, Option<String>)>,
    /// Whether `http_auth` came from the address: then it belongs to that
    /// address and goes when [`Config::with_address`] changes it (as in
    /// Nomad, a password written in one URL is not sent to another host).
    pub http_auth_from_address: bool,
    /// `NOMAD_CACERT`: a PEM file of the CA that signed the agent's
    /// certificate.
    pub ca_cert: Option<String>,
    /// `NOMAD_CLIENT_CERT` and `NOMAD_CLIENT_KEY`: PEM files of a client
    /// certificate and its key (mutual TLS).
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    /// `NOMAD_SKIP_VERIFY`: do not check the agent's certificate.
    pub skip_verify: bool,
}

/// Nomad's default agent address.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:4646";

impl Config {
    /// The settings Nomad's tools take from the environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Config::from_env`] with any source of variables (tests, a file).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let address = get("NOMAD_ADDR").unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
        let skip_verify = match get("NOMAD_SKIP_VERIFY").as_deref() {
            None => false,
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
            Some(other) => {
                return Err(Error::Config(format!(
                    "NOMAD_SKIP_VERIFY: invalid boolean {other:?}"
                )))
            }
        };
        let (address, address_auth) = normalize_address(&address)?;
        let environment_auth = get("NOMAD_HTTP_AUTH").map(|auth| split_auth(&auth));
        let http_auth_from_address = environment_auth.is_none() && address_auth.is_some();
        let http_auth = environment_auth.or(address_auth);
        Ok(Self {
            address,
            token: get("NOMAD_TOKEN"),
            region: get("NOMAD_REGION"),
            namespace: get("NOMAD_NAMESPACE"),
            http_auth,
            http_auth_from_address,
            ca_cert: get("NOMAD_CACERT"),
            client_cert: get("NOMAD_CLIENT_CERT"),
            client_key: get("NOMAD_CLIENT_KEY"),
            skip_verify,
        })
    }

    /// These settings for the agent at `address`.
    /// Credentials in the address (`https://user:pw@host`) become the basic
    /// auth, unless one is already set.
    pub fn with_address(mut self, address: &str) -> Result<Self, Error> {
        let (address, auth) = normalize_address(address)?;
        self.address = address;
        if self.http_auth.is_none() || self.http_auth_from_address {
            self.http_auth_from_address = auth.is_some();
            self.http_auth = auth;
        }
        Ok(self)
    }
}

/// `user[:password]` as Nomad's `NOMAD_HTTP_AUTH` reads it.
fn split_auth(auth: &str) -> (String, Option<String>) {
    match auth.split_once(':') {
        Some((user, password)) => (user.to_string(), Some(password.to_string())),
        None => (auth.to_string(), None),
    }
}

/// `%40` as `@` and so on: credentials in a URL are percent-encoded (a
/// malformed escape is kept as written, as the user typed it).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|byte| (*byte as char).to_digit(16));
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                index += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Basic-auth credentials taken out of an address, if it had any.
type AddressAuth = Option<(String, Option<String>)>;

/// `host:port` becomes `http://host:port`; a trailing `/` goes; credentials
/// (`user:pw@`) are taken out, so the address can be printed in errors
/// without a password in them.
fn normalize_address(address: &str) -> Result<(String, AddressAuth), Error> {
    let address = address.trim();
    let (scheme, rest) = match address.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, address),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (auth, rest) = match rest[..authority_end].rfind('@') {
        Some(at) => (
            Some(split_auth(&percent_decode(&rest[..at]))),
            &rest[at + 1..],
        ),
        None => (None, rest),
    };
    let address = match scheme {
        Some(scheme) => format!("{scheme}://{rest}"),
        None => rest.to_string(),
    };
    Ok((address_only(&address)?, auth))
}

/// [`normalize_address`] after the credentials are out.
fn address_only(address: &str) -> Result<String, Error> {
    let address = address.trim().trim_end_matches('/');
    if address.is_empty() {
        return Err(Error::Config("the agent address is empty".into()));
    }
    let address = match address.contains("://") {
        true => address.to_string(),
        false => format!("http://{address}"),
    };
    if !(address.starts_with("http://") || address.starts_with("https://")) {
        return Err(Error::Config(format!(
            "unsupported address {address:?}: http:// or https:// only"
        )));
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_sets_what_nomads_tools_read() {
        let vars = |name: &str| {
            Some(
                match name {
                    "NOMAD_ADDR" => "10.0.0.1:4646/",
                    "NOMAD_TOKEN" => "secret",
                    "NOMAD_REGION" => "eu",
                    "NOMAD_NAMESPACE" => "prod",
                    "NOMAD_HTTP_AUTH" => "user:pass",
                    "NOMAD_SKIP_VERIFY" => "true",
                    _ => return None,
                }
                .to_string(),
            )
        };
        let config = Config::from_lookup(vars).unwrap();
        assert_eq!(config.address, "http://10.0.0.1:4646");
        assert_eq!(config.token.as_deref(), Some("secret"));
        assert_eq!(config.region.as_deref(), Some("eu"));
        assert_eq!(config.namespace.as_deref(), Some("prod"));
        assert_eq!(
            config.http_auth,
            Some(("user".to_string(), Some("pass".to_string())))
        );
        assert!(config.skip_verify);
        let defaults = Config::from_lookup(|_| None).unwrap();
        assert_eq!(defaults.address, DEFAULT_ADDRESS);
        assert!(
            Config::from_lookup(|name| (name == "NOMAD_SKIP_VERIFY").then(|| "maybe".into()))
                .is_err()
        );
        assert!(
            Config::from_lookup(|name| (name == "NOMAD_ADDR").then(|| "ftp://x".into())).is_err()
        );
    }

    #[test]
    fn credentials_in_the_address_become_basic_auth() {
        let config = Config::from_lookup(|name| {
            (name == "NOMAD_ADDR").then(|| "https://ops:s3cret@nomad.example:4646/".into())
        })
        .unwrap();
        assert_eq!(config.address, "https://nomad.example:4646");
        assert_eq!(
            config.http_auth,
            Some(("ops".to_string(), Some("s3cret".to_string())))
        );
        let config = Config::from_lookup(|_| None)
            .unwrap()
            .with_address("me@10.0.0.1:4646")
            .unwrap();
        assert_eq!(config.address, "http://10.0.0.1:4646");
        assert_eq!(config.http_auth, Some(("me".to_string(), None)));
        // Another address: the first one's password does not go with it.
        let moved = config.with_address("http://other:4646").unwrap();
        assert_eq!(moved.http_auth, None);
        // NOMAD_HTTP_AUTH applies to any address.
        let config = Config::from_lookup(|name| (name == "NOMAD_HTTP_AUTH").then(|| "u:p".into()))
            .unwrap()
            .with_address("http://a:1")
            .unwrap();
        assert_eq!(
            config.http_auth,
            Some(("u".to_string(), Some("p".to_string())))
        );
        // Escapes in the address's credentials are decoded.
        let config = Config::from_lookup(|_| None)
            .unwrap()
            .with_address("https://ops:p%40ss@host")
            .unwrap();
        assert_eq!(
            config.http_auth,
            Some(("ops".to_string(), Some("p@ss".to_string())))
        );
    }
}
