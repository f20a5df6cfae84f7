//go:build !race

package deepseekv3_test

const raceEnabled = false
