//! Pushing a [`Store`] (built in memory or read from an OCI layout) to a registry, with its
//! exact bytes so every digest is kept.
//!
//! Order: every blob (skipped when the registry has it, mounted from another repository when
//! asked and allowed), then every manifest and index by digest, children first, and only then the
//! tags. A push that fails part-way therefore never leaves a tag pointing at an incomplete image.
//! With a signing key ([`PushOptions::signer`]), every manifest and index is signed
//! ([`crate::sign`]) and its signature put under `sha256-<hex>.sig` after the manifests and
//! before any tag, so no release is ever tagged unsigned. [`Reader`] reads manifests and blobs
//! back, for checking signatures.
//! Transient failures (HTTP 5xx, lost connections) are retried with exponential backoff.

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::registry::{Client, HttpError};
use super::trust::Trust;

use super::Blob;
use super::store::{Plan, Store};
use crate::cosign::{self, SignatureImage};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::sign::Signer;

/// Where to push: a registry and a repository in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `host[:port]`.
    pub registry: String,
    /// Repository path (`acme/app-flash`).
    pub repository: String,
}

impl Destination {
    /// The same registry, repository `<repository>/<child>`.
    pub fn child(&self, child: &str) -> Result<Destination> {
        format!("{self}/{child}").parse()
    }

    /// Whether the registry is on this machine (loopback), where plain HTTP is allowed.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => self.registry.split(':').next().unwrap_or(&self.registry),
        };
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

impl FromStr for Destination {
    type Err = Error;

    /// Parses `REGISTRY[:PORT]/REPOSITORY`; the registry must be named.
    fn from_str(s: &str) -> Result<Destination> {
        let usage = |problem: &str| {
            Error::Usage(format!(
                "'{s}': {problem}: give REGISTRY/REPOSITORY, e.g. registry.example.com/acme/app-flash or 127.0.0.1:5000/app (tags go in --tag)"
            ))
        };
        let (registry, repository) = s.split_once('/').ok_or_else(|| usage("no repository"))?;
        let host_like = registry.contains('.') || registry.contains(':') || registry == "localhost";
        if !host_like {
            return Err(usage("the first part is not a registry host"));
        }
        if repository
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':') || last.contains('@'))
        {
            return Err(usage("the repository carries a tag or digest"));
        }
        check_repository(repository)?;
        Ok(Destination {
            registry: registry.to_string(),
            repository: repository.to_string(),
        })
    }
}

/// Checks a repository name against the distribution spec: lowercase path components of
/// letters and digits joined by `.`, `_`, `__` or dashes, separated by `/`, at most 255 characters
/// with the registry.
pub fn check_repository(repository: &str) -> Result<()> {
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return false;
        }
        // Separators: '.', '_', '__' or any run of '-', between alphanumerics.
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            let sep = &c[start..i];
            let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
            if !ok {
                return false;
            }
        }
        true
    };
    if repository.len() <= 255 && repository.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "repository name '{repository}' is invalid: use lowercase letters and digits, separated by '.', '_', '-' or '/', at most 255 characters"
        )))
    }
}

/// How to reach and authenticate to the registry.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Use plain HTTP (also chosen by itself for a loopback registry that does not speak TLS).
    pub insecure: bool,
    /// Extra CA certificates (PEM) trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Docker's per-registry certificate directory (`/etc/docker/certs.d`): the `*.crt` files
    /// of `<dir>/<host:port>/` are trusted for that registry. `None` reads none.
    pub certs_dir: Option<PathBuf>,
    /// Credentials; `None` pushes anonymously.
    pub credentials: Option<Credentials>,
    /// How many times a transient failure is retried (backoff 0.5 s, 1 s, 2 s, ...).
    pub retries: u32,
    /// Repositories of the same registry to mount missing blobs from before uploading them.
    pub mount_from: Vec<String>,
    /// Key to sign every pushed manifest and index with (cosign format); `None` signs nothing.
    pub signer: Option<Signer>,
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs the registry already had.
    pub present: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Manifests and indexes put by digest.
    pub manifests: usize,
    /// Tags put, with the digest each points at.
    pub tags: Vec<(String, String)>,
    /// Signature tags put (`sha256-<hex>.sig`), with the digest each signs.
    pub signatures: Vec<(String, String)>,
}

