package kevents

import (
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/sockscope/sockscope/pkg/kbtf"
	"github.com/sockscope/sockscope/pkg/sock"
)

// offsets are where the program finds each field, in bytes, from the
// running kernel's BTF: structure layouts differ between kernels and
// configurations.
type offsets struct {
	protocol            int32 // struct sock: sk_protocol (u16)
	family, num, dport  int32 // struct sock_common: u16 each
	boundDev            int32 // skc_bound_dev_if (int)
	rcvSaddr, daddr     int32 // __be32 each
	v6RcvSaddr, v6Daddr int32 // struct in6_addr each
	net                 int32 // skc_net.net: struct net *
	inum                int32 // struct net: ns.inum (u32)
	sport               int32 // struct tcp_sock: its inet_sock's inet_sport (__be16)
}

func kernelOffsets() (*offsets, error) {
	k, err := kbtf.Load()
	if err != nil {
		return nil, err
	}
	var sk, skc, net, tcp *btf.Struct
	for name, p := range map[string]**btf.Struct{"sock": &sk, "sock_common": &skc, "net": &net, "tcp_sock": &tcp} {
		if *p, err = k.Struct(name); err != nil {
			return nil, err
		}
	}
	var f kbtf.Fields
	// struct sock starts with its sock_common (__sk_common).
	o := &offsets{
		protocol:   f.Of(sk, 2, "sk_protocol"),
		family:     f.Of(skc, 2, "skc_family"),
		num:        f.Of(skc, 2, "skc_num"),
		dport:      f.Of(skc, 2, "skc_dport"),
		boundDev:   f.Of(skc, 4, "skc_bound_dev_if"),
		rcvSaddr:   f.Of(skc, 4, "skc_rcv_saddr"),
		daddr:      f.Of(skc, 4, "skc_daddr"),
		v6RcvSaddr: f.Of(skc, 16, "skc_v6_rcv_saddr"),
		v6Daddr:    f.Of(skc, 16, "skc_v6_daddr"),
		net:        f.Of(skc, 8, "skc_net", "net"),
		inum:       f.Of(net, 4, "ns", "inum"),
		sport:      f.Of(tcp, 2, "inet_conn", "icsk_inet", "inet_sport"),
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	return o, nil
}

// The record the program writes, byte offsets (eventSize in all): the
// kernel's monotonic time, the cookie, the namespace's inode, the old and
// new states, the family, the local port (host order) and the peer's
// (network order), the IPv4 addresses, the interface the socket is bound
// to (SO_BINDTODEVICE; what sock_diag gives as idiag_if, for a filter's
// dev test), the IPv6 addresses.
const (
	evTime    = 0
	evCookie  = 8
	evNetns   = 16
	evFrom    = 20
	evTo      = 21
	evFamily  = 22
	evSport   = 24
	evDport   = 26
	evSaddr4  = 28
	evDaddr4  = 32
	evIfIndex = 36
	evSaddr6  = 40
	evDaddr6  = 56
)

// prologue loads the tracepoint's arguments (ctx, an array of u64: the
// socket, the old state, the new one) into sk, from and to, and goes to
// "exit" unless the socket is TCP's (the tracepoint serves every inet
// protocol).
func prologue(o *offsets, sk, from, to asm.Register) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(sk, asm.R1, 0, asm.DWord),
		asm.LoadMem(from, asm.R1, 8, asm.DWord),
		asm.LoadMem(to, asm.R1, 16, asm.DWord),
		asm.JEq.Imm(sk, 0, "exit"),
		asm.LoadMem(asm.R2, sk, int16(o.protocol), asm.Half),
		asm.JNE.Imm(asm.R2, 6, "exit"), // IPPROTO_TCP
	}
}

// rbNoWakeup is BPF_RB_NO_WAKEUP.
const rbNoWakeup = 1

