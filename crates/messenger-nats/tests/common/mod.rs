//! A real 3-node nats-server cluster with JetStream on loopback, one per test.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use messenger_nats::subject::EncodedName;
use messenger_nats::{Directory, Nats, NatsSettings};

/// How long a fresh cluster may take to elect its JetStream meta leader.
pub const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Nodes in the test cluster: the smallest that keeps a quorum with one node dead.
pub const NODES: usize = 3;
/// Lines of each server's log shown when a test fails.
const SERVER_LOG_LINES: usize = 20;

struct Node {
    client_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// The cluster; its servers are killed when it is dropped.
pub struct Cluster {
    _dir: tempfile::TempDir,
    server: PathBuf,
    nodes: Vec<Node>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start(server: &Path, config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("a server log file");
    Command::new(server)
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("nats-server starts")
}

impl Cluster {
    /// Starts three servers with cluster routes to each other and JetStream stores in a
    /// temporary directory. `None` without a nats-server (see
    /// [`messenger_nats::testing::nats_server`]); the caller then skips its test.
    pub fn start() -> Option<Self> {
        let server = messenger_nats::testing::nats_server()?;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ports: Vec<(u16, u16)> = (0..NODES).map(|_| (free_port(), free_port())).collect();
        let routes = ports
            .iter()
            .map(|(_, r)| format!("\"nats-route://127.0.0.1:{r}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, (client, route))| {
                let store = dir.path().join(format!("n{i}"));
                let config = dir.path().join(format!("n{i}.conf"));
                let log = dir.path().join(format!("n{i}.log"));
                std::fs::write(
                    &config,
                    format!(
                        "server_name: n{i}\nlisten: \"127.0.0.1:{client}\"\n\
                         jetstream {{ store_dir: \"{}\" }}\n\
                         cluster {{ name: messenger-test, listen: \"127.0.0.1:{route}\", routes: [{routes}] }}\n",
                        store.display()
                    ),
                )
                .expect("writing a server configuration");
                Node {
                    client_port: *client,
                    child: Some(start(&server, &config, &log)),
                    config,
                    log,
                }
            })
            .collect();
        Some(Cluster {
            _dir: dir,
            server,
            nodes,
        })
    }

    /// The client URLs of every node.
    pub fn servers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client_port))
            .collect()
    }

    /// Settings for a client of this cluster, replicas 3.
    pub fn settings(&self) -> NatsSettings {
        NatsSettings::new(self.servers())
    }

    /// The process ids of the running servers.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| n.child.as_ref().map(Child::id))
            .collect()
    }

    /// Kills node `i` at once (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the node whose server name (`n0`, `n1`, ...) is `name`.
    pub fn kill_named(&mut self, name: &str) {
        let i = (0..self.nodes.len())
            .find(|i| format!("n{i}") == name)
            .unwrap_or_else(|| panic!("no node named {name:?}"));
        self.kill(i);
    }

    /// Starts node `i` again with its store.
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].child.is_none() {
            let node = &self.nodes[i];
            let child = start(&self.server, &node.config, &node.log);
            self.nodes[i].child = Some(child);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            // What the servers said, for the failing test's output.
            for node in &self.nodes {
                let log = std::fs::read_to_string(&node.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(SERVER_LOG_LINES).collect();
                eprintln!("--- {} (last lines)", node.log.display());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Connects with `settings` and opens the directory for `host`, waiting for the cluster to
/// have a JetStream leader.
pub async fn host(settings: NatsSettings, host: &str) -> (Nats, Directory) {
    let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
    loop {
        let attempt = async {
            let nats = Nats::connect(settings.clone())
                .await
                .map_err(|e| e.to_string())?;
            let directory = Directory::open(&nats, EncodedName::new(host).unwrap())
                .await
                .map_err(|e| e.to_string())?;
            nats.stream().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((nats, directory))
        };
        match attempt.await {
            Ok(ready) => return ready,
            Err(e) if Instant::now() > deadline => panic!("the cluster did not become ready: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Waits until `check` holds, polling, or panics with `what` after `timeout`.
pub async fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
