//go:build !race

package deepseekv4

const raceEnabled = false
