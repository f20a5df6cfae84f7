package kernel

import (
	"bytes"
	"os"
	"testing"
)

func TestTmpAgainstGCC(t *testing.T) {
	in, _ := os.ReadFile("/tmp/q8c/in.bin")
	want, _ := os.ReadFile("/tmp/q8c/out.bin")
	x := floatsFrom(in)
	got := make([]byte, len(x)/32*34)
	QuantizeQ8_0(x, got)
	t.Logf("impl %s: equal to gcc %v", Impl(), bytes.Equal(got, want))
	defer ForceGeneric()()
	QuantizeQ8_0(x, got)
	t.Logf("impl %s: equal to gcc %v", Impl(), bytes.Equal(got, want))
}
