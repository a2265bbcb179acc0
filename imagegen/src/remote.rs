//! Pushing an OCI layout to a registry, with the exact bytes of the layout so every digest is
//! kept.
//!
//! Order: every blob (skipped when the registry has it, mounted from another repository when
//! asked and allowed), then every manifest and index by digest, children first, and only then the
//! tags. A push that fails part-way therefore never leaves a tag pointing at an incomplete image.
//! With a signing key ([`PushOptions::signer`]), every manifest and index is signed
//! ([`crate::sign`]) and its signature put under `sha256-<hex>.sig` after the manifests and
//! before any release tag, so no release is ever tagged unsigned.
//! Transient failures (HTTP 5xx, lost connections) are retried with exponential backoff.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::Value;

use crate::cosign;
use crate::credentials::Credentials;
use crate::error::{Error, Result, read};
use crate::image::{REF_NAME, check_tag};
use crate::sign::Signer;
use crate::unpack::blob;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

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

    pub(crate) fn reference(&self, tag: &str) -> Reference {
        Reference::with_tag(self.registry.clone(), self.repository.clone(), tag.into())
    }

    pub(crate) fn at_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.registry.clone(),
            self.repository.clone(),
            digest.into(),
        )
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

/// A manifest or index read from the layout.
struct Document {
    digest: String,
    media_type: String,
    bytes: Vec<u8>,
}

/// Everything a push sends, in order.
struct Plan {
    blobs: Vec<(String, Vec<u8>)>,
    manifests: Vec<Document>,
    /// Signature manifests, each with its `sha256-<hex>.sig` tag and the digest it signs.
    signatures: Vec<(String, String, Document)>,
    tags: Vec<(String, usize)>,
}

/// Reads the layout at `layout` and lists what pushing `tags` (every tag when empty) sends:
/// each blob checked against its digest.
fn plan(layout: &Path, tags: &[String]) -> Result<Plan> {
    let index_path = layout.join("index.json");
    let index: Value = serde_json::from_slice(&read(&index_path)?).map_err(|e| {
        Error::input(
            &index_path,
            format!("not valid JSON ({e})"),
            "point --layout at an OCI image layout (imagegen build --output)",
        )
    })?;
    let refs: Vec<(String, Value)> = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| Some((d["annotations"][REF_NAME].as_str()?.to_string(), d.clone())))
        .collect();
    for tag in tags {
        if !refs.iter().any(|(t, _)| t == tag) {
            let known: Vec<&str> = refs.iter().map(|(t, _)| t.as_str()).collect();
            return Err(Error::input(
                &index_path,
                format!("has no tag '{tag}'"),
                format!("pick one of: {}", known.join(", ")),
            ));
        }
    }
    let selected: Vec<&(String, Value)> = refs
        .iter()
        .filter(|(t, _)| tags.is_empty() || tags.contains(t))
        .collect();
    if selected.is_empty() {
        return Err(Error::input(
            &index_path,
            "names no tag",
            "build the layout with imagegen build --output or imagegen ota --output",
        ));
    }
    let mut plan = Plan {
        blobs: Vec::new(),
        manifests: Vec::new(),
        signatures: Vec::new(),
        tags: Vec::new(),
    };
    let mut seen = BTreeSet::new();
    for (tag, desc) in selected {
        check_tag(tag)?;
        visit(layout, desc, &mut plan, &mut seen)?;
        let digest = desc["digest"].as_str().unwrap_or_default();
        let doc = plan
            .manifests
            .iter()
            .position(|m| m.digest == digest)
            .expect("visited");
        plan.tags.push((tag.clone(), doc));
    }
    Ok(plan)
}

