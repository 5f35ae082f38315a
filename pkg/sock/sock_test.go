package sock

import (
	"strings"
	"testing"
)

var allStates = []struct {
	s      State
	kernel string
	ss     string
}{
	{Established, "ESTABLISHED", "established"},
	{SynSent, "SYN_SENT", "syn-sent"},
	{SynRecv, "SYN_RECV", "syn-recv"},
	{FinWait1, "FIN_WAIT1", "fin-wait-1"},
	{FinWait2, "FIN_WAIT2", "fin-wait-2"},
	{TimeWait, "TIME_WAIT", "time-wait"},
	{Close, "CLOSE", "closed"},
	{CloseWait, "CLOSE_WAIT", "close-wait"},
	{LastAck, "LAST_ACK", "last-ack"},
	{Listen, "LISTEN", "listen"},
	{Closing, "CLOSING", "closing"},
}

func TestStatesList(t *testing.T) {
	if len(States) != len(allStates) {
		t.Fatalf("States has %d entries, want %d", len(States), len(allStates))
	}
	for i, s := range States {
		if s != allStates[i].s || int(s) != i+1 {
			t.Errorf("States[%d] = %v, want %v (kernel number %d)", i, s, allStates[i].s, i+1)
		}
	}
}

func TestStateNames(t *testing.T) {
	for _, tc := range allStates {
		if got := tc.s.String(); got != tc.kernel {
			t.Errorf("State(%d).String() = %q, want %q", tc.s, got, tc.kernel)
		}
		if got := tc.s.SSName(); got != tc.ss {
			t.Errorf("State(%d).SSName() = %q, want %q", tc.s, got, tc.ss)
		}
	}
	for _, tc := range []struct {
		s          State
		kernel, ss string
	}{
		{NewSynRecv, "NEW_SYN_RECV", "syn-recv"},
		{0, "STATE0", "state0"},
		{13, "STATE13", "state13"},
		{42, "STATE42", "state42"},
		{255, "STATE255", "state255"},
	} {
		if got := tc.s.String(); got != tc.kernel {
			t.Errorf("State(%d).String() = %q, want %q", tc.s, got, tc.kernel)
		}
		if got := tc.s.SSName(); got != tc.ss {
			t.Errorf("State(%d).SSName() = %q, want %q", tc.s, got, tc.ss)
		}
	}
}

func TestParseStateAccepts(t *testing.T) {
	check := func(name string, want State) {
		t.Helper()
		got, ok := ParseState(name)
		if !ok || got != want {
			t.Errorf("ParseState(%q) = %v, %v; want %v, true", name, got, ok, want)
		}
	}
	for _, tc := range allStates {
		// Kernel names and ss names, in every case.
		for _, n := range []string{tc.kernel, tc.ss} {
			check(n, tc.s)
			check(strings.ToLower(n), tc.s)
			check(strings.ToUpper(n), tc.s)
			check(mixCase(n), tc.s)
		}
		// Either separator in either name.
		check(strings.ReplaceAll(tc.ss, "-", "_"), tc.s)
		check(strings.ReplaceAll(tc.kernel, "_", "-"), tc.s)
	}
	for name, want := range map[string]State{
		"listening":  Listen,
		"LISTENING":  Listen,
		"unconn":     Close,
		"close":      Close,
		"fin_wait_1": FinWait1,
		"FIN-WAIT-2": FinWait2,
		"finwait1":   FinWait1,
		"FinWait2":   FinWait2,
		"fin-wait1":  FinWait1,
		"fin_wait-2": FinWait2,
		"time_wait":  TimeWait,
		"TimeWait":   TimeWait,
		"timewait":   TimeWait,
		"synsent":    SynSent,
		"syn_recv":   SynRecv,
		"closewait":  CloseWait,
		"last_ack":   LastAck,
		"lastack":    LastAck,
		// Separators are stripped wherever they are, so even this passes.
		"_fin--wait_1_": FinWait1,
	} {
		check(name, want)
	}
}

