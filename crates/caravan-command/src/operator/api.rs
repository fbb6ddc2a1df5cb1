//! `operator api`: Nomad's curl-like command. It calls any path of the API
//! with the token, region and namespace the flags and `NOMAD_*` give, and
//! prints the answer's body as it came.
//!
//! Two choices differ from Nomad's:
//! - A full URL whose scheme, host and port are not the configured
//!   address's is still called (Nomad allows it), but without the
//!   configured token and basic-auth credentials: they are secrets for the
//!   configured agent, and sending them to whatever host a pasted URL names
//!   would leak them. A header given with `-H` is still sent (the user
//!   chose to), and a warning on stderr says what was dropped.
//! - A status other than 2xx exits 1 with the status and body on stderr,
//!   so scripts can tell a failure (Nomad prints the body and exits 0).
//!
//! The body comes from `-d` (text, `@file` or `-` for stdin) or, as in
//! Nomad, from stdin when it is not a terminal or other character device.

use std::io::{Read, Write};

use caravan_sdk::{Client, Config};

use crate::error::{CommandError, CommandResult};
use crate::flags::{FlagSet, Parsed};
use crate::server::client;

const USAGE: &str = "Usage: caravan operator api [options] <path>

  api is a utility command for accessing the HTTP API, inspired by the
  popular curl command line tool. It sends the token, region and namespace
  the general options and NOMAD_* environment variables give. If the 'path'
  does not begin with \"http\" then $NOMAD_ADDR will be used.

  The 'path' can be in one of the following forms:

    /v1/allocations                       <- API Paths must start with a /
    localhost:4646/v1/allocations         <- Scheme will be inferred
    https://localhost:4646/v1/allocations <- Scheme will be https://

  A URL for another host than the configured address is called without the
  configured token or credentials (give them with -H if that is intended).
  A status other than 2xx prints the status and body to stderr and exits 1.

Operator API Specific Options:

  -d <body>
    The request's body: the text itself, @<file> for a file's contents, or
    - for stdin. Without -d, data piped to stdin is the body. A body makes
    the method default to POST.

  -dryrun
    Output equivalent curl command to stdout and exit. HTTP basic auth is
    never output; if NOMAD_HTTP_AUTH is set it is referenced by name. A token
    from NOMAD_TOKEN is referenced by name as well; a token given with
    -token is output as it is.

  -filter <query>
    Specifies an expression used to filter query results.

  -H <Header>
    Adds an additional HTTP header to the request. May be specified more than
    once. These headers take precedence over automatically set ones such as
    X-Nomad-Token.

  -verbose
    Output extra information to stderr similar to curl's --verbose flag.

  -X <HTTP Method>
    HTTP method of request. If there is a body, then the method defaults to
    POST. Otherwise the method defaults to GET.
";

