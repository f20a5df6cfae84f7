//go:build race

package deepseekv3_test

// raceEnabled reports a -race build: the race detector slows the Go quantizers
// tenfold and checks nothing in their single-goroutine arithmetic.
const raceEnabled = true
