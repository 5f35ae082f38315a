// Package sock holds the data every part of sockscope shares: one TCP socket
// as the kernel reported it, its state and timer, and the snapshot that flows
// from the collector through the tracker to the front ends.
//
// The package is pure data: it knows nothing of netlink, so front ends (and
// their tests) depend on it without pulling in the kernel side.
package sock

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Family is an address family as the kernel numbers it.
type Family uint8

// The two families sockscope reads.
const (
	IPv4 Family = 2  // AF_INET
	IPv6 Family = 10 // AF_INET6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "inet"
	case IPv6:
		return "inet6"
	}
	return fmt.Sprintf("family%d", uint8(f))
}

// State is a TCP state, numbered as in include/net/tcp_states.h.
type State uint8

// The TCP states. NewSynRecv never appears in a record (the kernel reports
// request sockets as SynRecv) but has a bit in the dump's state mask.
const (
	Established State = 1
	SynSent     State = 2
	SynRecv     State = 3
	FinWait1    State = 4
	FinWait2    State = 5
	TimeWait    State = 6
	Close       State = 7
	CloseWait   State = 8
	LastAck     State = 9
	Listen      State = 10
	Closing     State = 11
	NewSynRecv  State = 12
)

// States lists the eleven states a person sees, in the order of the kernel's
// numbering (which is also the order of the state diagram's walk).
var States = [...]State{Established, SynSent, SynRecv, FinWait1, FinWait2, TimeWait,
	Close, CloseWait, LastAck, Listen, Closing}

var kernelNames = [...]string{
	Established: "ESTABLISHED", SynSent: "SYN_SENT", SynRecv: "SYN_RECV",
	FinWait1: "FIN_WAIT1", FinWait2: "FIN_WAIT2", TimeWait: "TIME_WAIT",
	Close: "CLOSE", CloseWait: "CLOSE_WAIT", LastAck: "LAST_ACK", Listen: "LISTEN",
	Closing: "CLOSING", NewSynRecv: "NEW_SYN_RECV",
}

var ssNames = [...]string{
	Established: "established", SynSent: "syn-sent", SynRecv: "syn-recv",
	FinWait1: "fin-wait-1", FinWait2: "fin-wait-2", TimeWait: "time-wait",
	Close: "closed", CloseWait: "close-wait", LastAck: "last-ack", Listen: "listen",
	Closing: "closing", NewSynRecv: "syn-recv",
}

// String returns the kernel's name, e.g. "TIME_WAIT".
func (s State) String() string {
	if int(s) < len(kernelNames) && kernelNames[s] != "" {
		return kernelNames[s]
	}
	return fmt.Sprintf("STATE%d", uint8(s))
}

// SSName returns the name ss uses, e.g. "time-wait".
func (s State) SSName() string {
	if int(s) < len(ssNames) && ssNames[s] != "" {
		return ssNames[s]
	}
	return fmt.Sprintf("state%d", uint8(s))
}

// ParseState accepts a kernel name (TIME_WAIT, time_wait) or an ss name
// (time-wait, listening), case-insensitively.
func ParseState(name string) (State, bool) {
	n := strings.ToLower(name)
	switch n {
	case "listening":
		return Listen, true
	case "unconn", "close":
		return Close, true
	}
	for _, s := range States {
		if n == ssNames[s] || n == strings.ToLower(kernelNames[s]) {
			return s, true
		}
	}
	// Accept fin-wait1, fin_wait_1 and friends: people mix the two spellings.
	flat := strings.NewReplacer("-", "", "_", "").Replace(n)
	for _, s := range States {
		if flat == strings.NewReplacer("-", "", "_", "").Replace(ssNames[s]) {
			return s, true
		}
	}
	return 0, false
}

// StateMask is a set of states, bit N for state N, as in inet_diag_req_v2's
// idiag_states.
type StateMask uint32

// AllStates holds every state, NewSynRecv included.
const AllStates StateMask = 1<<13 - 2

// MaskOf returns the set holding the given states.
func MaskOf(states ...State) StateMask {
	var m StateMask
	for _, s := range states {
		m |= 1 << s
	}
	return m
}

// Has reports whether s is in the set.
func (m StateMask) Has(s State) bool { return m&(1<<s) != 0 }

// Timer is the kind of timer pending on a socket (inet_diag_msg.idiag_timer).
// Values the kernel may add later are kept as numbers.
type Timer uint8

// Timer kinds, as in net/ipv4/tcp_diag.c and inet_diag.c.
const (
	TimerNone      Timer = 0
	TimerRetrans   Timer = 1 // retransmit or loss probe; also SYN_RECV requests
	TimerKeepalive Timer = 2 // keepalive, or FIN_WAIT2 linger
	TimerTimeWait  Timer = 3
	TimerProbe0    Timer = 4 // zero-window probe
	TimerDelack    Timer = 5
)

