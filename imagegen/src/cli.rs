//! The command line: argument types and one function per subcommand, over the library.

use std::path::PathBuf;

use crate::bundle::{Bundle, Metadata};
use crate::error::{Error, Result};
use crate::flash_image;
use crate::inputs::{SourceFile, TargetInput};
use crate::oci::remote::{self, Destination, PushOptions};
use crate::oci::{Index, Layout, Store, Timestamp, archive};
use crate::platform::Platform;
use crate::release::{Naming, Release};
use crate::sign::{self, Signer};
use crate::verify::{self, LayoutSource, PublicKey, RegistrySource};
use crate::{credentials, ota};
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};

/// Builds OCI flash images for ESP32-family boards from ESP-IDF builds, without a container
/// engine.
#[derive(Parser)]
#[command(name = "imagegen", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What parsing the command line gave instead of a command: text to print with exit 0
/// (`--help`, `--version`), or a usage error.
#[derive(Debug)]
pub enum NotRun {
    /// Help or version text, for standard output.
    Print(String),
    /// A usage error, on one line.
    Usage(Error),
}

/// Parses `args` (the program name first). Clap's own errors become one line naming the
/// problem and where the options are described, as every other error is.
pub fn parse<I, T>(args: I) -> std::result::Result<Cli, NotRun>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    Cli::try_parse_from(&args).map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => NotRun::Print(e.render().to_string()),
        _ => NotRun::Usage(usage_error(&e, subcommand(&args))),
    })
}

/// The subcommand `args` name, if any (for the `--help` a usage error points at).
fn subcommand(args: &[std::ffi::OsString]) -> Option<String> {
    let command = <Cli as clap::CommandFactory>::command();
    args.iter().skip(1).find_map(|a| {
        let a = a.to_str()?;
        command
            .get_subcommands()
            .any(|c| c.get_name() == a)
            .then(|| a.to_string())
    })
}

/// One line for a clap error: its message (the lines before the usage, joined), its tip if any,
/// and the `--help` to read (that of `subcommand`, if one was named).
fn usage_error(e: &clap::Error, subcommand: Option<String>) -> Error {
    let text = e.render().to_string();
    let mut problem = Vec::new();
    let mut tips = Vec::new();
    let command = match subcommand {
        Some(sub) => format!("imagegen {sub}"),
        None => "imagegen".into(),
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("Usage: ") || line.starts_with("For more information") {
        } else if let Some(tip) = line.strip_prefix("tip: ") {
            tips.push(tip.to_string());
        } else {
            problem.push(line.strip_prefix("error: ").unwrap_or(line).to_string());
        }
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        problem = vec!["no subcommand given".into()];
    }
    let mut message = problem.join(" ");
    for tip in tips {
        message.push_str(&format!("; {tip}"));
    }
    Error::Usage(format!("{message}: see {command} --help"))
}

/// Runs the subcommand `cli` names.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(args) => build(*args),
        Command::Bundle(args) => write_bundle(args),
        Command::Unpack(args) => unpack(args),
        Command::Push(args) => push(args),
        Command::Ota(args) => ota(*args),
        Command::Verify(args) => verify(args),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Build the multi-arch flash image (static /flasher + /firmware bundle).
    #[command(
        after_help = "Example:\n  imagegen build --target esp32s3r8=app/build --target app-c3/build \\\n    \
        --flasher linux/amd64=out/amd64/flasher --flasher linux/arm64=out/arm64/flasher \\\n    \
        --app-type demo --version 1.2.0 --revision $(git rev-parse HEAD) \\\n    \
        --output out/flash-layout --archive out/flash.tar"
    )]
    Build(Box<BuildArgs>),
    /// Write only the /firmware tree (for Dockerfiles/Dockerfile.flash and docker buildx).
    Bundle(BundleOnlyArgs),
    /// Extract one platform's root filesystem (/flasher, /firmware) from an OCI layout, checking
    /// every blob's digest.
    Unpack(UnpackArgs),
    /// Copy an OCI layout to a registry: blobs first (skipping those it has), then manifests by
    /// digest, then the tags, with the layout's exact bytes so digests are kept.
    #[command(
        after_help = "Example:\n  printf %s \"$TOKEN\" | imagegen push --layout out/flash-layout \\\n    \
        --username ci --password-stdin registry.example.com/acme/app-flash"
    )]
    Push(PushArgs),
    /// Build the OTA images (the app binary only, per target), write a layout, optionally push.
    #[command(
        after_help = "Example:\n  imagegen ota --target esp32s3r8=app/build --target app-c3/build \\\n    \
        --app-type demo --version 1.2.0 --revision $(git rev-parse HEAD) \\\n    \
        --output out/ota-layout --push registry.example.com/acme/app"
    )]
    Ota(Box<OtaArgs>),
    /// Check the cosign signatures of an image in a registry (or a layout): one line per
    /// manifest (the index and each platform's), exit 3 if any is missing or bad.
    #[command(
        after_help = "Example:\n  imagegen verify --key cosign.pub registry.example.com/acme/app-flash@sha256:<hex>"
    )]
    Verify(VerifyArgs),
}

