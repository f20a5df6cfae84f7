package config

import (
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes. As text it is a plain integer ("1048576") or a number
// with a unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), with
// an optional space ("4 MiB") and a fraction when it comes to whole bytes ("1.5KiB").
type ByteSize int64

// Binary units for ByteSize values in code, such as 32 * MiB.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
)

// sizeUnits is keyed by the lower-cased unit, so "mib" and "MiB" both read as MiB: with
// no bit units on offer, "Mb" can only mean megabytes here.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
}

// sizeSyntax leaves the sign out so that "-1MiB" can be told apart from nonsense.
var sizeSyntax = regexp.MustCompile(`^(\d+(?:\.\d+)?)[ \t]*([A-Za-z]*)$`)

// UnmarshalText parses a size such as 32MiB. It rejects negative sizes, fractions that
// leave part of a byte, sizes beyond an int64 and unknown units.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := string(text)
	t := strings.TrimSpace(s)
	m := sizeSyntax.FindStringSubmatch(strings.TrimPrefix(t, "-"))
	var unit int64
	if m != nil {
		unit = sizeUnits[strings.ToLower(m[2])]
	}
	switch {
	case unit == 0:
		return fmt.Errorf("%q is not a size (use bytes or a unit such as 64KiB, 32MiB)", clip(s))
	case strings.HasPrefix(t, "-"):
		return fmt.Errorf("%q is not a size (it is negative)", clip(s))
	}
	// big.Rat keeps "0.001KB" exact; a float64 would make it 0.9999… bytes.
	r, _ := new(big.Rat).SetString(m[1])
	r.Mul(r, new(big.Rat).SetInt64(unit))
	switch {
	case !r.IsInt():
		return fmt.Errorf("%q is not a size (it is not a whole number of bytes)", clip(s))
	case !r.Num().IsInt64():
		return fmt.Errorf("%q is not a size (it is too large)", clip(s))
	}
	*b = ByteSize(r.Num().Int64())
	return nil
}

// MarshalText writes the size as String does, so it reads back unchanged.
func (b ByteSize) MarshalText() ([]byte, error) {
	return []byte(b.String()), nil
}

// String writes the size in the largest binary unit that divides it exactly, such as
// 32MiB, or in bytes, such as 1000B.
func (b ByteSize) String() string {
	for _, u := range []struct {
		size ByteSize
		name string
	}{{GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if b != 0 && b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}
