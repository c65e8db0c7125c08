//! The Envoy configurations the benchmark compares. Every one has two routes
//! answered by Envoy itself (`direct_response`, so no upstream is measured):
//! `/checked` runs the filter under test, `/unchecked` has it disabled. The
//! difference between the two is what the filter costs.

use harness::envoy::EnvoyConfig;
use harness::stack::free_port;
use std::path::Path;

/// The filter under test, named `check` in every configuration.
pub enum Filter<'a> {
    Wasm {
        wasm: &'a Path,
        json: String,
    },
    /// The plugin, then Envoy's rate limit filter asking the service
    /// (step 5's other way).
    WasmThenRateLimit {
        wasm: &'a Path,
        json: String,
    },
    /// Steps 4 and 6: the plugin with its headers held while it reads the
    /// body (`allow_on_headers_stop_iteration`): step 4's requests, step 6's
    /// responses.
    HoldingHeaders {
        wasm: &'a Path,
        json: String,
    },
    /// Steps 7 and 8: the filter reading the keys that the same module,
    /// as a singleton refresher (a bootstrap extension), fetches from the
    /// sink (`/keys`, `/jwks`); each module in a `vm_id` of its own.
    KeyRefresh {
        wasm: &'a Path,
        filter_json: String,
        refresher_json: String,
    },
    /// Envoy's `jwt_authn` filter, with this JWK set inline: step 8's
    /// native twin.
    JwtAuthn {
        jwks: String,
    },
    /// Step 1's key check as an Envoy dynamic module (a shared library
    /// built with Envoy's Go SDK, dynamic_module.rs) with this JSON.
    DynamicModule {
        library: &'a Path,
        json: String,
    },
    Lua {
        keys: &'a [String],
    },
    Rbac {
        keys: &'a [String],
    },
    /// Envoy's native `api_key_auth` filter: step 1's native twin.
    ApiKeyAuth {
        keys: &'a [String],
    },
    /// Envoy's `ext_authz` filter asking an HTTP auth service (the sink's
    /// `/authz/`, which knows `keys(3)`) about every request.
    ExtAuthz,
    LocalRateLimit,
}

impl Filter<'_> {
    /// Whether the filter under test is a Wasm plugin.
    pub fn is_wasm(&self) -> bool {
        matches!(
            self,
            Filter::Wasm { .. }
                | Filter::WasmThenRateLimit { .. }
                | Filter::HoldingHeaders { .. }
                | Filter::KeyRefresh { .. }
        )
    }
}

pub fn keys(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("key-{i:06}")).collect()
}

/// The key every benchmark request sends: one of the configured keys.
pub const REQUEST_KEY: &str = "key-000001";

/// What the sink answers on `/json/` (the upstream of step 6's routes): a
/// user record with the fields step 6 is configured to remove.
pub const USER_JSON: &str = r#"{"id":42,"name":"Ada Lovelace","email":"ada@example.com","password_hash":"$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA","profile":{"ssn":"078-05-1120","city":"London","roles":["admin","billing"]},"internal_notes":"VIP since 2019"}"#;

/// The body sizes of the per-KiB table: step 4's signed requests and step
/// 6's JSON responses.
pub const BODY_SIZES: [usize; 4] = [1024, 16 * 1024, 64 * 1024, 256 * 1024];

/// A JSON document of at most `size` bytes (and within one `USER_JSON` of
/// it): `{"users":[USER_JSON,...]}`, every record with the fields step 6
/// removes. The sink answers it on `/json/` to a request with
/// `x-json-size: <size>`.
pub fn sized_json(size: usize) -> String {
    let count = (size.saturating_sub(12) / (USER_JSON.len() + 1)).max(1);
    format!("{{\"users\":[{}]}}", vec![USER_JSON; count].join(","))
}

/// The file the sink answers for `x-json-size: <size>`.
pub fn sized_json_file(size: usize) -> std::path::PathBuf {
    // Written once per run: test_dir empties its folder.
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = harness::stack::test_dir("bench-json");
        for size in BODY_SIZES {
            let file = dir.join(format!("users-{size}.json"));
            std::fs::write(file, sized_json(size)).expect("write a sized JSON document");
        }
        dir
    });
    dir.join(format!("users-{size}.json"))
}