/// Adds the manifest or index `desc` and everything below it to `plan`, children first.
fn visit(layout: &Path, desc: &Value, plan: &mut Plan, seen: &mut BTreeSet<String>) -> Result<()> {
    let digest = desc["digest"].as_str().unwrap_or_default().to_string();
    if !seen.insert(digest.clone()) {
        return Ok(());
    }
    let bytes = blob(layout, desc)?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::input(
            layout,
            format!("manifest {digest} is not valid JSON ({e})"),
            "rebuild the layout",
        )
    })?;
    let media_type = desc["mediaType"]
        .as_str()
        .or_else(|| doc["mediaType"].as_str())
        .unwrap_or(MANIFEST)
        .to_string();
    match media_type.as_str() {
        INDEX | DOCKER_LIST => {
            for child in doc["manifests"].as_array().into_iter().flatten() {
                visit(layout, child, plan, seen)?;
            }
        }
        MANIFEST | DOCKER_MANIFEST => {
            let parts = std::iter::once(&doc["config"])
                .chain(doc["layers"].as_array().into_iter().flatten());
            for part in parts {
                let d = part["digest"].as_str().unwrap_or_default().to_string();
                if seen.insert(d.clone()) {
                    plan.blobs.push((d, blob(layout, part)?));
                }
            }
        }
        other => {
            return Err(Error::input(
                layout,
                format!(
                    "{digest} has media type '{other}', which is neither a manifest nor an index"
                ),
                "rebuild the layout",
            ));
        }
    }
    plan.manifests.push(Document {
        digest,
        media_type,
        bytes,
    });
    Ok(())
}

/// Pushes the tags `tags` (every tag when empty) of the OCI layout at `layout` to `dest`.
pub fn push(
    layout: &Path,
    dest: &Destination,
    tags: &[String],
    options: &PushOptions,
) -> Result<PushReport> {
    let mut plan = plan(layout, tags)?;
    for repo in &options.mount_from {
        check_repository(repo)?;
    }
    if let Some(signer) = &options.signer {
        add_signatures(&mut plan, dest, signer);
    }
    runtime()?.block_on(async {
        let pusher = Pusher::connect(dest, options, RegistryOperation::Push).await?;
        pusher.send(&plan).await
    })
}

/// The single-threaded runtime the registry client runs on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the network runtime ({e})")))
}

/// Adds a signature of every manifest and index of `plan`: its two blobs (config and payload)
/// go with the others, its manifest under its `.sig` tag.
fn add_signatures(plan: &mut Plan, dest: &Destination, signer: &Signer) {
    let repository = cosign::docker_reference(&dest.registry, &dest.repository);
    for doc in &plan.manifests {
        let image = signer.signature_image(&repository, &doc.digest);
        for blob in [&image.config, &image.payload] {
            let digest = cosign::digest(blob);
            if !plan.blobs.iter().any(|(d, _)| *d == digest) {
                plan.blobs.push((digest, blob.clone()));
            }
        }
        let manifest = Document {
            digest: cosign::digest(&image.manifest),
            media_type: cosign::MANIFEST_MEDIA_TYPE.into(),
            bytes: image.manifest,
        };
        plan.signatures
            .push((image.tag, doc.digest.clone(), manifest));
    }
}

/// The credentials of `options` as the client takes them.
pub(crate) fn registry_auth(options: &PushOptions) -> RegistryAuth {
    match &options.credentials {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.password().to_string()),
        None => RegistryAuth::Anonymous,
    }
}

/// A connected client and what it needs to explain failures.
pub(crate) struct Pusher<'a> {
    pub(crate) client: Client,
    dest: &'a Destination,
    options: &'a PushOptions,
    /// Whether the client speaks plain HTTP.
    plain_http: bool,
}

