//! A real nginx for the tests, on 127.0.0.1 with a free port and a config of the test's own (every path in a
//! temporary directory, no daemon, no user switch). The binary comes from `scripts/nginx.sh install` (run by
//! scripts/test.sh): TARSIER_NGINX_BIN, the script's cache, or PATH.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

/// The bytes of `/big.bin`, a static file nginx serves with its length.
pub const BIG: usize = 200_000;

impl Nginx {
    /// `/` answers "nginx" (a `return 200`), `/big.bin` is a static file of [`BIG`] bytes.
    pub fn start() -> Self {
        let bin = super::find_tool("nginx", "TARSIER_NGINX_BIN", "-v");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("html")).unwrap();
        std::fs::write(root.join("html/big.bin"), vec![b'n'; BIG]).unwrap();
        let port = super::fixed_port();
        let config = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root}/html;
        location = / {{ default_type text/plain; return 200 "nginx"; }}
    }}
}}
"#,
            root = root.display()
        );
        std::fs::write(root.join("nginx.conf"), config).unwrap();
        let child = Command::new(&bin)
            .arg("-p")
            .arg(root)
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let address = format!("127.0.0.1:{port}");
        let up = super::eventually(Duration::from_secs(10), || std::net::TcpStream::connect(&address).is_ok());
        assert!(up, "nginx did not listen on {address}");
        Nginx { child, _dir: dir, address }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