/// The sink's routes for the sized documents, before its `/json/` route.
fn sized_json_routes() -> String {
    BODY_SIZES
        .iter()
        .map(|size| {
            format!(
                r#"              - match:
                  prefix: "/json/"
                  headers: [{{ name: x-json-size, string_match: {{ exact: "{size}" }} }}]
                direct_response: {{ status: 200, body: {{ filename: "{}" }} }}
                response_headers_to_add:
                - header: {{ key: content-type, value: application/json }}
                  append_action: OVERWRITE_IF_EXISTS_OR_ADD
"#,
                sized_json_file(*size).display()
            )
        })
        .collect()
}

/// The field of `USER_JSON` that step 6 must remove (proof.rs).
pub const REMOVED_FIELD: &str = "password_hash";

/// The keys the sink's `/keys` serves step 7's refresher: `keys(3)`.
fn key_list_json() -> String {
    serde_json::json!({ "keys": keys(3) }).to_string()
}

/// The `vm_id` of a refreshing module: its own, so that two of them in
/// one Envoy (quick mode) publish their keys apart.
fn refresh_vm_id(wasm: &Path) -> String {
    let stem = wasm.file_stem().map(|s| s.to_string_lossy().into_owned());
    format!("refresh-{}", stem.unwrap_or_default())
}

/// Each refreshing module's refresher as a singleton service, for
/// `envoy_yaml`.
fn bootstrap_yaml(filters: &[&Filter]) -> String {
    let mut seen = Vec::new();
    let services: String = filters
        .iter()
        .filter_map(|filter| match filter {
            Filter::KeyRefresh {
                wasm,
                refresher_json,
                ..
            } if !seen.contains(wasm) => {
                seen.push(*wasm);
                let vm_id = refresh_vm_id(wasm);
                Some(format!(
                    r#"- name: envoy.bootstrap.wasm
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.wasm.v3.WasmService
    singleton: true
    config:
      name: {vm_id}
      root_id: key-refresher
      vm_config:
        vm_id: {vm_id}
        runtime: envoy.wasm.runtime.v8
        environment_variables: {{ host_env_keys: ["KEY_LIST_SECRET"] }}
        code: {{ local: {{ filename: "{}" }} }}
      configuration:
        "@type": type.googleapis.com/google.protobuf.StringValue
        value: '{}'
"#,
                    wasm.display(),
                    refresher_json
                ))
            }
            _ => None,
        })
        .collect();
    if services.is_empty() {
        services
    } else {
        format!("bootstrap_extensions:\n{services}")
    }
}

/// The JWK set of the step whose benchmark requests carry tokens (its
/// description names the file), which the sink serves at `/jwks`.
pub fn jwks_json() -> String {
    project::step::DESCRIPTIONS
        .iter()
        .find_map(|d| match d.bench.request {
            project::step::BenchRequest::Bearer { jwks, .. } => {
                let path = project::repo_root().join("code").join(d.folder).join(jwks);
                Some(
                    std::fs::read_to_string(&path)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
                )
            }
            _ => None,
        })
        .map_or_else(
            || r#"{"keys":[]}"#.to_owned(),
            |text| text.trim().to_owned(),
        )
}

