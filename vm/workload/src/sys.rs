//! Thin checked wrappers over the socket system calls the workload makes. Each wrapper is
//! exactly one system call, so the calls a tracer sees are the ones `round.rs` lists.

use std::cell::RefCell;
use std::ffi::c_void;
use std::fmt;
use std::io;
use std::mem::{size_of, zeroed};

thread_local! {
    /// What this thread's calls passed and got, one line each, when `--report` asks for it:
    /// the oracle for tracers that read arguments and return values. Kept in memory and
    /// written at exit, so that the report adds no system call between the socket calls.
    static REPORT: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Starts keeping the report of this thread's calls.
pub fn start_report() {
    REPORT.with(|report| *report.borrow_mut() = Some(Vec::new()));
}

/// The report's lines so far.
pub fn report_lines() -> Vec<String> {
    REPORT.with(|report| report.borrow().clone().unwrap_or_default())
}

/// Adds a line to the report, if one is kept: a call's, or what a round learnt (ports).
pub fn report(line: impl FnOnce() -> String) {
    REPORT.with(|report| {
        if let Some(lines) = report.borrow_mut().as_mut() {
            lines.push(line());
        }
    });
}

/// A failed system call: which one, and the errno it returned.
#[derive(Debug)]
pub struct SysError {
    call: &'static str,
    source: io::Error,
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.call, self.source)
    }
}

impl std::error::Error for SysError {}

pub type SysResult<T> = Result<T, SysError>;

/// Turns a C return value into a result, capturing errno right after the call.
fn check(call: &'static str, ret: isize) -> SysResult<usize> {
    usize::try_from(ret).map_err(|_| SysError {
        call,
        source: io::Error::last_os_error(),
    })
}

/// A result for conditions that are wrong without errno being set (short reads, bad data).
pub fn unexpected(call: &'static str, what: String) -> SysError {
    SysError {
        call,
        source: io::Error::other(what),
    }
}

/// A file descriptor closed by an explicit `close()` so that the close is part of the
/// fixed call sequence; dropping an unclosed one (on an error path) closes it as well.
pub struct Fd(i32);

impl Fd {
    pub fn raw(&self) -> i32 {
        self.0
    }

    pub fn close(self) -> SysResult<()> {
        let fd = self.0;
        std::mem::forget(self);
        // SAFETY: fd is owned by this Fd and closed exactly once.
        check("close", unsafe { libc::close(fd) } as isize).map(drop)
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: fd is owned by this Fd; this only runs when close() was not called.
        unsafe { libc::close(self.0) };
    }
}

pub fn socket(domain: i32, kind: i32) -> SysResult<Fd> {
    // SAFETY: plain system call with integer arguments.
    let fd = check("socket", unsafe { libc::socket(domain, kind, 0) } as isize)?;
    report(|| format!("socket family={domain} type={kind} fd={fd}"));
    Ok(Fd(fd as i32))
}

pub fn socketpair(domain: i32, kind: i32) -> SysResult<(Fd, Fd)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for the two descriptors socketpair writes.
    check(
        "socketpair",
        unsafe { libc::socketpair(domain, kind, 0, fds.as_mut_ptr()) } as isize,
    )?;
    Ok((Fd(fds[0]), Fd(fds[1])))
}

/// 127.0.0.1 with the given port (0: the kernel picks one).
pub fn loopback(port: u16) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_in = unsafe { zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = port.to_be();
    addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    addr
}

const SOCKADDR_IN_LEN: libc::socklen_t = size_of::<libc::sockaddr_in>() as libc::socklen_t;

fn as_sockaddr(addr: &libc::sockaddr_in) -> *const libc::sockaddr {
    (addr as *const libc::sockaddr_in).cast()
}

pub fn bind(fd: &Fd, addr: &libc::sockaddr_in) -> SysResult<()> {
    // SAFETY: addr points to a sockaddr_in of the length passed.
    check(
        "bind",
        unsafe { libc::bind(fd.raw(), as_sockaddr(addr), SOCKADDR_IN_LEN) } as isize,
    )?;
    report(|| format!("bind fd={} addrlen={SOCKADDR_IN_LEN}", fd.raw()));
    Ok(())
}

pub fn listen(fd: &Fd, backlog: i32) -> SysResult<()> {
    // SAFETY: plain system call with integer arguments.
    check("listen", unsafe { libc::listen(fd.raw(), backlog) }
        as isize)?;
    report(|| format!("listen fd={} backlog={backlog}", fd.raw()));
    Ok(())
}

pub fn connect(fd: &Fd, addr: &libc::sockaddr_in) -> SysResult<()> {
    // SAFETY: addr points to a sockaddr_in of the length passed.
    check(
        "connect",
        unsafe { libc::connect(fd.raw(), as_sockaddr(addr), SOCKADDR_IN_LEN) } as isize,
    )?;
    report(|| format!("connect fd={} addrlen={SOCKADDR_IN_LEN}", fd.raw()));
    Ok(())
}

pub fn accept(fd: &Fd) -> SysResult<Fd> {
    // SAFETY: null address and length pointers are allowed: the peer address is not wanted.
    let new = check("accept4", unsafe {
        libc::accept4(fd.raw(), std::ptr::null_mut(), std::ptr::null_mut(), 0)
    } as isize)?;
    Ok(Fd(new as i32))
}

