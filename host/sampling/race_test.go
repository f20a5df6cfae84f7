//go:build race

package sampling

// raceEnabled shrinks the statistical tests, which the race detector slows
// about tenfold; they run at full size without it.
const raceEnabled = true