/// Pushes every tag of `store` to `dest`: the blobs, then the manifests and indexes by digest,
/// then their signatures (with [`PushOptions::signer`]), then the tags.
pub fn push(store: &Store, dest: &Destination, options: &PushOptions) -> Result<PushReport> {
    let mut plan = store
        .plan()
        .map_err(|e| Error::Usage(format!("{e}: the image to push is incomplete; rebuild it")))?;
    if plan.tags.is_empty() {
        return Err(Error::Usage("nothing to push: the image has no tag".into()));
    }
    for repo in &options.mount_from {
        check_repository(repo)?;
    }
    let signatures = match &options.signer {
        Some(signer) => sign(&plan, dest, signer),
        None => Vec::new(),
    };
    add_signatures(&mut plan, &signatures);
    runtime()?.block_on(async {
        let pusher = Pusher::connect(dest, options, Access::Push).await?;
        pusher.send(&plan).await
    })
}

/// The single-threaded runtime the registry client runs on.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the network runtime ({e})")))
}

/// A signature, by `signer`, of every manifest and index `plan` puts, for `dest`.
fn sign(plan: &Plan<'_>, dest: &Destination, signer: &Signer) -> Vec<SignatureImage> {
    let repository = cosign::docker_reference(&dest.registry, &dest.repository);
    plan.manifests
        .iter()
        .map(|m| signer.signature_image(&repository, m.digest()))
        .collect()
}

/// Adds `signatures` to `plan`: their configs and payloads go with the other blobs (each once),
/// their manifests under their `.sig` tags.
fn add_signatures<'a>(plan: &mut Plan<'a>, signatures: &'a [SignatureImage]) {
    for image in signatures {
        for blob in [&image.config, &image.payload] {
            if !plan.blobs.iter().any(|b| b.digest() == blob.digest()) {
                plan.blobs.push(blob);
            }
        }
        plan.signatures.push((&image.tag, &image.manifest));
    }
}

/// Environment variable naming the directory of per-registry certificates, as Docker's
/// `/etc/docker/certs.d` (the default).
pub const CERTS_DIR_ENV: &str = "IMAGEGEN_DOCKER_CERTS_D";

/// The directory of per-registry certificates: [`CERTS_DIR_ENV`], else `/etc/docker/certs.d`.
pub fn certs_dir() -> PathBuf {
    std::env::var_os(CERTS_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/etc/docker/certs.d"), PathBuf::from)
}

/// The certificates trusted for `dest` besides the system roots, as Docker trusts them: every
/// `*.crt` in `<certs_dir>/<host:port>/`, and `--ca-file`.
fn trust(dest: &Destination, options: &PushOptions) -> Result<Trust> {
    let mut files = Vec::new();
    if let Some(dir) = &options.certs_dir {
        let dir = dir.join(&dest.registry);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                .collect();
            found.sort();
            files.extend(found);
        }
    }
    files.extend(options.ca_file.iter().cloned());
    Trust::from_files(&files)
}

/// What a connection is for: the access asked of a token service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Pull and push (and pull from `--mount-from`).
    Push,
    /// Pull only.
    Pull,
}

/// A connected client and what it needs to explain failures.
struct Pusher<'a> {
    client: Client,
    dest: &'a Destination,
    options: &'a PushOptions,
    /// Whether the client speaks plain HTTP.
    plain_http: bool,
}

