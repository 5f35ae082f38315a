// Package sockdiag reads TCP sockets from the kernel over NETLINK_SOCK_DIAG.
//
// # Why not netlink.SocketDiagTCP
//
// github.com/vishvananda/netlink's SocketDiagTCP asks for every state and the
// tcp_info and vegas extensions, has no bytecode filter and allocates a few
// objects per socket. A monitor that dumps every second on a busy host pays
// for all of that. This package builds its own inet_diag_req_v2 so the caller
// chooses the state mask, the extensions and a kernel bytecode filter, and it
// parses the reply in place from one receive buffer reused between dumps. It
// still uses the netlink library's nl package to open the socket inside
// another network namespace.
//
// # One walk for both families
//
// A SOCK_DIAG_BY_FAMILY request names one family, so dumping IPv4 and IPv6
// walks every socket in the kernel's tables twice. When both are wanted
// with the same mask and bytecode (always, for a compiled filter), Dump
// sends the first inet_diag request instead, TCPDIAG_GETSOCK, which walks
// once for every family; at 100k sockets that halves the kernel's part of a
// filtered dump. A kernel that refuses it gets one request per family.
//
// # Calls that never wait
//
// A dump's reads pass MSG_DONTWAIT and are made as raw system calls: each
// is about 100 µs of kernel work filling a batch, and made as ordinary
// calls they kept the Go scheduler handing the goroutine's processor to
// another thread. Destroy announcements, which do wait, wait in the
// runtime's poller.
//
// # Layout
//
// wire.go holds the kernel's structures and a pure parser (fuzzed, and fed by
// tests with captured bytes); collector_linux.go holds the socket and the
// receive loop.
//
// # Consistency
//
// The kernel resumes a dump from a (bucket, index) cursor between receives,
// so a socket can be skipped or seen twice while the table changes.
// Duplicates are dropped by cookie; a socket missed in one dump is seen in the
// next.
package sockdiag
