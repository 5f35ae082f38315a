package kstat

// Counter is one of the kernel's TCP counters that explain the socket
// table: its name in /proc/net/snmp or /proc/net/netstat, what it counts,
// and its metric name (snake case, without the _total Prometheus adds).
type Counter struct {
	Name, Help, Metric string
}

// TCPCounters are the counters sockscope shows and exports, in the order
// stats prints them. Every front end walks this one list.
var TCPCounters = []Counter{
	{"ActiveOpens", "connections opened from here (SYN sent)", "active_opens"},
	{"PassiveOpens", "connections accepted by listeners", "passive_opens"},
	{"AttemptFails", "connection attempts that failed", "attempt_fails"},
	{"EstabResets", "established connections reset", "estab_resets"},
	{"OutRsts", "RST segments sent", "out_rsts"},
	{"TCPAbortOnClose", "resets because a socket closed with unread data", "abort_on_close"},
	{"TCPAbortOnData", "resets because data came after close", "abort_on_data"},
	{"TCPTimeWaitOverflow", "TIME_WAIT entries not made: tcp_max_tw_buckets reached", "timewait_overflow"},
	{"TWRecycled", "TIME_WAIT entries reused for a new connection (tcp_tw_reuse)", "timewait_recycled"},
	{"TWKilled", "TIME_WAIT entries ended early by a reset", "timewait_killed"},
	{"ListenOverflows", "connections refused: accept queue full", "listen_overflows"},
	{"ListenDrops", "SYNs dropped at listeners", "listen_drops"},
}