func (t Timer) String() string {
	switch t {
	case TimerNone:
		return ""
	case TimerRetrans:
		return "retrans"
	case TimerKeepalive:
		return "keepalive"
	case TimerTimeWait:
		return "timewait"
	case TimerProbe0:
		return "probe0"
	case TimerDelack:
		return "delack"
	}
	return fmt.Sprintf("timer%d", uint8(t))
}

// Socket is one TCP socket as one dump saw it. It is a value without
// pointers to the heap, so a dump of 100k sockets is one slice.
type Socket struct {
	Cookie  uint64 // the kernel's 64-bit socket cookie: stable identity
	Local   Endpoint
	Peer    Endpoint
	IfIndex uint32 // bound interface, 0 when none
	Expires uint32 // milliseconds until Timer fires
	RecvQ   uint32 // bytes (LISTEN: accept queue length)
	SendQ   uint32 // bytes (LISTEN: accept queue limit)
	UID     uint32
	Inode   uint32 // 0 for TIME_WAIT and request sockets, which own no file
	Info    int32  // index into Snapshot.Infos, -1 when tcp_info was not asked for
	Netns   uint32 // inode of the network namespace the socket lives in
	Family  Family
	State   State
	Timer   Timer
	Retrans uint8 // retransmits (LISTEN, TIME_WAIT: 0)
}

// TimeWaitLen is the kernel's fixed TIME_WAIT duration (TCP_TIMEWAIT_LEN).
// net.ipv4.tcp_fin_timeout does not change it.
const TimeWaitLen = 60 * time.Second

// TimeWaitAge returns a TIME_WAIT entry's age and time left from the
// kernel's timer: exact, since the timer counts down from TimeWaitLen. ok
// is false for any other socket.
func (s *Socket) TimeWaitAge() (age, left time.Duration, ok bool) {
	if s.State != TimeWait || s.Timer != TimerTimeWait {
		return 0, 0, false
	}
	left = time.Duration(s.Expires) * time.Millisecond
	// A FIN retransmitted by the peer re-arms the timer: never a negative
	// age.
	return max(TimeWaitLen-left, 0), left, true
}

// TCPInfo is the part of struct tcp_info sockscope shows. Fields a kernel
// does not send stay zero.
type TCPInfo struct {
	RTT, RTTVar       time.Duration
	MinRTT            time.Duration
	RTO, ATO          time.Duration
	SndMSS, RcvMSS    uint32
	SndCwnd, SndSsth  uint32
	Unacked, Lost     uint32
	Retrans           uint32
	TotalRetrans      uint32
	PMTU              uint32
	LastDataSent      time.Duration
	LastDataRecv      time.Duration
	LastAckRecv       time.Duration
	BytesAcked        uint64
	BytesReceived     uint64
	BytesSent         uint64
	BytesRetrans      uint64
	DeliveryRate      uint64 // bytes per second
	SegsOut, SegsIn   uint32
	CAState, Options  uint8
	SndWScale, RcvWSc uint8
}

// Snapshot is one consistent reading of a namespace's socket table, after
// filtering. Producers never modify a snapshot once it is handed on.
type Snapshot struct {
	Time    time.Time // when the dump started
	Sockets []Socket
	Infos   []TCPInfo
	Dumped  int // sockets the kernel sent, before the user-space part of the filter
	Total   int // TCP sockets in the namespace, matching or not; -1 when unknown
	// Read, when not nil, says that Sockets holds the sockets of these
	// namespaces alone (inodes; none when empty): a reader of many
	// namespaces counted the others (Counted) instead of dumping them.
	// nil: every namespace read is in Sockets.
	Read []uint32
	// Counted are the matching sockets of the namespaces not in Read,
	// by namespace inode and state (counts of the kernel's walk, not
	// records).
	Counted map[uint32]StateCounts
}

// StateCounts are a namespace's sockets by state (sock.State).
type StateCounts [16]int

// Reads says whether the snapshot holds namespace ino's sockets.
func (s *Snapshot) Reads(ino uint32) bool { return s.Read == nil || slices.Contains(s.Read, ino) }

// Destroy is the kernel's word that a full socket was freed (the
// sock_diag destroy multicast groups): for an active close, the moment it
// turned into a TIME_WAIT entry.
type Destroy struct {
	Cookie uint64
	At     time.Time
	// Socket is the socket as announced (state CLOSE), and Matches says
	// whether the filter matches it so: a socket no snapshot showed is
	// reported only then.
	Socket  Socket
	Matches bool
}