pub fn filter_yaml(filter: &Filter) -> String {
    match filter {
        Filter::DynamicModule { library, json } => format!(
            r#"
          - name: check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              # lib<name>.so in $ENVOY_DYNAMIC_MODULES_SEARCH_PATH (set by
              # xtask): every release reads `name`; `module` (a path) is
              # newer.
              dynamic_module_config: {{ name: {} }}
              filter_name: key-check
              filter_config:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: '{}'"#,
            library
                .file_stem()
                .and_then(|stem| stem.to_str())
                .and_then(|stem| stem.strip_prefix("lib"))
                .unwrap_or_default(),
            json
        ),
        Filter::Wasm { wasm, json } => format!(
            r#"
          - name: check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: check
                root_id: check
                failure_policy: FAIL_CLOSED
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: "{}" }} }}
                  environment_variables: {{ host_env_keys: ["AUTH_CACHE_SECRET"] }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{}'"#,
            wasm.display(),
            json
        ),
        Filter::HoldingHeaders { wasm, json } => filter_yaml(&Filter::Wasm {
            wasm,
            json: json.clone(),
        })
        .replace(
            "failure_policy: FAIL_CLOSED\n",
            "failure_policy: FAIL_CLOSED\n                allow_on_headers_stop_iteration: true\n",
        ),
        Filter::KeyRefresh {
            wasm, filter_json, ..
        } => filter_yaml(&Filter::Wasm {
            wasm,
            json: filter_json.clone(),
        })
        .replace(
            "runtime: envoy.wasm.runtime.v8\n",
            &format!(
                "vm_id: {}\n                  runtime: envoy.wasm.runtime.v8\n",
                refresh_vm_id(wasm)
            ),
        )
        .replace("AUTH_CACHE_SECRET", "KEY_LIST_SECRET"),
        Filter::JwtAuthn { jwks } => format!(
            r#"
          - name: check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                book:
                  issuer: https://issuer.example
                  audiences: [api]
                  clock_skew_seconds: 30
                  forward: true
                  local_jwks: {{ inline_string: '{jwks}' }}
              rules:
              - match: {{ prefix: "/" }}
                requires: {{ provider_name: book }}"#
        ),
        Filter::WasmThenRateLimit { wasm, json } => {
            let plugin = filter_yaml(&Filter::Wasm {
                wasm,
                json: json.clone(),
            });
            format!(
                r#"{plugin}
          - name: envoy.filters.http.ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
              domain: proxy-wasm-book
              failure_mode_deny: true
              status_on_error: {{ code: ServiceUnavailable }}
              # Under valgrind, the first call (a new HTTP/2 connection)
              # has taken longer than a second.
              timeout: 10s
              rate_limit_service:
                transport_api_version: V3
                grpc_service: {{ envoy_grpc: {{ cluster_name: rate_limit_service }} }}"#
            )
        }
        Filter::Lua { keys } => {
            let table: Vec<String> = keys.iter().map(|k| format!("[\"{k}\"]=true")).collect();
            format!(
                r#"
          - name: check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code:
                inline_string: |
                  local valid = {{{}}}
                  function envoy_on_request(handle)
                    local key = handle:headers():get("x-api-key")
                    if key == nil or key == "" then
                      handle:respond({{[":status"] = "401"}}, '{{"error":"missing API key"}}')
                    elseif not valid[key] then
                      handle:respond({{[":status"] = "403"}}, '{{"error":"invalid API key"}}')
                    else
                      handle:headers():replace("x-auth-status", "valid")
                    end
                  end"#,
                table.join(",")
            )
        }
        Filter::Rbac { keys } => {
            let ids: Vec<String> = keys
                .iter()
                .map(|k| format!("{{header: {{name: x-api-key, string_match: {{exact: \"{k}\"}}}}}}"))
                .collect();
            format!(
                r#"
          - name: check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  api-keys:
                    permissions: [{{any: true}}]
                    principals: [{{or_ids: {{ids: [{}]}}}}]"#,
                ids.join(", ")
            )
        }
        Filter::ApiKeyAuth { keys } => {
            let credentials: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| format!("\n              - {{ key: \"{k}\", client: client-{i} }}"))
                .collect();
            format!(
                r#"
          - name: check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth
              credentials:{}
              key_sources:
              - header: x-api-key"#,
                credentials.concat()
            )
        }
        Filter::ExtAuthz => r#"
          - name: check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              failure_mode_allow: false
              allowed_headers: { patterns: [{ exact: x-api-key }] }
              http_service:
                server_uri: { uri: "http://sink", cluster: sink, timeout: 10s }
                path_prefix: /authz"#
            .to_owned(),
        Filter::LocalRateLimit => r#"
          - name: check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: per_key
              token_bucket: { max_tokens: 1000000000, tokens_per_fill: 1000000000, fill_interval: 60s }
              filter_enabled: { runtime_key: rl_enabled, default_value: { numerator: 100, denominator: HUNDRED } }
              filter_enforced: { runtime_key: rl_enforced, default_value: { numerator: 100, denominator: HUNDRED } }
              descriptors:
              # A bucket of two for one key, for the proof that it counts
              # (proof.rs); every other key shares the huge bucket below.
              - entries: [{ key: api_key, value: bucket-proof-key }]
                token_bucket: { max_tokens: 2, tokens_per_fill: 2, fill_interval: 3600s }
              - entries: [{ key: api_key }]
                token_bucket: { max_tokens: 1000000000, tokens_per_fill: 1000000000, fill_interval: 60s }
              rate_limits:
              - actions:
                - request_headers: { header_name: x-api-key, descriptor_key: api_key }"#
            .to_owned(),
    }
}

