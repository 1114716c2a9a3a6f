//! The infra ("pause") image: the process that holds a pod's network and
//! IPC namespaces while its app containers come and go.
//!
//! No registry is reachable from a node, so the image is made here: a
//! static ELF of a few dozen bytes that blocks in a syscall forever,
//! packed in a tarball and imported through the Docker API. The sandbox is
//! stopped with SIGKILL, so the process needs no signal handling (as PID 1
//! of its namespace, it would ignore SIGTERM anyway).

use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::Docker;
use futures::TryStreamExt;

use super::map_err;
use crate::runtime::{Result, RuntimeError};

/// The repository of the infra image; the tag names the program's bytes.
const REPOSITORY: &str = "kedge/pause";

/// Where the program is loaded (a conventional non-PIE base).
const BASE: u64 = 0x40_0000;
const EHDR_SIZE: u16 = 64;
const PHDR_SIZE: u16 = 56;

/// The machine code: wait forever, again if a signal ever wakes it.
fn code() -> Result<(u16, Vec<u8>)> {
    match std::env::consts::ARCH {
        // loop: mov eax, 34 (pause); syscall; jmp loop
        "x86_64" => Ok((0x3e, vec![0xb8, 34, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7])),
        // aarch64 has no pause(2): ppoll(NULL, 0, NULL, NULL) blocks the same.
        // loop: mov x0..x3, xzr; mov x8, #73; svc #0; b loop
        "aarch64" => {
            let words: [u32; 7] = [
                0xaa1f_03e0,
                0xaa1f_03e1,
                0xaa1f_03e2,
                0xaa1f_03e3,
                0xd280_0928,
                0xd400_0001,
                0x17ff_fffa,
            ];
            Ok((0xb7, words.iter().flat_map(|w| w.to_le_bytes()).collect()))
        }
        other => Err(RuntimeError::Failed(format!(
            "no infra program for architecture {other}"
        ))),
    }
}

/// A static ELF64 executable: one header, one loadable segment, the code.
fn program() -> Result<Vec<u8>> {
    let (machine, code) = code()?;
    let entry_offset = u64::from(EHDR_SIZE + PHDR_SIZE);
    let size = entry_offset + code.len() as u64;
    let mut elf = Vec::with_capacity(size as usize);
    // e_ident: magic, 64-bit, little endian, version 1, System V ABI.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&machine.to_le_bytes());
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&(BASE + entry_offset).to_le_bytes()); // e_entry
    elf.extend_from_slice(&u64::from(EHDR_SIZE).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&EHDR_SIZE.to_le_bytes());
    elf.extend_from_slice(&PHDR_SIZE.to_le_bytes());
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&[0; 6]); // no section headers
                                    // The one PT_LOAD segment, readable and executable, maps the file.
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&5u32.to_le_bytes());
    elf.extend_from_slice(&0u64.to_le_bytes());
    elf.extend_from_slice(&BASE.to_le_bytes());
    elf.extend_from_slice(&BASE.to_le_bytes());
    elf.extend_from_slice(&size.to_le_bytes());
    elf.extend_from_slice(&size.to_le_bytes());
    elf.extend_from_slice(&0x1000u64.to_le_bytes());
    elf.extend_from_slice(&code);
    Ok(elf)
}

/// A short content hash, so a changed program gets a new tag.
fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

/// A tarball holding `/pause`.
fn rootfs(program: &[u8]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(program.len() as u64);
    header.set_mode(0o755);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append_data(&mut header, "pause", program)
        .and_then(|_| tar.into_inner())
        .map_err(|e| RuntimeError::Failed(format!("packing the infra image: {e}")))
}

/// The infra image reference, importing it first if the engine lacks it.
pub(super) async fn ensure_image(docker: &Docker) -> Result<String> {
    let program = program()?;
    let tag = fingerprint(&program);
    let reference = format!("{REPOSITORY}:{tag}");
    if docker.inspect_image(&reference).await.is_ok() {
        return Ok(reference);
    }
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(REPOSITORY)
        .tag(&tag)
        .changes(vec![r#"ENTRYPOINT ["/pause"]"#.to_string()])
        .build();
    let body = bollard::body_full(rootfs(&program)?.into());
    docker
        .create_image(Some(options), Some(body), None)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| map_err("importing the infra image", e))?;
    tracing::info!(image = %reference, "imported the infra image");
    Ok(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_is_a_small_static_elf() {
        let elf = program().unwrap();
        assert_eq!(&elf[..4], b"\x7fELF");
        assert!(elf.len() < 200);
        let entry = u64::from_le_bytes(elf[24..32].try_into().unwrap());
        assert_eq!(entry, BASE + 120);
        let filesz = u64::from_le_bytes(elf[96..104].try_into().unwrap());
        assert_eq!(filesz, elf.len() as u64);
    }
}
