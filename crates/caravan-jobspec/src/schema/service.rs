//! `service` blocks, their checks and Consul Connect.

use super::Kind::*;
use super::{Field, Schema};
use super::{IDENTITY, LOGS, RESOURCES, VOLUME_MOUNT};

pub(crate) static SERVICE: Schema = Schema {
    name: "service",
    label: None,
    fields: &[
        f!("name" => "Name", Str),
        f!("tags" => "Tags", StrList),
        f!("canary_tags" => "CanaryTags", StrList),
        f!("enable_tag_override" => "EnableTagOverride", Bool),
        f!("port" => "PortLabel", Str),
        f!("address_mode" => "AddressMode", Str),
        f!("address" => "Address", Str),
        f!("check" => "Checks", Blocks(&CHECK)),
        f!("check_restart" => "CheckRestart", Block(&CHECK_RESTART)),
        f!("meta" => "Meta", StrMap),
        f!("canary_meta" => "CanaryMeta", StrMap),
        f!("tagged_addresses" => "TaggedAddresses", StrMap),
        f!("task" => "TaskName", Str),
        f!("on_update" => "OnUpdate", Str),
        f!("identity" => "Identity", Block(&IDENTITY)),
        f!("weights" => "Weights", Block(&SERVICE_WEIGHTS)),
        f!("connect" => "Connect", Block(&CONNECT)),
        f!("provider" => "Provider", Str),
        f!("cluster" => "Cluster", Str),
        f!("kind" => "Kind", Str),
    ],
    post: None,
};

pub(crate) static CHECK: Schema = Schema {
    name: "check",
    label: None,
    fields: &[
        f!("name" => "Name", Str),
        f!("type" => "Type", Str),
        f!("command" => "Command", Str),
        f!("args" => "Args", StrList),
        f!("path" => "Path", Str),
        f!("protocol" => "Protocol", Str),
        f!("port" => "PortLabel", Str),
        f!("expose" => "Expose", Bool),
        f!("address_mode" => "AddressMode", Str),
        f!("advertise" => "Advertise", Str),
        f!("interval" => "Interval", Dur),
        f!("timeout" => "Timeout", Dur),
        f!("initial_status" => "InitialStatus", Str),
        f!("notes" => "Notes", Str),
        f!("tls_server_name" => "TLSServerName", Str),
        f!("tls_skip_verify" => "TLSSkipVerify", Bool),
        f!("header" => "Header", StrListMap),
        f!("method" => "Method", Str),
        f!("check_restart" => "CheckRestart", Block(&CHECK_RESTART)),
        f!("grpc_service" => "GRPCService", Str),
        f!("grpc_use_tls" => "GRPCUseTLS", Bool),
        f!("task" => "TaskName", Str),
        f!("success_before_passing" => "SuccessBeforePassing", Int),
        f!("failures_before_critical" => "FailuresBeforeCritical", Int),
        f!("failures_before_warning" => "FailuresBeforeWarning", Int),
        f!("body" => "Body", Str),
        f!("on_update" => "OnUpdate", Str),
    ],
    post: None,
};

pub(crate) static CHECK_RESTART: Schema = Schema {
    name: "check_restart",
    label: None,
    fields: &[
        f!("limit" => "Limit", Int),
        f!("grace" => "Grace", Dur),
        f!("ignore_warnings" => "IgnoreWarnings", Bool),
    ],
    post: None,
};

pub(crate) static SERVICE_WEIGHTS: Schema = Schema {
    name: "weights",
    label: None,
    fields: &[
        f!("passing" => "Passing", Int),
        f!("warning" => "Warning", Int),
    ],
    post: None,
};

pub(crate) static CONNECT: Schema = Schema {
    name: "connect",
    label: None,
    fields: &[
        f!("native" => "Native", Bool),
        f!("gateway" => "Gateway", Block(&GATEWAY)),
        f!("sidecar_service" => "SidecarService", Block(&SIDECAR_SERVICE)),
        f!("sidecar_task" => "SidecarTask", Block(&SIDECAR_TASK)),
    ],
    post: None,
};