impl<'a> Pusher<'a> {
    /// Builds the client, chooses HTTPS or (for `--insecure`, or a loopback registry that does
    /// not speak TLS) HTTP, and authenticates for `operation`.
    pub(crate) async fn connect(
        dest: &'a Destination,
        options: &'a PushOptions,
        operation: RegistryOperation,
    ) -> Result<Pusher<'a>> {
        // The ring provider: no C build of aws-lc. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut extra = Vec::new();
        if let Some(path) = &options.ca_file {
            let data = read(path)?;
            if !data
                .windows(27)
                .any(|w| w == b"-----BEGIN CERTIFICATE-----")
            {
                return Err(Error::input(
                    path,
                    "is not a PEM certificate",
                    "pass the registry's CA certificate in PEM form (-----BEGIN CERTIFICATE-----)",
                ));
            }
            extra.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let client = |protocol: ClientProtocol| {
            Client::new(ClientConfig {
                protocol,
                extra_root_certificates: extra.clone(),
                use_monolithic_push: true,
                connect_timeout: Some(Duration::from_secs(10)),
                read_timeout: Some(Duration::from_secs(120)),
                ..ClientConfig::default()
            })
        };
        let auth = registry_auth(options);
        let reference = dest.reference("latest");
        let mut pusher = Pusher {
            client: client(if options.insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            }),
            dest,
            options,
            plain_http: options.insecure,
        };
        let first = retrying(options.retries, || {
            pusher.client.auth(&reference, &auth, operation)
        })
        .await;
        match first {
            Ok(_) => Ok(pusher),
            Err(e) if !options.insecure && dest.is_loopback() && speaks_plain_http(&e) => {
                pusher.client = client(ClientProtocol::Http);
                pusher.plain_http = true;
                retrying(options.retries, || {
                    pusher.client.auth(&reference, &auth, operation)
                })
                .await
                .map_err(|e| pusher.explain(e, "connecting"))?;
                Ok(pusher)
            }
            Err(e) => Err(pusher.explain(e, "connecting")),
        }
    }

    /// Sends the plan: blobs, manifests by digest, then tags.
    async fn send(&self, plan: &Plan) -> Result<PushReport> {
        let mut report = PushReport::default();
        let retries = self.options.retries;
        let c = &self.client;
        for (digest, bytes) in &plan.blobs {
            let target = self.dest.at_digest(digest);
            let step = format!("checking blob {digest}");
            if retrying(retries, || c.blob_exists(&target, digest))
                .await
                .map_err(|e| self.explain(e, &step))?
            {
                report.present += 1;
                continue;
            }
            let mut mounted = false;
            for from in &self.options.mount_from {
                let source = Reference::with_digest(
                    self.dest.registry.clone(),
                    from.clone(),
                    digest.clone(),
                );
                if c.mount_blob(&target, &source, digest).await.is_ok() {
                    mounted = true;
                    break;
                }
            }
            if mounted {
                report.mounted += 1;
                continue;
            }
            let step = format!("uploading blob {digest}");
            retrying(retries, || c.push_blob(&target, bytes.clone(), digest))
                .await
                .map_err(|e| self.explain(e, &step))?;
            report.uploaded += 1;
        }
        for doc in &plan.manifests {
            let target = self.dest.at_digest(&doc.digest);
            let step = format!("putting manifest {}", doc.digest);
            retrying(retries, || self.put_manifest(&target, doc))
                .await
                .map_err(|e| self.explain(e, &step))?;
            report.manifests += 1;
        }
        for (tag, signed, doc) in &plan.signatures {
            let target = self.dest.reference(tag);
            let step = format!("putting the signature {tag}");
            retrying(retries, || self.put_manifest(&target, doc))
                .await
                .map_err(|e| self.explain(e, &step))?;
            report.signatures.push((tag.clone(), signed.clone()));
        }
        for (tag, doc) in &plan.tags {
            let doc = &plan.manifests[*doc];
            let target = self.dest.reference(tag);
            let step = format!("tagging {tag}");
            retrying(retries, || self.put_manifest(&target, doc))
                .await
                .map_err(|e| self.explain(e, &step))?;
            report.tags.push((tag.clone(), doc.digest.clone()));
        }
        Ok(report)
    }

    async fn put_manifest(
        &self,
        target: &Reference,
        doc: &Document,
    ) -> std::result::Result<String, OciDistributionError> {
        let content_type = doc
            .media_type
            .parse()
            .expect("media types are valid header values");
        self.client
            .push_manifest_raw(target, doc.bytes.clone(), content_type)
            .await
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
    pub(crate) fn explain(&self, e: OciDistributionError, step: &str) -> Error {
        let detail = root_cause(&e);
        let (code, body) = status(&e);
        let dest = self.dest;
        let creds_fix = "log in with docker login, set IMAGEGEN_REGISTRY_USERNAME and IMAGEGEN_REGISTRY_PASSWORD, or pass --username and --password-stdin";
        let (problem, fix): (String, String) = if body.contains("NAME_INVALID") {
            (
                format!("the registry rejected the repository name '{}'", dest.repository),
                "choose a repository name the registry accepts (lowercase, and under a project or namespace you own)".into(),
            )
        } else if body.contains("TAG_INVALID") {
            (
                format!("the registry rejected a tag while {step}"),
                "use tags of letters, digits, '_', '.' and '-'".into(),
            )
        } else if code == Some(401) || matches!(e, OciDistributionError::UnauthorizedError { .. }) {
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
                    creds_fix.into(),
                ),
            }
        } else if code == Some(403) || body.contains("DENIED") {
            (
                format!("access denied (403) to {} while {step}", dest.repository),
                "give the account push rights to this repository, or push to one it may write"
                    .into(),
            )
        } else if code == Some(404) {
            (
                format!("not found (404) while {step}"),
                "check the registry address and the repository path (some registries need the project created first)".into(),
            )
        } else if code == Some(400) && self.plain_http {
            (
                "the registry speaks HTTPS, not plain HTTP".into(),
                "drop --insecure (and pass --ca-file if its certificate is private)".into(),
            )
        } else if let Some(code) = code.filter(|c| *c >= 500) {
            (
                format!(
                    "the registry failed (HTTP {code}) while {step}, {}",
                    self.retried()
                ),
                "try again later, and check the registry's logs and storage".into(),
            )
        } else if is_certificate_error(&detail) {
            (
                format!("its TLS certificate is not trusted ({detail})"),
                "pass the CA that signed it with --ca-file FILE (PEM), or add that CA to the system roots".into(),
            )
        } else if code.is_none() && matches!(e, OciDistributionError::RequestError(_)) {
            (
                format!(
                    "cannot reach the registry ({detail}) while {step}, {}",
                    self.retried()
                ),
                "check that it is running and that the address and port are right, then push again"
                    .into(),
            )
        } else {
            let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
            (
                format!(
                    "{step} failed ({detail}{}{body})",
                    if body.is_empty() { "" } else { ": " }
                ),
                "check the registry and push again".into(),
            )
        };
        Error::Registry {
            registry: dest.to_string(),
            problem,
            fix,
        }
    }
}

