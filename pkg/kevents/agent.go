package kevents

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/sockscope/sockscope/pkg/sock"
	"golang.org/x/sys/unix"
)

// The agent is the one thing sockscope leaves in the kernel, and only when
// asked (sockscope agent start): the program of this package, pinned in
// bpffs with a map, stamping each TCP socket's birth and its last change
// in the kernel, so that any later run (a list, the dashboard, the
// exporter) knows the exact age of every socket born since the agent
// started. The kernel keeps no creation time of its own. StopAgent removes
// every pinned object; nothing else is changed.

// Where the agent's objects are pinned.
const (
	BPFFS    = "/sys/fs/bpf"
	AgentDir = BPFFS + "/sockscope"
)

const (
	pinLink   = "link"   // the program, attached
	pinStamps = "stamps" // cookie -> birth, last change, state
	pinMeta   = "meta"   // when the agent started, and whether it mounted bpffs
)

// stampsMax bounds the map: live sockets born since the agent started. The
// map takes memory as entries come (no preallocation), about 100 bytes
// each; a socket's entry goes when it closes.
const stampsMax = 1 << 22

// noPrealloc is BPF_F_NO_PREALLOC.
const noPrealloc = 1

// Stamp is what the agent knows of one socket.
type Stamp struct {
	Born  time.Time // when the kernel made it
	Last  time.Time // its last change of state
	State sock.State
}

// stampSize is the map's value: born and last (monotonic ns), state, pad.
const stampSize = 24

// AgentStatus says whether the agent runs, since when, and how many live
// sockets carry its stamp.
type AgentStatus struct {
	Running bool
	Since   time.Time
	Stamped int
}

// ErrAgentRunning says StartAgent found the agent running already.
var ErrAgentRunning = errors.New("the agent is running already")

// StartAgent loads the agent's program, attaches it, and pins it with its
// map under AgentDir. bpffs is mounted at BPFFS first where it is not (and
// unmounted again by StopAgent).
func StartAgent() (_ AgentStatus, err error) {
	if st, err := Status(); err != nil {
		return AgentStatus{}, err
	} else if st.Running {
		return st, ErrAgentRunning
	}
	mounted, err := ensureBPFFS()
	if err != nil {
		return AgentStatus{}, err
	}
	ok := false
	defer func() {
		if !ok {
			// Nothing half-made stays pinned; what cannot be removed
			// is said with the failure.
			if rerr := removeAgent(mounted); rerr != nil {
				err = errors.Join(err, fmt.Errorf("removing what the failed start pinned: %w", rerr))
			}
		}
	}()
	offs, err := kernelOffsets()
	if err != nil {
		return AgentStatus{}, unavailable(err)
	}
	if err := os.MkdirAll(AgentDir, 0o700); err != nil {
		return AgentStatus{}, fmt.Errorf("making %s: %w", AgentDir, err)
	}
	stamps, err := ebpf.NewMap(&ebpf.MapSpec{Name: "sockscope_stamp", Type: ebpf.Hash, KeySize: 8, ValueSize: stampSize,
		MaxEntries: stampsMax, Flags: noPrealloc})
	if err != nil {
		return AgentStatus{}, unavailable(fmt.Errorf("creating the stamps map: %w", err))
	}
	defer stamps.Close()
	meta, err := ebpf.NewMap(&ebpf.MapSpec{Name: "sockscope_meta", Type: ebpf.Array, KeySize: 4, ValueSize: 16, MaxEntries: 1})
	if err != nil {
		return AgentStatus{}, unavailable(fmt.Errorf("creating the agent's map: %w", err))
	}
	defer meta.Close()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "sockscope_birth", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
		AttachTo: "inet_sock_set_state", License: "GPL",
		Instructions: agentProgram(offs, stamps.FD()),
	})
	if err != nil {
		return AgentStatus{}, unavailable(fmt.Errorf("loading the agent's program: %w", err))
	}
	defer prog.Close()
	now := time.Now()
	var m [16]byte
	binary.LittleEndian.PutUint64(m[0:], uint64(now.UnixNano()))
	if mounted {
		m[8] = 1
	}
	if err := meta.Put(uint32(0), m[:]); err != nil {
		return AgentStatus{}, fmt.Errorf("writing the agent's start: %w", err)
	}
	if err := stamps.Pin(filepath.Join(AgentDir, pinStamps)); err != nil {
		return AgentStatus{}, fmt.Errorf("pinning the stamps map: %w", err)
	}
	if err := meta.Pin(filepath.Join(AgentDir, pinMeta)); err != nil {
		return AgentStatus{}, fmt.Errorf("pinning the agent's map: %w", err)
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		return AgentStatus{}, unavailable(fmt.Errorf("attaching to sock:inet_sock_set_state: %w", err))
	}
	defer l.Close()
	if err := l.Pin(filepath.Join(AgentDir, pinLink)); err != nil {
		return AgentStatus{}, fmt.Errorf("pinning the agent's program: %w", err)
	}
	ok = true
	return AgentStatus{Running: true, Since: now}, nil
}