/// Signing what is pushed.
#[derive(Args)]
struct SignArgs {
    /// Sign every pushed manifest and index with this ECDSA P-256 private key (PEM: PKCS#8,
    /// SEC1, or cosign's encrypted key, whose password is COSIGN_PASSWORD), in cosign's format.
    #[arg(long, value_name = "KEY")]
    sign_key: Option<PathBuf>,
    /// Read the password of an encrypted --sign-key from standard input instead of
    /// COSIGN_PASSWORD.
    #[arg(long, requires = "sign_key", conflicts_with = "password_stdin")]
    sign_password_stdin: bool,
}

impl SignArgs {
    /// The signing key, if one is given.
    fn signer(&self) -> Result<Option<Signer>> {
        let Some(path) = &self.sign_key else {
            return Ok(None);
        };
        let from_stdin = self.sign_password_stdin;
        let password = move || -> Result<Vec<u8>> {
            if from_stdin {
                return Ok(read_stdin_line("the signing key's password")?.into_bytes());
            }
            std::env::var(sign::PASSWORD_VARIABLE)
                .map(String::into_bytes)
                .map_err(|_| {
                    Error::Usage(format!(
                        "{}: the key is encrypted: set {} to its password, or pass --sign-password-stdin",
                        path.display(),
                        sign::PASSWORD_VARIABLE
                    ))
                })
        };
        Signer::load(path, &password).map(Some)
    }
}

/// One line of standard input, without its line ending.
fn read_stdin_line(what: &str) -> Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| {
        Error::Usage(format!(
            "cannot read {what} from standard input ({e}): pipe it in"
        ))
    })?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// How to reach a registry and log in to it.
#[derive(Args)]
struct RegistryArgs {
    /// Use plain HTTP (a loopback registry without TLS is reached over HTTP anyway).
    #[arg(long)]
    insecure: bool,
    /// CA certificate (PEM) to trust besides the system roots, for a registry with a private CA.
    /// The *.crt files of /etc/docker/certs.d/HOST:PORT/ (or $IMAGEGEN_DOCKER_CERTS_D/HOST:PORT/)
    /// are trusted too, as Docker does.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// User name; the password is read from standard input (--password-stdin). Default:
    /// IMAGEGEN_REGISTRY_USERNAME/IMAGEGEN_REGISTRY_PASSWORD, else the Docker config file.
    #[arg(long, requires = "password_stdin")]
    username: Option<String>,
    /// Read the password (or token) from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// How often a transient failure (HTTP 5xx, lost connection) is retried, with backoff.
    #[arg(long, default_value_t = 4, value_name = "N")]
    retries: u32,
    /// Another repository of the same registry to mount missing blobs from (repeatable).
    #[arg(long, value_name = "REPOSITORY")]
    mount_from: Vec<String>,
}

impl RegistryArgs {
    /// Push options for `dest`, with its credentials.
    fn options(&self, dest: &Destination) -> Result<PushOptions> {
        let password = if self.password_stdin {
            Some(read_stdin_line("the password")?)
        } else {
            None
        };
        Ok(PushOptions {
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            certs_dir: Some(remote::certs_dir()),
            credentials: credentials::resolve(
                &dest.registry,
                self.username.as_deref(),
                password.as_deref(),
            )?,
            retries: self.retries,
            mount_from: self.mount_from.clone(),
            signer: None,
        })
    }
}

