// Package procnet reads TCP sockets from /proc/net/tcp and /proc/net/tcp6,
// as netstat does: the fallback for a kernel or sandbox without sock_diag.
//
// The files lack what sock_diag gives: socket cookies (a socket is known
// by its addresses and ports instead, so an age restarts when a four-tuple
// is reused), kernel-side filtering (everything is read, then filtered in
// user space) and tcp_info. Timers come in clock ticks, so TIME_WAIT ages
// are exact to 10 ms.
package procnet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strconv"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/sock"
)

// Reader rereads a namespace's /proc/net/tcp and tcp6. It is NOT safe for
// concurrent use.
type Reader struct {
	v4, v6 *os.File
	buf    []byte
	ns     uint32 // the namespace's inode, stamped on every socket
}

// Open opens the files of the namespace ns (the zero NS is the caller's).
func Open(ns netns.NS) (*Reader, error) {
	r := &Reader{ns: uint32(ns.Inode)}
	err := ns.Run(func() error {
		var err error
		if r.v4, err = os.Open("/proc/thread-self/net/tcp"); err != nil {
			return fmt.Errorf("opening /proc/net/tcp: %w", err)
		}
		if r.v6, err = os.Open("/proc/thread-self/net/tcp6"); err != nil {
			r.v4.Close()
			return fmt.Errorf("opening /proc/net/tcp6: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Close closes the files.
func (r *Reader) Close() error {
	r.v4.Close()
	return r.v6.Close()
}

// Dump appends every TCP socket of both files to snap.Sockets, each
// stamped with the namespace's inode.
func (r *Reader) Dump(snap *sock.Snapshot) error {
	start := len(snap.Sockets)
	for _, f := range []struct {
		file *os.File
		fam  sock.Family
	}{{r.v4, sock.IPv4}, {r.v6, sock.IPv6}} {
		b, err := r.read(f.file)
		if err != nil {
			return err
		}
		if snap.Sockets, err = Parse(b, f.fam, snap.Sockets); err != nil {
			return fmt.Errorf("parsing %s: %w", f.file.Name(), err)
		}
	}
	for i := start; i < len(snap.Sockets); i++ {
		snap.Sockets[i].Netns = r.ns
	}
	snap.Dumped = len(snap.Sockets)
	return nil
}

// read returns the whole file, read from its start into one buffer that
// grows as the table does.
func (r *Reader) read(f *os.File) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewinding %s: %w", f.Name(), err)
	}
	n := 0
	for {
		if n == len(r.buf) {
			r.buf = append(r.buf, make([]byte, max(len(r.buf), 1<<20))...)
		}
		m, err := f.Read(r.buf[n:])
		n += m
		switch {
		case err == io.EOF || (err == nil && m == 0):
			return r.buf[:n], nil
		case err != nil:
			return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
		}
	}
}

// ticksPerSecond is USER_HZ: /proc reports timers in clock ticks.
const ticksPerSecond = 100

// Parse appends the sockets of one file's content (a header line, then one
// line per socket) to dst.
func Parse(b []byte, fam sock.Family, dst []sock.Socket) ([]sock.Socket, error) {
	first := true
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if first {
			first = false
			continue // the header
		}
		f := bytes.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 10 {
			return dst, fmt.Errorf("short line %q", line)
		}
		var s sock.Socket
		var err error
		s.Family = fam
		if s.Local, err = hexAddrPort(f[1], fam); err != nil {
			return dst, err
		}
		if s.Peer, err = hexAddrPort(f[2], fam); err != nil {
			return dst, err
		}
		st, err1 := strconv.ParseUint(string(f[3]), 16, 8)
		tx, rx, err2 := hexPair(f[4])
		tr, when, err3 := hexPair(f[5])
		retr, err4 := strconv.ParseUint(string(f[6]), 16, 8)
		uid, err5 := strconv.ParseUint(string(f[7]), 10, 32)
		inode, err6 := strconv.ParseUint(string(f[9]), 10, 32)
		for _, e := range []error{err1, err2, err3, err4, err5, err6} {
			if e != nil {
				return dst, fmt.Errorf("line %q: %w", line, e)
			}
		}
		s.State, s.SendQ, s.RecvQ = sock.State(st), uint32(tx), uint32(rx)
		s.Timer, s.Expires = sock.Timer(tr), uint32(when*1000/ticksPerSecond)
		s.Retrans, s.UID, s.Inode, s.Info = uint8(retr), uint32(uid), uint32(inode), -1
		if s.Timer == sock.TimerNone {
			s.Expires = 0
		}
		s.Cookie = tupleCookie(&s)
		dst = append(dst, s)
	}
	return dst, nil
}

// tupleCookie stands in for the cookie the files do not have: a hash of
// the family, addresses and ports, with the top bit set so it never
// equals a kernel cookie (a counter far below 2^63).
func tupleCookie(s *sock.Socket) uint64 {
	h := fnv.New64a()
	var b [1 + 2*18]byte
	b[0] = byte(s.Family)
	for i, ap := range [2]sock.Endpoint{s.Local, s.Peer} {
		a := ap.Addr().As16()
		off := 1 + i*18
		copy(b[off:], a[:])
		b[off+16], b[off+17] = byte(ap.Port()>>8), byte(ap.Port())
	}
	h.Write(b[:]) // a hash.Hash never fails a write
	return h.Sum64() | 1<<63
}

// hexAddrPort reads "0100007F:2328": the address as the kernel's 32-bit
// words printed in host order (little-endian here), the port in hex.
func hexAddrPort(f []byte, fam sock.Family) (sock.Endpoint, error) {
	i := bytes.IndexByte(f, ':')
	if i < 0 {
		return sock.Endpoint{}, fmt.Errorf("address %q has no port", f)
	}
	port, err := strconv.ParseUint(string(f[i+1:]), 16, 16)
	if err != nil {
		return sock.Endpoint{}, fmt.Errorf("port in %q: %w", f, err)
	}
	words := f[:i]
	want := 8
	if fam == sock.IPv6 {
		want = 32
	}
	if len(words) != want {
		return sock.Endpoint{}, fmt.Errorf("address %q is not %d hex digits", words, want)
	}
	var raw [16]byte
	for w := 0; w < len(words)/8; w++ {
		v, err := strconv.ParseUint(string(words[w*8:w*8+8]), 16, 32)
		if err != nil {
			return sock.Endpoint{}, fmt.Errorf("address %q: %w", words, err)
		}
		binary.NativeEndian.PutUint32(raw[w*4:], uint32(v))
	}
	if fam == sock.IPv4 {
		return sock.Endpoint4([4]byte(raw[:4]), uint16(port)), nil
	}
	return sock.Endpoint16(raw, uint16(port)), nil
}

// hexPair reads "0000:00000000"-style pairs of hex numbers.
func hexPair(f []byte) (uint64, uint64, error) {
	i := bytes.IndexByte(f, ':')
	if i < 0 {
		return 0, 0, fmt.Errorf("%q is not a pair", f)
	}
	a, err := strconv.ParseUint(string(f[:i]), 16, 64)
	if err != nil {
		return 0, 0, err
	}
	b, err := strconv.ParseUint(string(f[i+1:]), 16, 64)
	return a, b, err
}
