//! Several machines on this one: each a network namespace with its own
//! Docker Engine, all joined by veth pairs to an underlay bridge that lives
//! in a namespace of its own (so the host's firewall never sees their
//! traffic), with addresses of a /24 picked for this run. A kedge process
//! started on a machine runs in its namespace against its engine, as it
//! would on a machine of its own; `kubectl` run "on" a machine is an admin
//! logged in there.
//!
//! Everything carries the test process's PID in its name (`kedge-t<pid>-…`):
//! dropping [`Machines`] stops what it started by PID, stops the engines,
//! and deletes the namespaces and links; a run that crashed is swept by
//! the next one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::images;

/// How long an engine may take to answer.
const ENGINE_START: Duration = Duration::from_secs(60);

/// The machines of one test.
pub struct Machines {
    underlay: String,
    host_link: String,
    dir: PathBuf,
    /// The first three octets of the underlay's /24.
    pub prefix: String,
    /// The machines, `m1`, `m2`, …
    pub machines: Vec<Machine>,
}

/// One machine.
pub struct Machine {
    /// Its name (`m1`), also its node's.
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// Its address on the underlay.
    pub address: String,
    /// Its files: the engine's, and HOME of its processes.
    pub dir: PathBuf,
    /// The underlay bridge's port of its link (down = the cable cut).
    port: String,
    underlay: String,
    dockerd: Option<Child>,
    processes: Vec<Child>,
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

fn must(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// What crashed runs left: their processes, namespaces, mounts, cgroups
/// and files.
fn sweep() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let list = run("ip", &["netns", "list"]);
        let mut names: BTreeSet<String> = String::from_utf8_lossy(&list.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect();
        // Machines whose namespace is gone may still have containers.
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                for e in std::fs::read_dir(h.path()).into_iter().flatten().flatten() {
                    names.insert(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        let mut dirs = BTreeSet::new();
        for e in std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name
                .strip_prefix("kedge-machines-")
                .and_then(|p| p.parse().ok())
            {
                if !alive(pid) {
                    dirs.insert(e.path());
                }
            }
        }
        for ns in &names {
            let Some(pid) = ns
                .strip_prefix("kedge-t")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if !alive(pid) {
                remove_machine(ns);
                dirs.insert(base_dir(pid));
            }
        }
        for dir in dirs {
            unmount_under(&dir);
            let _ = std::fs::remove_dir_all(dir);
        }
    });
}

/// Kill whatever still runs in a machine's namespace or under its
/// engine's cgroup parent (its containers), then remove both.
fn remove_machine(netns: &str) {
    let mut pids: Vec<String> =
        String::from_utf8_lossy(&run("ip", &["netns", "pids", netns]).stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
    let cgroups = cgroup_dirs(netns);
    for dir in &cgroups {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(procs.split_whitespace().map(String::from));
        }
    }
    pids.sort();
    pids.dedup();
    for p in &pids {
        let _ = run("kill", &["-KILL", p]);
    }
    // Deepest first: a cgroup goes once its children have.
    for dir in cgroups.iter().rev() {
        for _ in 0..20 {
            if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = run("ip", &["netns", "del", netns]);
}

/// The cgroup directories named `netns` in every hierarchy, each followed
/// by those below it.
fn cgroup_dirs(netns: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        out.push(dir.to_path_buf());
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in hierarchies.flatten() {
            let dir = h.path().join(netns);
            if dir.is_dir() {
                walk(&dir, &mut out);
            }
        }
    }
    out
}

/// Lazily unmount what is mounted under `dir` (an engine killed midway
/// leaves its containers' root filesystems).
fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = run("umount", &["-l", p]);
    }
}

fn base_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("kedge-machines-{pid}"))
}