#[derive(Args)]
struct PushArgs {
    /// The OCI image layout to push (imagegen build --output or imagegen ota --output).
    #[arg(long, value_name = "DIR")]
    layout: PathBuf,
    /// Push only this tag of the layout (repeatable; default: every tag).
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    sign: SignArgs,
    /// Where to push: REGISTRY[:PORT]/REPOSITORY.
    #[arg(value_name = "REGISTRY/REPOSITORY")]
    destination: String,
}

#[derive(Args)]
struct OtaArgs {
    #[command(flatten)]
    bundle: BundleArgs,
    /// Instead of the OTA index, one artifact per target whose only layer is the raw app binary
    /// (application/vnd.espressif.esp32.firmware.v1+binary), tagged with the app's semantic
    /// version; --output then holds one layout per target, and --push goes to REPOSITORY/<target>.
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    release: ReleaseArgs,
    /// Write the OCI image layout here (with --raw: a directory of one layout per target).
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// Also push to REGISTRY[:PORT]/REPOSITORY.
    #[arg(long, value_name = "REGISTRY/REPOSITORY")]
    push: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    sign: SignArgs,
}

#[derive(Args)]
struct VerifyArgs {
    /// The public key (PEM, cosign.pub) of the ECDSA P-256 key that signed.
    #[arg(long, value_name = "PUB")]
    key: PathBuf,
    /// Check an OCI image layout instead of a registry; REF is then a tag or digest in it.
    #[arg(long, value_name = "DIR")]
    layout: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The image: REGISTRY/REPOSITORY@sha256:<hex> (or :TAG); with --layout, a tag or digest.
    #[arg(value_name = "REF")]
    reference: String,
}

#[derive(Args)]
struct BundleOnlyArgs {
    #[command(flatten)]
    bundle: BundleArgs,
    /// Directory to create with the bundle (manifest.json and one folder per target).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
}

#[derive(Args)]
struct UnpackArgs {
    /// The OCI image layout (imagegen build --output).
    #[arg(long, value_name = "DIR")]
    layout: PathBuf,
    /// Tag to extract (default: the first the layout lists).
    #[arg(long)]
    tag: Option<String>,
    /// Platform to extract (default: this machine's).
    #[arg(long)]
    platform: Option<Platform>,
    /// Directory to create with the root filesystem.
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
}