pub fn api(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("operator api", USAGE)
        .value("d")
        .bool("dryrun")
        .value("filter")
        .value("H")
        .bool("verbose")
        .value("X");
    let parsed = flags.parse(args)?;
    let path = match parsed.args.as_slice() {
        [] => return Err(flags.usage_error("A path or URL is required")),
        [path] => path.as_str(),
        more => {
            return Err(flags.usage_error(format!(
                "operator api accepts exactly 1 argument, but {} arguments were found",
                more.len()
            )))
        }
    };
    let verbose = parsed.bool("verbose");
    let mut headers = parsed
        .all("H")
        .into_iter()
        .map(header)
        .collect::<Result<Vec<_>, _>>()?;
    let body = body(parsed.get("d"), verbose)?;
    let method = match parsed.get("X").filter(|method| !method.is_empty()) {
        Some(method) => method.to_ascii_uppercase(),
        None if body.is_some() => "POST".to_string(),
        None => "GET".to_string(),
    };
    // An HTTP method is a word: nothing else reaches the request or the
    // curl line `-dryrun` prints.
    if !method.bytes().all(|byte| byte.is_ascii_alphabetic()) {
        return Err(CommandError::failed(format!(
            "Invalid HTTP method {method:?}"
        )));
    }
    let configured = client(&parsed)?;
    let mut target = Target::parse(path, configured.config())?;
    if let Some(filter) = parsed.get("filter").filter(|filter| !filter.is_empty()) {
        target.set_param("filter", filter);
    }
    if let Some(userinfo) = &target.userinfo {
        if !has_header(&headers, "authorization") {
            // As Go's `SetBasicAuth` from a URL: escapes decoded, and
            // always `user:password`.
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let credentials = format!(
                "{}:{}",
                caravan_sdk::percent_decode(user),
                caravan_sdk::percent_decode(password)
            );
            let encoded = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                credentials.as_bytes(),
            );
            headers.push(("Authorization".to_string(), format!("Basic {encoded}")));
        }
    }
    let client = target.client(&configured)?;
    if parsed.bool("dryrun") {
        crate::outln!(
            "{}",
            curl(&parsed, &method, &headers, &body, &target, &client)
        );
        return Ok(());
    }
    let token_sent = client.config().token.is_some() && !has_header(&headers, "x-nomad-token");
    if verbose {
        eprintln!("> {method} {}", target.path_and_query);
        for (name, value) in &headers {
            eprintln!("> {name}: {}", shown_value(name, value));
        }
        if token_sent {
            eprintln!("> X-Nomad-Token: <redacted>");
        }
        eprintln!(">");
        eprintln!("* Sending request and receiving response...");
    }
    let payload = body.map(|body| body.bytes);
    let answer =
        crate::block_on(client.raw_response(&method, &target.path_and_query, &headers, payload))
            .map_err(|error| CommandError::failed(format!("Error performing request: {error}")))?;
    if verbose {
        eprintln!("< {}", answer.status);
        for (name, value) in &answer.headers {
            eprintln!("< {name}: {value}");
        }
    }
    if !(200..300).contains(&answer.status) {
        let text = String::from_utf8_lossy(&answer.body);
        return Err(CommandError::failed(match text.trim() {
            "" => format!("Unexpected response code: {}", answer.status),
            text => format!("Unexpected response code: {} ({text})", answer.status),
        }));
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&answer.body)
        .and_then(|()| stdout.flush())
        .map_err(|error| CommandError::failed(format!("Error writing the response: {error}")))
}

/// A `-H 'Name: value'` header.
fn header(text: &str) -> Result<(String, String), CommandError> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(CommandError::failed(format!(
            "Error parsing flags: Headers must be in the form 'Key: Value' but found: {text:?}"
        ))),
    }
}

fn has_header(headers: &[(String, String)], name: &str) -> bool {
    headers
        .iter()
        .any(|(header, _)| header.eq_ignore_ascii_case(name))
}

/// A header's value as `-verbose` shows it: secrets redacted.
fn shown_value<'a>(name: &str, value: &'a str) -> &'a str {
    const SECRET: &[&str] = &[
        "x-nomad-token",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-vault-token",
        "x-consul-token",
    ];
    match SECRET
        .iter()
        .any(|secret| name.eq_ignore_ascii_case(secret))
    {
        true => "<redacted>",
        false => value,
    }
}

/// The most a request body may be (`-d @file`, stdin): more is refused
/// rather than read into memory without end (`-d @/dev/zero`).
const BODY_LIMIT: u64 = 64 * 1024 * 1024;

fn too_big(bytes: &[u8], from: &str) -> Result<(), CommandError> {
    match bytes.len() as u64 > BODY_LIMIT {
        true => Err(CommandError::failed(format!(
            "Error reading {from}: a request body may be at most 64 MiB"
        ))),
        false => Ok(()),
    }
}

/// A request's body and how `-dryrun`'s curl line gives it.
struct Body {
    bytes: Vec<u8>,
    curl: String,
}

/// The body `-d` names, or stdin's when it is piped (as Nomad reads it).
fn body(flag: Option<&str>, verbose: bool) -> Result<Option<Body>, CommandError> {
    let read_stdin = || {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(BODY_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| CommandError::failed(format!("Error reading stdin: {error}")))?;
        too_big(&bytes, "stdin")?;
        Ok::<_, CommandError>(Body {
            bytes,
            curl: "--data-binary @-".to_string(),
        })
    };
    match flag {
        Some("-") => read_stdin().map(Some),
        Some(text) => match text.strip_prefix('@') {
            Some(file) => {
                let mut bytes = Vec::new();
                std::fs::File::open(file)
                    .and_then(|opened| opened.take(BODY_LIMIT + 1).read_to_end(&mut bytes))
                    .map_err(|error| {
                        CommandError::failed(format!("Error reading {file}: {error}"))
                    })?;
                too_big(&bytes, file)?;
                let curl = format!("--data-binary {}", shell_quote(text));
                Ok(Some(Body { bytes, curl }))
            }
            None => Ok(Some(Body {
                bytes: text.as_bytes().to_vec(),
                curl: format!("--data-binary {}", shell_quote(text)),
            })),
        },
        None if stdin_is_piped() => {
            if verbose {
                eprintln!("* Reading request body from stdin.");
            }
            read_stdin().map(Some)
        }
        None => Ok(None),
    }
}

