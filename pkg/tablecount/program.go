package tablecount

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/sockscope/sockscope/pkg/kbtf"
)

// layout is where the program finds what it reads, from the running
// kernel's BTF.
type layout struct {
	nsproxy, netNS, hashinfo, inum int32 // task_struct.nsproxy, nsproxy.net_ns, net.ipv4.tcp_death_row.hashinfo, net.ns.inum

	// struct inet_hashinfo, read as one window from hLo.
	hLo, hSize                              int32
	ehash, ehashMask, lhash2, lhMask        int32
	pernet                                  int32
	ehashStride, ehashHead                  int32 // struct inet_ehash_bucket: size, chain
	lhashStride, lhashHead                  int32 // struct inet_listen_hashbucket: size, nulls_head
	nullsNode, nullsNext                    int32 // sock_common.skc_nulls_node, and its next
	family, state, num, net, winLo, winSize int32 // sock_common, read as one window
	substate, expires, twLo, twSize         int32 // inet_timewait_sock.tw_substate, tw_timer.expires
}

// maxWindow bounds a window read in one go: the program's stack is 512
// bytes.
const (
	maxWindow   = 136
	maxTwWindow = 64
)

func kernelLayout() (*layout, error) {
	k, err := kbtf.Load()
	if err != nil {
		return nil, err
	}
	structs := map[string]*btf.Struct{}
	for _, name := range []string{"task_struct", "nsproxy", "net", "inet_hashinfo", "inet_ehash_bucket",
		"inet_listen_hashbucket", "sock_common", "inet_timewait_sock"} {
		if structs[name], err = k.Struct(name); err != nil {
			return nil, err
		}
	}
	var sizeErr error
	size := func(name string) int32 {
		n, err := btf.Sizeof(structs[name])
		if err != nil {
			sizeErr = fmt.Errorf("size of struct %s: %w", name, err)
			return -1
		}
		return int32(n)
	}
	var f kbtf.Fields
	s := structs
	l := &layout{
		nsproxy:     f.Of(s["task_struct"], 8, "nsproxy"),
		netNS:       f.Of(s["nsproxy"], 8, "net_ns"),
		hashinfo:    f.Of(s["net"], 8, "ipv4", "tcp_death_row", "hashinfo"),
		inum:        f.Of(s["net"], 4, "ns", "inum"),
		ehash:       f.Of(s["inet_hashinfo"], 8, "ehash"),
		ehashMask:   f.Of(s["inet_hashinfo"], 4, "ehash_mask"),
		lhash2:      f.Of(s["inet_hashinfo"], 8, "lhash2"),
		lhMask:      f.Of(s["inet_hashinfo"], 4, "lhash2_mask"),
		pernet:      f.Of(s["inet_hashinfo"], 1, "pernet"),
		ehashStride: size("inet_ehash_bucket"),
		ehashHead:   f.Of(s["inet_ehash_bucket"], 8, "chain", "first"),
		lhashStride: size("inet_listen_hashbucket"),
		lhashHead:   f.Of(s["inet_listen_hashbucket"], 8, "nulls_head", "first"),
		nullsNode:   f.Of(s["sock_common"], 16, "skc_nulls_node"),
		nullsNext:   f.Of(s["sock_common"], 8, "skc_nulls_node", "next"),
		family:      f.Of(s["sock_common"], 2, "skc_family"),
		state:       f.Of(s["sock_common"], 1, "skc_state"),
		num:         f.Of(s["sock_common"], 2, "skc_num"),
		net:         f.Of(s["sock_common"], 8, "skc_net", "net"),
		substate:    f.Of(s["inet_timewait_sock"], 1, "tw_substate"),
		expires:     f.Of(s["inet_timewait_sock"], 8, "tw_timer", "expires"),
	}
	if err := errors.Join(f.Err(), sizeErr); err != nil {
		return nil, err
	}
	var werr error
	window := func(fields ...[2]int32) (lo, n int32) {
		lo, hi := fields[0][0], int32(0)
		for _, fl := range fields {
			lo, hi = min(lo, fl[0]), max(hi, fl[0]+fl[1])
		}
		// Aligned to 8 so that every field keeps its natural alignment
		// on the stack, where the verifier insists on it.
		lo &^= 7
		n = (hi - lo + 7) &^ 7
		if n > maxWindow && werr == nil {
			werr = fmt.Errorf("the fields span %d bytes, more than %d", n, maxWindow)
		}
		return lo, n
	}
	l.hLo, l.hSize = window([2]int32{l.ehash, 8}, [2]int32{l.ehashMask, 4}, [2]int32{l.lhash2, 8}, [2]int32{l.lhMask, 4}, [2]int32{l.pernet, 1})
	l.winLo, l.winSize = window([2]int32{l.nullsNext, 8}, [2]int32{l.family, 2}, [2]int32{l.state, 1}, [2]int32{l.num, 2}, [2]int32{l.net, 8})
	l.twLo, l.twSize = window([2]int32{l.substate, 1}, [2]int32{l.expires, 8})
	if l.twSize > maxTwWindow && werr == nil {
		werr = fmt.Errorf("the timewait fields span %d bytes, more than %d", l.twSize, maxTwWindow)
	}

	return l, werr
}

