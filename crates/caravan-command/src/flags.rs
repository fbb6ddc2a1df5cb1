//! A command's flags, parsed as Go's `flag` package parses Nomad's: `-flag`,
//! `--flag`, `-flag=value` and `-flag value`, flags before arguments. Every
//! command also takes Nomad's API flags (`-address`, `-token`, ...), which
//! configure the SDK client over the `NOMAD_*` environment.

use caravan_config::flags::{parse_go_bool, parse_go_flags, FlagKind};
use caravan_sdk::{Client, Config};

use crate::error::CommandError;

/// The flags every command that calls the API takes, as Nomad's `Meta`.
const API_FLAGS: &[(&str, FlagKind)] = &[
    ("address", FlagKind::Value),
    ("token", FlagKind::Value),
    ("region", FlagKind::Value),
    ("namespace", FlagKind::Value),
    ("ca-cert", FlagKind::Value),
    ("ca-path", FlagKind::Value),
    ("client-cert", FlagKind::Value),
    ("client-key", FlagKind::Value),
    ("tls-server-name", FlagKind::Value),
    ("tls-skip-verify", FlagKind::Bool),
    ("no-color", FlagKind::Bool),
    ("force-color", FlagKind::Bool),
];

/// Usage text of the API flags, appended to each command's usage.
pub const API_FLAGS_USAGE: &str = "General Options:

  -address=<addr>
    The address of the Caravan (or Nomad) server. Overrides NOMAD_ADDR.
    Default = http://127.0.0.1:4646

  -region=<region>
    The region to forward requests to. Overrides NOMAD_REGION.

  -namespace=<namespace>
    The namespace to query. Overrides NOMAD_NAMESPACE. Default = default

  -token=<token>
    The SecretID of an ACL token. Overrides NOMAD_TOKEN.

  -ca-cert=<path>, -client-cert=<path>, -client-key=<path>
    TLS files. Override NOMAD_CACERT, NOMAD_CLIENT_CERT, NOMAD_CLIENT_KEY.

  -tls-skip-verify
    Do not verify the server's certificate. Overrides NOMAD_SKIP_VERIFY.

  -no-color, -force-color
    Disable or force colored output.
";

/// A command's flag declarations and usage.
pub struct FlagSet {
    name: &'static str,
    usage: String,
    flags: Vec<(&'static str, FlagKind)>,
    api: bool,
}

/// What a command line said.
#[derive(Debug, Default)]
pub struct Parsed {
    values: Vec<(String, String)>,
    /// The arguments after the flags.
    pub args: Vec<String>,
}

impl FlagSet {
    /// A command (`"job status"`) that calls the API, with its usage text.
    pub fn new(name: &'static str, usage: &str) -> Self {
        Self {
            name,
            usage: format!("{}\n{API_FLAGS_USAGE}", usage.trim_end()),
            flags: Vec::new(),
            api: true,
        }
    }

    /// A command that does not call the API (`job init`, `version`).
    pub fn local(name: &'static str, usage: &str) -> Self {
        Self {
            name,
            usage: usage.to_string(),
            flags: Vec::new(),
            api: false,
        }
    }

    pub fn bool(mut self, name: &'static str) -> Self {
        self.flags.push((name, FlagKind::Bool));
        self
    }

    pub fn value(mut self, name: &'static str) -> Self {
        self.flags.push((name, FlagKind::Value));
        self
    }

    pub fn usage(&self) -> &str {
        &self.usage
    }

    /// A usage error: `message`, then Nomad's pointer to the help.
    pub fn usage_error(&self, message: impl Into<String>) -> CommandError {
        CommandError::Usage {
            message: message.into(),
            usage: format!("For additional help try 'caravan {} -help'", self.name),
        }
    }

    /// Parses `args`.
    pub fn parse(&self, args: &[String]) -> Result<Parsed, CommandError> {
        let mut known = self.flags.clone();
        if self.api {
            known.extend_from_slice(API_FLAGS);
        }
        let (values, args) = parse_go_flags(args, &known).map_err(|error| CommandError::Usage {
            message: error.to_string(),
            usage: self.usage.clone(),
        })?;
        Ok(Parsed {
            values: values
                .into_iter()
                .map(|flag| (flag.name, flag.value))
                .collect(),
            args,
        })
    }

    /// Parses `args`, which must hold between `min` and `max` arguments.
    pub fn parse_with(
        &self,
        args: &[String],
        min: usize,
        max: usize,
        expected: &str,
    ) -> Result<Parsed, CommandError> {
        let parsed = self.parse(args)?;
        if parsed.args.len() < min || parsed.args.len() > max {
            return Err(self.usage_error(expected));
        }
        Ok(parsed)
    }
}

impl Parsed {
    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(flag, _)| flag == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value given for `name`, in order (`-var a=1 -var b=2`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(flag, _)| flag == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// A boolean flag (validated when parsed).
    pub fn bool(&self, name: &str) -> bool {
        self.get(name).and_then(parse_go_bool).unwrap_or(false)
    }

    pub fn arg(&self, index: usize) -> Option<&str> {
        self.args.get(index).map(String::as_str)
    }

    /// The SDK client the API flags and the environment describe.
    pub fn client(&self) -> Result<Client, CommandError> {
        // Accepted as Nomad's flags, but not yet honoured: refusing them is
        // better than verifying against a different name or CA than asked.
        for flag in ["ca-path", "tls-server-name"] {
            if self.get(flag).is_some() {
                return Err(CommandError::failed(format!(
                    "-{flag} is not supported yet: use -ca-cert (NOMAD_CACERT) with an address whose host the agent's certificate names"
                )));
            }
        }
        let config_error = |error: caravan_sdk::Error| CommandError::failed(error.to_string());
        let mut config = Config::from_env().map_err(config_error)?;
        if let Some(address) = self.get("address") {
            config = config.with_address(address).map_err(config_error)?;
        }
        let set = |slot: &mut Option<String>, flag: &str| {
            if let Some(value) = self.get(flag) {
                *slot = Some(value.to_string());
            }
        };
        set(&mut config.token, "token");
        set(&mut config.region, "region");
        set(&mut config.namespace, "namespace");
        set(&mut config.ca_cert, "ca-cert");
        set(&mut config.client_cert, "client-cert");
        set(&mut config.client_key, "client-key");
        if self.get("tls-skip-verify").is_some() {
            config.skip_verify = self.bool("tls-skip-verify");
        }
        Client::new(config).map_err(config_error)
    }
}