// StopAgent detaches the agent and removes everything it pinned (and
// bpffs, where StartAgent mounted it and nothing else is pinned there).
// Without an agent it does nothing.
func StopAgent() error {
	mounted := false
	if meta, err := ebpf.LoadPinnedMap(filepath.Join(AgentDir, pinMeta), &ebpf.LoadPinOptions{ReadOnly: true}); err == nil {
		var m [16]byte
		if err := meta.Lookup(uint32(0), m[:]); err == nil {
			mounted = m[8] == 1
		}
		meta.Close()
	}
	return removeAgent(mounted)
}

func removeAgent(unmount bool) error {
	var errs []error
	// The link first: its pin gone, the program detaches.
	for _, name := range []string{pinLink, pinStamps, pinMeta} {
		if err := os.Remove(filepath.Join(AgentDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unpinning %s: %w", name, err))
		}
	}
	if err := os.Remove(AgentDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("removing %s: %w", AgentDir, err))
	}
	if unmount {
		if entries, err := os.ReadDir(BPFFS); err == nil && !slices.ContainsFunc(entries, pinned) {
			if err := unix.Unmount(BPFFS, 0); err != nil {
				errs = append(errs, fmt.Errorf("unmounting %s: %w", BPFFS, err))
			}
		}
	}
	return errors.Join(errs...)
}

// pinned reports whether a bpffs entry is someone's pin: the kernel's own
// maps.debug and progs.debug come with every mount.
func pinned(e os.DirEntry) bool {
	return e.Name() != "maps.debug" && e.Name() != "progs.debug"
}

// ensureBPFFS mounts bpffs at BPFFS unless it is there; mounted says it
// did.
func ensureBPFFS() (mounted bool, err error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(BPFFS, &fs); err == nil && fs.Type == unix.BPF_FS_MAGIC {
		return false, nil
	}
	if err := os.MkdirAll(BPFFS, 0o700); err != nil {
		return false, fmt.Errorf("making %s: %w", BPFFS, err)
	}
	if err := unix.Mount("bpf", BPFFS, "bpf", 0, "mode=0700"); err != nil {
		return false, unavailable(fmt.Errorf("mounting bpffs at %s: %w", BPFFS, err))
	}
	return true, nil
}

// Status reads the pinned agent, if any.
func Status() (AgentStatus, error) {
	meta, err := loadPinned(pinMeta)
	if errors.Is(err, os.ErrNotExist) {
		return AgentStatus{}, nil
	}
	if err != nil {
		return AgentStatus{}, fmt.Errorf("reading the agent: %w", err)
	}
	defer meta.Close()
	var m [16]byte
	if err := meta.Lookup(uint32(0), m[:]); err != nil {
		return AgentStatus{}, fmt.Errorf("reading the agent's start: %w", err)
	}
	st := AgentStatus{Since: time.Unix(0, int64(binary.LittleEndian.Uint64(m[0:])))}
	if _, err := os.Stat(filepath.Join(AgentDir, pinLink)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("reading the agent's link: %w", err)
	} else if err != nil && !progAttached("sockscope_birth") {
		// Not under this mount namespace's bpffs: is its program loaded?
		return st, nil
	}
	st.Running = true
	s, err := OpenStamps()
	if err != nil {
		return st, err
	}
	defer s.Close()
	all, err := s.All()
	if err != nil {
		return st, err
	}
	st.Stamped = len(all)
	return st, nil
}

// progAttached reports whether a program of this name is loaded.
func progAttached(name string) bool {
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return false
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err := p.Info()
		p.Close()
		if err == nil && info.Name == name {
			return true
		}
	}
}

// Stamps is the agent's map, read-only.
type Stamps struct{ m *ebpf.Map }

// OpenStamps opens the running agent's stamps; an error that is
// os.ErrNotExist says no agent runs.
func OpenStamps() (*Stamps, error) {
	m, err := loadPinned(pinStamps)
	if err != nil {
		return nil, fmt.Errorf("opening the agent's stamps: %w", err)
	}
	return &Stamps{m: m}, nil
}

