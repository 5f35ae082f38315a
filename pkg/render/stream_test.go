package render

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// writeInBatches feeds entries to write n at a time.
func writeInBatches(t *testing.T, entries []track.Entry, n int, write func([]track.Entry) error) {
	t.Helper()
	for len(entries) > 0 {
		k := min(n, len(entries))
		if err := write(entries[:k]); err != nil {
			t.Fatal(err)
		}
		entries = entries[k:]
	}
}

// A table no longer than AlignRows comes out of a TableWriter, fed in
// batches, exactly as Table writes it whole.
func TestTableWriterShortTableAsTable(t *testing.T) {
	v := sampleView()
	for _, opt := range []TableOptions{{Header: true, Processes: true}, {Color: true}} {
		var buf bytes.Buffer
		tw := NewTableWriter(&buf, opt)
		writeInBatches(t, v.Entries, 2, tw.Write)
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if want := renderTable(t, v, opt); buf.String() != want {
			t.Errorf("%+v: %s", opt, firstDiff(want, buf.String()))
		}
	}
}

// longView is AlignRows+500 IPv4 entries, then 500 IPv6 ones with wider
// addresses.
func longView() *track.View {
	v := bigView(AlignRows + 1000)
	for i := range v.Entries {
		e := &v.Entries[i]
		if i < AlignRows+500 {
			a := [4]byte{10, 0, byte(i >> 8), byte(i)}
			e.Family, e.Local = sock.IPv4, sock.Endpoint4(a, 443)
			e.Peer = sock.Endpoint4([4]byte{10, 1, byte(i >> 8), byte(i)}, 50000)
			continue
		}
		e.Family = sock.IPv6
		e.Local = sock.EndpointOf(netip.AddrPortFrom(netip.MustParseAddr("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"), 443))
		e.Peer = sock.EndpointOf(netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), uint16(i)))
	}
	return v
}

// Past AlignRows, rows go out as they come: the same cells as Table's, the
// first AlignRows rows aligned to each other, a column widened from the
// first row that needs it on, and the summary of every row.
func TestTableWriterLongTable(t *testing.T) {
	v := longView()
	opt := TableOptions{Header: true}
	var buf bytes.Buffer
	tw := NewTableWriter(&buf, opt)
	writeInBatches(t, v.Entries, 300, tw.Write)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := strings.Split(strings.TrimSuffix(renderTable(t, v, opt), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d", len(got), len(want))
	}
	for i := range got {
		if !slices.Equal(strings.Fields(got[i]), strings.Fields(want[i])) {
			t.Fatalf("line %d: %q, want the cells of %q", i, got[i], want[i])
		}
	}
	// Where the peer column starts, line by line (header, then rows).
	peerAt := func(line string) int { return strings.Index(line, "10.1.") }
	first := strings.Index(got[0], "Peer")
	for i := 1; i <= AlignRows+500; i++ {
		if p := peerAt(got[i]); p != first {
			t.Fatalf("line %d: peer at %d, the header's at %d: %q", i, p, first, got[i])
		}
	}
	wide := strings.Index(got[AlignRows+501], "[2001:db8::1]")
	if wide <= first {
		t.Fatalf("the first IPv6 row's peer at %d, not past the IPv4 rows' %d: %q", wide, first, got[AlignRows+501])
	}
	for i := AlignRows + 501; i < len(got)-1; i++ {
		if p := strings.Index(got[i], "[2001:db8::1]"); p != wide {
			t.Fatalf("line %d: peer at %d, want %d as from the first wide row: %q", i, p, wide, got[i])
		}
	}
	if got[len(got)-1] != want[len(want)-1] {
		t.Errorf("summary %q, want %q", got[len(got)-1], want[len(want)-1])
	}
}

// Once past AlignRows, a TableWriter writes row after row in the memory it
// already has: no allocation per batch, whatever the table's length.
func TestTableWriterMemoryDoesNotGrow(t *testing.T) {
	v := bigView(AlignRows + 300)
	tw := NewTableWriter(io.Discard, TableOptions{Header: true, Processes: true})
	if err := tw.Write(v.Entries[:AlignRows]); err != nil {
		t.Fatal(err)
	}
	batch := v.Entries[AlignRows:]
	if err := tw.Write(batch); err != nil { // widths and buffers settle
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() {
		if err := tw.Write(batch); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per batch of %d rows", n, len(batch))
	}
	j := NewJSONWriter(io.Discard, nil)
	if err := j.Write(batch); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() {
		if err := j.Write(batch); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("JSON: %v allocations per batch of %d rows", n, len(batch))
	}
}

// JSON lines written in batches are the lines JSON writes at once.
func TestJSONWriterInBatches(t *testing.T) {
	v := longView()
	var want, got bytes.Buffer
	if err := JSON(&want, v, nil); err != nil {
		t.Fatal(err)
	}
	j := NewJSONWriter(&got, nil)
	writeInBatches(t, v.Entries, 300, j.Write)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Error(firstDiff(want.String(), got.String()))
	}
}

// failAfter accepts n writes, then fails every one.
type failAfter struct {
	n, writes int
	err       error
}

func (f *failAfter) Write(b []byte) (int, error) {
	f.writes++
	if f.writes > f.n {
		return 0, f.err
	}
	return len(b), nil
}

// A failed write (a closed pipe) ends the output: the error comes back
// from Write, Err and Close, and nothing more is written.
func TestWritersStopAtTheFirstWriteError(t *testing.T) {
	v := bigView(20 * AlignRows)
	broken := errors.New("broken pipe")
	for _, tc := range []struct {
		name string
		w    func(io.Writer) rowsWriter
	}{
		{"table", func(w io.Writer) rowsWriter { return NewTableWriter(w, TableOptions{Header: true}) }},
		{"json", func(w io.Writer) rowsWriter { return NewJSONWriter(w, nil) }},
	} {
		f := &failAfter{n: 1, err: broken}
		rw := tc.w(f)
		var err error
		for i := 0; i < len(v.Entries) && err == nil; i += 300 {
			err = rw.Write(v.Entries[i:min(i+300, len(v.Entries))])
		}
		if err != broken || rw.Err() != broken || rw.Close() != broken {
			t.Errorf("%s: Write %v, Err %v, want %v", tc.name, err, rw.Err(), broken)
		}
		if f.writes != 2 {
			t.Errorf("%s: %d writes, want 2 (one that failed)", tc.name, f.writes)
		}
	}
}

type rowsWriter interface {
	Write([]track.Entry) error
	Err() error
	Close() error
}