/// The listener of one configuration: `/checked` runs the filter,
/// `/unchecked` has it disabled; `/body/...` go to the sink (see
/// `envoy_yaml`). `/body/checked` carries the rate limit action of step 5's
/// `envoy-native.yaml`: Envoy's rate limit filter only acts on routes to a
/// cluster, never on `direct_response`.
fn listener_yaml(name: &str, port: u16, filter: &Filter) -> String {
    format!(
        r#"  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          # As in step 1's envoy.yaml: a header name with an underscore
          # is refused (400) before any filter runs.
          common_http_protocol_options:
            headers_with_underscores_action: REJECT_REQUEST
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/checked" }}
                direct_response: {{ status: 200, body: {{ inline_string: "ok" }} }}
              - match: {{ prefix: "/unchecked" }}
                direct_response: {{ status: 200, body: {{ inline_string: "ok" }} }}
                typed_per_filter_config:
                  check:
                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                    disabled: true
              - match: {{ prefix: "/body/checked" }}
                route:
                  cluster: sink
                  rate_limits:
                  - actions:
                    - request_headers: {{ header_name: x-api-key-hash, descriptor_key: api_key_hash }}
              - match: {{ prefix: "/body/unchecked" }}
                route: {{ cluster: sink }}
                typed_per_filter_config:
                  check:
                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                    disabled: true
              - match: {{ prefix: "/json/checked" }}
                route: {{ cluster: sink }}
              - match: {{ prefix: "/json/unchecked" }}
                route: {{ cluster: sink }}
                typed_per_filter_config:
                  check:
                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                    disabled: true
          http_filters:{}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#,
        filter_yaml(filter)
    )
}

