//! The processes a benchmark starts and watches: the sample providers and a
//! gateway, each a child running this same executable, and what `/proc`
//! says about a process's CPU time and peak memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Linux reports CPU time in clock ticks of `USER_HZ`, which the kernel ABI
/// fixes at 100 on every architecture Jisr runs on.
const TICKS_PER_SECOND: u64 = 100;
/// How long a child may take to write its address file.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// CPU time and peak resident memory of one or more processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ProcStats {
    /// User + system time of all their threads.
    pub(crate) cpu: Duration,
    /// The sum of their peak resident set sizes (`VmHWM`), KiB.
    pub(crate) peak_rss_kb: u64,
    /// How many processes were counted.
    pub(crate) processes: usize,
}

impl ProcStats {
    /// Reads `pids` now; `None` if one of them cannot be read.
    pub(crate) fn read(pids: &[u32]) -> Option<Self> {
        let mut total = Self::default();
        for pid in pids {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let ticks = parse_stat(&stat)?.cpu_ticks;
            total.cpu += Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND);
            total.peak_rss_kb += parse_vm_hwm_kb(&status)?;
            total.processes += 1;
        }
        Some(total)
    }

    /// The CPU spent since `before`, with the peak memory as of now.
    pub(crate) fn since(self, before: Self) -> Self {
        Self {
            cpu: self.cpu.saturating_sub(before.cpu),
            ..self
        }
    }

    /// Adds the CPU of another interval; keeps the higher peak.
    pub(crate) fn add(self, other: Self) -> Self {
        Self {
            cpu: self.cpu + other.cpu,
            peak_rss_kb: self.peak_rss_kb.max(other.peak_rss_kb),
            processes: self.processes.max(other.processes),
        }
    }
}

/// The fields of `/proc/<pid>/stat` the benchmark uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) ppid: u32,
    /// utime + stime, in clock ticks.
    pub(crate) cpu_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so fields are counted from
/// the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: state(3) ppid(4) … utime(14) stime(15).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        cpu_ticks: field(14)? + field(15)?,
    })
}

/// The `VmHWM` (peak resident set) line of `/proc/<pid>/status`, KiB.
pub(crate) fn parse_vm_hwm_kb(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The processes whose parent is `parent` (e.g. nginx's workers).
pub(crate) fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
                .is_some_and(|s| s.ppid == parent)
        })
        .collect()
}

/// The local process listening on TCP `port`, found through the socket's
/// inode in `/proc/net/tcp{,6}` and the processes' open descriptors.
pub(crate) fn listening_pid(port: u16) -> Option<u32> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|table| table.lines().find_map(|l| listening_inode(l, port)))?;
    let socket = format!("socket:[{inode}]");
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.filter_map(Result::ok).any(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == socket.as_str())
                })
            })
        })
}

/// The socket inode of a `/proc/net/tcp` line if it listens on `port`.
pub(crate) fn listening_inode(line: &str, port: u16) -> Option<u64> {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    let fields: Vec<&str> = line.split_whitespace().collect();
    let local_port = u16::from_str_radix(fields.get(1)?.rsplit_once(':')?.1, 16).ok()?;
    let listening = *fields.get(3)? == "0A";
    (listening && local_port == port).then(|| fields.get(9)?.parse().ok())?
}