/// Whether stdin is data rather than a terminal or `/dev/null` (Nomad's
/// test: not a character device).
fn stdin_is_piped() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|metadata| !metadata.file_type().is_char_device())
}

/// Where the request goes: the configured agent, or the origin of a URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `scheme://host[:port]` of a URL given in full; `None` for a path.
    origin: Option<String>,
    /// Starts with `/`; the fragment dropped.
    path_and_query: String,
    /// `user[:password]` of a URL, sent as basic authentication.
    userinfo: Option<String>,
}

impl Target {
    fn parse(text: &str, config: &Config) -> Result<Self, CommandError> {
        let failed = |why: &str| {
            CommandError::failed(format!("Error turning path into URL: {why}: {text:?}"))
        };
        if text.starts_with('/') {
            return Ok(Self {
                origin: None,
                path_and_query: strip_fragment(text).to_string(),
                userinfo: None,
            });
        }
        // A scheme is only what comes before the first `/`, `?` or `#`
        // (a query may hold `://` itself).
        let head_end = text.find(['/', '?', '#']).unwrap_or(text.len());
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) if scheme.len() < head_end => match scheme {
                "http" | "https" => (scheme, rest),
                _ => return Err(failed("only http:// and https:// URLs are supported")),
            },
            _ => (inferred_scheme(config), text),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, remainder) = rest.split_at(end);
        let remainder = strip_fragment(remainder);
        let path_and_query = match remainder.starts_with('/') {
            true => remainder.to_string(),
            false => format!("/{remainder}"),
        };
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo.to_string()), host),
            None => (None, authority),
        };
        if host.is_empty() {
            // Refused rather than sent to the configured host under another
            // scheme than the URL's (with its credentials in the clear).
            return Err(failed("the URL has no host; give a path or a whole URL"));
        }
        Ok(Self {
            origin: Some(format!("{scheme}://{host}")),
            path_and_query,
            userinfo,
        })
    }

    /// Sets `name` to `value` in the query, replacing what it had.
    fn set_param(&mut self, name: &str, value: &str) {
        let (path, query) = match self.path_and_query.split_once('?') {
            Some((path, query)) => (path, query),
            None => (self.path_and_query.as_str(), ""),
        };
        let mut pairs: Vec<String> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| pair.split('=').next() != Some(name))
            .map(str::to_string)
            .collect();
        pairs.push(format!("{name}={}", encode(value)));
        self.path_and_query = format!("{path}?{}", pairs.join("&"));
    }

    /// The settings to call with: the configured ones for a path; for a
    /// URL, its origin's, without the token and credentials when that is
    /// not the configured agent's origin (and whether they were dropped).
    fn config(&self, configured: &Config) -> Result<(Config, bool), caravan_sdk::Error> {
        let Some(origin) = &self.origin else {
            return Ok((configured.clone(), false));
        };
        // The same agent only when both addresses read as a scheme, host
        // and port and those are equal: anything unreadable is another host.
        let same = matches!(
            (origin_key(origin), origin_key(&configured.address)),
            (Some(url), Some(agent)) if url == agent
        );
        let mut config = configured.clone();
        if same {
            // The configured agent: its settings as they are, credentials
            // from its address included.
            config.address = origin.clone();
            return Ok((config, false));
        }
        config = config.with_address(origin)?;
        let dropped = config.token.is_some() || config.http_auth.is_some();
        config.token = None;
        config.http_auth = None;
        Ok((config, dropped))
    }

    /// The client to call with (see [`Target::config`]); a warning on
    /// stderr when the token or credentials were dropped.
    fn client(&self, configured: &Client) -> Result<Client, CommandError> {
        let failed = |error: caravan_sdk::Error| {
            CommandError::failed(format!("Error initializing client: {error}"))
        };
        let (config, dropped) = self.config(configured.config()).map_err(failed)?;
        if self.origin.is_none() {
            return Ok(configured.clone());
        }
        if dropped {
            eprintln!(
                "Warning: {} is not the configured address ({}); the configured \
                 token and credentials are not sent to it",
                config.address,
                configured.config().address
            );
        }
        Client::new(config).map_err(failed)
    }
}