impl<'a> Pusher<'a> {
    /// Builds the client, chooses HTTPS or (for `--insecure`, or a loopback registry that does
    /// not speak TLS) HTTP, and logs in.
    async fn connect(
        dest: &'a Destination,
        options: &'a PushOptions,
        access: Access,
    ) -> Result<Pusher<'a>> {
        let tls = trust(dest, options)?.client_config()?;
        let client = |plain_http: bool| {
            Client::new(
                tls.clone(),
                plain_http,
                &dest.registry,
                &dest.repository,
                &options.mount_from,
                options.credentials.clone(),
            )
            .map(|c| match access {
                Access::Push => c,
                Access::Pull => c.pull_only(),
            })
        };
        let mut pusher = Pusher {
            client: client(options.insecure).map_err(|e| Pusher::failed(dest, options, e))?,
            dest,
            options,
            plain_http: options.insecure,
        };
        match retrying(options.retries, || pusher.client.login()).await {
            Ok(()) => Ok(pusher),
            Err(e) if !options.insecure && dest.is_loopback() && speaks_plain_http(&e) => {
                pusher.client = client(true).map_err(|e| pusher.explain(e, "connecting"))?;
                pusher.plain_http = true;
                retrying(options.retries, || pusher.client.login())
                    .await
                    .map_err(|e| pusher.explain(e, "connecting"))?;
                Ok(pusher)
            }
            Err(e) => Err(pusher.explain(e, "connecting")),
        }
    }

    /// The error for a client that could not even be built.
    fn failed(dest: &Destination, options: &PushOptions, e: HttpError) -> Error {
        let _ = options;
        Error::Registry {
            registry: dest.to_string(),
            problem: format!("cannot set up the connection ({e})"),
            fix: "check --ca-file and the certs.d directory".into(),
        }
    }

    /// Sends the plan in the one order that never leaves a tag on an incomplete image: every
    /// blob, then every manifest and index by digest (children first), then their signatures,
    /// then the tags.
    async fn send(&self, plan: &Plan<'_>) -> Result<PushReport> {
        let mut report = PushReport::default();
        for blob in &plan.blobs {
            self.send_blob(blob, &mut report).await?;
        }
        for manifest in &plan.manifests {
            self.put_manifest(
                manifest.digest(),
                manifest,
                &format!("putting manifest {}", manifest.digest()),
            )
            .await?;
            report.manifests += 1;
        }
        for (tag, manifest) in &plan.signatures {
            self.put_signature(tag, manifest, &mut report).await?;
            report
                .signatures
                .push((tag.to_string(), cosign::signed_digest(tag)));
        }
        for (tag, manifest) in &plan.tags {
            self.put_manifest(tag, manifest, &format!("tagging {tag}"))
                .await?;
            report
                .tags
                .push((tag.to_string(), manifest.digest().to_string()));
        }
        Ok(report)
    }

    /// Puts the signature manifest `manifest` under `tag`, keeping the signatures the tag holds
    /// already (another key's): the new layer is appended to them, with a new config; nothing
    /// is put when the tag has this very signature.
    async fn put_signature(
        &self,
        tag: &str,
        manifest: &Blob,
        report: &mut PushReport,
    ) -> Result<()> {
        let step = format!("putting the signature {tag}");
        let c = &self.client;
        let existing = retrying(self.options.retries, || c.manifest(tag, &ACCEPTED))
            .await
            .map_err(|e| self.explain(e, &step))?;
        let Some(existing) = existing else {
            return self.put_manifest(tag, manifest, &step).await;
        };
        match cosign::append_signatures(&existing, manifest.bytes()) {
            Some((config, merged)) => {
                self.send_blob(&config, report).await?;
                self.put_manifest(tag, &merged, &step).await
            }
            None => Ok(()),
        }
    }

    /// Sends one blob unless the registry has it or can mount it from `--mount-from`.
    async fn send_blob(&self, blob: &Blob, report: &mut PushReport) -> Result<()> {
        let retries = self.options.retries;
        let c = &self.client;
        let digest = blob.digest();
        let step = format!("checking blob {digest}");
        if retrying(retries, || c.blob_exists(digest))
            .await
            .map_err(|e| self.explain(e, &step))?
        {
            report.present += 1;
            return Ok(());
        }
        for from in &self.options.mount_from {
            if c.mount(digest, from).await {
                report.mounted += 1;
                return Ok(());
            }
        }
        let step = format!("uploading blob {digest}");
        retrying(retries, || c.upload(digest, blob.bytes()))
            .await
            .map_err(|e| self.explain(e, &step))?;
        report.uploaded += 1;
        Ok(())
    }

    /// Puts the manifest or index `manifest` at `reference` (its digest or a tag), with
    /// retries.
    async fn put_manifest(&self, reference: &str, manifest: &Blob, step: &str) -> Result<()> {
        let media_type = manifest.media_type().to_string();
        retrying(self.options.retries, || {
            self.client
                .put_manifest(reference, &media_type, manifest.bytes())
        })
        .await
        .map_err(|e| self.explain(e, step))
    }

    /// How often a failed step was retried, for messages.
    fn retried(&self) -> String {
        match self.options.retries {
            0 => "not retried (--retries 0)".into(),
            1 => "after 1 retry".into(),
            n => format!("after {n} retries"),
        }
    }

    /// One line naming the problem and its fix.
    fn explain(&self, e: HttpError, step: &str) -> Error {
        let (problem, fix) = self.describe(&Failure::of(&e, self.plain_http), step);
        Error::Registry {
            registry: self.dest.to_string(),
            problem,
            fix,
        }
    }

    /// The problem and the fix for `failure` while doing `step`.
    fn describe(&self, failure: &Failure, step: &str) -> (String, String) {
        let dest = self.dest;
        let (problem, fix) = match failure {
            Failure::NameInvalid => (
                format!(
                    "the registry rejected the repository name '{}'",
                    dest.repository
                ),
                "choose a repository name the registry accepts (lowercase, and under a project or namespace you own)",
            ),
            Failure::TagInvalid => (
                format!("the registry rejected a tag while {step}"),
                "use tags of letters, digits, '_', '.' and '-'",
            ),
            Failure::Unauthorized => return self.unauthorized(step),
            Failure::Denied => (
                format!("access denied (403) to {} while {step}", dest.repository),
                "give the account push rights to this repository, or push to one it may write",
            ),
            Failure::NotFound => (
                format!("not found (404) while {step}"),
                "check the registry address and the repository path (some registries need the project created first)",
            ),
            Failure::SpeaksHttps => (
                "the registry speaks HTTPS, not plain HTTP".into(),
                "drop --insecure (and pass --ca-file if its certificate is private)",
            ),
            Failure::ServerError(code) => (
                format!(
                    "the registry failed (HTTP {code}) while {step}, {}",
                    self.retried()
                ),
                "try again later, and check the registry's logs and storage",
            ),
            Failure::Untrusted(detail) => (
                format!("its TLS certificate is not trusted ({detail})"),
                "pass the CA that signed it with --ca-file FILE (PEM), put it in /etc/docker/certs.d/HOST:PORT/ca.crt, or add that CA to the system roots",
            ),
            Failure::Unreachable(detail) => (
                format!(
                    "cannot reach the registry ({detail}) while {step}, {}",
                    self.retried()
                ),
                "check that it is running and that the address and port are right, then push again",
            ),
            Failure::Other { detail, body } => (
                format!(
                    "{step} failed ({detail}{}{body})",
                    if body.is_empty() { "" } else { ": " }
                ),
                "check the registry and push again",
            ),
        };
        (problem, fix.into())
    }

    /// The problem and the fix for a 401: the credentials used, or how to give some.
    fn unauthorized(&self, step: &str) -> (String, String) {
        match &self.options.credentials {
            Some(c) => (
                format!(
                    "authentication failed (401) for user '{}' from {} while {step}",
                    c.username, c.origin
                ),
                "check the user name and password (or token)".into(),
            ),
            None => (
                format!("the registry requires authentication (401) while {step}"),
                "log in with docker login, set IMAGEGEN_REGISTRY_USERNAME and IMAGEGEN_REGISTRY_PASSWORD, or pass --username and --password-stdin".into(),
            ),
        }
    }
}