impl Machines {
    /// `n` machines with engines running and the test images loaded.
    pub fn new(n: usize) -> Self {
        assert!((1..=9).contains(&n));
        sweep();
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let pid = std::process::id();
        let seq = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("kedge-t{pid}-{seq}");
        // 10.123.x.0/24, x from the PID and sequence: parallel runs differ.
        let prefix = format!("10.123.{}", (pid * 7 + seq) % 250);
        let dir = base_dir(pid).join(seq.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let underlay = format!("{tag}-u");
        let host_link = format!("kt{}h{seq}", pid % 100_000);
        let mut out = Self {
            underlay: underlay.clone(),
            host_link: host_link.clone(),
            dir: dir.clone(),
            prefix: prefix.clone(),
            machines: Vec::new(),
        };
        must("ip", &["netns", "add", &underlay]);
        must("ip", &["-n", &underlay, "link", "set", "lo", "up"]);
        must(
            "ip",
            &["-n", &underlay, "link", "add", "br0", "type", "bridge"],
        );
        must("ip", &["-n", &underlay, "link", "set", "br0", "up"]);
        // The host's own port, for nothing but reaching machines' addresses.
        must(
            "ip",
            &[
                "link", "add", &host_link, "type", "veth", "peer", "name", "host", "netns",
                &underlay,
            ],
        );
        must(
            "ip",
            &[
                "-n", &underlay, "link", "set", "host", "master", "br0", "up",
            ],
        );
        must(
            "ip",
            &[
                "addr",
                "add",
                &format!("{prefix}.254/24"),
                "dev",
                &host_link,
            ],
        );
        must("ip", &["link", "set", &host_link, "up"]);
        for i in 1..=n {
            let name = format!("m{i}");
            let netns = format!("{tag}-{name}");
            let mdir = dir.join(&name);
            std::fs::create_dir_all(mdir.join("home")).unwrap();
            must("ip", &["netns", "add", &netns]);
            must(
                "ip",
                &[
                    "-n", &underlay, "link", "add", &name, "type", "veth", "peer", "name", "eth0",
                    "netns", &netns,
                ],
            );
            must(
                "ip",
                &["-n", &underlay, "link", "set", &name, "master", "br0", "up"],
            );
            let address = format!("{prefix}.{i}");
            must(
                "ip",
                &[
                    "-n",
                    &netns,
                    "addr",
                    "add",
                    &format!("{address}/24"),
                    "dev",
                    "eth0",
                ],
            );
            must("ip", &["-n", &netns, "link", "set", "eth0", "up"]);
            must("ip", &["-n", &netns, "link", "set", "lo", "up"]);
            let mut m = Machine {
                name: name.clone(),
                netns,
                address,
                dir: mdir,
                port: name,
                underlay: underlay.clone(),
                dockerd: None,
                processes: Vec::new(),
            };
            m.nsenter_status(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
            m.start_engine();
            out.machines.push(m);
        }
        for m in &out.machines {
            m.wait_for_engine();
        }
        for image in [images::busybox(), images::echo()] {
            out.load_image(image);
        }
        out
    }

    /// Copy an image of this machine's engine into every machine's.
    pub fn load_image(&self, reference: &str) {
        let file = self.dir.join("image.tar");
        must("docker", &["save", "-o", file.to_str().unwrap(), reference]);
        for m in &self.machines {
            m.docker(&["load", "-q", "-i", file.to_str().unwrap()]);
        }
        let _ = std::fs::remove_file(file);
    }

    /// Machine `i` (1-based, as its name).
    pub fn machine(&mut self, i: usize) -> &mut Machine {
        &mut self.machines[i - 1]
    }
}

impl Machine {
    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// `nsenter --net=<its namespace>`: the rest of the command runs on
    /// this machine (`ip netns exec` would remount /sys, hiding the cgroup
    /// mounts dockerd needs).
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/var/run/netns/{}", self.netns))
            .arg(program)
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("HOME", self.dir.join("home"))
            .stdin(Stdio::null());
        cmd
    }

    fn nsenter_status(&self, args: &[&str]) {
        let out = self
            .command(args[0])
            .args(&args[1..])
            .output()
            .expect("nsenter");
        assert!(
            out.status.success(),
            "{args:?} on {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_engine(&mut self) {
        let d = &self.dir;
        // Its own configuration file: the host's may name a data root.
        std::fs::write(
            d.join("daemon.json"),
            r#"{"storage-driver":"fuse-overlayfs"}"#,
        )
        .unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = self
            .command("dockerd")
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("docker"))
            .arg("--exec-root")
            .arg(d.join("docker-exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--cgroup-parent")
            .arg(&self.netns)
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        self.dockerd = Some(child);
    }

    fn wait_for_engine(&self) {
        let deadline = Instant::now() + ENGINE_START;
        while Instant::now() < deadline {
            let out = Command::new("docker")
                .arg("-H")
                .arg(format!("unix://{}", self.socket().display()))
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if out.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "the engine of {} did not start: {}",
            self.name,
            std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
        );
    }

    /// `docker` against this machine's engine; its output (success expected).
    pub fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker");
        assert!(
            out.status.success(),
            "docker {args:?} on {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Start `kedge <args>` on this machine, its output in `<name>.log`
    /// under the machine's files; stopped by PID when the machines go.
    pub fn kedge(&mut self, log: &str, args: &[&str]) -> usize {
        self.kedge_with_env(log, args, &[])
    }

    /// [`kedge`](Self::kedge) with environment variables.
    pub fn kedge_with_env(&mut self, log: &str, args: &[&str], env: &[(&str, &str)]) -> usize {
        self.spawn(env!("CARGO_BIN_EXE_kedge"), log, args, env)
    }

    /// Start `program <args>` on this machine, its output in `<log>.log`;
    /// stopped by PID when the machines go.
    pub fn spawn(
        &mut self,
        program: &str,
        log: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> usize {
        let log = std::fs::File::create(self.dir.join(format!("{log}.log"))).unwrap();
        let child = self
            .command(program)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        self.processes.push(child);
        self.processes.len() - 1
    }

    /// SIGKILL the process [`spawn`](Self::spawn) numbered `index`.
    pub fn kill(&mut self, index: usize) {
        let child = &mut self.processes[index];
        let _ = child.kill();
        let _ = child.wait();
    }

    /// What a process started by [`kedge`](Self::kedge) wrote so far,
    /// colours taken out.
    pub fn log(&self, log: &str) -> String {
        super::without_colours(
            &std::fs::read_to_string(self.dir.join(format!("{log}.log"))).unwrap_or_default(),
        )
    }

    /// Run `kedge <args>` on this machine to its end.
    pub fn kedge_output(&self, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_kedge"))
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("running kedge")
    }

    /// `kubectl` run on this machine as the admin of a control plane
    /// started here (its kubeconfig in `$HOME/.kedge`); stdout, success
    /// expected.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} on {} failed:\nstdout: {}\nstderr: {}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl` on this machine, whatever its exit code.
    pub fn kubectl_output(&self, args: &[&str]) -> Output {
        self.command("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.join("home/.kedge/kubeconfig"))
            .args(args)
            .output()
            .expect("running kubectl")
    }

    /// `kedge init` here as the cluster's first control plane and node
    /// (its address and name, no ingress controller or demo images, the
    /// cluster DNS forwarding nowhere), with `extra` flags and `env`; its
    /// output in `init.log`, its process number returned.
    pub fn init(&mut self, extra: &[&str], env: &[(&str, &str)]) -> usize {
        let (address, name) = (self.address.clone(), self.name.clone());
        let mut args = vec![
            "init",
            "--node-ip",
            &address,
            "--node-name",
            &name,
            "--no-ingress",
            "--no-demo-images",
            "--dns-upstream",
            "127.0.0.1:9",
        ];
        args.extend(extra);
        self.kedge_with_env("init", &args, env)
    }

    /// The `kedge join …` commands [`init`](Self::init) printed, once it
    /// printed `count` of them (within three minutes).
    pub fn join_commands(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let log = self.log("init");
            let commands: Vec<String> = log
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("kedge join "))
                .map(String::from)
                .collect();
            if commands.len() >= count {
                return commands;
            }
            assert!(
                Instant::now() < deadline,
                "kedge init on {} printed {} join commands, not {count}:\n{log}",
                self.name,
                commands.len()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Run a join `command` printed by `init` here as this machine (its
    /// address and name, the cluster DNS forwarding nowhere), with `extra`
    /// flags; its output in `join.log`. The machines share this host's
    /// files, so each keeps its own: a node in `kedge/`, a control plane
    /// where its admin's kubectl looks (`$HOME/.kedge`).
    pub fn join(&mut self, command: &str, extra: &[&str]) -> usize {
        let (address, name) = (self.address.clone(), self.name.clone());
        let data_dir = if command.contains("--control-plane") {
            self.dir.join("home/.kedge")
        } else {
            self.dir.join("kedge")
        };
        let data_dir = data_dir.display().to_string();
        let mut args: Vec<&str> = command.split_whitespace().skip(1).collect();
        args.extend([
            "--node-ip",
            &address,
            "--node-name",
            &name,
            "--data-dir",
            &data_dir,
            "--dns-upstream",
            "127.0.0.1:9",
        ]);
        args.extend(extra);
        self.kedge("join", &args)
    }

    /// `kubectl apply` of `manifest` (kept as `file` in the machine's
    /// files) as this machine's admin.
    pub fn apply(&self, file: &str, manifest: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, manifest).unwrap();
        self.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    }

    /// `ip <args>` on this machine (success expected).
    pub fn ip(&self, args: &[&str]) {
        must("ip", &[&["-n", self.netns.as_str()], args].concat());
    }

    /// Cut (`false`) or mend (`true`) this machine's cable to the underlay.
    pub fn link(&self, up: bool) {
        must(
            "ip",
            &[
                "-n",
                &self.underlay,
                "link",
                "set",
                &self.port,
                if up { "up" } else { "down" },
            ],
        );
    }

    /// Stop everything started here: kedge processes (SIGTERM, then
    /// SIGKILL), then the engine with its containers.
    fn stop(&mut self) {
        for child in &mut self.processes {
            stop(child, Duration::from_secs(10));
        }
        self.processes.clear();
        if let Some(mut dockerd) = self.dockerd.take() {
            // The engine stops its containers as it goes.
            let ids = Command::new("docker")
                .arg("-H")
                .arg(format!("unix://{}", self.socket().display()))
                .args(["ps", "-aq"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .arg("-H")
                    .arg(format!("unix://{}", self.socket().display()))
                    .args(["rm", "-f", "-v"])
                    .args(&ids)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            stop(&mut dockerd, Duration::from_secs(20));
        }
    }
}

/// SIGTERM, SIGKILL after `grace` (nothing for a process already gone).
fn stop(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    super::terminate(child, grace);
}

impl Drop for Machines {
    fn drop(&mut self) {
        for m in &mut self.machines {
            m.stop();
        }
        for m in &self.machines {
            remove_machine(&m.netns);
        }
        // The host's link goes with its peer in the underlay's namespace.
        let _ = run("ip", &["netns", "del", &self.underlay]);
        let _ = run("ip", &["link", "del", &self.host_link]);
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir(self.dir.parent().unwrap());
    }
}