/// A whole Envoy configuration: the `listeners` (from `listener_yaml`), the
/// admin interface, and `sink_port`, a listener of the same Envoy that
/// reads each request's whole body (the buffer filter) and answers 200: the
/// upstream of the `/body/` routes, where a filter that reads bodies is
/// measured, step 6's upstream (`/json/`, `USER_JSON`), step 7's key service
/// (`/keys`) and step 8's (`/jwks`).
/// Answering at the headers, as `direct_response` does, would end the
/// request before the filter had seen the body. `auth_port` is step 3's
/// auth service (`auth_listener_yaml`).
///
/// `rate_limit_port` is step 5's rate limit service (gRPC); configurations
/// that do not call it never connect there.
fn envoy_yaml(
    bootstrap: &str,
    listeners: &str,
    admin_port: u16,
    sink_port: u16,
    auth_port: u16,
    rate_limit_port: u16,
) -> String {
    let user_json = USER_JSON;
    let key_list = key_list_json();
    let jwks = jwks_json();
    let auth_listener = auth_listener_yaml(auth_port);
    let sized_json = sized_json_routes();
    let sink_listener = project::envoy::listener_yaml(
        "sink",
        sink_port,
        &format!(
            r#"              # ext_authz's auth service: 200 for the three keys the
              # benchmark configures (keys(3)), 403 for anything else.
              - match:
                  prefix: "/authz/"
                  headers: [{{ name: x-api-key, string_match: {{ safe_regex: {{ regex: "key-00000[0-2]" }} }} }}]
                direct_response: {{ status: 200 }}
              - match: {{ prefix: "/authz/" }}
                direct_response: {{ status: 403 }}
{sized_json}              - match: {{ prefix: "/json/" }}
                direct_response: {{ status: 200, body: {{ inline_string: '{user_json}' }} }}
                response_headers_to_add:
                - header: {{ key: content-type, value: application/json }}
                  append_action: OVERWRITE_IF_EXISTS_OR_ADD
              - match: {{ prefix: "/keys" }}
                direct_response: {{ status: 200, body: {{ inline_string: '{key_list}' }} }}
                response_headers_to_add:
                - header: {{ key: content-type, value: application/json }}
                  append_action: OVERWRITE_IF_EXISTS_OR_ADD
              # Step 8's key service: the JWK set of its test keys.
              - match: {{ prefix: "/jwks" }}
                direct_response: {{ status: 200, body: {{ inline_string: '{jwks}' }} }}
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 200, body: {{ inline_string: "ok" }} }}"#
        ),
        r#"          - name: envoy.filters.http.buffer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 1048576"#,
    )
    // The sized JSON documents are larger than a direct response's
    // default limit (4 KiB).
    .replace(
        "          route_config:\n",
        "          route_config:\n            max_direct_response_body_size_bytes: 1048576\n",
    );
    format!(
        r#"{bootstrap}admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }} }}
static_resources:
  listeners:
{listeners}{auth_listener}{sink_listener}  clusters:
  - name: sink
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: sink
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {sink_port} }} }} }}
  - name: auth_service
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: auth_service
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {auth_port} }} }} }}
  - name: rate_limit_service
    connect_timeout: 1s
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: rate_limit_service
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {rate_limit_port} }} }} }}
"#
    )
}

/// Step 3's auth service, a listener of its own so that no other
/// configuration pays for its Lua: `{"valid":true}` for a request whose
/// JSON body names one of the configured keys (`keys(3)`, as the
/// `ext_authz` service knows them), `{"valid":false}` for any other, as
/// the book's auth service answers. A service that said yes to every key
/// would make step 3 let unknown keys through in the refusal table.
fn auth_listener_yaml(port: u16) -> String {
    project::envoy::listener_yaml(
        "auth_service",
        port,
        r#"              - match: { prefix: "/validate" }
                direct_response: { status: 404 }"#,
        r#"          - name: envoy.filters.http.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code:
                inline_string: |
                  function envoy_on_request(handle)
                    local body = handle:body()
                    local text = body and body:getBytes(0, body:length()) or ""
                    local answer = '{"valid":false}'
                    if string.find(text, '^{"key":"key%-00000[0-2]"}$') then
                      answer = '{"valid":true}'
                    end
                    handle:respond({[":status"] = "200", ["content-type"] = "application/json"}, answer)
                  end"#,
    )
}

/// A benchmark configuration with `filter` on free loopback ports: the
/// config, its listener's port and its admin port.
pub fn on_free_ports(filter: &Filter, rate_limit_port: u16) -> (EnvoyConfig, u16, u16) {
    let (config, ports, admin) = several_on_free_ports(&[filter], rate_limit_port);
    (config, ports[0], admin)
}

/// Several configurations in one Envoy, each on a listener of its own (a
/// free port, in the order given), with one admin interface and one sink:
/// the config, the listeners' ports and the admin port.
pub fn several_on_free_ports(
    filters: &[&Filter],
    rate_limit_port: u16,
) -> (EnvoyConfig, Vec<u16>, u16) {
    let (admin, sink, auth) = (free_port(), free_port(), free_port());
    let ports: Vec<u16> = filters.iter().map(|_| free_port()).collect();
    let listeners: String = filters
        .iter()
        .zip(&ports)
        .enumerate()
        .map(|(index, (filter, port))| listener_yaml(&format!("bench_{index}"), *port, filter))
        .collect();
    let yaml = envoy_yaml(
        &bootstrap_yaml(filters),
        &listeners,
        admin,
        sink,
        auth,
        rate_limit_port,
    );
    (EnvoyConfig::from_text(yaml), ports, admin)
}