type NameCall = unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32;

fn name_of(call: &'static str, f: NameCall, fd: &Fd) -> SysResult<libc::sockaddr_in> {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_in = unsafe { zeroed() };
    let mut len = SOCKADDR_IN_LEN;
    // SAFETY: addr and len describe a writable sockaddr_in.
    check(call, unsafe {
        f(
            fd.raw(),
            (&mut addr as *mut libc::sockaddr_in).cast(),
            &mut len,
        )
    } as isize)?;
    Ok(addr)
}

pub fn getsockname(fd: &Fd) -> SysResult<libc::sockaddr_in> {
    name_of("getsockname", libc::getsockname, fd)
}

pub fn getpeername(fd: &Fd) -> SysResult<libc::sockaddr_in> {
    name_of("getpeername", libc::getpeername, fd)
}

pub fn send(fd: &Fd, data: &[u8]) -> SysResult<usize> {
    // SAFETY: data is a readable buffer of the length passed.
    let sent = check("send", unsafe {
        libc::send(fd.raw(), data.as_ptr().cast(), data.len(), 0)
    })?;
    report(|| format!("sendto fd={} len={}", fd.raw(), data.len()));
    Ok(sent)
}

pub fn recv(fd: &Fd, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: buf is a writable buffer of the length passed.
    check("recv", unsafe {
        libc::recv(fd.raw(), buf.as_mut_ptr().cast(), buf.len(), 0)
    })
}

pub fn sendto(fd: &Fd, data: &[u8], to: &libc::sockaddr_in) -> SysResult<usize> {
    // SAFETY: data is readable for its length; to points to a sockaddr_in.
    let sent = check("sendto", unsafe {
        libc::sendto(
            fd.raw(),
            data.as_ptr().cast(),
            data.len(),
            0,
            as_sockaddr(to),
            SOCKADDR_IN_LEN,
        )
    })?;
    report(|| format!("sendto fd={} len={}", fd.raw(), data.len()));
    Ok(sent)
}

pub fn recvfrom(fd: &Fd, buf: &mut [u8]) -> SysResult<(usize, libc::sockaddr_in)> {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut from: libc::sockaddr_in = unsafe { zeroed() };
    let mut len = SOCKADDR_IN_LEN;
    // SAFETY: buf is writable for its length; from and len describe a writable sockaddr_in.
    let n = check("recvfrom", unsafe {
        libc::recvfrom(
            fd.raw(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut from as *mut libc::sockaddr_in).cast(),
            &mut len,
        )
    })?;
    Ok((n, from))
}

pub fn sendmsg(fd: &Fd, parts: &[&[u8]]) -> SysResult<usize> {
    let mut iov: Vec<libc::iovec> = parts
        .iter()
        .map(|part| libc::iovec {
            iov_base: part.as_ptr() as *mut c_void,
            iov_len: part.len(),
        })
        .collect();
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    // SAFETY: msg points to iovecs describing readable buffers that outlive the call.
    let sent = check("sendmsg", unsafe { libc::sendmsg(fd.raw(), &msg, 0) })?;
    report(|| format!("sendmsg fd={} len={sent}", fd.raw()));
    Ok(sent)
}

pub fn recvmsg(fd: &Fd, bufs: &mut [&mut [u8]]) -> SysResult<usize> {
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|buf| libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        })
        .collect();
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    // SAFETY: msg points to iovecs describing writable buffers that outlive the call.
    check("recvmsg", unsafe { libc::recvmsg(fd.raw(), &mut msg, 0) })
}

/// Waits (without a time limit) until `fd` has one of `events`; returns the revents seen.
pub fn poll(fd: &Fd, events: i16) -> SysResult<i16> {
    let mut pfd = libc::pollfd {
        fd: fd.raw(),
        events,
        revents: 0,
    };
    // SAFETY: pfd is one writable pollfd.
    check("poll", unsafe { libc::poll(&mut pfd, 1, -1) } as isize)?;
    Ok(pfd.revents)
}

pub fn setsockopt_int(fd: &Fd, level: i32, name: i32, value: i32) -> SysResult<()> {
    // SAFETY: value is a readable int of the length passed.
    check("setsockopt", unsafe {
        libc::setsockopt(
            fd.raw(),
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    } as isize)
    .map(drop)
}

pub fn getsockopt_int(fd: &Fd, level: i32, name: i32) -> SysResult<i32> {
    let mut value = 0i32;
    let mut len = size_of::<i32>() as libc::socklen_t;
    // SAFETY: value and len describe a writable int.
    check("getsockopt", unsafe {
        libc::getsockopt(
            fd.raw(),
            level,
            name,
            (&mut value as *mut i32).cast(),
            &mut len,
        )
    } as isize)?;
    Ok(value)
}

pub fn shutdown(fd: &Fd, how: i32) -> SysResult<()> {
    // SAFETY: plain system call with integer arguments.
    check("shutdown", unsafe { libc::shutdown(fd.raw(), how) }
        as isize)
    .map(drop)
}
