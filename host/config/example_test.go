package config_test

import (
	"errors"
	"fmt"

	"github.com/ulan-ai/ulan/host/config"
)

func ExampleParse() {
	_, err := config.Parse([]byte(`
server:
  listn: 127.0.0.1:8080
  drain_timeout: soon
limits:
  max_request_bytes: 2GiB
`))
	var problems config.Problems
	if errors.As(err, &problems) {
		for _, p := range problems {
			fmt.Println(p)
		}
	}
	// Output:
	// server.listn: unknown key (did you mean server.listen?)
	// server.drain_timeout: "soon" is not a duration (use a value such as 30s, 2m or 1h30m)
	// limits.max_request_bytes: 2GiB must be between 1KiB and 1GiB
}

func ExampleLoad() {
	cfg, err := config.Load(config.Sources{
		Env: []string{"ULAN_SERVER_LISTEN=:9090", "ULAN_LIMITS_MAX_PROMPT_BYTES=4MiB"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Server.Listen, cfg.Limits.MaxPromptBytes)
	// Output: :9090 4MiB
}
