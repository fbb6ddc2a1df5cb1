//! `caravan tls ca create` and `caravan tls cert create`: Nomad's commands
//! for securing a cluster in a few steps, with its flags, file names and
//! messages. Keys are written 0600 and never over an existing file.

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

use caravan_config::flags::{parse_go_flags, FlagKind};
use caravan_tls::generate::{self, Role};

const USAGE: &str = "Usage: caravan tls <subcommand> [options]

Subcommands:
    ca create     Create a certificate authority for Caravan (nomad-agent-ca.pem)
    cert create   Create a server (-server), client (-client) or CLI (-cli) certificate
";

pub fn run(args: &[String]) -> ExitCode {
    let words: Vec<&str> = args.iter().take(2).map(String::as_str).collect();
    let result = match words.as_slice() {
        ["ca", "create"] => ca_create(&args[2..]),
        ["cert", "create"] => cert_create(&args[2..]),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(1);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("==> {error}");
            ExitCode::from(1)
        }
    }
}

/// Writes a new file; refuses to replace one, as Nomad does.
fn write_new(path: &str, contents: &str, private: bool) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::AlreadyExists => format!("{path}: file exists"),
            _ => format!("{path}: {error}"),
        })?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|error| format!("{path}: {error}"))
}

fn parse_days(value: &str) -> Result<u32, String> {
    value
        .parse()
        .map_err(|_| format!("invalid value {value:?} for -days"))
}

fn ca_create(args: &[String]) -> Result<(), String> {
    const FLAGS: &[(&str, FlagKind)] = &[
        ("days", FlagKind::Value),
        ("domain", FlagKind::Value),
        ("common-name", FlagKind::Value),
        ("additional-domain", FlagKind::Value),
        ("name-constraint", FlagKind::Bool),
    ];
    let (flags, rest) = parse_go_flags(args, FLAGS).map_err(|error| error.to_string())?;
    if let Some(extra) = rest.first() {
        return Err(format!("This command takes no arguments, got {extra:?}"));
    }
    let mut days = 1825u32;
    let mut domain = "nomad".to_string();
    let mut common_name = None;
    for flag in flags {
        match flag.name.as_str() {
            "days" => days = parse_days(&flag.value)?,
            "domain" => domain = flag.value,
            "common-name" => common_name = Some(flag.value),
            _ => {}
        }
    }
    let pair = generate::ca(&domain, common_name.as_deref(), days).map_err(|e| e.to_string())?;
    let cert = format!("{domain}-agent-ca.pem");
    let key = format!("{domain}-agent-ca-key.pem");
    write_new(&cert, &pair.cert_pem, false)?;
    println!("==> CA certificate saved to: {cert}");
    write_new(&key, &pair.key_pem, true)?;
    println!("==> CA certificate key saved to: {key}");
    Ok(())
}

fn cert_create(args: &[String]) -> Result<(), String> {
    const FLAGS: &[(&str, FlagKind)] = &[
        ("server", FlagKind::Bool),
        ("client", FlagKind::Bool),
        ("cli", FlagKind::Bool),
        ("ca", FlagKind::Value),
        ("key", FlagKind::Value),
        ("days", FlagKind::Value),
        ("domain", FlagKind::Value),
        ("region", FlagKind::Value),
        ("additional-dnsname", FlagKind::Value),
        ("additional-ipaddress", FlagKind::Value),
        ("node", FlagKind::Value),
    ];
    let (flags, rest) = parse_go_flags(args, FLAGS).map_err(|error| error.to_string())?;
    if let Some(extra) = rest.first() {
        return Err(format!("This command takes no arguments, got {extra:?}"));
    }
    let mut roles = Vec::new();
    let mut ca = None;
    let mut key = None;
    let mut days = 365u32;
    let mut domain = "nomad".to_string();
    let mut region = "global".to_string();
    let mut dns = Vec::new();
    let mut ips: Vec<IpAddr> = Vec::new();
    for flag in flags {
        let truthy = flag.value != "false";
        match flag.name.as_str() {
            "server" if truthy => roles.push(Role::Server),
            "client" if truthy => roles.push(Role::Client),
            "cli" if truthy => roles.push(Role::Cli),
            "ca" => ca = Some(flag.value),
            "key" => key = Some(flag.value),
            "days" => days = parse_days(&flag.value)?,
            "domain" => domain = flag.value,
            "region" => region = flag.value,
            "additional-dnsname" => dns.push(flag.value),
            "additional-ipaddress" => ips.push(
                flag.value
                    .parse()
                    .map_err(|_| format!("{:?} is not an IP address", flag.value))?,
            ),
            _ => {}
        }
    }
    let role = match roles.as_slice() {
        [role] => *role,
        [] => return Err("Please provide either -server, -client, or -cli".to_string()),
        _ => return Err("Please provide only one of -server, -client, or -cli".to_string()),
    };
    let ca = ca.unwrap_or_else(|| format!("{domain}-agent-ca.pem"));
    let key = key.unwrap_or_else(|| format!("{domain}-agent-ca-key.pem"));
    let read = |path: &str, what: &str| {
        std::fs::read_to_string(Path::new(path))
            .map_err(|error| format!("Error reading {what} {path}: {error}"))
    };
    let ca_pem = read(&ca, "CA")?;
    let key_pem = read(&key, "CA key")?;
    let pair = generate::agent_cert(&ca_pem, &key_pem, role, &region, &domain, days, &dns, &ips)
        .map_err(|error| error.to_string())?;
    let prefix = format!("{region}-{}-{domain}", role.word());
    let (cert_file, key_file) = (format!("{prefix}.pem"), format!("{prefix}-key.pem"));
    let title = match role {
        Role::Server => "Server",
        Role::Client => "Client",
        Role::Cli => "Cli",
    };
    println!("==> Using CA file {ca} and CA key {key}");
    write_new(&cert_file, &pair.cert_pem, false)?;
    println!("==> {title} Certificate saved to {cert_file}");
    write_new(&key_file, &pair.key_pem, true)?;
    println!("==> {title} Certificate key saved to {key_file}");
    Ok(())
}
