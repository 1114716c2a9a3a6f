//! Images of host programs: a program file and the shared libraries it
//! loads, packed into a root filesystem and imported through the Docker
//! API. This is how kedge runs its own binary in pods (the ingress
//! controller's DaemonSet) on a machine with no image registry.

use std::path::{Path, PathBuf};

use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::Docker;
use futures::TryStreamExt;

use super::map_err;
use crate::runtime::{Result, RuntimeError};

/// The shared libraries `ldd` says the program loads (none for a static
/// program).
fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>> {
    let out = std::process::Command::new("ldd")
        .arg(program)
        .output()
        .map_err(|e| RuntimeError::Failed(format!("running ldd: {e}")))?;
    // A static program makes ldd fail with "not a dynamic executable".
    if !out.status.success() {
        return Ok(Vec::new());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x…)"; the vDSO has no file.
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => l,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append_data(&mut header, path.trim_start_matches('/'), bytes)
        .map_err(|e| RuntimeError::Failed(format!("packing {path}: {e}")))
}

/// The reference of an image whose entrypoint is `program` (placed at
/// `/<file name>`), importing it into the local engine as
/// `repository:<content hash>` first if the engine lacks it.
pub async fn ensure_program_image(repository: &str, program: &Path) -> Result<String> {
    ProgramImage {
        repository,
        tag: None,
        args: &[],
        env: &[],
    }
    .ensure(program)
    .await
}

/// An image made of a host program: what it is called and how it starts.
#[derive(Clone, Copy, Debug)]
pub struct ProgramImage<'a> {
    /// The repository, e.g. `kedge/kedge`.
    pub repository: &'a str,
    /// A fixed tag (re-imported whenever the content differs from what the
    /// tag holds); `None`: the content hash is the tag.
    pub tag: Option<&'a str>,
    /// Arguments after the program in the entrypoint.
    pub args: &'a [&'a str],
    /// Environment variables of the image's config.
    pub env: &'a [(&'a str, &'a str)],
}

/// The label carrying the content hash of an image with a fixed tag.
const CONTENT_LABEL: &str = "io.kedge.content";

impl ProgramImage<'_> {
    /// The image's reference, imported into the local engine first when it
    /// lacks it (or, for a fixed tag, holds other content under it).
    pub async fn ensure(&self, program: &Path) -> Result<String> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| map_err("connecting to docker", e))?
            // Importing a large program takes a while on a slow disk.
            .with_timeout(std::time::Duration::from_secs(600));
        let name = program
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| RuntimeError::Failed(format!("{} has no file name", program.display())))?
            .to_string();
        let read = |p: &Path| {
            std::fs::read(p)
                .map_err(|e| RuntimeError::Failed(format!("reading {}: {e}", p.display())))
        };
        let binary = read(program)?;
        let libs = shared_libraries(program)?
            .into_iter()
            .map(|p| Ok((read(&p)?, p)))
            .collect::<Result<Vec<_>>>()?;
        let mut entrypoint = vec![format!("/{name}")];
        entrypoint.extend(self.args.iter().map(|a| a.to_string()));
        let entrypoint = serde_json::to_string(&entrypoint)
            .map_err(|e| RuntimeError::Failed(format!("encoding the entrypoint: {e}")))?;
        let env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut parts: Vec<&[u8]> = vec![&binary];
        parts.extend(libs.iter().map(|(b, _)| b.as_slice()));
        let content = fingerprint(&parts);
        let env_text = env.join("\n");
        let config_parts = [entrypoint.as_bytes(), env_text.as_bytes()];
        let (tag, content_label) = match self.tag {
            Some(tag) => {
                let mut all = parts.clone();
                all.extend(config_parts);
                (tag.to_string(), Some(fingerprint(&all)))
            }
            None => (content, None),
        };
        let reference = format!("{}:{tag}", self.repository);
        // The image a fixed tag held before, removed once the tag moves
        // (it would stay behind untagged, the size of the program).
        let mut replaced = None;
        if let Ok(found) = docker.inspect_image(&reference).await {
            let label = found
                .config
                .and_then(|c| c.labels)
                .and_then(|l| l.get(CONTENT_LABEL).cloned());
            if content_label.is_none() || label == content_label {
                return Ok(reference);
            }
            replaced = found.id;
        }

        let mut tar = tar::Builder::new(Vec::new());
        append(&mut tar, &name, &binary, 0o755)?;
        for (bytes, path) in &libs {
            // Libraries go where the program's loader looks: the path ldd named.
            append(&mut tar, &path.to_string_lossy(), bytes, 0o755)?;
        }
        // Programs expect a writable /tmp.
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o1777);
        dir.set_size(0);
        dir.set_cksum();
        tar.append_data(&mut dir, "tmp/", std::io::empty())
            .map_err(|e| RuntimeError::Failed(format!("packing /tmp: {e}")))?;
        let rootfs = tar
            .into_inner()
            .map_err(|e| RuntimeError::Failed(format!("packing the image: {e}")))?;

        let mut changes = vec![
            format!("ENTRYPOINT {entrypoint}"),
            "LABEL io.kedge.managed=true".to_string(),
        ];
        changes.extend(env.iter().map(|e| format!("ENV {e}")));
        if let Some(label) = &content_label {
            changes.push(format!("LABEL {CONTENT_LABEL}={label}"));
        }
        let options = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(self.repository)
            .tag(&tag)
            .changes(changes)
            .build();
        docker
            .create_image(Some(options), Some(bollard::body_full(rootfs.into())), None)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| map_err("importing a program image", e))?;
        tracing::info!(image = %reference, program = %program.display(), "imported a program image");
        if let Some(old) = replaced {
            // Refused while a container still uses it; then it stays.
            let options = bollard::query_parameters::RemoveImageOptionsBuilder::default().build();
            if let Err(e) = docker.remove_image(&old, Some(options), None).await {
                tracing::debug!(image = %old, error = %e, "the replaced program image stays");
            }
        }
        Ok(reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_of_a_dynamic_program() {
        // The test binary itself is dynamically linked against libc.
        let exe = std::env::current_exe().unwrap();
        let libs = shared_libraries(&exe).unwrap();
        assert!(
            libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
            "{libs:?}"
        );
        assert!(libs.iter().all(|l| l.is_absolute() && l.exists()));
    }
}