// program is the tp_btf program: for every TCP socket's change, one
// record into the ring buffer ringFD, or, when the ring is full, one more
// in the count at the start of the array map lostFD. Its arguments (ctx,
// an array of u64) are the socket, the old state and the new one.
func program(o *offsets, ringFD, lostFD int, only []uint32) asm.Instructions {
	const (
		sk, from, to = asm.R6, asm.R7, asm.R8
		base         = -eventSize // the record, on the stack
	)
	at := func(off int16) int16 { return base + off }
	copy8 := func(src int32, dst int16) asm.Instructions {
		return asm.Instructions{
			asm.LoadMem(asm.R2, sk, int16(src), asm.DWord),
			asm.StoreMem(asm.RFP, at(dst), asm.R2, asm.DWord),
		}
	}
	insns := prologue(o, sk, from, to)
	insns = append(insns,
		// The namespace: skc_net.net->ns.inum; 0 if it had none.
		asm.Mov.Imm(asm.R3, 0),
		asm.LoadMem(asm.R2, sk, int16(o.net), asm.DWord),
		asm.JEq.Imm(asm.R2, 0, "netns"),
		asm.LoadMem(asm.R3, asm.R2, int16(o.inum), asm.Word),
		asm.StoreMem(asm.RFP, at(evNetns), asm.R3, asm.Word).WithSymbol("netns"),
	)
	// Only the namespaces read, when they are few: a change elsewhere
	// costs the kernel a few loads and compares, not a clock read and a
	// record (the clock is the dearest part here).
	if len(only) > 0 {
		for _, ino := range only {
			insns = append(insns, asm.JEq.Imm32(asm.R3, int32(ino), "wanted"))
		}
		insns = append(insns, asm.Ja.Label("exit"))
	}
	insns = append(insns,
		asm.FnKtimeGetNs.Call().WithSymbol("wanted"),
		asm.StoreMem(asm.RFP, at(evTime), asm.R0, asm.DWord),
		asm.Mov.Reg(asm.R1, sk),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, at(evCookie), asm.R0, asm.DWord),

		asm.StoreMem(asm.RFP, at(evFrom), from, asm.Byte),
		asm.StoreMem(asm.RFP, at(evTo), to, asm.Byte),
		asm.LoadMem(asm.R2, sk, int16(o.family), asm.Half),
		asm.StoreMem(asm.RFP, at(evFamily), asm.R2, asm.Half),
		asm.LoadMem(asm.R2, sk, int16(o.num), asm.Half),
		// A socket gives its port back before its change to CLOSE is
		// traced (inet_put_port zeroes skc_num): the port it had is
		// then inet_sport's, in network order, which lies past struct
		// sock, where the verifier lets a tcp_sock pointer read. At
		// that change only: a socket disconnected and connecting again
		// keeps its old inet_sport until connect picks a new port,
		// after its change to SYN_SENT.
		asm.JNE.Imm(asm.R2, 0, "sport"),
		asm.JNE.Imm(to, int32(sock.Close), "sport"),
		asm.Mov.Reg(asm.R1, sk),
		asm.FnSkcToTcpSock.Call(),
		asm.Mov.Imm(asm.R2, 0),
		asm.JEq.Imm(asm.R0, 0, "sport"),
		asm.LoadMem(asm.R2, asm.R0, int16(o.sport), asm.Half),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.StoreMem(asm.RFP, at(evSport), asm.R2, asm.Half).WithSymbol("sport"),
		asm.LoadMem(asm.R2, sk, int16(o.dport), asm.Half),
		asm.StoreMem(asm.RFP, at(evDport), asm.R2, asm.Half),
		asm.LoadMem(asm.R2, sk, int16(o.rcvSaddr), asm.Word),
		asm.StoreMem(asm.RFP, at(evSaddr4), asm.R2, asm.Word),
		asm.LoadMem(asm.R2, sk, int16(o.daddr), asm.Word),
		asm.StoreMem(asm.RFP, at(evDaddr4), asm.R2, asm.Word),
		asm.LoadMem(asm.R2, sk, int16(o.boundDev), asm.Word),
		asm.StoreMem(asm.RFP, at(evIfIndex), asm.R2, asm.Word),
	)
	insns = append(insns, copy8(o.v6RcvSaddr, evSaddr6)...)
	insns = append(insns, copy8(o.v6RcvSaddr+8, evSaddr6+8)...)
	insns = append(insns, copy8(o.v6Daddr, evDaddr6)...)
	insns = append(insns, copy8(o.v6Daddr+8, evDaddr6+8)...)
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, ringFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, base),
		asm.Mov.Imm(asm.R3, eventSize),
		// No wakeup per record: a wakeup costs the socket's own path
		// more than the record (measured: connection churn 1.9x slower
		// with one per change); the reader drains the ring on a timer.
		asm.Mov.Imm(asm.R4, rbNoWakeup),
		asm.FnRingbufOutput.Call(),
		// A full ring (a reader far behind) loses the record: counted,
		// so that the reader knows its news has a hole.
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.LoadMapValue(asm.R1, lostFD, 0),
		asm.Mov.Imm(asm.R2, 1),
		asm.AddAtomic.Mem(asm.R1, asm.R2, asm.DWord, 0),

		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	)
	return insns
}