/// Media types asked for when reading manifests.
const ACCEPTED: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Reads manifests and blobs of one repository (pull access only), each blob checked against
/// its digest.
pub struct Reader<'a> {
    runtime: tokio::runtime::Runtime,
    pusher: Pusher<'a>,
}

impl<'a> Reader<'a> {
    /// Connects to `dest` for reading, with the trust and credentials of `options`.
    pub fn connect(dest: &'a Destination, options: &'a PushOptions) -> Result<Reader<'a>> {
        let runtime = runtime()?;
        let pusher = runtime.block_on(Pusher::connect(dest, options, Access::Pull))?;
        Ok(Reader { runtime, pusher })
    }

    /// The bytes of the manifest `reference` (a tag or a digest); `None` when there is none.
    pub fn manifest(&self, reference: &str) -> Result<Option<Vec<u8>>> {
        let p = &self.pusher;
        self.runtime
            .block_on(retrying(p.options.retries, || {
                p.client.manifest(reference, &ACCEPTED)
            }))
            .map_err(|e| p.explain(e, &format!("reading {reference}")))
    }

    /// The bytes of the blob `digest`, checked against it.
    pub fn blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = &self.pusher;
        let bytes = self
            .runtime
            .block_on(retrying(p.options.retries, || p.client.blob(digest)))
            .map_err(|e| p.explain(e, &format!("reading blob {digest}")))?;
        if cosign::digest(&bytes) != digest {
            return Err(Error::Registry {
                registry: p.dest.to_string(),
                problem: format!("blob {digest} does not match its digest"),
                fix: "check the registry's storage".into(),
            });
        }
        Ok(bytes)
    }
}

