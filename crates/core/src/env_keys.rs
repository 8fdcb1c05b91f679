//! Environment keys that no environment variable or LLM connection `env` may set (security
//! review H4). The runtime owns some of them (the federated identity it points each SDK at); the
//! others change where an SDK sends its credentials (endpoint, authority, proxy, CA bundle), make
//! the loader or an interpreter run code of the setter's choosing, or hand the crew a static
//! credential the runtime deliberately withholds. Whoever may edit variables (the Member role by
//! default) could otherwise steal the federated token or run code in every kickoff.
//!
//! The reserved set, compared without regard to case (curl, Go and Python read `http_proxy` as
//! readily as `HTTP_PROXY`, and no legitimate variable differs from a reserved one only by case):
//!
//! | group | keys |
//! |---|---|
//! | set by the runtime | `GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_CLOUD_PROJECT`, `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_AUTHORITY_HOST`, `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`, `AWS_ROLE_SESSION_NAME`, `AWS_REGION`, `AWS_DEFAULT_REGION` |
//! | endpoints and authorities | any key containing `ENDPOINT_URL`; `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONTAINER_*`, `AWS_EC2_METADATA_*`, `AZURE_POD_IDENTITY_AUTHORITY_HOST`, `AZURE_REGIONAL_AUTHORITY_NAME`, `AZURE_TOKEN_CREDENTIALS`, `AZURE_CONFIG_DIR`, `IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, `IDENTITY_SERVER_THUMBPRINT`, `IMDS_ENDPOINT`, `MSI_ENDPOINT`, `MSI_SECRET`, `GCE_METADATA_HOST`, `GCE_METADATA_IP`, `GCE_METADATA_ROOT`, `GOOGLE_CLOUD_UNIVERSE_DOMAIN`, `GOOGLE_VERTEX_BASE_URL`, `GOOGLE_GEMINI_BASE_URL`, `GOOGLE_API_USE_CLIENT_CERTIFICATE`, `GOOGLE_API_USE_MTLS_ENDPOINT`, `CLOUDSDK_*` |
//! | proxies | `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, `FTP_PROXY`, `GRPC_PROXY`, `SOCKS_PROXY`, `SOCKS5_PROXY`, `WS_PROXY`, `WSS_PROXY`, `NODE_USE_ENV_PROXY`, `GLOBAL_AGENT_*` |
//! | TLS trust | `SSL_CERT_FILE`, `SSL_CERT_DIR`, `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`, `AWS_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`, `NODE_TLS_REJECT_UNAUTHORIZED`, `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`, `HTTPLIB2_CA_CERTS`, `GIT_SSL_CAINFO`, `GIT_SSL_CAPATH`, `GIT_SSL_NO_VERIFY`, `SSLKEYLOGFILE`, `OPENSSL_CONF`, `OPENSSL_ENGINES`, `OPENSSL_MODULES` |
//! | loader and interpreter hooks | `LD_*`, `DYLD_*`, `PATH`, `BASH_ENV`, `ENV`, `SHELLOPTS`, `BASHOPTS`, `PS4`, `IFS`, `GCONV_PATH`, `GLIBC_TUNABLES`, `PYTHON*`, `NODE_OPTIONS`, `NODE_PATH`, `NODE_REPL_EXTERNAL_MODULE`, `PERL5OPT`, `PERL5LIB`, `PERLLIB`, `PERL5DB`, `RUBYOPT`, `RUBYLIB`, `JAVA_TOOL_OPTIONS`, `_JAVA_OPTIONS`, `JDK_JAVA_OPTIONS`, `CLASSPATH`, `GIT_SSH`, `GIT_SSH_COMMAND`, `GIT_EXEC_PATH`, `GIT_ASKPASS`, `GIT_PROXY_COMMAND`, `GIT_CONFIG_*` |
//! | Keyward's own | `KEYWARD_*` |
//! | static credentials | `GOOGLE_API_KEY`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_SECURITY_TOKEN`, `AWS_PROFILE`, `AWS_DEFAULT_PROFILE`, `AZURE_CLIENT_SECRET`, `AZURE_CLIENT_CERTIFICATE_PATH`, `AZURE_CLIENT_CERTIFICATE_PASSWORD`, `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN`, `AZURE_USERNAME`, `AZURE_PASSWORD` |
//!
//! `GOOGLE_CLOUD_LOCATION` is not reserved: SPEC §5 has it come from the connection's env.
//! `AZURE_OPENAI_ENDPOINT` and the providers' `*_BASE_URL` other than Google's are not reserved
//! either: they are how a connection names its model endpoint.