fn strip_fragment(text: &str) -> &str {
    text.split('#').next().unwrap_or(text)
}

/// The scheme of a URL given without one: https when TLS is configured,
/// else the configured address's.
fn inferred_scheme(config: &Config) -> &'static str {
    let tls = config.ca_cert.is_some() || config.client_cert.is_some() || config.skip_verify;
    match tls || config.address.starts_with("https://") {
        true => "https",
        false => "http",
    }
}

/// `(scheme, host, port)` of an address, the host lowercased and the port
/// made explicit, so that `http://Host` and `http://host:80` are one.
fn origin_key(address: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = address.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    let port = match port.filter(|port| !port.is_empty()) {
        Some(port) => port.parse().ok()?,
        None if scheme == "https" => 443,
        None => 80,
    };
    Some((scheme, host.to_ascii_lowercase(), port))
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// `text` in single quotes for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `-dryrun`: the curl command that makes the same call. Secrets from the
/// environment are referenced by name, never printed.
fn curl(
    parsed: &Parsed,
    method: &str,
    headers: &[(String, String)],
    body: &Option<Body>,
    target: &Target,
    client: &Client,
) -> String {
    let config = client.config();
    let mut parts = vec!["curl".to_string()];
    if parsed.bool("verbose") {
        parts.push("--verbose".to_string());
    }
    if method != "GET" {
        parts.push(format!("-X {method}"));
    }
    if let Some(body) = body {
        parts.push(body.curl.clone());
    }
    for (flag, value) in [
        ("--cacert", &config.ca_cert),
        ("--cert", &config.client_cert),
        ("--key", &config.client_key),
    ] {
        if let Some(value) = value {
            parts.push(format!("{flag} {}", shell_quote(value)));
        }
    }
    if config.skip_verify {
        parts.push("--insecure".to_string());
    }
    for (name, value) in headers {
        // Basic auth built from a URL's credentials is not printed.
        let value = match name.eq_ignore_ascii_case("authorization") && target.userinfo.is_some() {
            true => "<redacted>",
            false => value.as_str(),
        };
        parts.push(format!("-H {}", shell_quote(&format!("{name}: {value}"))));
    }
    // The configured token only when it goes to this address at all.
    if config.token.is_some() && !has_header(headers, "x-nomad-token") {
        match parsed.get("token") {
            Some(token) => parts.push(format!(
                "-H {}",
                shell_quote(&format!("X-Nomad-Token: {token}"))
            )),
            None => parts.push("-H \"X-Nomad-Token: ${NOMAD_TOKEN}\"".to_string()),
        }
    }
    if config.http_auth.is_some() && !has_header(headers, "authorization") {
        parts.push("-u \"$NOMAD_HTTP_AUTH\"".to_string());
    }
    let mut url = Target {
        origin: None,
        path_and_query: target.path_and_query.clone(),
        userinfo: None,
    };
    for (name, value) in [("region", &config.region), ("namespace", &config.namespace)] {
        let given = url
            .path_and_query
            .split_once('?')
            .is_some_and(|(_, query)| {
                query.split('&').any(|pair| {
                    pair.split_once('=')
                        .is_some_and(|(key, value)| key == name && !value.is_empty())
                })
            });
        if let Some(value) = value.as_deref().filter(|value| !value.is_empty() && !given) {
            url.set_param(name, value);
        }
    }
    parts.push(shell_quote(&format!(
        "{}{}",
        config.address, url.path_and_query
    )));
    parts.join(" \\\n  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(address: &str) -> Config {
        Config::from_lookup(|_| None)
            .and_then(|config| config.with_address(address))
            .unwrap()
    }

    #[test]
    fn paths_and_urls_become_targets() {
        let local = config("http://127.0.0.1:4646");
        let path = Target::parse("/v1/jobs?prefix=a#frag", &local).unwrap();
        assert_eq!(path.origin, None);
        assert_eq!(path.path_and_query, "/v1/jobs?prefix=a");
        let bare = Target::parse("localhost:4646/v1/jobs", &local).unwrap();
        assert_eq!(bare.origin.as_deref(), Some("http://localhost:4646"));
        assert_eq!(bare.path_and_query, "/v1/jobs");
        let tls = Target::parse("h:1/v1/x", &config("https://h:1")).unwrap();
        assert_eq!(tls.origin.as_deref(), Some("https://h:1"));
        let auth = Target::parse("https://u:p@h?x=1", &local).unwrap();
        assert_eq!(auth.origin.as_deref(), Some("https://h"));
        assert_eq!(auth.userinfo.as_deref(), Some("u:p"));
        assert_eq!(auth.path_and_query, "/?x=1");
        assert!(Target::parse("unix:///tmp/s/v1/jobs", &local).is_err());
        // `://` in the query is not a scheme; a URL with no host is refused.
        let query = Target::parse("localhost:4646/v1/x?next=http://y", &local).unwrap();
        assert_eq!(query.origin.as_deref(), Some("http://localhost:4646"));
        assert!(Target::parse("https:///v1/jobs", &local).is_err());
        assert!(Target::parse("https://u:p@/v1/jobs", &local).is_err());
    }

    #[test]
    fn origins_compare_with_default_ports_and_any_case() {
        assert_eq!(origin_key("http://Host/v1"), origin_key("http://host:80"));
        assert_eq!(origin_key("https://h"), origin_key("https://h:443"));
        assert_ne!(origin_key("http://h:4646"), origin_key("https://h:4646"));
        assert_ne!(
            origin_key("http://127.0.0.1:4646"),
            origin_key("http://evil.example:4646")
        );
        assert_eq!(
            origin_key("http://[::1]:4646"),
            Some(("http".into(), "::1".into(), 4646))
        );
    }

    #[test]
    fn a_foreign_origin_gets_no_token() {
        let mut local = config("http://127.0.0.1:4646");
        local.token = Some("secret".into());
        let same = Target::parse("http://127.0.0.1:4646/v1/jobs", &local).unwrap();
        let (same, dropped) = same.config(&local).unwrap();
        assert_eq!((same.token.as_deref(), dropped), (Some("secret"), false));
        let other = Target::parse("http://elsewhere:4646/v1/jobs", &local).unwrap();
        let (other, dropped) = other.config(&local).unwrap();
        assert_eq!((other.token, dropped), (None, true));
        assert_eq!(other.address, "http://elsewhere:4646");
        // An empty port is the scheme's: not a wildcard that matches any
        // host.
        let mut blank_port = config("https://nomad.example:443");
        blank_port.token = Some("secret".into());
        let evil = Target::parse("https://evil.example:/v1/jobs", &blank_port).unwrap();
        let (evil, dropped) = evil.config(&blank_port).unwrap();
        assert_eq!((evil.token, dropped), (None, true));
        // The configured agent by URL keeps credentials from its address.
        let mut with_auth = config("http://127.0.0.1:4646");
        with_auth.http_auth = Some(("ops".into(), Some("pw".into())));
        with_auth.http_auth_from_address = true;
        let same = Target::parse("http://127.0.0.1:4646/v1/jobs", &with_auth).unwrap();
        let (same, dropped) = same.config(&with_auth).unwrap();
        assert!(!dropped);
        assert_eq!(same.http_auth, Some(("ops".into(), Some("pw".into()))));
    }

    #[test]
    fn filters_replace_and_are_encoded() {
        let mut target = Target::parse("/v1/jobs?filter=x&a=1", &config("h:1")).unwrap();
        target.set_param("filter", "Status == \"running\"");
        assert_eq!(
            target.path_and_query,
            "/v1/jobs?a=1&filter=Status%20%3D%3D%20%22running%22"
        );
    }

    #[test]
    fn headers_need_a_name_and_colon() {
        assert_eq!(
            header("X-A:  b ").unwrap(),
            ("X-A".to_string(), "b".to_string())
        );
        assert!(header("nocolon").is_err());
        assert_eq!(shown_value("x-nomad-token", "s"), "<redacted>");
    }
}
