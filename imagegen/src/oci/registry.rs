//! A minimal client of the OCI distribution API, just what a push and a signature check need: log
//! in (HTTP basic, or a bearer token from the registry's token service), check, upload and read
//! blobs, mount them from another repository, and put and read manifests, over rustls with
//! [`super::trust`]'s verifier.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::credentials::Credentials;

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The registry answered with an error status.
    #[error("HTTP {status}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The registry's error codes and messages (`NAME_INVALID invalid repository name`),
        /// or its answer, on one line.
        body: String,
    },
    /// No answer: the connection, TLS or a timeout failed (the innermost error).
    #[error("{0}")]
    Transport(String),
}

impl HttpError {
    fn transport(e: &reqwest::Error) -> HttpError {
        HttpError::Transport(root_cause(e))
    }
}

/// The innermost error message, on one line.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A client for one repository of one registry.
pub struct Client {
    http: reqwest::Client,
    /// `https://host:port` or `http://host:port`.
    base: String,
    repository: String,
    /// Scopes asked of a token service: push here, pull from the mount sources.
    scopes: Vec<String>,
    credentials: Option<Credentials>,
    authorization: Mutex<Option<String>>,
}

type Answer = Result<Response, HttpError>;

impl Client {
    /// A client for `registry`/`repository`, over plain HTTP or TLS configured by `tls`;
    /// `mount_from` are the repositories blobs may be mounted from.
    pub fn new(
        tls: rustls::ClientConfig,
        plain_http: bool,
        registry: &str,
        repository: &str,
        mount_from: &[String],
        credentials: Option<Credentials>,
    ) -> Result<Client, HttpError> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("imagegen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::transport(&e))?;
        let mut scopes = vec![format!("repository:{repository}:pull,push")];
        scopes.extend(mount_from.iter().map(|r| format!("repository:{r}:pull")));
        Ok(Client {
            http,
            base: format!("{}://{registry}", if plain_http { "http" } else { "https" }),
            repository: repository.to_string(),
            scopes,
            credentials,
            authorization: Mutex::new(None),
        })
    }

    /// Asks a token service for pull access only (reading, as `imagegen verify` does).
    pub fn pull_only(mut self) -> Client {
        self.scopes = vec![format!("repository:{}:pull", self.repository)];
        self
    }

