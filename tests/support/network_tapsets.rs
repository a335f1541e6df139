//! rstap's network, VFS and signal tapsets on the socket workload, checked against what
//! it reports it did (the ports of its connections, the sizes it sent) and the size of
//! the report it writes. Their aliases probe kernel functions, so they run in the VMs
//! only.

use crate::tapset_checks::{field, number};
use crate::tracepoint_checks::lines_of;

/// The network, VFS and signal tapsets: `tcp.*`, `udp.*`, `netdev.transmit`, the address
/// functions on an accepted socket (as SystemTap's `tcp_connections.stp` reads them),
/// `vfs.open.return` and `vfs.write.return` (the workload opening and writing its report)
/// and `signal.send` (its SIGCHLD to rstap as it ends).
pub const SCRIPT: &str = r#"
global transmitted
probe tcp.sendmsg { if (pid() == target()) printf("tcp_send size=%d family=%d\n", size, family) }
probe tcp.recvmsg.return {
  if (pid() == target() && size > 0)
    printf("tcp_recv size=%d saddr=%s daddr=%s sport=%d dport=%d\n", size, saddr, daddr, sport, dport)
}
probe tcp.receive {
  if (syn && !ack) printf("tcp_syn saddr=%s daddr=%s dport=%d fin=%d\n", saddr, daddr, dport, fin)
}
probe udp.sendmsg { if (pid() == target()) printf("udp_send size=%d\n", size) }
probe udp.recvmsg.return { if (pid() == target()) printf("udp_recv size=%d\n", size) }
probe kernel.function("inet_csk_accept").return {
  if (pid() == target())
    printf("accepted port=%d peer=%s\n", inet_get_local_port($return), inet_get_ip_source($return))
  if (pid() == target())
    printf("tcpmib local=%s:%d remote=%s:%d state=%s sport=%d family=%d\n",
           ip_ntop(htonl(tcpmib_local_addr($return))), tcpmib_local_port($return),
           ip_ntop(htonl(tcpmib_remote_addr($return))), tcpmib_remote_port($return),
           tcp_sockstate_str(tcp_ts_get_info_state($return)), __tcp_sock_sport($return),
           __ip_sock_family($return))
}
probe netdev.transmit { if (pid() == target() && dev_name == "lo" && length > 0) transmitted++ }
probe vfs.open.return { if (pid() == target() && ret == 0) printf("vfs_open path=%s\n", pathname) }
probe vfs.write.return {
  if (pid() == target()) printf("vfs_write bytes=%d devname=%s\n", bytes_written, devname)
}
probe signal.send {
  if (sig_name == "SIGCHLD" && pid_name == "rstap") printf("signal sig=%d to=%d\n", sig, sig_pid)
}
probe end { printf("lo_transmits count=%d\n", transmitted) }
"#;

/// The report's send sizes on sockets of `kind` (1 TCP, 2 UDP), in order: each `sendto`
/// line's fd is looked up in the `socket` line that last opened it, if any.
fn sends_on(report: &str, kind: i64) -> Vec<i64> {
    let mut kinds = std::collections::HashMap::new();
    let mut sizes = Vec::new();
    for line in report.lines() {
        match line.split(' ').next() {
            Some("socket") => {
                kinds.insert(number(line, "fd"), number(line, "type"));
            }
            // accept(2) gives no line: a descriptor no `socket` line opened is the
            // connection a TCP listener accepted.
            Some("sendto") if *kinds.get(&number(line, "fd")).unwrap_or(&1) == kind => {
                sizes.push(number(line, "len"))
            }
            _ => {}
        }
    }
    sizes
}