/// Why `key` may not be set by an environment variable or a connection's `env`, with what to do
/// instead; `None` for a key anyone with the right to edit variables may set.
pub fn reserved(key: &str) -> Option<&'static str> {
    let upper = key.to_ascii_uppercase();
    let k = upper.as_str();
    let prefixed = |prefixes: &[&str]| prefixes.iter().any(|p| k.starts_with(p));
    if RUNTIME.contains(&k) {
        return Some(
            "keyward run sets it from the automation's workload identity config, and nothing may override it; change the workload identity config instead",
        );
    }
    if k.contains("ENDPOINT_URL")
        || ENDPOINTS.contains(&k)
        || prefixed(&["AWS_CONTAINER_", "AWS_EC2_METADATA_", "CLOUDSDK_"])
    {
        return Some(
            "it redirects a cloud SDK's endpoint, authority or credential source, which would send the federated token elsewhere; endpoint overrides for tests go in KEYWARD_CLOUD_ENDPOINTS on the host that runs keyward run",
        );
    }
    if PROXIES.contains(&k) || prefixed(&["GLOBAL_AGENT_"]) {
        return Some(
            "it routes the crew's traffic, tokens included, through a proxy; set proxies in the environment of the host or container that runs keyward run (it passes them on)",
        );
    }
    if TLS.contains(&k) {
        return Some(
            "it changes which TLS certificates the crew trusts; set it in the environment of the host or container that runs keyward run (it passes it on)",
        );
    }
    if HOOKS.contains(&k) || prefixed(&["LD_", "DYLD_", "PYTHON", "GIT_CONFIG_"]) {
        return Some(
            "it makes the loader, a shell or an interpreter run code of its own choosing in the crew; set it in the crew's image or in the environment of the host that runs keyward run",
        );
    }
    if k.starts_with("KEYWARD_") {
        return Some("KEYWARD_* variables belong to Keyward's own programs; use another name");
    }
    if k == "GOOGLE_API_KEY" {
        return Some(
            "a Google API key is never passed to the crew: a Vertex connection authenticates with workload identity; for the Gemini API with a key, use GEMINI_API_KEY",
        );
    }
    if STATIC.contains(&k) {
        return Some(
            "a static cloud credential would make the SDK use it instead of the federated identity, so keyward run removes it; use a workload identity config, or store the value under a name the SDKs do not read",
        );
    }
    None
}

/// Set by `keyward run` from the kickoff plan (runtime `env.rs`), besides the endpoint and CA
/// variables, which their own groups cover.
const RUNTIME: &[&str] = &[
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_AUTHORITY_HOST",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
];

const ENDPOINTS: &[&str] = &[
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "AZURE_REGIONAL_AUTHORITY_NAME",
    "AZURE_TOKEN_CREDENTIALS",
    "AZURE_CONFIG_DIR",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "GCE_METADATA_HOST",
    "GCE_METADATA_IP",
    "GCE_METADATA_ROOT",
    "GOOGLE_CLOUD_UNIVERSE_DOMAIN",
    "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_API_USE_CLIENT_CERTIFICATE",
    "GOOGLE_API_USE_MTLS_ENDPOINT",
];

const PROXIES: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "FTP_PROXY",
    "GRPC_PROXY",
    "SOCKS_PROXY",
    "SOCKS5_PROXY",
    "WS_PROXY",
    "WSS_PROXY",
    "NODE_USE_ENV_PROXY",
];

const TLS: &[&str] = &[
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "AWS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "NODE_TLS_REJECT_UNAUTHORIZED",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "HTTPLIB2_CA_CERTS",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "GIT_SSL_NO_VERIFY",
    "SSLKEYLOGFILE",
    "OPENSSL_CONF",
    "OPENSSL_ENGINES",
    "OPENSSL_MODULES",
];

const HOOKS: &[&str] = &[
    "PATH",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "IFS",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_REPL_EXTERNAL_MODULE",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "PERL5DB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
    "GIT_ASKPASS",
    "GIT_PROXY_COMMAND",
];

/// The static credentials `keyward run` removes from its own environment (runtime `env.rs`).
const STATIC: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
];

#[cfg(test)]
mod tests {
    use super::reserved;

    #[test]
    fn the_review_and_trial_keys_are_reserved_in_any_case() {
        for key in [
            // Runtime-owned identity (trial B1).
            "GOOGLE_APPLICATION_CREDENTIALS",
            "GOOGLE_CLOUD_PROJECT",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_ID",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_ROLE_SESSION_NAME",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            // Endpoint and authority overrides (review H4).
            "AWS_ENDPOINT_URL_STS",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            "aws_endpoint_url_sts",
            "AZURE_AUTHORITY_HOST",
            "GOOGLE_VERTEX_BASE_URL",
            "GCE_METADATA_HOST",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE",
            // Proxies, both cases.
            "HTTP_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "no_proxy",
            // CA bundles.
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "AWS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
            // Loader and interpreter hooks.
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "DYLD_INSERT_LIBRARIES",
            "PATH",
            "Path",
            "BASH_ENV",
            "ENV",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "NODE_OPTIONS",
            "PERL5OPT",
            "PERL5LIB",
            "RUBYOPT",
            "JAVA_TOOL_OPTIONS",
            // Keyward's own and static credentials.
            "KEYWARD_AUTOMATION_TOKEN",
            "KEYWARD_URL",
            "keyward_token",
            "GOOGLE_API_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AZURE_CLIENT_SECRET",
            "AZURE_PASSWORD",
        ] {
            let why = reserved(key).unwrap_or_else(|| panic!("{key} must be reserved"));
            assert!(why.len() > 40, "{key}: the reason says what to do: {why}");
        }
    }

    #[test]
    fn ordinary_and_connection_keys_are_not_reserved() {
        for key in [
            "GOOGLE_CLOUD_LOCATION",
            "GOOGLE_GENAI_USE_VERTEXAI",
            "AZURE_OPENAI_ENDPOINT",
            "AZURE_OPENAI_API_VERSION",
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "GEMINI_API_KEY",
            "DATABASE_URL",
            "DB_PASSWORD",
            "NODE_ENV",
            "PATHS",
            "MY_PATH",
            "ENVIRONMENT",
            "LOG_LEVEL",
            "_",
        ] {
            assert_eq!(reserved(key), None, "{key} is an ordinary variable");
        }
    }

    #[test]
    fn the_reason_says_what_to_use_instead() {
        let why = reserved("GOOGLE_API_KEY").unwrap();
        assert!(why.contains("GEMINI_API_KEY"), "{why}");
        let why = reserved("AWS_ROLE_ARN").unwrap();
        assert!(why.contains("workload identity config"), "{why}");
        let why = reserved("HTTPS_PROXY").unwrap();
        assert!(why.contains("keyward run"), "{why}");
    }
}
