//! Each controller acts as its own ServiceAccount in `kube-system`
//! (kube-controller-manager's `--use-service-account-credentials`), so RBAC
//! gives it exactly its `system:controller:<name>` role: the controller
//! manager's own identity creates the account and requests its token,
//! kept in a file the controller's client re-reads, renewed well before it
//! expires.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::Client;

/// How long a controller's token lives; renewed at 80 % of it.
const TOKEN_SECONDS: i64 = 3600;

/// Where controllers' tokens come from.
pub struct ServiceAccountCredentials {
    /// The controller manager's own client.
    root: Client,
    /// Its configuration (server, CA), whose credentials are replaced.
    config: kube::Config,
    /// Where the token files are kept.
    dir: PathBuf,
}

impl ServiceAccountCredentials {
    /// Credentials made with `root` (the controller manager's identity,
    /// whose configuration is `config`), tokens kept under `dir`.
    pub fn new(root: Client, config: kube::Config, dir: PathBuf) -> Self {
        Self { root, config, dir }
    }

    /// A client acting as the ServiceAccount `kube-system/<name>`,
    /// retrying until the API answers.
    pub async fn client_for(&self, name: &str) -> Client {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.try_client_for(name).await {
                Ok(c) => return c,
                Err(e) => {
                    tracing::warn!(controller = name, error = %e, "no credentials for the controller yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn try_client_for(&self, name: &str) -> anyhow_like::Result<Client> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("{name}.token"));
        let accounts: Api<ServiceAccount> = Api::namespaced(self.root.clone(), "kube-system");
        let account = ServiceAccount {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        write_token(&accounts, name, &path).await?;
        // Renew in the background for as long as the process runs.
        let renew_accounts = accounts.clone();
        let renew_name = name.to_string();
        let renew_path = path.clone();
        tokio::spawn(async move {
            let every = Duration::from_secs((TOKEN_SECONDS as u64) * 4 / 5);
            loop {
                tokio::time::sleep(every).await;
                let mut attempt = Duration::from_secs(1);
                while let Err(e) = write_token(&renew_accounts, &renew_name, &renew_path).await {
                    tracing::warn!(controller = %renew_name, error = %e, "renewing the controller's token");
                    tokio::time::sleep(attempt).await;
                    attempt = (attempt * 2).min(Duration::from_secs(60));
                }
            }
        });
        let mut config = self.config.clone();
        config.auth_info = kube::config::AuthInfo {
            token_file: Some(path.display().to_string()),
            ..Default::default()
        };
        Ok(Client::try_from(config)?)
    }
}

/// Request a token for `name` and write it to `path` (0600, replaced
/// atomically so the client never reads half a token).
async fn write_token(
    accounts: &Api<ServiceAccount>,
    name: &str,
    path: &std::path::Path,
) -> anyhow_like::Result<()> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(TOKEN_SECONDS),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await?;
    let token = answer.status.map(|s| s.token).unwrap_or_default();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, token)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Errors of getting credentials: the API's, the token file's, or the
/// client's.
mod anyhow_like {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}
