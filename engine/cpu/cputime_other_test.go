//go:build !unix

package cpu

import "time"

// cpuTime is zero where getrusage is missing: benchmarks report no CPU
// time there.
func cpuTime() time.Duration { return 0 }
