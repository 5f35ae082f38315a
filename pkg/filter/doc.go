// Package filter is sockscope's filter language: ss's, with a few comforts.
//
// A filter is parsed into an expression tree, then compiled into what the
// kernel can do cheaply (a state mask, the families to dump, and an
// inet_diag bytecode program) plus, when the kernel cannot express all of
// it, a check in user space. Either way a socket matches exactly when the
// expression says so: tests run the kernel path and the user-space path on
// the same sockets and compare.
//
// # Language
//
//	state STATE|GROUP ...      keep these states (ss groups: all, connected,
//	exclude STATE|GROUP ...    synchronized, bucket, big)
//	sport OP :PORT             OP is = == != < <= > >= or eq ne neq lt le gt ge;
//	dport OP :PORT             the colon is optional
//	src [=|!=] HOST            HOST is ADDR, ADDR/PREFIX, ADDR:PORT, [V6ADDR]:PORT,
//	dst [=|!=] HOST            *:PORT or :PORT
//	:PORT                      the local or the peer port (like lsof -i :PORT)
//	and && &  or || |  not !  ( )
//
// Terms side by side are joined by "and", except that consecutive state and
// exclude clauses merge into one set as in ss ("state listen state
// time-wait" keeps both). Unlike ss, a state clause may stand anywhere:
// "sport = :9000 state time-wait" works.
package filter