// The info map's one value: what the last run found and met.
const (
	infoNetns     = 0  // u32: inode of the namespace whose tables were walked
	infoPernet    = 4  // u32: 1 when that namespace has tables of its own
	infoEhashMask = 8  // u32
	infoLhashMask = 12 // u32
	infoSockets   = 16 // u64: sockets visited
	infoTruncated = 24 // u64: chains longer than maxChain
	infoFaults    = 32 // u64: reads that failed
	infoMoved     = 40 // u64: chains that ended in another bucket's marker
	infoSize      = 48
)

// The scratch area the three functions share, on main's stack (at
// frameScratch from its frame pointer); the callbacks get its address.
const (
	cBase      = 0  // the table's first bucket's head
	cStride    = 8  // bytes from one bucket to the next
	cStart     = 16 // the first bucket of this run
	cJiffies   = 24 // the kernel's jiffies at the start
	cNode      = 32 // the chain walk's next node
	cSockets   = 40 // counters, copied to the info map at the end
	cTruncated = 48
	cFaults    = 56
	cMoved     = 64
	cTmp       = 72                // 8 bytes a read lands in
	cKey       = 80                // a u32 map key
	cBucket    = 88                // this bucket's index
	cNullsBase = 96                // the table's first end-of-chain marker
	cTw        = 104               // the TIME_WAIT window, up to maxTwWindow bytes
	cWin       = cTw + maxTwWindow // the sock_common window
	scratch    = cWin + maxWindow
	frame      = -((scratch + 7) &^ 7)
)

// listeningNullsBase is LISTENING_NULLS_BASE: the listening table's
// chains end in a marker counted from it, the established table's from 0.
const listeningNullsBase = 1 << 29

// storeImm64 stores a 32-bit value, sign-extended, as 8 bytes (BPF_ST
// with BPF_DW, which asm.StoreImm does not emit).
func storeImm64(dst asm.Register, off int16, v int64) asm.Instruction {
	return asm.Instruction{OpCode: asm.StoreImmOp(asm.DWord), Dst: dst, Offset: off, Constant: v}
}

// funcPtr loads the address of the function fn, for bpf_loop (a constant
// of -1 tells the linker to resolve the reference).
func funcPtr(dst asm.Register, fn string) asm.Instruction {
	return asm.Instruction{OpCode: asm.LoadImmOp(asm.DWord), Dst: dst, Src: asm.PseudoFunc, Constant: -1}.WithReference(fn)
}

// maxChain bounds a chain's walk: a longer chain is cut there, and the
// walk reports it (Count then fails rather than count part of it).
const maxChain = 1 << 16

// Value layout of the namespace map, per namespace: counts as u32 by
// [slot][family][state], then the TIME_WAIT ages as u64: count, sum of
// ages in ms, then one per bound (entries at most that old).
func valueSize(ports, bounds int) int {
	return histOffset(ports) + 8*(2+bounds)
}

func histOffset(ports int) int { return (ports + 1) * 2 * 16 * 4 }

