// Package kbtf finds where the kernel keeps a structure's fields, from the
// running kernel's BTF (/sys/kernel/btf/vmlinux). sockscope's BPF programs
// are written with cilium/ebpf's asm package and read kernel structures at
// these offsets: layouts differ between kernels and configurations, and
// the BTF of the kernel that runs is the only true account of them.
package kbtf

import (
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// Kernel is the running kernel's BTF.
type Kernel struct{ spec *btf.Spec }

// Load reads the running kernel's BTF.
func Load() (*Kernel, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("reading the kernel's BTF: %w", err)
	}
	return &Kernel{spec}, nil
}

// Struct finds the struct by its name.
func (k *Kernel) Struct(name string) (*btf.Struct, error) {
	var s *btf.Struct
	if err := k.spec.TypeByName(name, &s); err != nil {
		return nil, fmt.Errorf("struct %s in the kernel's BTF: %w", name, err)
	}
	return s, nil
}

// Member finds a member by its path of names, looking through anonymous
// structs and unions, and returns its byte offset and size. Each name but
// the last must be an embedded struct or union (not a pointer): the
// offset is from the start of s.
func Member(s btf.Type, path ...string) (int32, int, error) {
	var off uint32
	t := s
	for _, name := range path {
		m, at, ok := find(t, name)
		if !ok {
			return 0, 0, fmt.Errorf("no member %v in %s", path, s.TypeName())
		}
		if m.BitfieldSize != 0 {
			return 0, 0, fmt.Errorf("member %v of %s is a bitfield", path, s.TypeName())
		}
		off += at
		t = m.Type
	}
	size, err := btf.Sizeof(t)
	if err != nil {
		return 0, 0, fmt.Errorf("size of %v in %s: %w", path, s.TypeName(), err)
	}
	return int32(off), size, nil
}

// Fields collects the offsets of several members, checking each one's
// size, so that a caller reads a dozen fields and looks at one error.
type Fields struct {
	errs []error
}

// Of returns the offset of the member at path in s, which must be want
// bytes long (0: any size); a failure is kept for Err.
func (f *Fields) Of(s *btf.Struct, want int, path ...string) int32 {
	off, size, err := Member(s, path...)
	if err == nil && want > 0 && size != want {
		err = fmt.Errorf("struct %s: %v is %d bytes, not %d", s.Name, path, size, want)
	}
	if err != nil {
		f.errs = append(f.errs, err)
	}
	return off
}

// Err is the first failure of Of, if any.
func (f *Fields) Err() error {
	if len(f.errs) == 0 {
		return nil
	}
	return f.errs[0]
}

// find looks for name among t's members and those of its anonymous
// members; at is the member's byte offset in t.
func find(t btf.Type, name string) (btf.Member, uint32, bool) {
	var members []btf.Member
	switch v := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		members = v.Members
	case *btf.Union:
		members = v.Members
	default:
		return btf.Member{}, 0, false
	}
	for _, m := range members {
		if m.Name == name {
			return m, m.Offset.Bytes(), true
		}
		if m.Name == "" {
			if inner, at, ok := find(m.Type, name); ok {
				return inner, m.Offset.Bytes() + at, true
			}
		}
	}
	return btf.Member{}, 0, false
}