/// What goes into `/firmware`: the targets, the model and the release metadata.
#[derive(Args)]
struct BundleArgs {
    /// An ESP-IDF build directory (or its project), optionally named: [NAME=]DIR. NAME is the
    /// --chip users pass, with a PSRAM suffix if any (esp32s3r8); default: the build's target.
    #[arg(long = "target", value_name = "[NAME=]DIR")]
    targets: Vec<String>,
    /// A target from explicit files:
    /// name=T,bootloader=P,partition-table=P,app=P,sdkconfig=P[,ota-data=P][,partitions-csv=P].
    #[arg(long = "target-files", value_name = "SPEC")]
    target_files: Vec<String>,
    /// Model file written to the tflite_model partition (/firmware/model.bin).
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Application type, used in tags (default: the app's project name).
    #[arg(long)]
    app_type: Option<String>,
    /// Release version, used in tags (default: the app's version).
    #[arg(long = "version", value_name = "VERSION")]
    release_version: Option<String>,
    /// Source revision (git commit); its first 7 characters end the per-platform tags.
    #[arg(long)]
    revision: Option<String>,
}

impl BundleArgs {
    /// Reads and checks every input.
    fn bundle(&self) -> Result<Bundle> {
        let mut targets = Vec::new();
        for spec in &self.targets {
            let (name, dir) = match spec.split_once('=') {
                Some((n, d)) => (Some(n), d),
                None => (None, spec.as_str()),
            };
            targets.push(TargetInput::from_build_dir(name, dir.as_ref())?);
        }
        for spec in &self.target_files {
            targets.push(TargetInput::from_spec(spec)?);
        }
        let model = self.model.as_deref().map(SourceFile::read).transpose()?;
        let metadata = Metadata {
            app_type: self.app_type.clone(),
            version: self.release_version.clone(),
            revision: self.revision.clone(),
        };
        Bundle::new(targets, model, &metadata)
    }
}

/// Release details of an image: source, creation time, extra tags.
#[derive(Args)]
struct ReleaseArgs {
    /// Source repository URL (org.opencontainers.image.source).
    #[arg(long)]
    source: Option<String>,
    /// Creation time: RFC 3339 (2026-01-31T12:00:00Z) or Unix seconds. Default: SOURCE_DATE_EPOCH,
    /// else 1970-01-01T00:00:00Z, so that builds are reproducible.
    #[arg(long)]
    created: Option<String>,
    /// Extra tag for the index (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
}

impl ReleaseArgs {
    /// The release, with the creation time resolved and checked.
    fn release(self) -> Result<Release> {
        Ok(Release {
            created: created(self.created.as_deref())?,
            source: self.source,
            extra_tags: self.tags,
        })
    }
}

#[derive(Args)]
struct BuildArgs {
    #[command(flatten)]
    bundle: BundleArgs,
    /// A static flasher executable for a platform: linux/amd64=PATH or linux/arm64=PATH.
    #[arg(long = "flasher", value_name = "PLATFORM=PATH", required = true)]
    flashers: Vec<String>,
    /// The platforms the image is built for, comma-separated (default: linux/amd64,linux/arm64);
    /// each needs its --flasher.
    #[arg(long, value_name = "PLATFORM,...", value_delimiter = ',')]
    platforms: Vec<Platform>,
    #[command(flatten)]
    release: ReleaseArgs,
    /// Write an OCI image layout directory here.
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Write an archive for `docker load` (and oci-archive: tools) here.
    #[arg(long, value_name = "FILE")]
    archive: Option<PathBuf>,
    /// Repository the archive's tags are loaded under (default: <app>-flash).
    #[arg(long, value_name = "NAME")]
    repo: Option<String>,
    /// Platform that `docker load` tags with the index tags (default: this machine's).
    #[arg(long, value_name = "PLATFORM")]
    archive_platform: Option<Platform>,
}

fn build(args: BuildArgs) -> Result<()> {
    if args.output.is_none() && args.archive.is_none() {
        return Err(Error::Usage(
            "nothing to write: add --output DIR (OCI layout) and/or --archive FILE".into(),
        ));
    }
    let release = args.release.release()?;
    let bundle = args.bundle.bundle()?;
    let flashers = read_flashers(&args.flashers, &args.platforms)?;
    let archive = match &args.archive {
        Some(path) => Some((
            path,
            docker_names(args.archive_platform, &args.repo, &bundle, &flashers)?,
        )),
        None => None,
    };
    let image = flash_image::build(&bundle, &flashers, &release)?;
    if let Some((_, names)) = &archive {
        archive::check(image.store(), names)?;
    }
    if let Some(dir) = &args.output {
        Layout::new(dir).write(image.store())?;
    }
    if let Some((path, names)) = &archive {
        archive::write(image.store(), path, names)?;
    }
    print_index(&image, true);
    Ok(())
}

/// Reads and checks one flasher per platform the image is built for: `platforms` when given,
/// else every platform.
fn read_flashers(specs: &[String], platforms: &[Platform]) -> Result<Vec<(Platform, Vec<u8>)>> {
    let explicit = !platforms.is_empty();
    let wanted = if explicit {
        platforms
    } else {
        &Platform::ALL[..]
    };
    let mut flashers: Vec<(Platform, Vec<u8>)> = Vec::new();
    for spec in specs {
        let (platform, path) = spec.split_once('=').ok_or_else(|| {
            Error::Usage(format!(
                "--flasher '{spec}': expected PLATFORM=PATH, e.g. linux/amd64=out/flasher"
            ))
        })?;
        let platform: Platform = platform.parse().map_err(Error::Usage)?;
        if flashers.iter().any(|(p, _)| *p == platform) {
            return Err(Error::Usage(format!(
                "--flasher {platform} is given twice: pass one executable per platform"
            )));
        }
        if !wanted.contains(&platform) {
            return Err(Error::Usage(format!(
                "--flasher {platform} is not in --platforms {}: add {platform} to --platforms, or drop that --flasher",
                list(wanted)
            )));
        }
        let file = SourceFile::read(path.as_ref())?;
        crate::elf::check_static_executable(&file.path, &file.bytes, platform)?;
        flashers.push((platform, file.bytes));
    }
    if let Some(missing) = wanted
        .iter()
        .find(|p| !flashers.iter().any(|(f, _)| f == *p))
    {
        let given: Vec<Platform> = flashers.iter().map(|(p, _)| *p).collect();
        return Err(Error::Usage(if explicit {
            format!(
                "--platforms names {missing} but no --flasher {missing}=PATH is given: add it, or drop {missing} from --platforms"
            )
        } else {
            format!(
                "no flasher for {missing}: the image is built for {} unless --platforms says otherwise; add --flasher {missing}=PATH, or pass --platforms {} to build for {} only",
                list(wanted),
                given
                    .iter()
                    .map(Platform::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                list(&given)
            )
        }));
    }
    flashers.sort_by_key(|(p, _)| *p);
    Ok(flashers)
}

/// Platforms as users write them: `linux/amd64 and linux/arm64`.
fn list(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The names `docker load` gives the archive's images; its default platform (the one the index
/// tags go to) must be one the image has.
fn docker_names(
    archive_platform: Option<Platform>,
    repo: &Option<String>,
    bundle: &Bundle,
    flashers: &[(Platform, Vec<u8>)],
) -> Result<archive::DockerNames> {
    let naming = Naming::of(bundle);
    let platform = archive_platform.unwrap_or_else(host_platform);
    if !flashers.iter().any(|(p, _)| *p == platform) {
        let has: Vec<Platform> = flashers.iter().map(|(p, _)| *p).collect();
        let tag = format!("{}-{}", naming.app_type, naming.version);
        let problem = match archive_platform {
            Some(_) => format!("--archive-platform {platform} is not in the image"),
            None => format!(
                "the archive's default platform {platform} (this machine's) is not in the image"
            ),
        };
        return Err(Error::Usage(format!(
            "{problem}, so docker load would give no '{tag}' image: pass --archive-platform {}, or add --flasher {platform}=PATH",
            has.first().copied().unwrap_or(Platform::Amd64)
        )));
    }
    Ok(archive::DockerNames {
        repository: repo
            .clone()
            .unwrap_or_else(|| format!("{}-flash", naming.app_name.to_ascii_lowercase())),
        default_arch: platform.arch().to_string(),
    })
}

/// Prints the index digest, each image (with its compressed size when `sizes`) and each tag.
fn print_index(image: &Index, sizes: bool) {
    println!("index {}", image.index.digest());
    for img in &image.images {
        let platform = format!("{}/{}", img.platform.os(), img.platform.architecture());
        if sizes {
            let compressed: usize = img.layers.iter().map(|l| l.blob.bytes().len()).sum();
            let total = compressed + img.config.bytes().len() + img.manifest.bytes().len();
            println!(
                "image {} {platform} {total} bytes compressed",
                img.manifest.digest()
            );
        } else {
            println!("image {} {platform}", img.manifest.digest());
        }
    }
    for (tag, digest) in image.tags() {
        println!("tag {tag} {digest}");
    }
}

fn write_bundle(args: BundleOnlyArgs) -> Result<()> {
    let bundle = args.bundle.bundle()?;
    bundle.write_dir(&args.to)?;
    for t in &bundle.manifest().targets {
        println!("{} {} {} {}", t.name, t.chip, t.app.name, t.app.version);
    }
    Ok(())
}

fn unpack(args: UnpackArgs) -> Result<()> {
    let platform = args.platform.unwrap_or_else(host_platform);
    crate::unpack::unpack(
        &args.layout,
        args.tag.as_deref(),
        "linux",
        platform.arch(),
        &args.to,
    )?;
    println!("{}", args.to.display());
    Ok(())
}

fn push(args: PushArgs) -> Result<()> {
    let dest: Destination = args.destination.parse()?;
    let mut options = args.registry.options(&dest)?;
    options.signer = args.sign.signer()?;
    let store = Layout::new(&args.layout).read(&args.tags)?;
    push_store(&store, &dest, &options)
}

/// Pushes `store` to `dest` and prints what was sent.
fn push_store(store: &Store, dest: &Destination, options: &PushOptions) -> Result<()> {
    let report = remote::push(store, dest, options)?;
    println!(
        "pushed {dest}: {} blobs uploaded, {} already there, {} mounted, {} manifests",
        report.uploaded, report.present, report.mounted, report.manifests
    );
    for (tag, digest) in &report.signatures {
        println!("signature {dest}:{tag} {digest}");
    }
    for (tag, digest) in &report.tags {
        println!("tag {dest}:{tag} {digest}");
    }
    Ok(())
}

fn ota(args: OtaArgs) -> Result<()> {
    let dest: Option<Destination> = args.push.as_deref().map(str::parse).transpose()?;
    let release = args.release.release()?;
    let bundle = args.bundle.bundle()?;
    let push = match &dest {
        Some(d) => {
            let mut options = args.registry.options(d)?;
            options.signer = args.sign.signer()?;
            Some((d, options))
        }
        None if args.sign.sign_key.is_some() => {
            return Err(Error::Usage(
                "--sign-key signs what is pushed: add --push REGISTRY/REPOSITORY".into(),
            ));
        }
        None => None,
    };
    if args.raw {
        return ota_raw(&bundle, &release, &args.output, push);
    }
    let image = ota::build(&bundle, &release)?;
    Layout::new(&args.output).write(image.store())?;
    print_index(&image, false);
    if let Some((dest, options)) = &push {
        push_store(image.store(), dest, options)?;
    }
    Ok(())
}

/// `ota --raw`: one layout per target under `output`, each pushed to `<dest>/<target>`.
fn ota_raw(
    bundle: &Bundle,
    release: &Release,
    output: &std::path::Path,
    push: Option<(&Destination, PushOptions)>,
) -> Result<()> {
    if !release.extra_tags.is_empty() {
        return Err(Error::Usage(
            "--tag does not go with --raw: raw artifacts are tagged with the app's version".into(),
        ));
    }
    let artifacts = ota::build_artifacts(bundle, release)?;
    let stores = artifacts
        .iter()
        .map(ota::Artifact::store)
        .collect::<Result<Vec<_>>>()?;
    std::fs::create_dir_all(output).map_err(|e| Error::write(output, e))?;
    for (a, store) in artifacts.iter().zip(&stores) {
        Layout::new(output.join(&a.target)).write(store)?;
        println!("artifact {} {} {}", a.target, a.tag, a.manifest.digest());
    }
    if let Some((dest, options)) = &push {
        for (a, store) in artifacts.iter().zip(&stores) {
            push_store(store, &dest.child(&a.target)?, options)?;
        }
    }
    Ok(())
}

fn verify(args: VerifyArgs) -> Result<()> {
    let key = PublicKey::load(&args.key)?;
    if !args.registry.mount_from.is_empty() {
        return Err(Error::Usage(
            "--mount-from is for pushing: drop it from imagegen verify".into(),
        ));
    }
    let (checks, shown) = match &args.layout {
        Some(dir) => (
            verify::verify(&mut LayoutSource::new(dir), &args.reference, &key)?,
            format!("{}:{}", dir.display(), args.reference),
        ),
        None => {
            let (dest, reference) = verify::parse_reference(&args.reference)?;
            let options = args.registry.options(&dest)?;
            let mut source = RegistrySource::connect(&dest, &options)?;
            (
                verify::verify(&mut source, &reference, &key)?,
                args.reference.clone(),
            )
        }
    };
    for check in &checks {
        println!("{check}");
    }
    verify::failure(&checks, &shown, &args.key).map_or(Ok(()), Err)
}

/// The platform of the machine imagegen runs on (amd64 when it is neither).
fn host_platform() -> Platform {
    std::env::consts::ARCH.parse().unwrap_or(Platform::Amd64)
}

/// The creation time: the flag, else SOURCE_DATE_EPOCH, else the epoch.
fn created(flag: Option<&str>) -> Result<Timestamp> {
    let (value, origin) = match (flag, std::env::var("SOURCE_DATE_EPOCH").ok()) {
        (Some(v), _) => (v.to_string(), "--created"),
        (None, Some(v)) => (v, "SOURCE_DATE_EPOCH"),
        (None, None) => return Ok(Timestamp::default()),
    };
    Timestamp::parse(&value).ok_or_else(|| {
        Error::Usage(format!(
            "{origin} '{value}' is not a time: use Unix seconds or RFC 3339 UTC like 2026-01-31T12:00:00Z"
        ))
    })
}
