//! Registry credentials: from flags, from the environment, or from the Docker config file
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), including its credential
//! helpers. Passwords are never printed: [`Credentials`] shows only the user name.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::Value;

use crate::error::{Error, Result, read};

/// Environment variable holding the registry user name.
pub const USERNAME_ENV: &str = "IMAGEGEN_REGISTRY_USERNAME";
/// Environment variable holding the registry password or token.
pub const PASSWORD_ENV: &str = "IMAGEGEN_REGISTRY_PASSWORD";

/// A user name and password (or access token) for HTTP basic authentication.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    password: String,
    /// Where they came from, for messages (`--username`, `docker config /root/.docker/config.json`).
    pub origin: String,
}

impl Credentials {
    /// Credentials from `origin`.
    pub fn new(username: String, password: String, origin: impl Into<String>) -> Credentials {
        Credentials {
            username,
            password,
            origin: origin.into(),
        }
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("origin", &self.origin)
            .finish()
    }
}

/// Finds the credentials for `registry` (`host[:port]`): the flags if given, else
/// [`USERNAME_ENV`]/[`PASSWORD_ENV`], else the Docker config file. `None` means anonymous.
pub fn resolve(
    registry: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<Option<Credentials>> {
    match (username, password) {
        (Some(u), Some(p)) => return Ok(Some(Credentials::new(u.into(), p.into(), "--username"))),
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::Usage(
                "--username and --password-stdin go together: give both, or neither to use the environment or the Docker config".into(),
            ));
        }
        (None, None) => {}
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (env(USERNAME_ENV), env(PASSWORD_ENV)) {
        (Some(u), Some(p)) => return Ok(Some(Credentials::new(u, p, USERNAME_ENV))),
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::Usage(format!(
                "only one of {USERNAME_ENV} and {PASSWORD_ENV} is set: set both, or neither"
            )));
        }
        (None, None) => {}
    }
    match docker_config_path() {
        Some(path) if path.is_file() => from_docker_config(&path, registry),
        _ => Ok(None),
    }
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(Path::new(&dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker/config.json"))
}

/// The host (and port) of a Docker config `auths` key, which may be a URL.
fn config_key_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// Whether a Docker config key names `registry` (Docker Hub has several spellings).
fn same_registry(key: &str, registry: &str) -> bool {
    let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    let host = config_key_host(key);
    host == registry || (hub(host) && hub(registry))
}

/// Reads the credentials for `registry` from the Docker config file at `path`.
pub fn from_docker_config(path: &Path, registry: &str) -> Result<Option<Credentials>> {
    let bad = |problem: String| {
        Error::input(
            path,
            problem,
            "fix the file (docker login rewrites it) or point DOCKER_CONFIG at another directory",
        )
    };
    let config: Value =
        serde_json::from_slice(&read(path)?).map_err(|e| bad(format!("not valid JSON ({e})")))?;
    let origin = format!("Docker config {}", path.display());

    let helper = config["credHelpers"]
        .as_object()
        .and_then(|h| h.iter().find(|(k, _)| same_registry(k, registry)))
        .and_then(|(_, v)| v.as_str());
    if let Some(helper) = helper {
        return from_helper(helper, registry);
    }
    let entry = config["auths"]
        .as_object()
        .and_then(|a| a.iter().find(|(k, _)| same_registry(k, registry)))
        .map(|(_, v)| v);
    if let Some(entry) = entry {
        if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "the \"auth\" entry for {registry} is not base64 of user:password"
                    ))
                })?;
            let (u, p) = decoded.split_once(':').ok_or_else(|| {
                bad(format!(
                    "the \"auth\" entry for {registry} is not base64 of user:password"
                ))
            })?;
            return Ok(Some(Credentials::new(u.into(), p.into(), origin)));
        }
        if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
            return Ok(Some(Credentials::new(u.into(), p.into(), origin)));
        }
    }
    match config["credsStore"].as_str().filter(|s| !s.is_empty()) {
        Some(store) => from_helper(store, registry),
        None => Ok(None),
    }
}

/// Asks `docker-credential-<helper> get` for the credentials of `registry`.
fn from_helper(helper: &str, registry: &str) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{helper}");
    let fail = |problem: String| Error::Registry {
        registry: registry.to_string(),
        problem,
        fix: format!(
            "install {program} or remove it from the Docker config, or pass --username/--password-stdin"
        ),
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run the credential helper {program} ({e})")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("the credential helper {program} failed ({e})")))?;
    if !out.status.success() {
        // Helpers answer "credentials not found" for registries they do not know.
        return Ok(None);
    }
    let reply: Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        fail(format!(
            "the credential helper {program} gave no JSON answer"
        ))
    })?;
    let (Some(u), Some(p)) = (reply["Username"].as_str(), reply["Secret"].as_str()) else {
        return Ok(None);
    };
    if u == "<token>" {
        return Err(fail(format!(
            "{program} holds an identity token, which imagegen cannot use"
        )));
    }
    Ok(Some(Credentials::new(
        u.into(),
        p.into(),
        format!("credential helper {program}"),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_and_never_shows_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://registry.example.com/v1/":{{"auth":"{auth}"}},"other:5000":{{"username":"u","password":"p"}}}}}}"#
            ),
        )
        .unwrap();
        let c = from_docker_config(&path, "registry.example.com")
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password()), ("ci", "s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        let c = from_docker_config(&path, "other:5000").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password()), ("u", "p"));
        assert!(from_docker_config(&path, "unknown.io").unwrap().is_none());
    }

    #[test]
    fn docker_hub_spellings() {
        assert!(same_registry("https://index.docker.io/v1/", "docker.io"));
        assert!(!same_registry("ghcr.io", "docker.io"));
    }
}
