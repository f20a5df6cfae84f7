package kernel

import (
	"fmt"
	"testing"
)

func BenchmarkZZTile(b *testing.B) {
	for _, n := range []int{256, 1024, 2048, 7168} {
		for _, rows := range []int{2, 16} {
			rowBytes := n / 32 * 34
			w := make([]byte, rows*rowBytes)
			for r := range rows {
				copy(w[r*rowBytes:], benchQ8(n, uint64(10+r)))
			}
			var p Q8_0x4
			p.Pack(benchQ8(n, 2), benchQ8(n, 3), benchQ8(n, 4), benchQ8(n, 5), n/32)
			out := make([]float32, 4*rows)
			b.Run(fmt.Sprintf("%dx%d", n, rows), func(b *testing.B) {
				for b.Loop() {
					MulQ8_0x4(w, rows, &p, out)
				}
				reportGMACs(b, 4*rows*n)
			})
		}
	}
}