    /// Checks that the registry answers and logs in as it asks (basic or bearer).
    pub async fn login(&self) -> Result<(), HttpError> {
        let url = format!("{}/v2/", self.base);
        let answer = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| HttpError::transport(&e))?;
        if answer.status() != StatusCode::UNAUTHORIZED {
            return check(answer).await.map(drop);
        }
        let challenge = answer
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let authorization = match challenge.split_once(' ') {
            Some((scheme, params)) if scheme.eq_ignore_ascii_case("bearer") => {
                format!("Bearer {}", self.token(params).await?)
            }
            _ => self.basic().ok_or_else(|| HttpError::Status {
                status: 401,
                body: String::new(),
            })?,
        };
        *self.authorization.lock().expect("not poisoned") = Some(authorization);
        check(
            self.request(Method::GET, &url)
                .send()
                .await
                .map_err(|e| HttpError::transport(&e))?,
        )
        .await
        .map(drop)
    }

    /// `Basic <base64 user:password>`, with credentials.
    fn basic(&self) -> Option<String> {
        let c = self.credentials.as_ref()?;
        let pair = format!("{}:{}", c.username, c.password());
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    /// A bearer token from the token service the challenge `params` name.
    async fn token(&self, params: &str) -> Result<String, HttpError> {
        let param = |name: &str| {
            params.split(',').find_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"').to_string())
            })
        };
        let realm = param("realm").ok_or_else(|| HttpError::Status {
            status: 401,
            body: "the registry names no token service".into(),
        })?;
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(service) = param("service") {
            query.push(("service", service));
        }
        for scope in &self.scopes {
            query.push(("scope", scope.clone()));
        }
        let mut request = self.http.get(&realm).query(&query);
        if let Some(basic) = self.basic() {
            request = request.header(reqwest::header::AUTHORIZATION, basic);
        }
        let answer = check(request.send().await.map_err(|e| HttpError::transport(&e))?).await?;
        let body: serde_json::Value =
            serde_json::from_str(&answer.text().await.map_err(|e| HttpError::transport(&e))?)
                .unwrap_or_default();
        body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| HttpError::Status {
                status: 401,
                body: "the token service gave no token".into(),
            })
    }

    /// A request to `url` carrying the login.
    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let request = self.http.request(method, url);
        match self.authorization.lock().expect("not poisoned").as_ref() {
            Some(a) => request.header(reqwest::header::AUTHORIZATION, a),
            None => request,
        }
    }

    /// Sends `request`, turning an error status into [`HttpError::Status`].
    async fn send(&self, request: RequestBuilder) -> Answer {
        check(request.send().await.map_err(|e| HttpError::transport(&e))?).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }

    /// Whether the repository has the blob `digest`.
    pub async fn blob_exists(&self, digest: &str) -> Result<bool, HttpError> {
        let url = self.url(&format!("blobs/{digest}"));
        let answer = self
            .request(Method::HEAD, &url)
            .send()
            .await
            .map_err(|e| HttpError::transport(&e))?;
        if answer.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        check(answer).await.map(|_| true)
    }

    /// Mounts the blob `digest` from the repository `from`; `false` when the registry
    /// declined (it then expects an upload).
    pub async fn mount(&self, digest: &str, from: &str) -> bool {
        let url = self.url("blobs/uploads/");
        let request = self
            .request(Method::POST, &url)
            .query(&[("mount", digest), ("from", from)]);
        matches!(self.send(request).await, Ok(a) if a.status() == StatusCode::CREATED)
    }

    /// Uploads `bytes` as the blob `digest` (one request after opening the upload).
    pub async fn upload(&self, digest: &str, bytes: &[u8]) -> Result<(), HttpError> {
        let opened = self
            .send(self.request(Method::POST, &self.url("blobs/uploads/")))
            .await?;
        let location = opened
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| HttpError::Status {
                status: opened.status().as_u16(),
                body: "the registry gave no upload location".into(),
            })?;
        let location = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        };
        let request = self
            .request(Method::PUT, &location)
            .query(&[("digest", digest)])
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec());
        self.send(request).await.map(drop)
    }

    /// Puts `bytes` of `media_type` as the manifest `reference` (a digest or a tag).
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), HttpError> {
        let request = self
            .request(Method::PUT, &self.url(&format!("manifests/{reference}")))
            .header(reqwest::header::CONTENT_TYPE, media_type)
            .body(bytes.to_vec());
        self.send(request).await.map(drop)
    }
}

impl Client {
    /// The bytes of the manifest `reference` (a tag or a digest), asking for the media types
    /// `accept`; `None` when the registry has none there (404).
    pub async fn manifest(
        &self,
        reference: &str,
        accept: &[&str],
    ) -> Result<Option<Vec<u8>>, HttpError> {
        let request = self
            .request(Method::GET, &self.url(&format!("manifests/{reference}")))
            .header(reqwest::header::ACCEPT, accept.join(", "));
        let answer = request.send().await.map_err(|e| HttpError::transport(&e))?;
        if answer.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        body(check(answer).await?).await.map(Some)
    }

    /// The bytes of the blob `digest` (not checked against it here).
    pub async fn blob(&self, digest: &str) -> Result<Vec<u8>, HttpError> {
        let request = self.request(Method::GET, &self.url(&format!("blobs/{digest}")));
        body(self.send(request).await?).await
    }
}

/// The whole body of `answer`.
async fn body(answer: Response) -> Result<Vec<u8>, HttpError> {
    answer
        .bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| HttpError::transport(&e))
}

/// `answer` if its status is not an error, else the error with the registry's error codes.
async fn check(answer: Response) -> Answer {
    let status = answer.status();
    if !status.is_client_error() && !status.is_server_error() {
        return Ok(answer);
    }
    let text = answer.text().await.unwrap_or_default();
    let body = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) if v["errors"].is_array() => v["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{} {}",
                    e["code"].as_str().unwrap_or_default(),
                    e["message"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => text,
    };
    Err(HttpError::Status {
        status: status.as_u16(),
        body: body.split_whitespace().collect::<Vec<_>>().join(" "),
    })
}
