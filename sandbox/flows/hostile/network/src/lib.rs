//! Hostile flow: tries TCP connect (to `127.0.0.1:{port}`, a listener the test owns), TCP and
//! UDP bind, a UDP send, and a name lookup through WASI sockets, and reports what worked. Only
//! loopback is ever tried. A sandbox that holds reports an empty `allowed`.

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use ferry_flow_sdk::serde_json::{json, Map, Value};

fn attempt(
    allowed: &mut Vec<Value>,
    errors: &mut Map<String, Value>,
    what: &str,
    r: std::io::Result<String>,
) {
    match r {
        Ok(detail) => allowed.push(json!({ "what": what, "detail": detail })),
        Err(e) => {
            errors.insert(what.to_owned(), Value::String(e.to_string()));
        }
    }
}

ferry_flow_sdk::flow! {
    fn run(params: Value) -> Result<Value, String> {
        let port = params.get("port").and_then(Value::as_u64).unwrap_or(9) as u16;
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        let mut allowed = Vec::new();
        let mut errors = Map::new();
        attempt(&mut allowed, &mut errors, "tcp connect", {
            TcpStream::connect_timeout(&target, Duration::from_secs(2)).map(|s| format!("{:?}", s.peer_addr()))
        });
        attempt(&mut allowed, &mut errors, "tcp bind", {
            TcpListener::bind("127.0.0.1:0").map(|l| format!("{:?}", l.local_addr()))
        });
        attempt(&mut allowed, &mut errors, "udp bind", {
            UdpSocket::bind("127.0.0.1:0").map(|s| format!("{:?}", s.local_addr()))
        });
        attempt(&mut allowed, &mut errors, "udp send", {
            UdpSocket::bind("127.0.0.1:0").and_then(|s| s.send_to(b"hello", target)).map(|n| format!("{n} bytes"))
        });
        attempt(&mut allowed, &mut errors, "name lookup", {
            ("localhost", port).to_socket_addrs().map(|addrs| format!("{:?}", addrs.collect::<Vec<_>>()))
        });
        Ok(json!({ "allowed": allowed, "errors": errors }))
    }
}