/// What a failed registry request means for the user, most specific first.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The registry refused the repository name.
    NameInvalid,
    /// The registry refused a tag.
    TagInvalid,
    /// 401: no or wrong credentials.
    Unauthorized,
    /// 403: the account may not push here.
    Denied,
    /// 404.
    NotFound,
    /// A 400 to plain HTTP: the registry wants TLS.
    SpeaksHttps,
    /// HTTP 5xx.
    ServerError(u16),
    /// The TLS certificate was refused (the reason).
    Untrusted(String),
    /// No connection (the reason).
    Unreachable(String),
    /// Anything else: the innermost error and the registry's answer.
    Other {
        /// The innermost error.
        detail: String,
        /// The registry's answer, on one line.
        body: String,
    },
}

impl Failure {
    /// Classifies `e`; `plain_http` tells whether the request went over plain HTTP.
    fn of(e: &HttpError, plain_http: bool) -> Failure {
        match e {
            HttpError::Transport(detail) if is_certificate_error(detail) => {
                Failure::Untrusted(detail.clone())
            }
            HttpError::Transport(detail) => Failure::Unreachable(detail.clone()),
            HttpError::Status { status, body } => {
                let codes = body.to_ascii_uppercase();
                match *status {
                    _ if codes.contains("NAME_INVALID") => Failure::NameInvalid,
                    _ if codes.contains("TAG_INVALID") => Failure::TagInvalid,
                    401 => Failure::Unauthorized,
                    _ if *status == 403 || codes.contains("DENIED") => Failure::Denied,
                    404 => Failure::NotFound,
                    400 if plain_http => Failure::SpeaksHttps,
                    500.. => Failure::ServerError(*status),
                    _ => Failure::Other {
                        detail: e.to_string(),
                        body: body.clone(),
                    },
                }
            }
        }
    }
}

fn is_certificate_error(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("certificate") || d.contains("unknownissuer")
}

/// Whether a TLS attempt failed because the server answered in plain HTTP.
fn speaks_plain_http(e: &HttpError) -> bool {
    let HttpError::Transport(detail) = e else {
        return false;
    };
    let d = detail.to_ascii_lowercase();
    d.contains("invalidcontenttype") || d.contains("corrupt message")
}

/// Whether `e` may go away by itself: HTTP 5xx or a lost connection (not a TLS refusal).
fn transient(e: &HttpError) -> bool {
    match e {
        HttpError::Status { status, .. } => *status >= 500,
        HttpError::Transport(detail) => !is_certificate_error(detail) && !speaks_plain_http(e),
    }
}

/// Runs `f` until it succeeds, fails for good, or `retries` retries of transient failures are
/// spent, waiting 0.5 s, 1 s, 2 s, ... in between.
async fn retrying<T, F, Fut>(retries: u32, mut f: F) -> std::result::Result<T, HttpError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, HttpError>>,
{
    let mut delay = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if attempt < retries && transient(&e) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let d: Destination = "127.0.0.1:5000/acme/app-flash".parse().unwrap();
        assert_eq!(d.registry, "127.0.0.1:5000");
        assert_eq!(d.repository, "acme/app-flash");
        assert!(d.is_loopback());
        assert!(
            !"ghcr.io/acme/app"
                .parse::<Destination>()
                .unwrap()
                .is_loopback()
        );
        assert!(
            "localhost:5000/x"
                .parse::<Destination>()
                .unwrap()
                .is_loopback()
        );
        assert!("[::1]:5000/x".parse::<Destination>().unwrap().is_loopback());
        for bad in [
            "app",
            "acme/app",
            "ghcr.io/acme/app:1.0",
            "ghcr.io/Acme/app",
            "ghcr.io/a//b",
        ] {
            assert!(bad.parse::<Destination>().is_err(), "{bad}");
        }
    }

    #[test]
    fn retries_server_errors_but_not_refusals() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let error = |status| HttpError::Status {
            status,
            body: String::new(),
        };
        let mut calls = 0;
        let result = runtime.block_on(retrying(3, || {
            calls += 1;
            let r = if calls < 3 {
                Err(error(503))
            } else {
                Ok(calls)
            };
            async move { r }
        }));
        assert_eq!(result.unwrap(), 3, "two 503s retried, then success");
        let mut calls = 0;
        let result: std::result::Result<(), _> = runtime.block_on(retrying(3, || {
            calls += 1;
            async { Err(error(401)) }
        }));
        assert!(result.is_err());
        assert_eq!(calls, 1, "a 401 is not retried");
    }

    #[test]
    fn repository_names() {
        for good in ["a", "acme/app-flash", "a.b_c__d---e/f0"] {
            check_repository(good).unwrap();
        }
        for bad in [
            "",
            "A",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "a b",
            "a/",
            &"a".repeat(256),
        ] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
    }
}
