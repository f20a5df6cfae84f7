package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
)

// TestReadmeConfigReference keeps the README's configuration table in step
// with host/config: one row per key, with its default and whether it is live.
func TestReadmeConfigReference(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	row := regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\| `([^`]*)` \\| (yes|no) \\|")
	rows := map[string][2]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		rows[m[1]] = [2]string{m[2], m[3]}
	}
	keys := config.Keys()
	require.Len(t, rows, len(keys), "one README row per configuration key")
	for _, k := range keys {
		got, ok := rows[k.Key]
		require.True(t, ok, "README lacks a row for %s", k.Key)
		require.Equal(t, k.Default, got[0], "README default of %s", k.Key)
		live := "no"
		if k.Live {
			live = "yes"
		}
		require.Equal(t, live, got[1], "README live column of %s", k.Key)
	}
}

// TestReadmeCommands checks the README opens with the two commands that work
// on a fresh clone, and that .ci/run runs the same test command.
func TestReadmeCommands(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	block := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(string(readme))
	require.NotNil(t, block)
	lines := strings.Split(strings.TrimSpace(block[1]), "\n")
	require.Len(t, lines, 2)
	require.True(t, strings.HasPrefix(lines[0], "go run ./cmd/ulan serve"), lines[0])
	testCmd := strings.TrimSpace(strings.SplitN(lines[1], "#", 2)[0])
	ci, err := os.ReadFile("../../.ci/run")
	require.NoError(t, err)
	require.Contains(t, string(ci), "\n"+testCmd+"\n", ".ci/run runs the README's test command")
}
