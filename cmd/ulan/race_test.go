//go:build race

package main

// raceEnabled is true under -race, where compiling Go-built plugins with
// wazero takes tens of seconds each; tests then skip the slowest repeats.
const raceEnabled = true