/// The HTTP status of a failed request and the registry's answer, if any.
fn status(e: &OciDistributionError) -> (Option<u16>, String) {
    match e {
        OciDistributionError::ServerError { code, message, .. } => (Some(*code), message.clone()),
        OciDistributionError::RequestError(r) => (r.status().map(|s| s.as_u16()), String::new()),
        OciDistributionError::UnauthorizedError { .. } => (Some(401), String::new()),
        OciDistributionError::RegistryError { envelope, .. } => (
            None,
            envelope
                .errors
                .iter()
                .map(|e| format!("{:?} {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; ")
                .to_ascii_uppercase(),
        ),
        _ => (None, String::new()),
    }
}

/// The innermost error message, on one line.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_certificate_error(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("certificate") || d.contains("unknownissuer")
}

/// Whether a TLS attempt failed because the server answered in plain HTTP.
fn speaks_plain_http(e: &OciDistributionError) -> bool {
    let d = root_cause(e).to_ascii_lowercase();
    d.contains("invalidcontenttype") || d.contains("corrupt message")
}

/// Whether `e` may go away by itself: HTTP 5xx or a lost connection (not a TLS refusal).
fn transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => *code >= 500,
        OciDistributionError::RequestError(r) => match r.status() {
            Some(s) => s.is_server_error(),
            None => {
                let d = root_cause(e);
                !is_certificate_error(&d) && !speaks_plain_http(e)
            }
        },
        _ => false,
    }
}

/// Runs `f` until it succeeds, fails for good, or `retries` retries of transient failures are
/// spent, waiting 0.5 s, 1 s, 2 s, ... in between.
async fn retrying<T, F, Fut>(retries: u32, mut f: F) -> std::result::Result<T, OciDistributionError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, OciDistributionError>>,
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
        let error = |code| OciDistributionError::ServerError {
            code,
            url: "http://127.0.0.1/v2/".into(),
            message: String::new(),
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
