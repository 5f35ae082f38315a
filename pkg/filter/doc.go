// Package filter is sockscope's filter language: ss's, with a few comforts.
//
// A filter is parsed into an expression tree, then compiled into what the
// kernel can do cheaply (a state mask, the families to dump, and an
// inet_diag bytecode program) plus, when the kernel cannot express all of
// it, a check in user space. Either way a socket matches exactly when the
// expression says so: tests run the kernel path and the user-space path on
// the same sockets and compare, and ss_linux_test.go runs ss 6.1 itself on
// the same sockets for every form below.
//
// # Language
//
//	state STATE|GROUP ...      keep these states; exclude (or excl) drops
//	exclude STATE|GROUP ...    them. GROUP is all, connected, synchronized,
//	                           bucket or big; STATE an ss name (established,
//	                           syn-sent, syn-recv or syn-rcv, fin-wait-1,
//	                           fin-wait-2, time-wait, closed, close or
//	                           unconnected, close-wait, last-ack, listening,
//	                           closing) or a kernel one (TIME_WAIT, listen)
//	sport [OP] [FAM:][:]PORT   OP is = == eq, != ne neq, < lt, <= le leq,
//	dport [OP] [FAM:][:]PORT   > gt, >= ge geq; no OP means =
//	src [=|!=] [FAM:]HOST      see HOST below
//	dst [=|!=] [FAM:]HOST
//	dev [=|!=] DEVICE          the interface a socket is bound to: an index,
//	                           a name, or ifN
//	family inet|inet6          sockscope's word for -4 and -6
//	:PORT                      the local or the peer port (like lsof -i :PORT)
//	and && &  or || |  not !  ( )
//
// PORT is a number as C reads it (80, 0x50; 010 is octal 8, as in ss), a
// TCP service name from /etc/services (ssh, http, www), or * for any port
// (with = and != only). HOST is ADDR, ADDR/PREFIX, ADDR:PORT,
// ADDR/PREFIX:PORT, [V6ADDR]:PORT, [V6ADDR/PREFIX]:PORT, *:PORT, :PORT or
// *. IPv4 addresses read as iproute2 reads them: parts may be left out at
// the end ("193.233.7/24" is 193.233.7.0/24, "127.1" is 127.1.0.0) and a
// prefix may be a netmask ("10.0.0.0/255.0.0.0"); any, all and default
// stand for every address. A bare IPv6 address ("::1") or [V6ADDR]/PREFIX
// reads too, which ss rejects.
//
// FAM is inet or inet6. As in ss, a FAM: prefix anywhere restricts the
// whole filter to that family (the last one wins) and every later address
// must be of it: "src inet:*" shows the IPv4 sockets.
//
// # Reading order
//
// Terms are read strictly from left to right, "and", "or" and terms side
// by side (an implicit "and") alike: "a or b and c" is "(a or b) and c".
// That is how ss's grammar reads a filter, though ss(8) says "and" binds
// tighter; sockscope selects what ss selects. "not" applies to the term
// after it. Parentheses group.
//
// State clauses side by side merge into one set as in ss ("state listen
// state time-wait" keeps both). A state clause at the start of the filter
// (or of a parenthesised group) followed directly by a condition applies
// to all the rest, as in ss: "state established sport = :22 or dport = :22"
// is established and (sport 22 or dport 22). Unlike ss, a state clause may
// also stand anywhere as a term: "sport = :9000 state time-wait" and
// "state listen or sport = :9000" work.
//
// # Refused
//
// Forms that cannot select TCP sockets from what sockscope reads are
// errors that name the token, never filters that quietly match all or
// nothing: unix, link, netlink and vsock addresses and unix paths
// (ss -x src /tmp/.X11-unix/*); fwmark (the dump carries no socket mark);
// cgroup (nor the cgroup id); autobound (nor whether a port was bound
// explicitly); and host names, which ss would look up in DNS.
//
// # Where ss differs
//
// ss filters twice, in the kernel and again in user space, with slightly
// different rules; sockscope applies the kernel's. They disagree only on
// odd corners: a host condition with a zero-length prefix ("dst
// 0.0.0.0/0") under "not", or an IPv4 prefix compared with a non-mapped
// IPv6 address whose first bits happen to match. ss without a bytecode
// program (any filter with dev) uses only its user-space rule, in which
// "dst 0.0.0.0/0" matches IPv6 sockets too. A number after dev is always
// an index here; ss first looks for an interface with that name.
// Interface names are looked up in the caller's network namespace unless
// ParseOptions.IfIndex says otherwise.
package filter
