//! Real nginx and load generators for the access-log tests: nginx runs in the foreground
//! (`daemon off`) inside namespace `a` with a temp prefix, config and access log, and is killed
//! on drop; load comes from namespace `b` through `wrk` (keep-alive, paced by a Lua `delay`) or
//! a paced `/usr/bin/python3` client that can bind several source addresses.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, NetnsPair};

pub const PORT: u16 = 8080;

/// Namespaces for a test that needs them; None when not possible ([`NetnsPair::create`] has
/// called `util::skip`, a failure under `CI=true`).
pub fn netns_pair() -> Option<NetnsPair> {
    let pair = NetnsPair::create();
    for tool in ["nginx", "wrk"] {
        if pair.is_some() && !util::have(tool) {
            panic!("{tool} is needed (apt-get install nginx wrk)");
        }
    }
    pair
}

pub struct Nginx {
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Nginx {
    /// Start nginx in namespace `a`, listening on `a`'s address, logging `combined`.
    pub fn start(pair: &NetnsPair) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        // Readable by the agent running as an ordinary user.
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {d}/access.log combined;\n  client_body_temp_path {d}/tmp;\n  \
             proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  \
             scgi_temp_path {d}/tmp;\n  keepalive_requests 1000000;\n  \
             server {{ listen {addr}:{PORT}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n",
            d = d.display(),
            addr = pair.addr_a,
        );
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        std::fs::write(d.join("pace.lua"), "function delay() return 5 end\n").unwrap();
        let child = NetnsPair::exec(&pair.ns_a, Path::new("nginx"))
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let n = Nginx { dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(n.log().exists() && n.dir.path().join("nginx.pid").exists()) {
            assert!(Instant::now() < deadline, "nginx did not start: {}", n.error_log());
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// `kill -USR1`: reopen the log files (what logrotate's postrotate does).
    pub fn reopen_logs(&self) {
        // SAFETY: kill(2) on our own child (the nginx master) with a valid signal.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, libc::SIGUSR1) }, 0);
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers, then exits.
        util::terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// Lines in a file (0 when missing).
pub fn count_lines(p: &Path) -> u64 {
    std::fs::read(p).map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64).unwrap_or(0)
}

/// `wrk` from `b`: 8 keep-alive connections, each pausing 5 ms between requests (~1,500/s
/// here), for `secs` seconds. Its report is on stdout.
pub fn wrk(pair: &NetnsPair, nginx: &Nginx, secs: u32, path: &str) -> Child {
    NetnsPair::exec(&pair.ns_b, Path::new("wrk"))
        .args(["-t1", "-c8", &format!("-d{secs}s"), "--timeout", "2s", "-s"])
        .arg(nginx.dir.path().join("pace.lua"))
        .arg(format!("http://{}:{PORT}{path}", pair.addr_a))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wrk")
}

/// The request count of a finished wrk (`N requests in ...`).
pub fn wrk_requests(child: Child) -> u64 {
    let out = child.wait_with_output().expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().split_once(" requests in ").and_then(|(n, _)| n.trim().parse().ok()))
        .unwrap_or_else(|| panic!("wrk said: {text}"))
}

const PACED: &str = r#"
import http.client, sys, threading, time
host, port, srcs, rate, secs, path = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(','), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
done = [0] * len(srcs)
def run(i, src):
    per, c, t0, n = rate / len(srcs), None, time.monotonic(), 0
    while time.monotonic() - t0 < secs:
        due = t0 + n / per
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        try:
            if c is None:
                c = http.client.HTTPConnection(host, port, timeout=5, source_address=(src, 0))
            c.request('GET', '%s?n=%d' % (path, n), headers={'User-Agent': 'paced-client/1'})
            r = c.getresponse(); r.read(); done[i] += 1
        except Exception:
            c = None
        n += 1
ts = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(srcs)]
[t.start() for t in ts]
[t.join() for t in ts]
print(sum(done))
"#;

/// `/usr/bin/python3` from `b`: `rate` requests/s in total, spread over keep-alive connections
/// bound to each of `sources`, for `secs` seconds. Prints the count of answered requests.
pub fn paced(pair: &NetnsPair, sources: &[String], rate: f64, secs: f64, path: &str) -> Child {
    NetnsPair::exec(&pair.ns_b, Path::new("/usr/bin/python3"))
        .args(["-c", PACED, &pair.addr_a, &PORT.to_string(), &sources.join(","), &rate.to_string()])
        .args([&secs.to_string(), path])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn python3")
}

pub fn paced_requests(child: Child) -> u64 {
    let out = child.wait_with_output().expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().unwrap_or_else(|_| panic!("paced client said: {text}"))
}

/// `n` more addresses on `b`'s veth (10.77.N.10...), for floods from many sources.
pub fn add_sources(pair: &NetnsPair, n: u8) -> Vec<String> {
    let prefix = pair.addr_b.rsplit_once('.').expect("dotted").0.to_string();
    (0..n)
        .map(|i| {
            let a = format!("{prefix}.{}", 10 + i);
            let ok = Command::new("ip")
                .args(["-n", &pair.ns_b, "addr", "add", &format!("{a}/24"), "dev", &pair.veth_b])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip addr add {a}");
            a
        })
        .collect()
}