// mapNames are the kernel's names of the agent's maps, by pin.
var mapNames = map[string]string{pinStamps: "sockscope_stamp", pinMeta: "sockscope_meta"}

// loadPinned opens one of the agent's maps read-only: under AgentDir, or,
// where this process has a mount namespace of its own with no bpffs in it
// (ip netns exec mounts a sysfs of its own over /sys), by its name among
// the kernel's maps.
func loadPinned(name string) (*ebpf.Map, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(AgentDir, name), &ebpf.LoadPinOptions{ReadOnly: true})
	if !errors.Is(err, os.ErrNotExist) {
		return m, err
	}
	if byID := mapByName(mapNames[name]); byID != nil {
		return byID, nil
	}
	return nil, err
}

// mapByName finds a map by its kernel name; nil when there is none, or
// when this process may not look (CAP_SYS_ADMIN).
func mapByName(name string) *ebpf.Map {
	var id ebpf.MapID
	for {
		next, err := ebpf.MapGetNextID(id)
		if err != nil {
			return nil // the last ID, or not allowed
		}
		id = next
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		if info, err := m.Info(); err == nil && info.Name == name {
			return m
		}
		m.Close()
	}
}

// All reads every stamp, by cookie, in batches.
func (s *Stamps) All() (map[uint64]Stamp, error) {
	base := clockOffset()
	out := make(map[uint64]Stamp)
	keys := make([]uint64, 4096)
	vals := make([][stampSize]byte, len(keys))
	var cursor ebpf.MapBatchCursor
	for {
		n, err := s.m.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			out[keys[i]] = decodeStamp(vals[i][:], base)
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("reading the agent's stamps: %w", err)
		}
	}
}

// Lookup reads one socket's stamp.
func (s *Stamps) Lookup(cookie uint64) (Stamp, bool, error) {
	var v [stampSize]byte
	err := s.m.Lookup(cookie, v[:])
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return Stamp{}, false, nil
	}
	if err != nil {
		return Stamp{}, false, fmt.Errorf("reading the agent's stamp of %d: %w", cookie, err)
	}
	return decodeStamp(v[:], clockOffset()), true, nil
}

func decodeStamp(b []byte, base time.Time) Stamp {
	le := binary.LittleEndian
	return Stamp{Born: base.Add(time.Duration(le.Uint64(b[0:]))), Last: base.Add(time.Duration(le.Uint64(b[8:]))),
		State: sock.State(le.Uint32(b[16:]))}
}

// Close closes the map (the agent runs on).
func (s *Stamps) Close() error { return s.m.Close() }

// agentProgram stamps each TCP socket: its birth (a change from CLOSE, or
// a listener's child made in SYN_RECV) stores born and last, a later change
// updates last and the state, the change to CLOSE removes it. (The coarse
// clock, cheaper, is not allowed to tracing programs; the close needs no
// clock at all.)
func agentProgram(o *offsets, stampsFD int) asm.Instructions {
	const (
		sk, from, to, ptr = asm.R6, asm.R7, asm.R8, asm.R9
		key               = -8             // the cookie
		val               = -8 - stampSize // the stamp
		tcpClose          = int32(sock.Close)
	)
	return append(prologue(o, sk, from, to),
		asm.Mov.Reg(asm.R1, sk),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, key, asm.R0, asm.DWord),

		asm.JNE.Imm(to, tcpClose, "born?"),
		asm.LoadMapPtr(asm.R1, stampsFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, key),
		asm.FnMapDeleteElem.Call(),
		asm.Ja.Label("exit"),

		asm.JEq.Imm(from, tcpClose, "born").WithSymbol("born?"),
		asm.JNE.Imm(from, int32(sock.Listen), "changed"),
		asm.JNE.Imm(to, int32(sock.SynRecv), "changed"),
		asm.FnKtimeGetNs.Call().WithSymbol("born"),
		asm.StoreMem(asm.RFP, val, asm.R0, asm.DWord),
		asm.StoreMem(asm.RFP, val+8, asm.R0, asm.DWord),
		asm.StoreMem(asm.RFP, val+16, to, asm.Word),
		asm.StoreImm(asm.RFP, val+20, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, stampsFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, key),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, val),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
		asm.Ja.Label("exit"),

		// A socket born before the agent has no stamp, and gets none:
		// its age stays "at least".
		asm.LoadMapPtr(asm.R1, stampsFD).WithSymbol("changed"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, key),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Reg(ptr, asm.R0),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(ptr, 8, asm.R0, asm.DWord),
		asm.StoreMem(ptr, 16, to, asm.Word),

		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	)
}