/// A child process, killed when dropped; its stderr goes to a log file.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Spawned {
    /// Starts `command` with its stderr in `<dir>/<name>.log`.
    pub(crate) fn start(name: &str, dir: &Path, command: &mut Command) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {name} ({command:?})"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Fails with the child's log if it has exited.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!(
                "{} exited ({status}); its log ({}):\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Waits for the address file the child writes once it listens.
    pub(crate) async fn address(&mut self, file: &Path) -> anyhow::Result<String> {
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(file) {
                if !text.trim().is_empty() {
                    return Ok(text.trim().to_owned());
                }
            }
            self.check_running()?;
            if start.elapsed() > START_TIMEOUT {
                anyhow::bail!("{} did not start within {START_TIMEOUT:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `jisr` child: this executable with `args`, logging warnings only.
pub(crate) fn jisr(exe: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(exe);
    command.args(args).env("RUST_LOG", "warn");
    command
}

/// The benchmark's own network on loopback: a PKI, the three sample
/// providers and a gateway with the demo's configuration (rules, subject
/// walk, durable audit), each a separate process.
#[derive(Debug)]
pub(crate) struct LocalNetwork {
    pub(crate) pki: PathBuf,
    pub(crate) civil_status: String,
    pub(crate) tax: String,
    pub(crate) gateway: String,
    gateway_proc: Spawned,
    _providers: Vec<Spawned>,
    consents: Arc<HashMap<String, String>>,
}

impl LocalNetwork {
    /// Creates everything under `dir` and starts the processes from `exe`.
    pub(crate) async fn start(dir: &Path, exe: &Path) -> anyhow::Result<Self> {
        let pki_dir =
            crate::tools::demo::prepare(dir).context("creating the benchmark PKI and contracts")?;
        Self::start_prepared(dir, exe, pki_dir, |config| config).await
    }

    /// [`Self::start`] on a PKI and contracts already written by
    /// `demo::prepare` (so other processes can be given its files first),
    /// with the gateway's configuration passed through `edit`.
    pub(crate) async fn start_prepared(
        dir: &Path,
        exe: &Path,
        pki_dir: PathBuf,
        edit: impl FnOnce(String) -> String,
    ) -> anyhow::Result<Self> {
        let mut providers = Vec::new();
        let mut addrs = Vec::new();
        for agency in ["civil-status", "tax", "health"] {
            let addr_file = dir.join(format!("{agency}.addr"));
            let _ = std::fs::remove_file(&addr_file);
            let pki_arg = pki_dir.to_string_lossy();
            let addr_arg = addr_file.to_string_lossy();
            let args = [
                "sample-provider",
                "--agency",
                agency,
                "--listen",
                "127.0.0.1:0",
                "--pki",
                &pki_arg,
                "--addr-file",
                &addr_arg,
            ];
            let mut proc = Spawned::start(agency, dir, &mut jisr(exe, &args))?;
            addrs.push(proc.address(&addr_file).await?);
            providers.push(proc);
        }
        let config = dir.join("jisr.toml");
        std::fs::write(
            &config,
            edit(format!(
                include_str!("../demo/demo.toml.in"),
                civil_status = addrs[0],
                tax = addrs[1],
                health = addrs[2],
            )),
        )?;
        let addr_file = dir.join("gateway.addr");
        let _ = std::fs::remove_file(&addr_file);
        let (config_arg, addr_arg) = (config.to_string_lossy(), addr_file.to_string_lossy());
        let args = ["serve", "--config", &config_arg, "--addr-file", &addr_arg];
        let mut gateway_proc = Spawned::start("gateway", dir, &mut jisr(exe, &args))?;
        let gateway = gateway_proc.address(&addr_file).await?;
        let consents = Arc::new(grant_consents(&gateway, &pki_dir, "portal", "education").await?);
        Ok(Self {
            pki: pki_dir,
            civil_status: addrs[0].clone(),
            tax: addrs[1].clone(),
            gateway,
            gateway_proc,
            _providers: providers,
            consents,
        })
    }

    /// The consent to send for each citizen (the demo rules rest on consent).
    pub(crate) fn consents(&self) -> Arc<HashMap<String, String>> {
        self.consents.clone()
    }

    /// The gateway's process id.
    pub(crate) fn gateway_pid(&self) -> u32 {
        self.gateway_proc.pid()
    }

    /// Fails with its log if the gateway has died.
    pub(crate) fn check_gateway(&mut self) -> anyhow::Result<()> {
        self.gateway_proc.check_running()
    }
}

/// Records, through the portal, each dataset citizen's consent to
/// `education` for the benchmark's methods and purpose, so the measured
/// path includes the consent check as the demo's rules require.
/// Grants, through `manager` (an agency with the consent-manager role), a
/// day's consent for each sample citizen to `consumer` for the benchmark's
/// methods and purpose; returns each citizen's consent id.
pub(crate) async fn grant_consents(
    gateway: &str,
    pki: &Path,
    manager: &str,
    consumer: &str,
) -> anyhow::Result<HashMap<String, String>> {
    use crate::proto::jisr::consent::v1::{consents_client::ConsentsClient, Consent, GrantRequest};
    let tls = crate::tls::tonic_client_tls(&crate::tls::TlsFiles::for_agency(pki, manager))?;
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{gateway}"))?
        .tls_config(tls)?
        .connect()
        .await?;
    let mut portal = ConsentsClient::new(channel);
    let mut consents = HashMap::new();
    for citizen in crate::tools::samples::dataset::citizen_ids() {
        let consent = Consent {
            subject: citizen.into(),
            consumer: consumer.into(),
            methods: vec![
                "ma.civilstatus.v1.CivilStatus/GetBirthRecord".into(),
                "ma.tax.v1.TaxRecords/GetTaxStatus".into(),
            ],
            purpose: "bac-candidature".into(),
            not_after_unix_micros: crate::consent::artefact::now_micros() + 86_400_000_000,
            ..Default::default()
        };
        let granted = portal
            .grant(GrantRequest {
                consent: Some(consent),
            })
            .await
            .map_err(|s| anyhow::anyhow!("granting the benchmark's consents as `{manager}` failed: {}; `{manager}` needs the consent-manager role on that gateway", s.message()))?
            .into_inner();
        if let Some(c) = granted.decoded {
            consents.insert(citizen.to_owned(), c.id);
        }
    }
    Ok(consents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (tokio (rt) worker) S 17 4242 17 0 -1 4194560 1183 0 0 0 \
                    250 75 0 0 20 0 3 0 123456 98765432 2048 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 17,
                cpu_ticks: 325
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tjisr\nVmPeak:\t  900000 kB\nVmHWM:\t   23456 kB\nVmRSS:\t 20000 kB\n";
        assert_eq!(parse_vm_hwm_kb(status), Some(23_456));
        assert_eq!(parse_vm_hwm_kb("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn listening_sockets_are_found_by_port() {
        let listen = "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0";
        let connected = "   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 654321 1 0000000000000000 20 4 30 10 -1";
        assert_eq!(listening_inode(listen, 8080), Some(123_456));
        assert_eq!(listening_inode(listen, 8081), None);
        assert_eq!(listening_inode(connected, 8080), None);
        assert_eq!(
            listening_inode("  sl  local_address rem_address   st", 8080),
            None
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listening_pid(port), Some(std::process::id()));
    }

    #[test]
    fn this_process_can_be_measured() {
        let me = ProcStats::read(&[std::process::id()]).unwrap();
        assert!(me.peak_rss_kb > 0);
        assert_eq!(me.processes, 1);
        let later = ProcStats {
            cpu: me.cpu + Duration::from_millis(30),
            ..me
        };
        assert_eq!(later.since(me).cpu, Duration::from_millis(30));
        assert_eq!(
            later.since(me).add(later.since(me)).cpu,
            Duration::from_millis(60)
        );
    }
}