static SIDECAR_SERVICE: Schema = Schema {
    name: "sidecar_service",
    label: None,
    fields: &[
        f!("tags" => "Tags", StrList),
        f!("port" => "Port", Str),
        f!("proxy" => "Proxy", Block(&PROXY)),
        f!("disable_default_tcp_check" => "DisableDefaultTCPCheck", Bool),
        f!("meta" => "Meta", StrMap),
    ],
    post: None,
};

static SIDECAR_TASK: Schema = Schema {
    name: "sidecar_task",
    label: None,
    fields: &[
        f!("name" => "Name", Str),
        f!("driver" => "Driver", Str),
        f!("user" => "User", Str),
        f!("config" => "Config", FreeMap),
        f!("env" => "Env", StrMap),
        f!("resources" => "Resources", Block(&RESOURCES)),
        f!("meta" => "Meta", StrMap),
        f!("kill_timeout" => "KillTimeout", Dur),
        f!("logs" => "LogConfig", Block(&LOGS)),
        f!("shutdown_delay" => "ShutdownDelay", Dur),
        f!("kill_signal" => "KillSignal", Str),
        f!("volume_mount" => "VolumeMounts", Blocks(&VOLUME_MOUNT)),
        f!("identity" => "Identities", Blocks(&IDENTITY)),
    ],
    post: None,
};

static PROXY: Schema = Schema {
    name: "proxy",
    label: None,
    fields: &[
        f!("local_service_address" => "LocalServiceAddress", Str),
        f!("local_service_port" => "LocalServicePort", Int),
        f!("expose" => "Expose", Block(&EXPOSE)),
        f!("upstreams" => "Upstreams", Blocks(&UPSTREAM)),
        f!("transparent_proxy" => "TransparentProxy", Block(&TRANSPARENT_PROXY)),
        f!("config" => "Config", FreeMap),
    ],
    post: None,
};

static EXPOSE: Schema = Schema {
    name: "expose",
    label: None,
    fields: &[f!("path" => "Paths", Blocks(&EXPOSE_PATH))],
    post: None,
};

static EXPOSE_PATH: Schema = Schema {
    name: "path",
    label: None,
    fields: &[
        f!("path" => "Path", Str),
        f!("protocol" => "Protocol", Str),
        f!("local_path_port" => "LocalPathPort", Int),
        f!("listener_port" => "ListenerPort", Str),
    ],
    post: None,
};

static UPSTREAM: Schema = Schema {
    name: "upstreams",
    label: None,
    fields: &[
        f!("destination_name" => "DestinationName", Str),
        f!("destination_namespace" => "DestinationNamespace", Str),
        f!("destination_peer" => "DestinationPeer", Str),
        f!("destination_partition" => "DestinationPartition", Str),
        f!("destination_type" => "DestinationType", Str),
        f!("local_bind_port" => "LocalBindPort", Int),
        f!("datacenter" => "Datacenter", Str),
        f!("local_bind_address" => "LocalBindAddress", Str),
        f!("local_bind_socket_path" => "LocalBindSocketPath", Str),
        f!("local_bind_socket_mode" => "LocalBindSocketMode", Str),
        f!("mesh_gateway" => "MeshGateway", Block(&MESH_GATEWAY)),
        f!("config" => "Config", FreeMap),
    ],
    post: None,
};

static MESH_GATEWAY: Schema = Schema {
    name: "mesh_gateway",
    label: None,
    fields: &[f!("mode" => "Mode", Str)],
    post: None,
};

static TRANSPARENT_PROXY: Schema = Schema {
    name: "transparent_proxy",
    label: None,
    fields: &[
        f!("uid" => "UID", Str),
        f!("outbound_port" => "OutboundPort", Int),
        f!("exclude_inbound_ports" => "ExcludeInboundPorts", StrList),
        f!("exclude_outbound_ports" => "ExcludeOutboundPorts", IntList),
        f!("exclude_outbound_cidrs" => "ExcludeOutboundCIDRs", StrList),
        f!("exclude_uids" => "ExcludeUIDs", StrList),
        f!("no_dns" => "NoDNS", Bool),
    ],
    post: None,
};

