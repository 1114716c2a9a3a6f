//! Errors of pod workers: what fails a sync (the worker retries it after
//! the retry interval), and why a container could not be made (its
//! waiting reason and message in the pod's status).

use crate::dns::DnsError;
use crate::env::EnvError;
use crate::runtime::RuntimeError;
use crate::volumes::MountError;

/// Why a pod sync failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("API: {0}")]
    Api(#[source] kube::Error),
    /// The container runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The pod's hostname, domain or resolv.conf cannot be made for its
    /// sandbox.
    #[error("pod sandbox names: {0}")]
    Dns(#[source] DnsError),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Api(e)
    }
}

impl From<DnsError> for Error {
    fn from(e: DnsError) -> Self {
        Error::Dns(e)
    }
}

/// Result of a pod sync's steps.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a container could not be made or started. Each kind is a waiting
/// reason of Kubernetes' ([`StartError::reason`]); the message is the
/// Display.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The image is not on the node and cannot be pulled (ErrImagePull).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The container's environment or mounts cannot be resolved
    /// (CreateContainerConfigError).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The runtime did not create the container (CreateContainerError).
    #[error("{0}")]
    Create(#[source] RuntimeError),
    /// The runtime did not start the container (RunContainerError).
    #[error("{0}")]
    Start(#[source] RuntimeError),
}

impl StartError {
    /// The container's waiting reason.
    pub fn reason(&self) -> &'static str {
        match self {
            StartError::Image(_) => "ErrImagePull",
            StartError::Config(_) => "CreateContainerConfigError",
            StartError::Create(_) => "CreateContainerError",
            StartError::Start(_) => "RunContainerError",
        }
    }

    /// Whether the next attempt backs off (doubling, as image pulls do)
    /// rather than coming after the retry interval.
    pub fn backs_off(&self) -> bool {
        matches!(self, StartError::Image(_))
    }
}

/// Why an image is not on the node (the kubelet's ErrImagePull messages).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// `imagePullPolicy: Never`, and the image is not on the node.
    #[error("Container image \"{image}\" is not present with pull policy of Never")]
    NotPresent {
        /// The image.
        image: String,
    },
    /// The runtime did not say whether the image is on the node.
    #[error("{0}")]
    Status(#[source] RuntimeError),
    /// The pull failed.
    #[error("Failed to pull image \"{image}\": {source}")]
    Pull {
        /// The image.
        image: String,
        /// Why.
        #[source]
        source: RuntimeError,
    },
}

/// Why a container's config cannot be made (CreateContainerConfigError).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Its environment refers to something missing.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// Its volume mounts cannot be made.
    #[error(transparent)]
    Mount(#[from] MountError),
}

/// Why a lifecycle hook failed (the kubelet's FailedPostStartHook and
/// FailedPreStopHook messages).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The exec handler's command could not be run.
    #[error(
        "Exec lifecycle hook ({command:?}) for Container \"{container}\" failed - error: {source}"
    )]
    Exec {
        /// The command.
        command: Vec<String>,
        /// The container's name.
        container: String,
        /// Why.
        #[source]
        source: RuntimeError,
    },
    /// The exec handler's output or exit code could not be read.
    #[error("{0}")]
    Output(#[source] RuntimeError),
    /// The exec handler's command exited with a code other than 0.
    #[error(
        "Exec lifecycle hook ({command:?}) for Container \"{container}\" failed - error: command '{}' exited with {code}: {output}",
        .command.join(" ")
    )]
    Exited {
        /// The command.
        command: Vec<String>,
        /// The container's name.
        container: String,
        /// Its exit code.
        code: i32,
        /// The start of what it wrote.
        output: String,
    },
    /// The HTTP handler's request failed.
    #[error("HTTP lifecycle hook ({path}) for Container \"{container}\" failed")]
    Http {
        /// The path asked for.
        path: String,
        /// The container's name.
        container: String,
    },
    /// The HTTP handler's request could not be made.
    #[error("{0}")]
    HttpRequest(#[source] RuntimeError),
}