// mixCase alternates upper and lower case: "tImE_WaIt".
func mixCase(s string) string {
	b := []byte(strings.ToLower(s))
	for i := range b {
		if i%2 == 1 && b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

func TestParseStateRejects(t *testing.T) {
	for _, name := range []string{
		"",
		"tim-wait",
		"bogus",
		"-",
		"_",
		" listen",   // no trimming
		"listen ",   // no trimming
		"time wait", // space is not a separator
		"fin-wait-3",
		"STATE6",
		"6",
		// NewSynRecv is not a state a person selects: the kernel reports
		// request sockets as SYN_RECV, so its kernel name is not accepted
		// even though NewSynRecv.String() returns it.
		"new-syn-recv",
		"new_syn_recv",
		"NEW_SYN_RECV",
		"newsynrecv",
	} {
		if got, ok := ParseState(name); ok {
			t.Errorf("ParseState(%q) = %v, true; want rejection", name, got)
		}
	}
}

// Every name String and SSName produce for a person-visible state parses
// back to that state.
func TestParseStateRoundTrip(t *testing.T) {
	for _, s := range States {
		for _, n := range []string{s.String(), s.SSName()} {
			if got, ok := ParseState(n); !ok || got != s {
				t.Errorf("ParseState(%q) = %v, %v; want %v", n, got, ok, s)
			}
		}
	}
}

func TestStateMask(t *testing.T) {
	if m := MaskOf(); m != 0 {
		t.Errorf("MaskOf() = %#x, want 0", m)
	}
	if m := MaskOf(Listen); m != 1<<10 {
		t.Errorf("MaskOf(Listen) = %#x, want %#x", m, 1<<10)
	}
	if m := MaskOf(Established, TimeWait, Established); m != 1<<1|1<<6 {
		t.Errorf("MaskOf(Established, TimeWait, Established) = %#x, want %#x", m, 1<<1|1<<6)
	}
	if m := MaskOf(States[:]...); m != AllStates&^(1<<NewSynRecv) {
		t.Errorf("MaskOf(States...) = %#x, want AllStates without NewSynRecv (%#x)", m, AllStates&^(1<<NewSynRecv))
	}
	if AllStates != 0x1ffe {
		t.Errorf("AllStates = %#x, want 0x1ffe (states 1..12)", AllStates)
	}
	for s := State(0); s < 32; s++ {
		want := s >= Established && s <= NewSynRecv
		if got := AllStates.Has(s); got != want {
			t.Errorf("AllStates.Has(%v) = %v, want %v", s, got, want)
		}
	}
	for _, s := range States {
		m := MaskOf(s)
		for _, o := range States {
			if got := m.Has(o); got != (o == s) {
				t.Errorf("MaskOf(%v).Has(%v) = %v", s, o, got)
			}
		}
	}
	m := MaskOf(Listen, CloseWait)
	if !m.Has(Listen) || !m.Has(CloseWait) || m.Has(TimeWait) || m.Has(0) {
		t.Errorf("MaskOf(Listen, CloseWait) = %#x: wrong membership", m)
	}
	var empty StateMask
	if empty.Has(Established) {
		t.Error("the empty mask has Established")
	}
	// A state past the 32-bit mask is in no set (the shift yields 0).
	if m := MaskOf(State(40)); m != 0 {
		t.Errorf("MaskOf(State(40)) = %#x, want 0", m)
	}
	if StateMask(0xffffffff).Has(State(40)) {
		t.Error("a full mask has State(40)")
	}
}

func TestTimerString(t *testing.T) {
	for _, tc := range []struct {
		t    Timer
		want string
	}{
		{TimerNone, ""},
		{TimerRetrans, "retrans"},
		{TimerKeepalive, "keepalive"},
		{TimerTimeWait, "timewait"},
		{TimerProbe0, "probe0"},
		{TimerDelack, "delack"},
		{6, "timer6"},
		{9, "timer9"},
		{255, "timer255"},
	} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("Timer(%d).String() = %q, want %q", tc.t, got, tc.want)
		}
	}
}

func TestFamilyString(t *testing.T) {
	for _, tc := range []struct {
		f    Family
		want string
	}{
		{IPv4, "inet"},
		{IPv6, "inet6"},
		{0, "family0"},
		{1, "family1"},
		{44, "family44"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("Family(%d).String() = %q, want %q", tc.f, got, tc.want)
		}
	}
	if IPv4 != 2 || IPv6 != 10 {
		t.Errorf("IPv4 = %d, IPv6 = %d; want AF_INET 2, AF_INET6 10", IPv4, IPv6)
	}
}