/// Checks a trace of [`SCRIPT`] against the workload's report and its size.
pub fn check(trace: &str, report: &str, described: &str) {
    let tcp_ports: Vec<(i64, i64)> = lines_of(report, "tcp_ports")
        .iter()
        .map(|line| (number(line, "server"), number(line, "client")))
        .collect();
    assert!(
        !tcp_ports.is_empty(),
        "no tcp_ports in the report: {report}"
    );
    let numbers_of = |word: &str, key: &str| -> Vec<i64> {
        lines_of(trace, word)
            .iter()
            .map(|line| number(line, key))
            .collect()
    };

    let tcp_sends = sends_on(report, 1);
    assert_eq!(numbers_of("tcp_send", "size"), tcp_sends, "{described}");
    assert!(
        lines_of(trace, "tcp_send")
            .iter()
            .all(|line| number(line, "family") == 2),
        "{described}"
    );
    // Each message is received whole, by the other end of the round's connection.
    assert_eq!(numbers_of("tcp_recv", "size"), tcp_sends, "{described}");
    for line in lines_of(trace, "tcp_recv") {
        assert_eq!(
            (field(line, "saddr"), field(line, "daddr")),
            ("127.0.0.1", "127.0.0.1"),
            "{line}"
        );
        let ends = (number(line, "sport"), number(line, "dport"));
        assert!(
            tcp_ports
                .iter()
                .any(|&(server, client)| ends == (server, client) || ends == (client, server)),
            "{line}: not a connection of {tcp_ports:?}"
        );
    }
    let syns: Vec<String> = tcp_ports
        .iter()
        .map(|(server, _)| format!("tcp_syn saddr=127.0.0.1 daddr=127.0.0.1 dport={server} fin=0"))
        .collect();
    assert_eq!(lines_of(trace, "tcp_syn"), syns, "{described}");
    let accepted: Vec<String> = tcp_ports
        .iter()
        .map(|(server, _)| format!("accepted port={server} peer=127.0.0.1"))
        .collect();
    assert_eq!(lines_of(trace, "accepted"), accepted, "{described}");
    // The same sockets through the tcpmib helpers: the server's end of each connection.
    let tcpmib: Vec<String> = tcp_ports
        .iter()
        .map(|(server, client)| {
            format!(
                "tcpmib local=127.0.0.1:{server} remote=127.0.0.1:{client} \
                 state=TCP_ESTABLISHED sport={server} family=2"
            )
        })
        .collect();
    assert_eq!(lines_of(trace, "tcpmib"), tcpmib, "{described}");

    let udp_sends = sends_on(report, 2);
    assert!(
        !udp_sends.is_empty(),
        "no UDP sendto in the report: {report}"
    );
    assert_eq!(numbers_of("udp_send", "size"), udp_sends, "{described}");
    assert_eq!(numbers_of("udp_recv", "size"), udp_sends, "{described}");

    // Every TCP segment and UDP datagram leaves through lo: at least one per send, and
    // the handshakes' segments besides.
    let transmits = numbers_of("lo_transmits", "count");
    assert_eq!(transmits.len(), 1, "{described}");
    assert!(
        transmits[0] as usize > tcp_sends.len() + udp_sends.len(),
        "{described}"
    );

    // The report's full path, from the root through the guest's mounts: the scenario
    // runs in $RESULTS/scenarios/NAME/files, and the workload names it `$OUT/report`.
    let opens = lines_of(trace, "vfs_open");
    assert!(
        opens.iter().any(|line| {
            let path = field(line, "path");
            path.starts_with('/') && path.ends_with("/scenarios/network-tapsets/files/report")
        }),
        "the report's open: {opens:?}: {described}"
    );
    // The report, written in one write() at exit, to a file on no block device.
    let wanted = format!("vfs_write bytes={} devname=N/A", report.len());
    assert!(
        lines_of(trace, "vfs_write").contains(&wanted.as_str()),
        "no `{wanted}`: {described}"
    );
    let signals = lines_of(trace, "signal");
    assert!(
        !signals.is_empty() && signals.iter().all(|line| number(line, "sig") == 17),
        "SIGCHLD to rstap: {described}"
    );
}
