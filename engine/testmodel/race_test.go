//go:build race

package testmodel

// raceEnabled reports a -race build, under which drawing a
// vocabulary-sized model takes tens of seconds.
const raceEnabled = true
