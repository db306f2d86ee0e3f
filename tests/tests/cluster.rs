//! The private development cluster (`scripts/private-cluster.sh`, what `make run` starts
//! when no PostgreSQL is at hand) lets in only those who know its generated password, over
//! TCP and over its socket alike.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/private-cluster.sh");

fn postgres_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's binaries")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version").join(name)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program as the cluster's owner.
fn as_owner(program: &Path, args: &[&str]) -> Output {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command
        .args(args)
        .env_remove("PGPASSWORD")
        .output()
        .expect("run")
}

/// Stops the cluster however the test ends.
struct Cluster(PathBuf);

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.0.to_string_lossy().into_owned();
        as_owner(
            &postgres_bin("pg_ctl"),
            &["-D", &data, "-m", "immediate", "stop"],
        );
    }
}

fn psql(target: &[&str]) -> Output {
    Command::new("psql")
        .args(target)
        .args(["-qAtc", "select 1"])
        .env_remove("PGPASSWORD")
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("psql")
}

#[test]
fn the_private_cluster_asks_for_its_password() {
    let folder = tempfile::tempdir().expect("scratch folder");
    // The cluster's owner (postgres, when the tests run as root) must reach its folder.
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755))
        .expect("permissions");
    let data = folder.path().join("postgres");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
        .to_string();
    let started = Command::new(SCRIPT)
        .arg(&data)
        .arg(&port)
        .output()
        .expect("run the script");
    let _cluster = Cluster(data.clone());
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let url = String::from_utf8_lossy(&started.stdout).trim().to_string();
    let secret = std::fs::read_to_string(format!("{}.password", data.display())).expect("secret");
    assert!(secret.len() >= 32, "a long random password");
    assert_eq!(
        url,
        format!("postgres://postgres:{secret}@127.0.0.1:{port}")
    );
    let mode = std::fs::metadata(format!("{}.password", data.display()))
        .expect("secret file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "only its owner reads the password");

    assert!(psql(&[&format!("{url}/postgres")]).status.success());
    let without = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    assert!(
        !psql(&[&without]).status.success(),
        "TCP without the password"
    );
    let socket = data.to_string_lossy().into_owned();
    let by_socket = as_owner(
        &postgres_bin("psql"),
        &[
            "-h", &socket, "-p", &port, "-U", "postgres", "-d", "postgres", "-w", "-qAtc",
            "select 1",
        ],
    );
    assert!(
        !by_socket.status.success(),
        "the socket without the password"
    );
    // Running it again finds the cluster running and prints the same address.
    let again = Command::new(SCRIPT)
        .arg(&data)
        .arg(&port)
        .output()
        .expect("rerun");
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), url);
}
