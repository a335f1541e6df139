//! One round of the workload: the same socket system calls, in the same order, every time.
//! Every wait is for data that is already queued (loopback and AF_UNIX deliver before the
//! sending call returns), so no call takes a different kernel path from one run to the next.

use crate::sys::{self, unexpected, Fd, SysResult};

const REQUEST: &[u8] = b"rstap socket-workload request";
const REPLY: &[u8] = b"rstap socket-workload reply";
const DATAGRAM: &[u8] = b"rstap socket-workload datagram";
const HEADER: &[u8] = b"rstap ";
const BODY: &[u8] = b"socket-workload message";

/// Runs one round: TCP, then UDP, then a UNIX socketpair.
pub fn run() -> SysResult<()> {
    tcp()?;
    udp()?;
    unix_pair()
}

/// Receives exactly `expected` in one call, or reports what came instead.
fn recv_exact(call: &'static str, fd: &Fd, expected: &[u8]) -> SysResult<()> {
    let mut buf = [0u8; 128];
    let n = sys::recv(fd, &mut buf)?;
    expect_bytes(call, &buf[..n], expected)
}

fn expect_bytes(call: &'static str, got: &[u8], expected: &[u8]) -> SysResult<()> {
    if got == expected {
        Ok(())
    } else {
        Err(unexpected(
            call,
            format!(
                "received {:?}, expected {:?}",
                String::from_utf8_lossy(got),
                String::from_utf8_lossy(expected)
            ),
        ))
    }
}

fn port_of(addr: &libc::sockaddr_in) -> u16 {
    u16::from_be(addr.sin_port)
}

fn tcp() -> SysResult<()> {
    let listener = sys::socket(libc::AF_INET, libc::SOCK_STREAM)?;
    sys::setsockopt_int(&listener, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    sys::bind(&listener, &sys::loopback(0))?;
    sys::listen(&listener, 1)?;
    let port = port_of(&sys::getsockname(&listener)?);

    let client = sys::socket(libc::AF_INET, libc::SOCK_STREAM)?;
    sys::setsockopt_int(&client, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    if sys::getsockopt_int(&client, libc::IPPROTO_TCP, libc::TCP_NODELAY)? == 0 {
        return Err(unexpected("getsockopt", "TCP_NODELAY did not stick".into()));
    }
    sys::connect(&client, &sys::loopback(port))?;
    let server = sys::accept(&listener)?;

    let local = sys::getsockname(&client)?;
    let peer = sys::getpeername(&server)?;
    sys::report(|| format!("tcp_ports server={port} client={}", port_of(&local)));
    if port_of(&local) != port_of(&peer) {
        return Err(unexpected(
            "getpeername",
            format!(
                "server sees port {}, client is bound to {}",
                port_of(&peer),
                port_of(&local)
            ),
        ));
    }

    sys::send(&client, REQUEST)?;
    sys::poll(&server, libc::POLLIN)?;
    recv_exact("recv", &server, REQUEST)?;
    sys::send(&server, REPLY)?;
    sys::poll(&client, libc::POLLIN)?;
    recv_exact("recv", &client, REPLY)?;

    sys::shutdown(&client, libc::SHUT_WR)?;
    sys::poll(&server, libc::POLLIN)?;
    recv_exact("recv (end of stream)", &server, b"")?;

    server.close()?;
    client.close()?;
    listener.close()
}

fn udp() -> SysResult<()> {
    let receiver = sys::socket(libc::AF_INET, libc::SOCK_DGRAM)?;
    sys::bind(&receiver, &sys::loopback(0))?;
    let receiver_addr = sys::getsockname(&receiver)?;
    sys::report(|| format!("udp_ports receiver={}", port_of(&receiver_addr)));

    let sender = sys::socket(libc::AF_INET, libc::SOCK_DGRAM)?;
    sys::setsockopt_int(&sender, libc::SOL_SOCKET, libc::SO_SNDBUF, 65536)?;
    if sys::getsockopt_int(&sender, libc::SOL_SOCKET, libc::SO_SNDBUF)? <= 0 {
        return Err(unexpected("getsockopt", "SO_SNDBUF is not positive".into()));
    }
    sys::sendto(&sender, DATAGRAM, &receiver_addr)?;
    sys::poll(&receiver, libc::POLLIN)?;
    let mut buf = [0u8; 128];
    let (n, from) = sys::recvfrom(&receiver, &mut buf)?;
    expect_bytes("recvfrom", &buf[..n], DATAGRAM)?;
    if port_of(&from) == 0 {
        return Err(unexpected("recvfrom", "sender address has port 0".into()));
    }

    sender.close()?;
    receiver.close()
}

fn unix_pair() -> SysResult<()> {
    let (left, right) = sys::socketpair(libc::AF_UNIX, libc::SOCK_STREAM)?;
    sys::sendmsg(&left, &[HEADER, BODY])?;
    sys::poll(&right, libc::POLLIN)?;
    let mut header = [0u8; HEADER.len()];
    let mut body = [0u8; BODY.len()];
    let n = sys::recvmsg(&right, &mut [&mut header, &mut body])?;
    if n != HEADER.len() + BODY.len() {
        return Err(unexpected("recvmsg", format!("received {n} bytes")));
    }
    expect_bytes("recvmsg", &header, HEADER)?;
    expect_bytes("recvmsg", &body, BODY)?;

    sys::shutdown(&left, libc::SHUT_RDWR)?;
    right.close()?;
    left.close()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_run_on_the_host_loopback() {
        for _ in 0..3 {
            run().unwrap();
        }
    }

    #[test]
    fn expect_bytes_names_the_difference() {
        let err = expect_bytes("recv", b"abc", b"abd").unwrap_err();
        assert_eq!(
            err.to_string(),
            "recv failed: received \"abc\", expected \"abd\""
        );
    }
}