static GATEWAY: Schema = Schema {
    name: "gateway",
    label: None,
    fields: &[
        f!("proxy" => "Proxy", Block(&GATEWAY_PROXY)),
        f!("ingress" => "Ingress", Block(&INGRESS)),
        f!("terminating" => "Terminating", Block(&TERMINATING)),
        f!("mesh" => "Mesh", Block(&MESH)),
    ],
    post: None,
};

static GATEWAY_PROXY: Schema = Schema {
    name: "proxy",
    label: None,
    fields: &[
        f!("connect_timeout" => "ConnectTimeout", Dur),
        f!("envoy_gateway_bind_tagged_addresses" => "EnvoyGatewayBindTaggedAddresses", Bool),
        f!("envoy_gateway_bind_addresses" => "EnvoyGatewayBindAddresses", BlockMap(&BIND_ADDRESS)),
        f!("envoy_gateway_no_default_bind" => "EnvoyGatewayNoDefaultBind", Bool),
        f!("envoy_dns_discovery_type" => "EnvoyDNSDiscoveryType", Str),
        f!("config" => "Config", FreeMap),
    ],
    post: None,
};

static BIND_ADDRESS: Schema = Schema {
    name: "envoy_gateway_bind_addresses",
    label: Some("Name"),
    fields: &[f!("address" => "Address", Str), f!("port" => "Port", Int)],
    post: None,
};

static INGRESS: Schema = Schema {
    name: "ingress",
    label: None,
    fields: &[
        f!("tls" => "TLS", Block(&GATEWAY_TLS)),
        f!("listener" => "Listeners", Blocks(&INGRESS_LISTENER)),
    ],
    post: None,
};

static GATEWAY_TLS: Schema = Schema {
    name: "tls",
    label: None,
    fields: &[
        f!("enabled" => "Enabled", Bool),
        f!("tls_min_version" => "TLSMinVersion", Str),
        f!("tls_max_version" => "TLSMaxVersion", Str),
        f!("cipher_suites" => "CipherSuites", StrList),
        f!("sds" => "SDS", Block(&GATEWAY_SDS)),
    ],
    post: None,
};

static GATEWAY_SDS: Schema = Schema {
    name: "sds",
    label: None,
    fields: &[
        f!("cluster_name" => "ClusterName", Str),
        f!("cert_resource" => "CertResource", Str),
    ],
    post: None,
};

static INGRESS_LISTENER: Schema = Schema {
    name: "listener",
    label: None,
    fields: &[
        f!("port" => "Port", Int),
        f!("protocol" => "Protocol", Str),
        f!("service" => "Services", Blocks(&INGRESS_SERVICE)),
    ],
    post: None,
};

static INGRESS_SERVICE: Schema = Schema {
    name: "service",
    label: None,
    fields: &[
        f!("name" => "Name", Str),
        f!("hosts" => "Hosts", StrList),
        f!("tls" => "TLS", Block(&GATEWAY_TLS)),
        f!("request_headers" => "RequestHeaders", Block(&HEADER_MODIFIERS)),
        f!("response_headers" => "ResponseHeaders", Block(&HEADER_MODIFIERS)),
        f!("max_connections" => "MaxConnections", Int),
        f!("max_pending_requests" => "MaxPendingRequests", Int),
        f!("max_concurrent_requests" => "MaxConcurrentRequests", Int),
    ],
    post: None,
};

static HEADER_MODIFIERS: Schema = Schema {
    name: "request_headers",
    label: None,
    fields: &[
        f!("add" => "Add", StrMap),
        f!("set" => "Set", StrMap),
        f!("remove" => "Remove", StrList),
    ],
    post: None,
};

static TERMINATING: Schema = Schema {
    name: "terminating",
    label: None,
    fields: &[f!("service" => "Services", Blocks(&LINKED_SERVICE))],
    post: None,
};

static LINKED_SERVICE: Schema = Schema {
    name: "service",
    label: None,
    fields: &[
        f!("name" => "Name", Str),
        f!("ca_file" => "CAFile", Str),
        f!("cert_file" => "CertFile", Str),
        f!("key_file" => "KeyFile", Str),
        f!("sni" => "SNI", Str),
    ],
    post: None,
};

static MESH: Schema = Schema {
    name: "mesh",
    label: None,
    fields: &[],
    post: None,
};