// program is a raw tracepoint program that is never attached: it runs
// on demand (BPF_PROG_TEST_RUN, under the RCU read lock the kernel's own
// lockless lookups use) with three arguments: the table (0 established,
// 1 listening), the first bucket and how many. It walks those buckets of
// the calling thread's namespace's tables and counts each socket into
// its namespace's value in nsMap, if the namespace has one.
func program(l *layout, nsMap, info int, ports []uint16, boundsMs []int32, msPerJiffy int32) asm.Instructions {
	u64 := &btf.Int{Name: "u64", Size: 8}
	long := &btf.Int{Name: "long", Size: 8, Encoding: btf.Signed}
	voidp := &btf.Pointer{Target: (*btf.Void)(nil)}
	fn := func(name string, params ...btf.FuncParam) *btf.Func {
		return &btf.Func{Name: name, Linkage: btf.StaticFunc, Type: &btf.FuncProto{Return: long, Params: params}}
	}
	read := func(dst asm.Register, off int16, size int32, fail string) asm.Instructions {
		// probe_read_kernel(dst+off, size, R3)
		return asm.Instructions{
			asm.Mov.Reg(asm.R1, dst),
			asm.Add.Imm(asm.R1, int32(off)),
			asm.Mov.Imm(asm.R2, size),
			asm.FnProbeReadKernel.Call(),
			asm.JNE.Imm(asm.R0, 0, fail),
		}
	}
	// bump adds 1 to the counter at off; label, if any, names it as a
	// jump target.
	bump := func(ctx asm.Register, off int16, label string) asm.Instructions {
		ins := asm.Instructions{
			asm.LoadMem(asm.R1, ctx, off, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(ctx, off, asm.R1, asm.DWord),
		}
		if label != "" {
			ins[0] = ins[0].WithSymbol(label)
		}
		return ins
	}

	// main(args): R9 args, R7 scratch, R8 the namespace, R6 the info value.
	m := asm.Instructions{
		btf.WithFuncMetadata(asm.Mov.Reg(asm.R9, asm.R1), fn("sockscope_count", btf.FuncParam{Name: "ctx", Type: voidp})),
		asm.Mov.Reg(asm.R7, asm.RFP),
		asm.Add.Imm(asm.R7, frame),
		asm.FnJiffies64.Call(),
		asm.StoreMem(asm.R7, cJiffies, asm.R0, asm.DWord),
		storeImm64(asm.R7, cSockets, 0),
		storeImm64(asm.R7, cTruncated, 0),
		storeImm64(asm.R7, cFaults, 0),
		storeImm64(asm.R7, cMoved, 0),
		// current->nsproxy->net_ns->ipv4.tcp_death_row.hashinfo, and
		// that struct's window; R8 keeps the namespace.
		asm.FnGetCurrentTask.Call(),
		asm.StoreMem(asm.R7, cTmp, asm.R0, asm.DWord),
	}
	// follow reads size bytes at off from the pointer in cTmp, into dst.
	follow := func(off int32, dst int16, size int32) asm.Instructions {
		return append(asm.Instructions{
			asm.LoadMem(asm.R3, asm.R7, cTmp, asm.DWord),
			asm.Add.Imm(asm.R3, off),
		}, read(asm.R7, dst, size, "m_fail")...)
	}
	m = append(m, follow(l.nsproxy, cTmp, 8)...)
	m = append(m, follow(l.netNS, cTmp, 8)...)
	m = append(m, asm.LoadMem(asm.R8, asm.R7, cTmp, asm.DWord))
	m = append(m, follow(l.hashinfo, cTmp, 8)...)
	m = append(m, follow(l.hLo, cWin, l.hSize)...)
	m = append(m, asm.StoreMem(asm.R7, cTmp, asm.R8, asm.DWord))
	m = append(m, follow(l.inum, cTmp, 4)...)
	hw := func(off int32) int16 { return int16(cWin + off - l.hLo) }
	m = append(m,
		asm.StoreImm(asm.R7, cKey, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, info),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, cKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "m_fail"),
		asm.Mov.Reg(asm.R6, asm.R0),
		asm.LoadMem(asm.R1, asm.R7, cTmp, asm.Word),
		asm.StoreMem(asm.R6, infoNetns, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, hw(l.pernet), asm.Byte),
		asm.StoreMem(asm.R6, infoPernet, asm.R1, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, hw(l.ehashMask), asm.Word),
		asm.StoreMem(asm.R6, infoEhashMask, asm.R2, asm.Word),
		asm.LoadMem(asm.R3, asm.R7, hw(l.lhMask), asm.Word),
		asm.StoreMem(asm.R6, infoLhashMask, asm.R3, asm.Word),

		// The table: R4 its first head, R5 how many buckets.
		asm.LoadMem(asm.R1, asm.R9, 0, asm.DWord),
		asm.JNE.Imm(asm.R1, 0, "m_listening"),
		asm.LoadMem(asm.R4, asm.R7, hw(l.ehash), asm.DWord),
		asm.Add.Imm(asm.R4, l.ehashHead),
		storeImm64(asm.R7, cStride, int64(l.ehashStride)),
		storeImm64(asm.R7, cNullsBase, 0),
		asm.Mov.Reg(asm.R5, asm.R2),
		asm.Ja.Label("m_table"),
		asm.LoadMem(asm.R4, asm.R7, hw(l.lhash2), asm.DWord).WithSymbol("m_listening"),
		asm.Add.Imm(asm.R4, l.lhashHead),
		storeImm64(asm.R7, cStride, int64(l.lhashStride)),
		storeImm64(asm.R7, cNullsBase, listeningNullsBase),
		asm.Mov.Reg(asm.R5, asm.R3),
		asm.Add.Imm(asm.R5, 1).WithSymbol("m_table"),
		asm.StoreMem(asm.R7, cBase, asm.R4, asm.DWord),
		// [start, start+count) within the table.
		asm.LoadMem(asm.R1, asm.R9, 8, asm.DWord),
		asm.StoreMem(asm.R7, cStart, asm.R1, asm.DWord),
		asm.LoadMem(asm.R2, asm.R9, 16, asm.DWord),
		asm.JGE.Reg(asm.R1, asm.R5, "m_done"),
		asm.Sub.Reg(asm.R5, asm.R1),
		asm.JLE.Reg(asm.R2, asm.R5, "m_count"),
		asm.Mov.Reg(asm.R2, asm.R5),
		asm.Mov.Reg(asm.R1, asm.R2).WithSymbol("m_count"),
		funcPtr(asm.R2, "sockscope_bucket"),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnLoop.Call(),

		asm.LoadMem(asm.R1, asm.R7, cSockets, asm.DWord).WithSymbol("m_done"),
		asm.StoreMem(asm.R6, infoSockets, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R7, cTruncated, asm.DWord),
		asm.StoreMem(asm.R6, infoTruncated, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R7, cFaults, asm.DWord),
		asm.StoreMem(asm.R6, infoFaults, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R7, cMoved, asm.DWord),
		asm.StoreMem(asm.R6, infoMoved, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("m_fail"),
		asm.Return(),
	)

	// bucket(index, scratch): one bucket's chain. R6 scratch.
	params := []btf.FuncParam{{Name: "index", Type: u64}, {Name: "ctx", Type: voidp}}
	b := asm.Instructions{
		btf.WithFuncMetadata(asm.Mov.Reg(asm.R6, asm.R2).WithSymbol("sockscope_bucket"), fn("sockscope_bucket", params...)),
		asm.LoadMem(asm.R3, asm.R6, cStart, asm.DWord),
		asm.Add.Reg(asm.R3, asm.R1),
		asm.StoreMem(asm.R6, cBucket, asm.R3, asm.DWord),
		asm.LoadMem(asm.R4, asm.R6, cStride, asm.DWord),
		asm.Mul.Reg(asm.R3, asm.R4),
		asm.LoadMem(asm.R4, asm.R6, cBase, asm.DWord),
		asm.Add.Reg(asm.R3, asm.R4),
	}
	b = append(b, read(asm.R6, cTmp, 8, "b_fault")...)
	b = append(b,
		asm.LoadMem(asm.R1, asm.R6, cTmp, asm.DWord),
		asm.StoreMem(asm.R6, cNode, asm.R1, asm.DWord),
		asm.And.Imm(asm.R1, 1),
		asm.JNE.Imm(asm.R1, 0, "b_out"), // empty
		asm.Mov.Imm(asm.R1, maxChain),
		funcPtr(asm.R2, "sockscope_sock"),
		asm.Mov.Reg(asm.R3, asm.R6),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnLoop.Call(),
		// The walk ends at a marker: this bucket's, or the chain was
		// left for another while a socket was freed and reused.
		asm.LoadMem(asm.R1, asm.R6, cNode, asm.DWord),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.And.Imm(asm.R2, 1),
		asm.JNE.Imm(asm.R2, 0, "b_marker"),
	)
	b = append(b, bump(asm.R6, cTruncated, "")...)
	b = append(b,
		asm.Ja.Label("b_out"),
		asm.RSh.Imm(asm.R1, 1).WithSymbol("b_marker"),
		asm.LoadMem(asm.R2, asm.R6, cBucket, asm.DWord),
		asm.LoadMem(asm.R3, asm.R6, cNullsBase, asm.DWord),
		asm.Add.Reg(asm.R2, asm.R3),
		asm.JEq.Reg(asm.R1, asm.R2, "b_out"),
	)
	b = append(b, bump(asm.R6, cMoved, "")...)
	b = append(b, asm.Ja.Label("b_out"))
	b = append(b, bump(asm.R6, cFaults, "b_fault")...)
	b = append(b,
		asm.Mov.Imm(asm.R0, 0).WithSymbol("b_out"),
		asm.Return(),
	)

	// sock(index, scratch): one socket of the chain. R6 scratch, R7 the
	// family's index, R8 the node, R9 the namespace's value.
	w := func(off int32) int16 { return int16(cWin + off - l.winLo) }
	t := func(off int32) int16 { return int16(cTw + off - l.twLo) }
	hist := int16(histOffset(len(ports)))
	s := asm.Instructions{
		btf.WithFuncMetadata(asm.Mov.Reg(asm.R6, asm.R2).WithSymbol("sockscope_sock"), fn("sockscope_sock", params...)),
		asm.LoadMem(asm.R8, asm.R6, cNode, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R8),
		asm.And.Imm(asm.R1, 1),
		asm.JNE.Imm(asm.R1, 0, "s_end"),
		asm.Mov.Reg(asm.R3, asm.R8),
		asm.Add.Imm(asm.R3, l.winLo-l.nullsNode),
	}
	s = append(s, read(asm.R6, cWin, l.winSize, "s_fault")...)
	s = append(s,
		asm.LoadMem(asm.R1, asm.R6, w(l.nullsNext), asm.DWord),
		asm.StoreMem(asm.R6, cNode, asm.R1, asm.DWord),
	)
	s = append(s, bump(asm.R6, cSockets, "")...)
	s = append(s,
		asm.LoadMem(asm.R7, asm.R6, w(l.family), asm.Half),
		asm.JEq.Imm(asm.R7, 2, "s_inet"), // AF_INET
		asm.JEq.Imm(asm.R7, 10, "s_inet6"),
		asm.Ja.Label("s_next"),
		asm.Mov.Imm(asm.R7, 0).WithSymbol("s_inet"),
		asm.Ja.Label("s_netns"),
		asm.Mov.Imm(asm.R7, 1).WithSymbol("s_inet6"),
		asm.LoadMem(asm.R3, asm.R6, w(l.net), asm.DWord).WithSymbol("s_netns"),
		asm.Add.Imm(asm.R3, l.inum),
	)
	s = append(s, read(asm.R6, cKey, 4, "s_fault_next")...)
	s = append(s,
		asm.LoadMapPtr(asm.R1, nsMap),
		asm.Mov.Reg(asm.R2, asm.R6),
		asm.Add.Imm(asm.R2, cKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "s_next"), // a namespace not asked for
		asm.Mov.Reg(asm.R9, asm.R0),
		// The state as the kernel's dumps report it: a request socket
		// is SYN_RECV, a TIME_WAIT entry its substate.
		asm.LoadMem(asm.R2, asm.R6, w(l.state), asm.Byte),
		asm.JNE.Imm(asm.R2, 12, "s_tw"), // TCP_NEW_SYN_RECV
		asm.Mov.Imm(asm.R2, 3),
		asm.Ja.Label("s_state"),
		asm.JNE.Imm(asm.R2, 6, "s_state").WithSymbol("s_tw"),
		asm.Mov.Reg(asm.R3, asm.R8),
		asm.Add.Imm(asm.R3, l.twLo-l.nullsNode),
	)
	s = append(s, read(asm.R6, cTw, l.twSize, "s_fault_next")...)
	s = append(s,
		asm.LoadMem(asm.R2, asm.R6, t(l.substate), asm.Byte),
		asm.JNE.Imm(asm.R2, 6, "s_state"), // FIN_WAIT2 kept as a timewait entry: no TIME_WAIT age
	)
	// The ages, when asked for (bounds given).
	if len(boundsMs) > 0 {
		s = append(s,
			// age = 60 s - the timer's time left (never below 0), in ms, as
			// the kernel's dump computes it.
			asm.LoadMem(asm.R3, asm.R6, t(l.expires), asm.DWord),
			asm.LoadMem(asm.R4, asm.R6, cJiffies, asm.DWord),
			asm.Sub.Reg(asm.R3, asm.R4),
			asm.JSGT.Imm(asm.R3, 0, "s_left"),
			asm.Mov.Imm(asm.R3, 0),
			asm.Mul.Imm(asm.R3, msPerJiffy).WithSymbol("s_left"),
			asm.Mov.Imm(asm.R4, 60000),
			asm.Sub.Reg(asm.R4, asm.R3),
			asm.JSGT.Imm(asm.R4, 0, "s_age"),
			asm.Mov.Imm(asm.R4, 0),
			asm.Mov.Imm(asm.R5, 1).WithSymbol("s_age"),
			asm.Mov.Reg(asm.R1, asm.R9),
			asm.Add.Imm(asm.R1, int32(hist)),
			asm.StoreXAdd(asm.R1, asm.R5, asm.DWord),
			asm.Add.Imm(asm.R1, 8),
			asm.StoreXAdd(asm.R1, asm.R4, asm.DWord),
		)
		for i, bound := range boundsMs {
			skip := fmt.Sprintf("s_bound%d", i)
			s = append(s,
				asm.Add.Imm(asm.R1, 8),
				asm.JGT.Imm(asm.R4, bound, skip),
				asm.StoreXAdd(asm.R1, asm.R5, asm.DWord),
				asm.Mov.Imm(asm.R0, 0).WithSymbol(skip),
			)
		}
	}
	s = append(s,
		asm.Mov.Imm(asm.R2, 6),
		// The port's slot: 0 for a port not named, i+1 for ports[i].
		asm.LoadMem(asm.R1, asm.R6, w(l.num), asm.Half).WithSymbol("s_state"),
		asm.Mov.Imm(asm.R3, 0),
	)
	for i, p := range ports {
		s = append(s, asm.JEq.Imm(asm.R1, int32(p), fmt.Sprintf("s_port%d", i)))
	}
	s = append(s, asm.Ja.Label("s_slot"))
	for i := range ports {
		s = append(s,
			asm.Mov.Imm(asm.R3, int32(i+1)).WithSymbol(fmt.Sprintf("s_port%d", i)),
			asm.Ja.Label("s_slot"),
		)
	}
	s = append(s,
		asm.LSh.Imm(asm.R3, 1).WithSymbol("s_slot"),
		asm.Add.Reg(asm.R3, asm.R7),
		asm.LSh.Imm(asm.R3, 4),
		asm.And.Imm(asm.R2, 15),
		asm.Add.Reg(asm.R3, asm.R2),
		asm.LSh.Imm(asm.R3, 2),
		asm.JGE.Imm(asm.R3, int32(hist), "s_next"),
		asm.Mov.Reg(asm.R1, asm.R9),
		asm.Add.Reg(asm.R1, asm.R3),
		asm.Mov.Imm(asm.R5, 1),
		asm.StoreXAdd(asm.R1, asm.R5, asm.Word),
		asm.Ja.Label("s_next"),
	)
	// A read that failed ends the chain (the bucket reports it); one for
	// a socket's namespace or timer skips the socket.
	s = append(s, storeImm64(asm.R6, cNode, 1).WithSymbol("s_fault"))
	s = append(s, bump(asm.R6, cFaults, "")...)
	s = append(s, asm.Ja.Label("s_end"))
	s = append(s, bump(asm.R6, cFaults, "s_fault_next")...)
	s = append(s,
		asm.Mov.Imm(asm.R0, 0).WithSymbol("s_next"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("s_end"),
		asm.Return(),
	)
	out := append(m, b...)
	return append(out, s...)
}
